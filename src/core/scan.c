/* Scans over a table by primary key, and over an index (exact, range and
 * prefix lookups).  Every query becomes one byte range [lo, hi) of the
 * storage, because the key encoding preserves order.
 *
 * A scan in a write transaction visits the keys its range held when it was
 * opened, each at most once: the storage cursor sees every write of the
 * transaction (storage.h), so a loop that moves each visited record to a
 * later index value would meet it again and again (the Halloween problem).
 * Before the transaction writes a key in an open scan's range, the scan
 * notes whether that key existed (kivis__scans_before_write); keys noted as
 * new are stepped over.  Values are read as they are now, and keys removed
 * before the scan reaches them are not visited.
 *
 * A record scan that no write can reach (plain_now) takes its entries
 * from the cursor a run at a time (kivis_cursor_page) and returns one a
 * read; where a commit can change the store between two reads (memory),
 * it notices by the run's stamp and seeks past the last key it returned.
 *
 * An index scan over a backend whose gets are round trips (one that
 * prefetches: PostgreSQL) reads ahead: it takes a batch of index entries
 * from the cursor (16, then 8 times more each time, up to 1,024: the
 * backend's own page sizes) and asks for all their records in one
 * prefetch, instead of one round trip a record.  Only where no write can
 * change the range under it: a read-only transaction.
 *
 * In a read-only transaction, an index scan going forward over a table
 * whose record keys all have one length (auto-increment) opens its cursor
 * with kivis_txn_cursor_follow where the backend follows (PostgreSQL,
 * SQLite): the backend reads the records with the entries (PostgreSQL:
 * with each page, so the prefetch asks nothing; SQLite: in the cursor's
 * own query, so each record's get runs no statement). */
#include "engine.h"
#include "keyset.h"
#include "storage/btree.h" /* kivis__key_cmp: the storage order */

#include <string.h>

/* Entries a plain scan takes from its cursor at once: about an LMDB page
 * of small records, half a memory B+tree leaf. */
#define RUN_MAX 32
/* The room a scan reserves to keep a run's key (keep_last): a store that
 * takes longer keys (a memory store opened with a larger max_key_size)
 * is scanned an entry a call rather than reserve its limit per scan. */
#define RUN_KEY_ROOM (64u << 10)

struct kivis_scan {
    kivis_db *db;              /* NULL once kivis_close orphaned the scan */
    kivis_allocator alloc;     /* the db's, kept for a close after the db's */
    size_t key_size, record_size; /* of the table's structs, likewise */
    const kivis_table_state *ts;
    int32_t index;             /* -1: records */
    bool reverse;
    bool plain;                /* a record scan with no guard: plain_step */
    bool own_txn;              /* a read transaction of the scan's own */
    kivis_storage_txn *txn;
    kivis_storage_cursor *cur;
    size_t prefix_len;         /* bytes of tableid | slot */
    size_t entry_head;         /* an EQ index scan's: bytes every entry
                                  starts with, its prefix and value; else 0 */
    kivis_buf rk;              /* record key, for index scans */
    size_t rk_head;            /* bytes of rk that are the records' prefix
                                  (0: not built, or rk used otherwise) */
    kivis_buf redo;            /* the key of an entry to return again */
    bool has_redo;             /* the last step ran out of buffer: redo */
    struct kivis_scan *next;   /* in db->scans until closed or orphaned */
    bool detached;             /* its transaction ended under it */
    /* On a write transaction only: the range, and the keys written in it
     * since the scan opened (flag: the key existed at open). */
    bool guards;
    kivis_buf lo, hi;
    bool unbounded;
    kivis_keyset written;
    /* Read-ahead (index scans over a prefetching backend, read-only). */
    bool ahead;
    kivis_buf ra_keys;  /* the batch's entry keys, back to back */
    kivis_buf ra_ends;  /* the size_t end offset of each in ra_keys */
    size_t ra_n, ra_at; /* entries in the batch, the next one to return */
    size_t ra_batch;    /* entries the next batch takes */
    /* Plain scans: the run of entries the cursor last handed over
     * (kivis_cursor_page), returned one a read.  Its views go stale with
     * *run_stamp where that is not NULL; the key last returned is then
     * kept in `last`, to go on past it. */
    kivis_cursor_entry run[RUN_MAX];
    size_t run_cap; /* entries a run may hold: RUN_MAX, or 1 without room */
    size_t run_n, run_at;
    const uint64_t *run_stamp;
    uint64_t run_stamp_at;
    kivis_buf last;
};

