/* user_remove takes a user_key. */
/* expect: incompatible type */
/* expect: user_remove */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    (void)pk;
#ifdef KIVIS_CF_FIXED
    (void)tk; return user_remove(db, uk);
#else
    (void)uk; return user_remove(db, tk);
#endif
}
