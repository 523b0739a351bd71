/* pet_scan bounds are pet_keys. */
/* expect: incompatible pointer type */
/* expect: pet_scan */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    pet_cursor c;
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)uk; return pet_scan(db, &pk, NULL, 0, &c);
#else
    return pet_scan(db, &uk, NULL, 0, &c);
#endif
}