#define AHEAD_FIRST 16
#define AHEAD_GROWTH 8
#define AHEAD_MAX 1024

/* Close the scan's cursor (and its own transaction): what a detached scan
 * no longer holds. */
static void release_storage(kivis_scan *s)
{
    kivis_cursor_close(s->cur);
    s->cur = NULL;
    if (s->own_txn && s->txn)
        kivis_txn_abort(s->txn);
    s->txn = NULL;
    s->detached = true;
    s->guards = false;
    kivis__keyset_free(&s->written);
    s->ra_n = s->ra_at = 0;
    s->run_n = s->run_at = 0;
}

static bool in_range(const kivis_scan *s, kivis_slice key)
{
    if (kivis__key_cmp(key, kivis_slice_make(s->lo.data, s->lo.len)) < 0)
        return false;
    return s->unbounded ||
           kivis__key_cmp(key, kivis_slice_make(s->hi.data, s->hi.len)) < 0;
}

/* Note, once per key, whether `key` existed before the transaction's first
 * write to it since the scan opened. */
static int note_write(kivis_scan *s, kivis_slice key)
{
    bool existed;
    if (kivis__keyset_find(&s->written, key, &existed))
        return KIVIS_OK;
    kivis_slice v;
    int rc = kivis_txn_get(s->txn, key, &v);
    if (rc != KIVIS_OK && rc != KIVIS_NOTFOUND)
        return rc;
    return kivis__keyset_add(&s->written, key, rc == KIVIS_OK);
}

int kivis__scans_before_write(kivis_db *db, kivis_slice key)
{
    for (kivis_scan *s = db->scans; s; s = s->next)
        if (s->guards && in_range(s, key)) {
            int rc = note_write(s, key);
            if (rc)
                return rc;
        }
    return KIVIS_OK;
}

/* A key the transaction created after the scan opened. */
static bool written_since_open(const kivis_scan *s, kivis_slice key)
{
    bool existed;
    return s->guards && kivis__keyset_find(&s->written, key, &existed) && !existed;
}

void kivis__detach_scans(kivis_db *db)
{
    for (kivis_scan *s = db->scans; s; s = s->next)
        if (!s->own_txn)
            release_storage(s);
}

void kivis__orphan_scans(kivis_db *db)
{
    for (kivis_scan *s = db->scans; s; s = s->next) {
        release_storage(s);
        s->db = NULL;
    }
    db->scans = NULL;
}

static void unlink_scan(kivis_scan *s)
{
    for (kivis_scan **p = &s->db->scans; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            return;
        }
}

/* The field a PREFIX query matches: first key field or the indexed one. */
static const kivis_field *query_field(const kivis_table_desc *td, int32_t index)
{
    if (index < 0)
        return &td->key->fields[0];
    return &td->record->fields[td->indexes[index].field];
}

static bool prefixable(const kivis_field *f)
{
    return f->count == 0 &&
           (f->kind == KIVIS_STRING || f->kind == KIVIS_CHARS ||
            f->kind == KIVIS_BYTES);
}

/* Append the encoding of a query bound: a key struct, or an index value. */
static int put_bound(kivis_buf *b, const kivis_table_desc *td, int32_t index,
                     const void *bound)
{
    if (index < 0)
        return kivis__key_put_struct(b, td->key, bound);
    return kivis__index_value(b, td, (uint32_t)index, bound);
}

/* Append the escaped prefix without its terminator, so that every
 * escaped string starting with it starts with these bytes. */
static int put_prefix(kivis_buf *b, const void *p, size_t n)
{
    int rc = kivis__key_put_bytes(b, p, n);
    if (!rc)
        b->len--; /* the 0x00 terminator */
    return rc;
}

static bool optional_index(const kivis_table_desc *td, int32_t index)
{
    return index >= 0 && (query_field(td, index)->flags & KIVIS_FIELD_OPTIONAL);
}

/* The range of a KIVIS_Q_ABSENT query: the absent tag, on an index that
 * holds absent values. */
