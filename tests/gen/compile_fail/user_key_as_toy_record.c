/* toy_put takes a toy record, not a key. */
/* expect: incompatible pointer type */
/* expect: toy_put */
#include "pets.kivis.h"

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    toy t = {TOY_BALL, 1};
    (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)uk; return toy_put(db, &t, NULL);
#else
    return toy_put(db, &uk, NULL);
#endif
}
