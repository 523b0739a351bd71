/*
 * src/core/engine.h - the record engine's internal state, shared by the
 * files of src/core.  Nothing outside src/core includes it.
 */
#ifndef KIVIS_ENGINE_H
#define KIVIS_ENGINE_H

#include <kivis.h>

#include "codec/codec.h"

#include <stdbool.h>

/* Key slot after the table id: 0 = records, 1 = reserved, index i = i + 2. */
#define KIVIS_SLOT_RECORDS 0u
#define KIVIS_SLOT_FIRST_INDEX 2u

typedef struct kivis_rcache kivis_rcache;

/* Stored ids and precomputed key prefixes of one compiled table. */
typedef struct kivis_table_state {
    const kivis_table_desc *desc;
    uint32_t id;          /* stored table id (never 0: table 0 is metadata) */
    uint32_t version;     /* stored layout version, written in value headers */
    uint32_t *index_ids;  /* stored id of each compiled index */
    unsigned key_width;   /* kivis__key_uint_width of the key struct */
    uint64_t next_id;     /* AUTO: next id in the open txn; 0 unknown */
    bool next_overflow;   /* AUTO: ids exhausted (known within the txn) */
    bool id_unsaved;      /* AUTO: the txn issued ids its counter does not
                           * say yet (written once, at commit) */
    kivis_rcache *cache;  /* record cache (cache.c), NULL when off */
    /* Referential actions (refs.c): for each index with an action, the
     * position of the table its field refers to (others: UINT32_MAX);
     * NULL when no index has one.  And the indexes of other tables (or of
     * this one) with an action whose field refers to this table. */
    uint32_t *ref_targets;
    struct kivis_referrer *referrers;
    uint32_t nreferrers;
} kivis_table_state;

/* An index with a referential action, seen from the referenced table. */
typedef struct kivis_referrer {
    uint32_t table; /* the referencing table's position */
    uint32_t index; /* its index over the foreign-key field */
} kivis_referrer;

struct kivis_db {
    kivis_storage *st;
    const kivis_schema_desc *schema;
    kivis_allocator alloc;
    int durability;
    size_t max_key;
    kivis_table_state *tables;
    unsigned open_flags;  /* kivis_options.flags */
    kivis_progress_fn progress; /* kivis_options.progress, for the open */
    void *progress_ctx;
    void *migrate_ctx;    /* kivis_options.migrate_ctx, for the open */
    const char **kept;    /* names of the stored tables the schema lacks, */
    uint32_t nkept;       /* one allocation with the strings (meta.c) */

    kivis_storage_txn *txn; /* the user's write transaction, if any */
    bool poisoned;          /* an operation failed after writing in txn */
    struct kivis_scan *scans; /* open scans: those on txn end with it,
                                 every one is orphaned by kivis_close */

    /* Scratch reused by every operation, so steady-state writes don't
     * allocate in the engine. */
    kivis_buf pk;       /* record key */
    kivis_buf val;      /* encoded value */
    kivis_buf newidx;   /* the new record's index entry keys, back to back */
    kivis_buf oldidx;   /* the old record's index entry keys */
    size_t *newlen;     /* length of each entry in newidx */
    size_t *oldlen;     /* length of each entry in oldidx */
    void *oldrec;       /* room for the largest record, to decode an old one */
    void *keytmp;       /* room for the largest key struct */
    kivis_buf autoid;   /* an auto-increment counter's key, then its value */
    kivis_buf refkey;   /* the record key a foreign-key field names */

    char errmsg[256];
};

/* An operation's transaction: the user's, or one of its own. */
typedef struct kivis_op {
    kivis_storage_txn *txn;
    bool own;   /* begun for this operation alone */
    bool wrote; /* issued a storage write */
} kivis_op;

