/* A double looked up in an enum index. */
/* expect: static.assert(ion)? failed */
/* expect: sample_by_colour */
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
    return sample_by_colour(db, GREEN, 0, sc);
#else
    return sample_by_colour(db, 5.0, 0, sc);
#endif
}
