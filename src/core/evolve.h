/*
 * src/core/evolve.h - declared schema changes applied at open (evolve.c):
 * matching a stored table's fields to the compiled ones by name or
 * declared old name, and rewriting its records from the stored layout to
 * the compiled one.  meta.c plans with these and applies them in the
 * open's write transaction.
 */
#ifndef KIVIS_EVOLVE_H
#define KIVIS_EVOLVE_H

#include "engine.h"

/* The stored name of table `table` (its name in the schema): the `was` of
 * a declared table rename, else the name itself. */
const char *kivis__stored_table_name(const kivis_schema_desc *s,
                                     const char *table);

/* Whether the schema declares stored table `table` (field NULL) or its
 * stored field `field` dropped. */
bool kivis__declared_drop(const kivis_schema_desc *s, kivis_slice table,
                          const char *field);

/* The name field i of compiled table `td` has in the store: its declared
 * old name when it was renamed, else its name. */
const char *kivis__stored_field_name(const kivis_schema_desc *s,
                                     const kivis_table_desc *td, uint32_t i);

/* Match compiled table `td` with its stored layout `from` (kivis_schema_load
 * of the stored schema): each compiled record field to the stored field of
 * its name (or declared old name) in map[i], UINT32_MAX for a new field;
 * *rewrite says whether the stored values need rewriting (a field dropped,
 * moved, widened or made optional).  Key fields may be renamed, their
 * enums may gain values, nothing else.  @return KIVIS_OK; KIVIS_ESCHEMA
 * naming table and field (recorded on db); KIVIS_ENOMEM. */
int kivis__evolve_match(kivis_db *db, const kivis_table_desc *td,
                        const kivis_table_desc *from, uint32_t *map,
                        bool *rewrite);

/* The typed migration schema `s` declares for its table at position
 * `table`, or NULL. */
const kivis_migration *kivis__migration_of(const kivis_schema_desc *s,
                                           uint32_t table);

/* Rewrite every record of compiled table `table` from layout `from` to the
 * compiled one, in txn, telling db->progress: by `map`
 * (kivis__evolve_match), or when `mig` is set by its function, each
 * result checked to keep its record's key.  Index entries are left to the
 * caller.  A failing function: its status (KIVIS_EINVAL for a positive
 * one), recorded on db with table and key. */
int kivis__evolve_rewrite(kivis_db *db, kivis_storage_txn *txn, uint32_t table,
                          const kivis_table_desc *from, const uint32_t *map,
                          const kivis_migration *mig);

/* Progress of a pass over the records of table `ts` in txn (a rewrite, an
 * index build), told to db->progress (kivis_progress_fn): begin counts
 * them, when someone listens, and reports done = 0; step counts one record
 * handled and reports every few thousand; end reports done = total.
 * begin returns KIVIS_OK or the count's storage error. */
int kivis__progress_begin(kivis_db *db, kivis_storage_txn *txn,
                          const kivis_table_state *ts, uint32_t phase,
                          uint32_t indexes, kivis_progress *p);
void kivis__progress_step(const kivis_db *db, kivis_progress *p);
void kivis__progress_end(const kivis_db *db, kivis_progress *p);

/* After building table `table`'s indexes failed with KIVIS_ECONSTRAINT:
 * write every unique index entry of its records unchecked into txn (which
 * the caller then aborts), find the records whose value another record
 * holds too, and fail with KIVIS_ECONSTRAINT naming the index, how many
 * records and the first keys. */
int kivis__evolve_unique_report(kivis_db *db, kivis_storage_txn *txn,
                                uint32_t table);

/* How field `was` (stored) differs from `now` (compiled), as meta.c says
 * it for a refused change ("field 'age' was uint32_t, now int16_t"), into
 * out; false when their types and flags are the same. */
bool kivis__field_change(const kivis_field *was, const kivis_field *now,
                         const char *what, const char *path, char *out,
                         size_t n);

#endif /* KIVIS_EVOLVE_H */