static int absent_range(kivis_db *db, const kivis_table_desc *td, int32_t index,
                        kivis_buf *lo, kivis_buf *hi, bool *unbounded)
{
    if (!optional_index(td, index) ||
        (td->indexes[index].flags & KIVIS_INDEX_UNIQUE))
        return kivis__fail(db, KIVIS_EINVAL,
                           "%s: an absent-value query needs a non-unique "
                           "index over an [[optional]] field",
                           td->name);
    int rc = kivis__buf_byte(lo, KIVIS_TAG_ABSENT);
    return rc ? rc : kivis__prefix_end(lo, hi, unbounded);
}

static int query_range(kivis_db *db, const kivis_query *q,
                       const kivis_table_state *ts, kivis_buf *lo,
                       kivis_buf *hi, bool *unbounded, size_t *prefix_len)
{
    const kivis_table_desc *td = ts->desc;
    uint32_t slot = q->index < 0
                        ? KIVIS_SLOT_RECORDS
                        : ts->index_ids[q->index] + KIVIS_SLOT_FIRST_INDEX;
    int rc = kivis__table_prefix(lo, ts, slot);
    if (rc)
        return rc;
    *prefix_len = lo->len;
    switch (q->mode) {
    case KIVIS_Q_ALL:
        return kivis__prefix_end(lo, hi, unbounded);
    case KIVIS_Q_EQ:
        if (!q->lo)
            return kivis__fail(db, KIVIS_EINVAL, "%s: EQ query without a value",
                               td->name);
        rc = put_bound(lo, td, q->index, q->lo);
        return rc ? rc : kivis__prefix_end(lo, hi, unbounded);
    case KIVIS_Q_RANGE:
        if (q->hi) {
            rc = kivis__buf_append(hi, lo->data, lo->len);
            if (!rc)
                rc = put_bound(hi, td, q->index, q->hi);
        } else {
            rc = kivis__prefix_end(lo, hi, unbounded);
        }
        if (!rc && q->lo)
            rc = put_bound(lo, td, q->index, q->lo);
        else if (!rc && optional_index(td, q->index))
            rc = kivis__buf_byte(lo, KIVIS_TAG_PRESENT); /* absent sort first */
        return rc;
    case KIVIS_Q_PREFIX:
        if (!prefixable(query_field(td, q->index)) ||
            (!q->prefix && q->prefix_len))
            return kivis__fail(db, KIVIS_EINVAL,
                               "%s: prefix query on a field that is not a "
                               "string or bytes",
                               td->name);
        if (optional_index(td, q->index))
            rc = kivis__buf_byte(lo, KIVIS_TAG_PRESENT);
        if (!rc)
            rc = put_prefix(lo, q->prefix, q->prefix_len);
        return rc ? rc : kivis__prefix_end(lo, hi, unbounded);
    case KIVIS_Q_ABSENT:
        return absent_range(db, td, q->index, lo, hi, unbounded);
    }
    return kivis__fail(db, KIVIS_EINVAL, "%s: unknown query mode %u", td->name,
                       q->mode);
}

static int check_query(kivis_db *db, const kivis_query *q)
{
    if (!q)
        return kivis__fail(db, KIVIS_EINVAL, "query is NULL");
    if (q->table >= db->schema->ntables)
        return kivis__fail(db, KIVIS_EINVAL, "no table %u in schema %s",
                           q->table, db->schema->name);
    const kivis_table_desc *td = &db->schema->tables[q->table];
    if (q->index >= (int32_t)td->nindexes || q->index < -1)
        return kivis__fail(db, KIVIS_EINVAL, "%s has no index %d", td->name,
                           q->index);
    if (q->flags & ~KIVIS_REVERSE)
        return kivis__fail(db, KIVIS_EINVAL, "%s: unknown scan flags 0x%x",
                           td->name, q->flags & ~KIVIS_REVERSE);
    return KIVIS_OK;
}

static int scan_txn(kivis_db *db, kivis_scan *s)
{
    if (db->txn) {
        if (db->poisoned)
            return KIVIS_EBADTXN;
        s->txn = db->txn;
        return KIVIS_OK;
    }
    s->own_txn = true;
    int rc = kivis_storage_begin(db->st, KIVIS_TXN_RDONLY, &s->txn);
    return rc ? kivis__fail(db, rc, "scan: begin: %s", kivis_strerror(rc))
              : KIVIS_OK;
}

/* For an index scan going forward where the backend follows entries (a
 * round trip's worth for PostgreSQL, a statement a record for SQLite): the
 * length of the record key's tail that ends each entry, when every entry
 * has the same (an auto-increment key: 8 bytes), so that the backend can
 * read each entry's record with the entry itself; else 0. */