/* Record a failure on the handle; returns rc.  printf-style detail. */
int kivis__fail(kivis_db *db, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

int kivis__op_begin(kivis_db *db, bool write, kivis_op *op);
/* Finish: commit or abort an own txn, poison the user txn on a failure
 * after writing.  Returns the operation's final status. */
int kivis__op_end(kivis_db *db, kivis_op *op, int rc);

/* Key building (keys.c) */
int kivis__table_prefix(kivis_buf *b, const kivis_table_state *ts,
                        uint32_t slot);
/* tableid | 0x00 | key(key) into out; *prefix_len (may be NULL) receives
 * where the encoded primary key starts. */
int kivis__record_key(kivis_db *db, const kivis_table_state *ts,
                      const void *key, kivis_buf *out, size_t *prefix_len);
/* The key a KEY_FIELDS or KEY_DERIVED table gives `rec`, into `key`: its
 * key fields copied (owned pointers shared with rec, not duplicated), or
 * derive_key's (a failure recorded on db) (record.c). */
int kivis__key_from_record(kivis_db *db, const kivis_table_state *ts,
                           const void *rec, void *key);
int kivis__index_value(kivis_buf *b, const kivis_table_desc *td,
                       uint32_t index, const void *value);
/* Whether index `index` leaves the record out: a unique index does not
 * hold absent values (two records without one never collide). */
bool kivis__unindexed(const kivis_table_desc *td, uint32_t index,
                      const void *rec);
/* Bytes of the range [p, end) holding every key that starts with p:
 * end = p with its last non-0xFF byte incremented and the rest cut;
 * all 0xFF -> unbounded (end->len = 0, *unbounded = true). */
int kivis__prefix_end(const kivis_buf *p, kivis_buf *end, bool *unbounded);
int kivis__check_key_size(kivis_db *db, const kivis_table_state *ts,
                          size_t len);

/* Every index entry key of `rec` (pk = its encoded primary key, without
 * the table prefix), back to back in `out`, the length of each in `lens`
 * (room for the table's nindexes); length 0 for an index that leaves the
 * record out (kivis__unindexed) (record.c). */
int kivis__index_entries(kivis_db *db, const kivis_table_state *ts,
                         const void *rec, kivis_slice pk, kivis_buf *out,
                         size_t *lens);

/* End every scan running on the user's transaction (scan.c). */
void kivis__detach_scans(kivis_db *db);
/* End every scan still open on the handle, at kivis_close: each lets go of
 * the db, so that kivis_scan_next on it is KIVIS_EINVAL and
 * kivis_scan_close frees it alone (scan.c). */
void kivis__orphan_scans(kivis_db *db);
/* Called before every write of `key` in the user's transaction while scans
 * run on it: each scan whose range holds the key notes whether it existed,
 * so that it steps over keys the transaction adds (scan.c).
 * @return KIVIS_OK; KIVIS_ENOMEM; storage errors (nothing written). */
int kivis__scans_before_write(kivis_db *db, kivis_slice key);

/* Step an open scan to its next entry without reading its value or
 * decoding anything: what counts and distinct values walk with.  *k
 * borrows the entry's whole storage key until the next step.
 * @return KIVIS_OK; KIVIS_NOTFOUND at the end; errors as kivis_scan_next
 * (scan.c). */
int kivis__scan_step(kivis_scan *s, kivis_slice *k);
/* Step an open scan past every key that starts with `start` (in a reverse
 * scan: to the last key below it) by one seek of the storage cursor, not
 * a step an entry; *k as kivis__scan_step.  What the scan has left to
 * visit is unchanged otherwise (keys written since it opened stay out).
 * @return as kivis__scan_step (scan.c). */
int kivis__scan_skip(kivis_scan *s, kivis_slice start, kivis_slice *k);
/* Bytes of tableid | slot at the start of every key the scan visits. */
size_t kivis__scan_prefix_len(const kivis_scan *s);

/* Referential actions (refs.c).  At open, after the descriptor checks:
 * validate each index's action and note targets and referrers in the
 * table states.  @return KIVIS_OK; KIVIS_EINVAL (a malformed reference,
 * nullify on a field that is not optional); KIVIS_ENOMEM. */
int kivis__refs_open(kivis_db *db);
void kivis__refs_free(kivis_db *db, kivis_table_state *ts);
/* The position among `n` table states of the table whose key struct is
 * `type` (the same descriptor, or one of the same name: a stored schema's
 * copy), or -1: which table a KIVIS_STRUCT field refers to. */
int kivis__key_table(const kivis_table_state *tables, uint32_t n,
                     const kivis_struct_desc *type);
/* Before writing `rec` (db->pk its record key, db->newidx/newlen its index
 * entries, db->oldidx/oldlen the old record's when had_old): each field
 * with an action whose value changed must name a stored record (or the
 * record itself).  @return KIVIS_OK; KIVIS_ECONSTRAINT naming table and
 * field; errors of the key encoding or the storage. */
int kivis__refs_check_put(kivis_db *db, const kivis_table_state *ts,
                          kivis_storage_txn *txn, const void *rec,
                          bool had_old);
/* Remove the record under db->pk (KIVIS_NOTFOUND when there is none) and,
 * through the referential actions, every record referring to it: all are
 * found first (restrict anywhere: KIVIS_ECONSTRAINT, nothing written),
 * then the nullified referrers that are not removed too are rewritten with
 * the field absent, then the rest removed, each once, in op's
 * transaction. */
int kivis__refs_remove(kivis_db *db, kivis_table_state *ts, kivis_op *op);
/* Remove the record under db->pk, of which the first plen bytes are the
 * table prefix, with its index entries (record.c).  KIVIS_NOTFOUND when
 * there is none. */
int kivis__remove_stored(kivis_db *db, kivis_table_state *ts, kivis_op *op,
                         size_t plen);
/* Write `rec` over the record under db->pk (its first plen bytes the
 * table prefix), moving its index entries, as kivis_update does (record.c):
 * nullify's rewrite of a referrer.  KIVIS_NOTFOUND when there is none. */
int kivis__rewrite_stored(kivis_db *db, kivis_table_state *ts, kivis_op *op,
                          size_t plen, const void *rec);

/* Hand the keys packed in `keys`, each ending at the size_t offset of
 * `ends` in turn, to kivis_txn_prefetch as one list (scan.c): the index
 * read-ahead and kivis_prefetch.  KIVIS_ENOMEM, or the prefetch's status. */
int kivis__prefetch_packed(kivis_storage_txn *txn, const kivis_buf *keys,
                           const kivis_buf *ends, const kivis_allocator *a);

/* Stored schema (meta.c) */
int kivis__meta_load(kivis_db *db);
/* The key of table `table_id`'s auto-increment counter in table 0, into b
 * (overwritten). */
int kivis__autoid_key(kivis_buf *b, uint32_t table_id);
/* The highest id the table's counter says was ever issued into *highest;
 * KIVIS_NOTFOUND (and 0) when it has none (no put yet, or a store written
 * before counters existed); `key` is scratch.  KIVIS_OK; KIVIS_NOTFOUND;
 * KIVIS_ECORRUPT; KIVIS_ENOMEM; storage errors. */
int kivis__autoid_get(kivis_storage_txn *txn, kivis_buf *key, uint32_t table_id,
                      uint64_t *highest);
/* Write the counter of each table whose ids the open transaction advanced
 * (record.c): once a transaction, just before its commit, instead of at
 * every put.  KIVIS_OK or the failure (errmsg set); the caller then aborts. */
int kivis__save_auto_ids(kivis_db *db, kivis_storage_txn *txn);
/* Forget the ids the ended transaction cached and issued. */
void kivis__forget_auto_ids(kivis_db *db);
/* Write the entries of every index of `table` whose stored id is >=
 * first_new, for every record already stored (record.c). */
int kivis__build_indexes(kivis_db *db, kivis_storage_txn *txn, uint32_t table,
                         uint32_t first_new);

/* Record cache (cache.c); only called when ts->cache is set.  `key` is the
 * full encoded record key.  get: KIVIS_OK (copied into record_out),
 * KIVIS_NOTFOUND (not cached, or inside a transaction), KIVIS_ENOMEM. */
int kivis__cache_get(kivis_db *db, const kivis_table_state *ts, kivis_slice key,
                     void *record_out, const kivis_allocator *a);
void kivis__cache_fill(kivis_db *db, const kivis_table_state *ts,
                       kivis_slice key, const void *record);
void kivis__cache_drop(kivis_db *db, const kivis_table_state *ts,
                       kivis_slice key);
void kivis__cache_free(kivis_db *db, kivis_table_state *ts);

/* An allocator that hands out consecutive pieces of one caller buffer and
 * frees nothing: what kivis_get_into and kivis_scan_next_into decode
 * through (decoding allocates only strings and byte runs, so pieces need
 * no alignment).  `want` adds up every request, so that a failure can say
 * how short the buffer was. */
typedef struct kivis_bump {
    kivis_allocator iface;
    unsigned char *next, *end;
    size_t want;
} kivis_bump;

void kivis__bump_init(kivis_bump *b, void *buf, size_t size);
/* rc from a decode through b: KIVIS_ENOMEM there means the buffer ran out,
 * which is KIVIS_ETOOSMALL (recorded on db); other codes pass. */
int kivis__bump_status(kivis_db *db, const kivis_bump *b, size_t size, int rc);

/* Helpers over the db allocator. */
void *kivis__alloc(kivis_db *db, size_t n);
void kivis__free(kivis_db *db, void *p);

#endif /* KIVIS_ENGINE_H */
