/* pet.owner holds a user_key, never a toy_key. */
/* expect: incompatible types? (when assigning|.toy_key) */
/* expect: user_key */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    pet p;
    (void)db; (void)pk; (void)uk;
#ifdef KIVIS_CF_FIXED
    (void)tk; p.owner = uk; return (int)p.owner.id;
#else
    p.owner = tk; return (int)p.owner.id;
#endif
}
