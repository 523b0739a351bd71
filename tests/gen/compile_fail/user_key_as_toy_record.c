/* toy_insert takes a toy record, not a key. */
/* expect: incompatible pointer type */
/* expect: toy_insert */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    toy t = {TOY_BALL, 1};
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)uk; return toy_insert(db, &t, NULL);
#else
    return toy_insert(db, &uk, NULL);
#endif
}