static size_t followed_tail(const kivis_scan *s)
{
    bool fixed = s->ts->desc->key_kind == KIVIS_KEY_AUTO;
    return s->index >= 0 && !s->reverse && fixed && kivis_txn_follows(s->txn)
               ? 8
               : 0;
}

/* The range stays with a scan that guards against its transaction's
 * writes; other scans free it once the cursor has it. */
static int open_cursor(kivis_db *db, const kivis_query *q, kivis_scan *s)
{
    int rc = query_range(db, q, s->ts, &s->lo, &s->hi, &s->unbounded,
                         &s->prefix_len);
    if (rc == KIVIS_EUTF8 || rc == KIVIS_ERANGE)
        rc = kivis__fail(db, rc, "%s: query bound: %s", s->ts->desc->name,
                         kivis_strerror(rc));
    bool reads_only = s->own_txn || (s->txn->flags & KIVIS_TXN_RDONLY);
    kivis_slice lo = kivis_slice_make(s->lo.data, s->lo.len);
    kivis_slice hi = kivis_slice_make(s->unbounded ? NULL : s->hi.data, s->hi.len);
    size_t tail = reads_only ? followed_tail(s) : 0;
    if (!rc && tail)
        rc = kivis__table_prefix(&s->rk, s->ts, KIVIS_SLOT_RECORDS);
    if (!rc && tail)
        rc = kivis_txn_cursor_follow(s->txn, lo, hi,
                                     kivis_slice_make(s->rk.data, s->rk.len),
                                     tail, &s->cur);
    else if (!rc)
        rc = kivis_txn_cursor(s->txn, lo, hi, &s->cur);
    s->guards = !rc && !reads_only;
    if (!rc && q->mode == KIVIS_Q_EQ && q->index >= 0)
        s->entry_head = s->lo.len;
    if (!s->guards) {
        kivis__buf_free(&s->lo);
        kivis__buf_free(&s->hi);
    }
    return rc;
}

int kivis_scan_open(kivis_db *db, const kivis_query *q, kivis_scan **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!db)
        return KIVIS_EINVAL;
    db->errmsg[0] = '\0';
    int rc = check_query(db, q);
    if (rc)
        return rc;
    kivis_scan *s = kivis__alloc(db, sizeof *s);
    if (!s)
        return KIVIS_ENOMEM;
    memset(s, 0, sizeof *s);
    s->db = db;
    s->alloc = db->alloc;
    s->ts = &db->tables[q->table];
    s->key_size = s->ts->desc->key->size;
    s->record_size = s->ts->desc->record->size;
    s->index = q->index;
    s->reverse = (q->flags & KIVIS_REVERSE) != 0;
    kivis__buf_init(&s->rk, &s->alloc);
    kivis__buf_init(&s->redo, &s->alloc);
    kivis__buf_init(&s->lo, &s->alloc);
    kivis__buf_init(&s->hi, &s->alloc);
    kivis__keyset_init(&s->written, &s->alloc);
    kivis__buf_init(&s->ra_keys, &s->alloc);
    kivis__buf_init(&s->ra_ends, &s->alloc);
    kivis__buf_init(&s->last, &s->alloc);
    s->ra_batch = AHEAD_FIRST;
    rc = scan_txn(db, s);
    if (!rc)
        rc = open_cursor(db, q, s);
    s->ahead = !rc && s->index >= 0 && !s->guards && kivis_txn_prefetches(s->txn);
    s->plain = !rc && s->index < 0 && !s->guards;
    /* room for the key a stamped run keeps (plain_step), so that keeping
     * it cannot fail between two reads */
    s->run_cap = 1;
    if (!rc && s->plain && kivis_cursor_pages(s->txn, s->cur) &&
        db->max_key <= RUN_KEY_ROOM) {
        if ((rc = kivis__buf_reserve(&s->last, db->max_key)) != KIVIS_OK)
            kivis_cursor_close(s->cur);
        else
            s->run_cap = RUN_MAX;
    }
    if (rc) {
        s->cur = NULL; /* open_cursor sets it only on success */
        if (s->own_txn && s->txn)
            kivis_txn_abort(s->txn);
        kivis__buf_free(&s->rk);
        kivis__buf_free(&s->last);
        kivis__free(db, s);
        return rc;
    }
    s->next = db->scans;
    db->scans = s;
    *out = s;
    return KIVIS_OK;
}

