/* pet_by_favourite_toy looks up a toy_key, not a user_key. */
/* expect: incompatible type */
/* expect: pet_by_favourite_toy */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    pet_cursor c;
    (void)pk;
#ifdef KIVIS_CF_FIXED
    (void)uk; return pet_by_favourite_toy(db, tk, 0, &c);
#else
    return pet_by_favourite_toy(db, uk, 0, &c);
#endif
}
