/* A uint64_t looked up in a uint32_t index would be cut to 3. */
/* expect: static.assert(ion)? failed */
/* expect: owner_by_level */
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
    return owner_by_level(db, (uint32_t)3, 0, oc);
#else
    return owner_by_level(db, big, 0, oc);
#endif
}
