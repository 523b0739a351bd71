/* _Generic has no association for a plain uint64_t id. */
/* expect: _Generic|association */
/* expect: pets_get */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    user u;
    uint64_t id = uk.id;
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)id; return pets_get(db, uk, &u);
#else
    return pets_get(db, id, &u);
#endif
}
