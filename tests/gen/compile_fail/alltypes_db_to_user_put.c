/* A handle of another schema: user_put takes a pets_db, and an
 * alltypes_db is not one. */
/* expect: incompatible pointer type */
/* expect: user_put */
#include "alltypes.kivis.h"
#include "pets.kivis.h"

int f(alltypes_db *adb, pets_db *pdb);
int f(alltypes_db *adb, pets_db *pdb)
{
    user u = {0, 0, 0};
#ifdef KIVIS_CF_FIXED
    (void)adb; return user_put(pdb, &u, NULL);
#else
    (void)pdb; return user_put(adb, &u, NULL);
#endif
}