/* The record key of primary key pk into s->rk: the records' prefix, built
 * once a scan, then pk. */
static int record_key_of(kivis_scan *s, kivis_slice pk)
{
    if (!s->rk_head) {
        int rc = kivis__table_prefix(&s->rk, s->ts, KIVIS_SLOT_RECORDS);
        if (rc)
            return rc;
        s->rk_head = s->rk.len;
    }
    s->rk.len = s->rk_head;
    return kivis__buf_append(&s->rk, pk.data, pk.len);
}

/* Move r (an index entry's reader, past the prefix) past the entry's
 * value, to its primary key.  An EQ scan knows where the value ends: every
 * entry in its range starts with the bytes it searched for, and a value's
 * encoding is prefix-free, so the value is those bytes; others skip it. */
static int skip_entry_value(const kivis_scan *s, kivis_reader *r)
{
    if (s->entry_head) {
        size_t value = s->entry_head - s->prefix_len;
        if ((size_t)(r->end - r->p) < value)
            return KIVIS_ECORRUPT; /* not in the range: the cursor's fault */
        r->p += value;
        return KIVIS_OK;
    }
    const kivis_table_desc *td = s->ts->desc;
    return kivis__key_skip_field(r, &td->record->fields[td->indexes[s->index].field]);
}

/* Fetch and decode the record an index entry points at. */
static int fetch_record(kivis_scan *s, kivis_slice pk, void *record_out,
                        const kivis_allocator *a)
{
    kivis_db *db = s->db;
    const kivis_table_desc *td = s->ts->desc;
    int rc = record_key_of(s, pk);
    kivis_slice v;
    if (!rc)
        rc = kivis_txn_get(s->txn, kivis_slice_make(s->rk.data, s->rk.len), &v);
    if (rc == KIVIS_NOTFOUND)
        return kivis__fail(db, KIVIS_ECORRUPT,
                           "%s: index %s holds an entry for a missing record",
                           td->name, td->indexes[s->index].name);
    if (rc)
        return rc;
    rc = kivis__value_decode(v, td->record, record_out, a, NULL);
    return rc == KIVIS_ECORRUPT
               ? kivis__fail(db, rc, "%s: stored record is corrupt", td->name)
               : rc;
}

static int decode_entry(kivis_scan *s, kivis_slice k, kivis_slice v,
                        void *key_out, void *record_out,
                        const kivis_allocator *a)
{
    kivis_db *db = s->db;
    const kivis_table_desc *td = s->ts->desc;
    kivis_reader r = kivis__reader(k);
    r.p += s->prefix_len;
    int rc = s->index >= 0 ? skip_entry_value(s, &r) : KIVIS_OK;
    kivis_slice pk = kivis_slice_make(r.p, (size_t)(r.end - r.p));
    if (!rc && key_out)
        rc = kivis__key_get_whole(pk, td->key, s->ts->key_width, key_out, a);
    if (rc == KIVIS_ECORRUPT)
        return kivis__fail(db, rc, "%s: undecodable stored key", td->name);
    if (!rc && record_out)
        rc = s->index >= 0
                 ? fetch_record(s, pk, record_out, a)
                 : kivis__value_decode(v, td->record, record_out, a, NULL);
    if (rc == KIVIS_ECORRUPT && !db->errmsg[0])
        kivis__fail(db, rc, "%s: stored record is corrupt", td->name);
    if (rc && key_out)
        kivis__struct_free(td->key, key_out, a);
    return rc;
}

/* Entry i of the read-ahead batch. */
static kivis_slice ahead_entry(const kivis_scan *s, size_t i)
{
    size_t start = 0, end;
    if (i)
        memcpy(&start, s->ra_ends.data + (i - 1) * sizeof start, sizeof start);
    memcpy(&end, s->ra_ends.data + i * sizeof end, sizeof end);
    return kivis_slice_make(s->ra_keys.data + start, end - start);
}

/* The record key an index entry points at, appended to b (with its end
 * offset to ends); an entry that does not decode is left out, for
 * decode_entry to report when the scan reaches it. */
