/* A uint64_t counted in a uint32_t index would be cut to 3. */
/* expect: static.assert(ion)? failed */
/* expect: owner_count_by_level */
#include "alltypes.kivis.h"
#include "pets.kivis.h"

int f(alltypes_db *db, pets_db *pdb, uint64_t big, double d, int *ip,
      owner_cursor *oc, sample_cursor *sc, cell_cursor *cc);
int f(alltypes_db *db, pets_db *pdb, uint64_t big, double d, int *ip,
      owner_cursor *oc, sample_cursor *sc, cell_cursor *cc)
{
    uint64_t n;
    (void)pdb; (void)big; (void)d; (void)ip; (void)oc; (void)sc; (void)cc;
#ifdef KIVIS_CF_FIXED
    return owner_count_by_level(db, (uint32_t)3, &n);
#else
    return owner_count_by_level(db, big, &n);
#endif
}
