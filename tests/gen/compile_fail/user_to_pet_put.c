/* pet_put stores a pet, not a user. */
/* expect: incompatible pointer type */
/* expect: pet_put */
#include "pets.kivis.h"

#include <string.h>

int f(pets_db *db, user_key uk, pet_key pk, toy_key tk);
int f(pets_db *db, user_key uk, pet_key pk, toy_key tk)
{
    user u = {0, 0, 0};
    pet p;
    memset(&p, 0, sizeof p);
    (void)uk; (void)pk; (void)tk;
#ifdef KIVIS_CF_FIXED
    (void)u; return pet_put(db, &p, NULL);
#else
    return pet_put(db, &u, NULL);
#endif
}