static int append_record_key(kivis_scan *s, kivis_slice entry,
                             kivis_buf *b, kivis_buf *ends)
{
    kivis_reader r = kivis__reader(entry);
    r.p += s->prefix_len;
    if (skip_entry_value(s, &r))
        return KIVIS_OK;
    int rc = record_key_of(s, kivis_slice_make(r.p, (size_t)(r.end - r.p)));
    if (!rc)
        rc = kivis__buf_append(b, s->rk.data, s->rk.len);
    if (!rc)
        rc = kivis__buf_append(ends, &b->len, sizeof b->len);
    return rc;
}

int kivis__prefetch_packed(kivis_storage_txn *txn, const kivis_buf *keys,
                           const kivis_buf *ends, const kivis_allocator *a)
{
    size_t n = ends->len / sizeof(size_t);
    if (n == 0)
        return KIVIS_OK;
    kivis_slice *list = a->malloc(a->ctx, n * sizeof *list);
    if (!list)
        return KIVIS_ENOMEM;
    for (size_t i = 0, start = 0; i < n; i++) {
        size_t end;
        memcpy(&end, ends->data + i * sizeof end, sizeof end);
        list[i] = kivis_slice_make(keys->data + start, end - start);
        start = end;
    }
    int rc = kivis_txn_prefetch(txn, list, n);
    a->free(a->ctx, list);
    return rc;
}

/* Ask the backend for the records of the whole batch at once.  A hint:
 * whatever fails here, each get still reads for itself. */
static void prefetch_records(kivis_scan *s)
{
    kivis_buf keys, ends;
    kivis__buf_init(&keys, &s->alloc);
    kivis__buf_init(&ends, &s->alloc);
    int rc = KIVIS_OK;
    for (size_t i = 0; !rc && i < s->ra_n; i++)
        rc = append_record_key(s, ahead_entry(s, i), &keys, &ends);
    if (!rc)
        (void)kivis__prefetch_packed(s->txn, &keys, &ends, &s->alloc);
    kivis__buf_free(&keys);
    kivis__buf_free(&ends);
}

/* Take the next batch of entries from the cursor.  KIVIS_NOTFOUND: none
 * left.  A cursor error after some entries ends the batch early (the next
 * batch meets it again); before any, it is returned. */
static int fill_ahead(kivis_scan *s, bool records)
{
    s->ra_keys.len = s->ra_ends.len = 0;
    s->ra_n = s->ra_at = 0;
    int rc = KIVIS_OK;
    while (s->ra_n < s->ra_batch) {
        /* room first: an entry taken from the cursor must not be lost */
        rc = kivis__buf_reserve(&s->ra_keys, s->db->max_key);
        if (!rc)
            rc = kivis__buf_reserve(&s->ra_ends, sizeof s->ra_keys.len);
        kivis_slice k, v;
        if (!rc)
            rc = kivis_cursor_get(s->cur, s->reverse ? KIVIS_PREV : KIVIS_NEXT, &k, &v);
        if (!rc && k.len > s->db->max_key)
            rc = KIVIS_ECORRUPT; /* longer than the backend accepts */
        if (rc)
            break;
        kivis__buf_append(&s->ra_keys, k.data, k.len);
        kivis__buf_append(&s->ra_ends, &s->ra_keys.len, sizeof s->ra_keys.len);
        s->ra_n++;
    }
    if (s->ra_batch < AHEAD_MAX)
        s->ra_batch *= AHEAD_GROWTH;
    if (!s->ra_n)
        return rc ? rc : KIVIS_NOTFOUND;
    if (records)
        prefetch_records(s);
    return KIVIS_OK;
}

/* The storage step: on to the next entry, or back onto the one whose key
 * was kept for a redo (or past it, if it went away meanwhile). */
static int step(kivis_scan *s, bool records, kivis_slice *k, kivis_slice *v)
{
    int rc;
    if (s->ahead && !s->has_redo) {
        rc = s->ra_at < s->ra_n ? KIVIS_OK : fill_ahead(s, records);
        if (rc)
            return rc;
        *k = ahead_entry(s, s->ra_at++);
        *v = kivis_slice_make("", 0);
        return KIVIS_OK;
    }
    if (!s->has_redo) {
        rc = kivis_cursor_get(s->cur, s->reverse ? KIVIS_PREV : KIVIS_NEXT, k, v);
    } else {
        *k = kivis_slice_make(s->redo.data, s->redo.len);
        rc = kivis_cursor_get(s->cur, s->reverse ? KIVIS_SEEK_LE : KIVIS_SEEK_GE, k, v);
        if (rc != KIVIS_ENOMEM)
            s->has_redo = false;
    }
    while (rc == KIVIS_OK && written_since_open(s, *k))
        rc = kivis_cursor_get(s->cur, s->reverse ? KIVIS_PREV : KIVIS_NEXT, k, v);
    return rc;
}

