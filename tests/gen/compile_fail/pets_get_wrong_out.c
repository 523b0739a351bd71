/* pets_get with a user_key must fill a user. */
/* expect: incompatible pointer type */
/* expect: user_get */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    pet p;
    user u;
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)p; return pets_get(db, uk, &u);
#else
    (void)u; return pets_get(db, uk, &p);
#endif
}
