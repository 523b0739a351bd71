/* An int * as the prefix of a key whose first field is a string. */
/* expect: incompatible pointer type */
/* expect: cell_scan_prefix */
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
    (void)ip; return cell_scan_prefix(db, "s", 1, 0, cc);
#else
    return cell_scan_prefix(db, ip, 1, 0, cc);
#endif
}