/* rc from the storage step: an error is recorded as the scan's. */
static int stepped(kivis_scan *s, int rc)
{
    if (rc && rc != KIVIS_NOTFOUND)
        return kivis__fail(s->db, rc, "%s: scan: %s", s->ts->desc->name,
                           kivis_strerror(rc));
    return rc;
}

/* Step to the next entry, its value unread: what every read of a scan
 * begins with. */
static int advance(kivis_scan *s, bool records, kivis_slice *k, kivis_slice *v)
{
    if (s->detached)
        return kivis__fail(s->db, KIVIS_EINVAL,
                           "scan used after its transaction ended");
    if (!s->own_txn && s->db->poisoned)
        return KIVIS_EBADTXN;
    return stepped(s, step(s, records, k, v));
}

/* Whether the next step is advance's in its simplest case, which
 * plain_step takes in one call: a record scan whose transaction cannot
 * write under it (no guard to consult, no index entry to follow, no
 * read-ahead), nothing to redo, its storage held and usable. */
static bool plain_now(const kivis_scan *s)
{
    return s->plain && !s->has_redo && !s->detached &&
           (s->own_txn || !s->db->poisoned);
}

/* A new run from the cursor. */
static int fill_run(kivis_scan *s)
{
    s->run_at = 0;
    int rc = kivis_cursor_page(s->txn, s->cur, s->reverse ? KIVIS_PREV : KIVIS_NEXT,
                               s->run, s->run_cap, &s->run_n, &s->run_stamp);
    if (s->run_stamp)
        s->run_stamp_at = *s->run_stamp;
    return rc;
}

/* Keep a copy of a key a stamped run returns with entries still left
 * after it, in the room kivis_scan_open reserved for the longest key the
 * store takes.  false for a key longer than that, which only a damaged
 * store holds. */
static bool keep_last(kivis_scan *s, kivis_slice k)
{
    if (k.len > s->last.cap)
        return false;
    memcpy(s->last.data, k.data, k.len);
    s->last.len = k.len;
    return true;
}

/* The store changed under a stamped run with entries left (a commit on
 * memory): drop them, and place the cursor past the key returned last, as
 * its own step would have. */
static int resume_past_last(kivis_scan *s, kivis_slice *k, kivis_slice *v)
{
    s->run_n = s->run_at = 0;
    kivis_slice last = kivis_slice_make(s->last.data, s->last.len);
    *k = last;
    int rc = kivis_cursor_get(s->cur, s->reverse ? KIVIS_SEEK_LE : KIVIS_SEEK_GE, k, v);
    if (rc == KIVIS_OK && kivis__key_cmp(*k, last) == 0)
        rc = kivis_cursor_get(s->cur, s->reverse ? KIVIS_PREV : KIVIS_NEXT, k, v);
    return rc;
}

/* The next entry of the run, a new run once it is spent. */
static int plain_step(kivis_scan *s, kivis_slice *k, kivis_slice *v)
{
    bool left = s->run_at < s->run_n;
    if (left && s->run_stamp && *s->run_stamp != s->run_stamp_at)
        return stepped(s, resume_past_last(s, k, v));
    int rc = left ? KIVIS_OK : fill_run(s);
    if (rc)
        return stepped(s, rc);
    const kivis_cursor_entry *e = &s->run[s->run_at++];
    if (s->run_stamp && s->run_at < s->run_n && !keep_last(s, e->key))
        return stepped(s, KIVIS_ECORRUPT);
    *k = e->key;
    *v = e->value;
    return KIVIS_OK;
}

/* What a read that returns no entry leaves in the outputs. */
static void clear_outputs(const kivis_scan *s, void *key_out, void *record_out)
{
    if (key_out)
        memset(key_out, 0, s->key_size);
    if (record_out)
        memset(record_out, 0, s->record_size);
}

/* kivis_scan_next, decoding with a.  The decoders zero what they fill, so
 * the outputs are zeroed here only when the read fails (an output zeroed
 * up front would be zeroed twice a record). */
