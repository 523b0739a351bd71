/* A pet cursor cannot be read as a user cursor. */
/* expect: incompatible pointer type */
/* expect: user_next */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    pet_cursor c;
    (void)uk; (void)pk; (void)tk;
    if (pet_scan(db, NULL, NULL, 0, &c) != KIVIS_OK)
        return 1;
#ifdef KIVIS_CF_FIXED
    return pet_next(&c, NULL, NULL);
#else
    return user_next(&c, NULL, NULL);
#endif
}
