/* An int * as the bound of an enum range. */
/* expect: incompatible pointer type */
/* expect: sample_by_colour_range */
#include "alltypes.kivis.h"
#include "pets.kivis.h"

int f(alltypes_db *db, pets_db *pdb, uint64_t big, double d, int *ip,
      owner_cursor *oc, sample_cursor *sc, cell_cursor *cc);
int f(alltypes_db *db, pets_db *pdb, uint64_t big, double d, int *ip,
      owner_cursor *oc, sample_cursor *sc, cell_cursor *cc)
{
    uint16_t two[2] = {1, 2}, four[4] = {1, 2, 3, 4};
    (void)pdb; (void)big; (void)d; (void)ip; (void)oc; (void)sc; (void)cc; (void)two; (void)four;
#ifdef KIVIS_CF_FIXED
    shade lo = GREEN; (void)ip; return sample_by_colour_range(db, &lo, NULL, 0, sc);
#else
    return sample_by_colour_range(db, ip, NULL, 0, sc);
#endif
}
