/* user_get fills a user, not a toy. */
/* expect: incompatible pointer type */
/* expect: user_get */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    toy t;
    user u;
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)t; return user_get(db, uk, &u);
#else
    (void)u; return user_get(db, uk, &t);
#endif
}
