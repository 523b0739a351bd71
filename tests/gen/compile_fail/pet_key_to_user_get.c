/* A pet_key cannot fetch a user. */
/* expect: incompatible type */
/* expect: user_get */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    user u;
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    return user_get(db, uk, &u);
#else
    return user_get(db, pk, &u);
#endif
}