static int next_with(kivis_scan *s, void *key_out, void *record_out,
                     const kivis_allocator *a, kivis_slice *k)
{
    kivis_slice v;
    int rc = plain_now(s) ? plain_step(s, k, &v)
                          : advance(s, record_out != NULL, k, &v);
    if (!rc)
        rc = decode_entry(s, *k, v, key_out, record_out, a);
    if (rc)
        clear_outputs(s, key_out, record_out);
    return rc;
}

int kivis__scan_step(kivis_scan *s, kivis_slice *k)
{
    kivis_slice v;
    return s->db ? advance(s, false, k, &v) : KIVIS_EINVAL;
}

int kivis__scan_skip(kivis_scan *s, kivis_slice start, kivis_slice *k)
{
    if (!s->db)
        return KIVIS_EINVAL;
    /* the redo seek, aimed past `start`: at the first key above every key
     * starting with it, or (reverse) at the last key below it */
    s->rk.len = s->redo.len = 0;
    s->rk_head = 0; /* rk holds the seek's key now */
    bool unbounded = false;
    int rc = kivis__buf_append(s->reverse ? &s->redo : &s->rk, start.data,
                               start.len);
    if (!rc && !s->reverse)
        rc = kivis__prefix_end(&s->rk, &s->redo, &unbounded);
    if (rc)
        return kivis__fail(s->db, rc, "%s: scan: %s", s->ts->desc->name,
                           kivis_strerror(rc));
    if (unbounded)
        return KIVIS_NOTFOUND;
    s->ra_n = s->ra_at = 0; /* a read-ahead batch would step, not seek */
    s->has_redo = true;
    kivis_slice v;
    return advance(s, false, k, &v);
}

size_t kivis__scan_prefix_len(const kivis_scan *s)
{
    return s->prefix_len;
}

/* A scan that outlived its db can only be closed. */
static bool orphaned(const kivis_scan *s, void *key_out, void *record_out)
{
    if (s->db)
        return false;
    clear_outputs(s, key_out, record_out);
    return true;
}

int kivis_scan_next(kivis_scan *s, void *key_out, void *record_out)
{
    if (!s || orphaned(s, key_out, record_out))
        return KIVIS_EINVAL;
    kivis_slice k;
    return next_with(s, key_out, record_out, &s->db->alloc, &k);
}

/* Have the next read return again the entry whose key is k.  An entry of
 * a run whose views last as long as the transaction (a page method's
 * run with no stamp: LMDB) is simply taken back; any other is found again
 * by a seek to a copy of its key (the redo), the run dropped.  Without
 * the copy's memory the scan goes on past the entry, the run kept. */
static void redo_entry(kivis_scan *s, kivis_slice k)
{
    bool in_run = s->run_at && s->run[s->run_at - 1].key.data == k.data;
    if (in_run && !s->run_stamp && kivis_cursor_pages(s->txn, s->cur)) {
        s->run_at--;
        return;
    }
    s->redo.len = 0;
    s->has_redo = kivis__buf_append(&s->redo, k.data, k.len) == KIVIS_OK;
    if (s->has_redo)
        s->run_n = s->run_at = 0;
}

int kivis_scan_next_into(kivis_scan *s, void *key_out, void *record_out,
                         void *buf, size_t size)
{
    if (!s || orphaned(s, key_out, record_out))
        return KIVIS_EINVAL;
    if (!buf && size)
        return kivis__fail(s->db, KIVIS_EINVAL, "buf is NULL");
    kivis_bump b;
    kivis__bump_init(&b, buf, size);
    kivis_slice k = {NULL, 0};
    int rc = kivis__bump_status(s->db, &b, size,
                                next_with(s, key_out, record_out, &b.iface, &k));
    /* keep the entry's key, so that the next call returns it again */
    if (rc == KIVIS_ETOOSMALL && s->ahead)
        s->ra_at--; /* the batch still holds it */
    else if (rc == KIVIS_ETOOSMALL)
        redo_entry(s, k);
    return rc;
}

void kivis_scan_close(kivis_scan *s)
{
    if (!s)
        return;
    if (s->db)
        unlink_scan(s);
    release_storage(s);
    kivis__buf_free(&s->rk);
    kivis__buf_free(&s->redo);
    kivis__buf_free(&s->lo);
    kivis__buf_free(&s->hi);
    kivis__buf_free(&s->ra_keys);
    kivis__buf_free(&s->ra_ends);
    kivis__buf_free(&s->last);
    kivis_allocator a = s->alloc;
    a.free(a.ctx, s);
}
