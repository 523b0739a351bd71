/* The untyped handle does not reach generated functions: user_get takes a
 * pets_db (pets_open gives one; pets_kivis_db goes the other way). */
/* expect: incompatible pointer type */
/* expect: user_get */
#include "pets.kivis.h"

int f(kivis_db *kdb, pets_db *pdb, user_key uk);
int f(kivis_db *kdb, pets_db *pdb, user_key uk)
{
    user u;
#ifdef KIVIS_CF_FIXED
    (void)kdb; return user_get(pdb, uk, &u);
#else
    (void)pdb; return user_get(kdb, uk, &u);
#endif
}
