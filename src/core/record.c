/* Records: put, insert, get, remove, with their index entries written in
 * the same transaction, unique checks and auto-increment ids. */
#include "engine.h"
#include "evolve.h" /* progress of index builds */

#include <string.h>

static int table_state(kivis_db *db, uint32_t table, kivis_table_state **ts)
{
    if (table >= db->schema->ntables)
        return kivis__fail(db, KIVIS_EINVAL, "no table %u in schema %s", table,
                           db->schema->name);
    *ts = &db->tables[table];
    return KIVIS_OK;
}

static int storage_error(kivis_db *db, const kivis_table_state *ts, int rc,
                         const char *what)
{
    if (rc == KIVIS_EKEYSIZE)
        return kivis__fail(db, rc, "%s: %s: key too long for the %s backend",
                           ts->desc->name, what, db->st->methods->name);
    return kivis__fail(db, rc, "%s: %s: %s", ts->desc->name, what,
                       kivis_strerror(rc));
}

/* ---- keys of a record -------------------------------------------------- */

static size_t field_bytes(const kivis_field *f)
{
    return f->size * (f->count ? f->count : 1);
}

int kivis__key_from_record(kivis_db *db, const kivis_table_state *ts,
                           const void *rec, void *key)
{
    const kivis_table_desc *td = ts->desc;
    memset(key, 0, td->key->size);
    if (td->key_kind == KIVIS_KEY_DERIVED) {
        int rc = td->derive_key(rec, key);
        return rc ? kivis__fail(db, rc < 0 ? rc : KIVIS_EINVAL,
                                "%s: derive_key failed: %s", td->name,
                                kivis_strerror(rc))
                  : KIVIS_OK;
    }
    for (uint32_t i = 0; i < td->key->nfields; i++) {
        const kivis_field *kf = &td->key->fields[i];
        const kivis_field *rf = &td->record->fields[td->key_fields[i]];
        memcpy((char *)key + kf->offset, (const char *)rec + rf->offset,
               field_bytes(kf));
    }
    return KIVIS_OK;
}

static int set_auto_key(const kivis_table_state *ts, void *key, uint64_t id)
{
    memset(key, 0, ts->desc->key->size);
    memcpy((char *)key + ts->desc->key->fields[0].offset, &id, sizeof id);
    return KIVIS_OK;
}

/* The highest id stored in the table now, by a reverse seek (0: empty). */
static int highest_stored_id(kivis_db *db, const kivis_table_state *ts,
                             kivis_storage_txn *txn, uint64_t *last)
{
    kivis_buf lo, hi;
    kivis__buf_init(&lo, &db->alloc);
    kivis__buf_init(&hi, &db->alloc);
    kivis_storage_cursor *cur = NULL;
    kivis_slice k, v;
    *last = 0;
    int rc = kivis__table_prefix(&lo, ts, KIVIS_SLOT_RECORDS);
    if (!rc)
        rc = kivis__table_prefix(&hi, ts, KIVIS_SLOT_RECORDS + 1);
    if (!rc)
        rc = kivis_txn_cursor(txn, kivis_slice_make(lo.data, lo.len),
                              kivis_slice_make(hi.data, hi.len), &cur);
    if (!rc)
        rc = kivis_cursor_get(cur, KIVIS_LAST, &k, &v);
    if (rc == KIVIS_OK) {
        kivis_reader r = kivis__reader(k);
        r.p += lo.len;
        if (kivis__key_get_uint(&r, 8, last) || r.p != r.end)
            rc = kivis__fail(db, KIVIS_ECORRUPT, "%s: undecodable stored key",
                             ts->desc->name);
    } else if (rc == KIVIS_NOTFOUND) {
        rc = KIVIS_OK;
    } else {
        rc = storage_error(db, ts, rc, "finding the highest id");
    }
    kivis_cursor_close(cur);
    kivis__buf_free(&lo);
    kivis__buf_free(&hi);
    return rc;
}

/* The highest id the table ever issued: its counter in table 0, or, when
 * the table has none, the highest stored id (a store written before
 * counters existed).  A counter once written is trusted, so that a
 * transaction of puts reads one key rather than also seeking the table's
 * end (on a remote backend each is a round trip).  Cached for the rest of
 * the txn. */
static int highest_issued_id(kivis_db *db, kivis_table_state *ts,
                             kivis_storage_txn *txn, uint64_t *id)
{
    if (ts->next_overflow || ts->next_id) {
        *id = ts->next_overflow ? UINT64_MAX : ts->next_id - 1;
        return KIVIS_OK;
    }
    int rc = kivis__autoid_get(txn, &db->autoid, ts->id, id);
    if (rc == KIVIS_NOTFOUND)
        rc = highest_stored_id(db, ts, txn, id);
    else if (rc == KIVIS_ECORRUPT)
        return kivis__fail(db, rc, "%s: the stored auto-increment counter is corrupt",
                           ts->desc->name);
    else if (rc)
        return storage_error(db, ts, rc, "reading the auto-increment counter");
    if (rc)
        return rc;
    if (*id == UINT64_MAX)
        ts->next_overflow = true;
    else
        ts->next_id = *id + 1;
    return KIVIS_OK;
}

/* The id a new record gets: one past the highest ever issued, so that no
 * id comes back after its record was removed. */
static int next_auto_id(kivis_db *db, kivis_table_state *ts,
                        kivis_storage_txn *txn, uint64_t *id)
{
    uint64_t highest;
    int rc = highest_issued_id(db, ts, txn, &highest);
    if (rc)
        return rc;
    if (highest == UINT64_MAX)
        return kivis__fail(db, KIVIS_EOVERFLOW,
                           "%s: auto-increment ids exhausted (highest is %llu)",
                           ts->desc->name, (unsigned long long)UINT64_MAX);
    *id = highest + 1;
    return KIVIS_OK;
}

/* Remember that `id` is issued: the id after it is the next one for the
 * rest of the transaction, and the counter must say so at commit. */
static void advance_auto_id(kivis_table_state *ts, uint64_t id)
{
    if (id == UINT64_MAX)
        ts->next_overflow = true;
    else if (id >= ts->next_id)
        ts->next_id = id + 1;
    ts->id_unsaved = true;
}

/* Write table `ts`'s counter: the highest id the transaction knows issued. */
static int save_auto_id(kivis_db *db, kivis_table_state *ts,
                        kivis_storage_txn *txn)
{
    uint64_t highest = ts->next_overflow ? UINT64_MAX : ts->next_id - 1;
    int rc = kivis__autoid_key(&db->autoid, ts->id);
    size_t klen = db->autoid.len;
    if (!rc)
        rc = kivis__varint_put(&db->autoid, highest);
    if (rc)
        return kivis__fail(db, rc, "%s: auto-increment counter: %s",
                           ts->desc->name, kivis_strerror(rc));
    const uint8_t *b = db->autoid.data;
    rc = kivis_txn_put(txn, kivis_slice_make(b, klen),
                       kivis_slice_make(b + klen, db->autoid.len - klen));
    if (rc)
        return storage_error(db, ts, rc, "writing the auto-increment counter");
    ts->id_unsaved = false;
    return KIVIS_OK;
}

int kivis__save_auto_ids(kivis_db *db, kivis_storage_txn *txn)
{
    for (uint32_t i = 0; i < db->schema->ntables; i++) {
        kivis_table_state *ts = &db->tables[i];
        int rc = ts->id_unsaved ? save_auto_id(db, ts, txn) : KIVIS_OK;
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

void kivis__forget_auto_ids(kivis_db *db)
{
    for (uint32_t i = 0; i < db->schema->ntables; i++) {
        db->tables[i].next_id = 0;
        db->tables[i].next_overflow = false;
        db->tables[i].id_unsaved = false;
    }
}

/* ---- index entries ----------------------------------------------------- */

int kivis__index_entries(kivis_db *db, const kivis_table_state *ts,
                         const void *rec, kivis_slice pk, kivis_buf *out,
                         size_t *lens)
{
    const kivis_table_desc *td = ts->desc;
    out->len = 0;
    for (uint32_t i = 0; i < td->nindexes; i++) {
        size_t start = out->len;
        if (kivis__unindexed(td, i, rec)) {
            lens[i] = 0;
            continue;
        }
        int rc = kivis__id_put(out, ts->id);
        if (!rc)
            rc = kivis__id_put(out, ts->index_ids[i] + KIVIS_SLOT_FIRST_INDEX);
        if (!rc)
            rc = kivis__key_put_index(out, td->record, td->indexes[i].field, rec);
        if (!rc)
            rc = kivis__buf_append(out, pk.data, pk.len);
        if (rc == KIVIS_EUTF8 || rc == KIVIS_ERANGE || rc == KIVIS_EINVAL)
            return kivis__fail(db, rc, "%s.%s: %s", td->name,
                               td->record->fields[td->indexes[i].field].name,
                               kivis_strerror(rc));
        if (rc)
            return rc;
        lens[i] = out->len - start;
        rc = kivis__check_key_size(db, ts, lens[i]);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

/* Fail with ECONSTRAINT when a unique index already holds the new value
 * under another primary key. */
static int check_unique(kivis_db *db, const kivis_table_state *ts,
                        kivis_storage_txn *txn, size_t pklen)
{
    const kivis_table_desc *td = ts->desc;
    kivis_buf prefix, end;
    kivis__buf_init(&prefix, &db->alloc);
    kivis__buf_init(&end, &db->alloc);
    const uint8_t *entry = db->newidx.data;
    int rc = KIVIS_OK;
    for (uint32_t i = 0; !rc && i < td->nindexes; entry += db->newlen[i], i++) {
        if (!(td->indexes[i].flags & KIVIS_INDEX_UNIQUE) || !db->newlen[i])
            continue;
        bool unbounded;
        prefix.len = 0;
        rc = kivis__buf_append(&prefix, entry, db->newlen[i] - pklen);
        if (!rc)
            rc = kivis__prefix_end(&prefix, &end, &unbounded);
        kivis_storage_cursor *cur = NULL;
        if (!rc)
            rc = kivis_txn_cursor(
                txn, kivis_slice_make(prefix.data, prefix.len),
                kivis_slice_make(unbounded ? NULL : end.data, end.len), &cur);
        kivis_slice k, v;
        if (!rc)
            rc = kivis_cursor_get(cur, KIVIS_FIRST, &k, &v);
        if (rc == KIVIS_NOTFOUND) {
            rc = KIVIS_OK;
        } else if (rc == KIVIS_OK) {
            /* One entry per value: if it is not ours, the value is taken. */
            if (k.len != db->newlen[i] || memcmp(k.data, entry, k.len))
                rc = kivis__fail(db, KIVIS_ECONSTRAINT,
                                 "%s.%s: unique index %s already holds this value",
                                 td->name,
                                 td->record->fields[td->indexes[i].field].name,
                                 td->indexes[i].name);
        } else {
            rc = storage_error(db, ts, rc, "unique check");
        }
        kivis_cursor_close(cur);
    }
    kivis__buf_free(&prefix);
    kivis__buf_free(&end);
    return rc;
}

/* The stored value under db->pk: KIVIS_OK, KIVIS_NOTFOUND or an error. */
static int read_stored(kivis_db *db, const kivis_table_state *ts,
                       kivis_storage_txn *txn, kivis_slice *value)
{
    int rc = kivis_txn_get(txn, kivis_slice_make(db->pk.data, db->pk.len), value);
    return rc < 0 ? storage_error(db, ts, rc, "read") : rc;
}

/* Decode the stored record `value` and list its index entries in oldidx. */
static int old_index_entries(kivis_db *db, const kivis_table_state *ts,
                             kivis_slice value, kivis_slice pk)
{
    const kivis_table_desc *td = ts->desc;
    int rc = kivis__value_decode(value, td->record, db->oldrec, &db->alloc, NULL);
    if (rc == KIVIS_ECORRUPT)
        return kivis__fail(db, rc,
                           "%s: the stored record is corrupt; its index "
                           "entries cannot be found",
                           td->name);
    if (rc)
        return rc;
    rc = kivis__index_entries(db, ts, db->oldrec, pk, &db->oldidx, db->oldlen);
    kivis__struct_free(td->record, db->oldrec, &db->alloc);
    return rc;
}

/* ---- writes ------------------------------------------------------------ */

/* Scans open on the user's transaction note the key first (scan.c). */
static int before_write(kivis_db *db, const kivis_table_state *ts,
                        const kivis_op *op, kivis_slice key)
{
    if (op->own || !db->scans)
        return KIVIS_OK;
    int rc = kivis__scans_before_write(db, key);
    return rc ? storage_error(db, ts, rc, "scan bookkeeping") : KIVIS_OK;
}

static int put_bytes(kivis_db *db, const kivis_table_state *ts, kivis_op *op,
                     const uint8_t *key, size_t klen, kivis_slice value)
{
    int rc = before_write(db, ts, op, kivis_slice_make(key, klen));
    if (rc)
        return rc;
    op->wrote = true;
    rc = kivis_txn_put(op->txn, kivis_slice_make(key, klen), value);
    return rc ? storage_error(db, ts, rc, "write") : KIVIS_OK;
}

static int del_bytes(kivis_db *db, const kivis_table_state *ts, kivis_op *op,
                     const uint8_t *key, size_t klen)
{
    int rc = before_write(db, ts, op, kivis_slice_make(key, klen));
    if (rc)
        return rc;
    op->wrote = true;
    /* An index entry need not be looked up before it goes: a backend where
     * that costs a round trip deletes it blind.  The others still say when
     * it was missing, which is damage. */
    rc = kivis_txn_discard(op->txn, kivis_slice_make(key, klen));
    if (rc == KIVIS_NOTFOUND)
        return kivis__fail(db, KIVIS_ECORRUPT,
                           "%s: an index entry of the stored record is missing",
                           ts->desc->name);
    return rc ? storage_error(db, ts, rc, "delete") : KIVIS_OK;
}

/* Index entries: an empty one is an absent value a unique index leaves
 * out (kivis__index_entries), so there is nothing to write or delete. */
static int put_entry(kivis_db *db, const kivis_table_state *ts, kivis_op *op,
                     const uint8_t *key, size_t klen)
{
    return klen ? put_bytes(db, ts, op, key, klen, kivis_slice_make("", 0))
                : KIVIS_OK;
}

static int del_entry(kivis_db *db, const kivis_table_state *ts, kivis_op *op,
                     const uint8_t *key, size_t klen)
{
    return klen ? del_bytes(db, ts, op, key, klen) : KIVIS_OK;
}

/* Replace the old record's index entries by the new ones (skipping those
 * that are unchanged), then the record itself. */
static int apply_record_write(kivis_db *db, const kivis_table_state *ts,
                              kivis_op *op, bool had_old)
{
    const uint8_t *ne = db->newidx.data, *oe = db->oldidx.data;
    int rc = KIVIS_OK;
    for (uint32_t i = 0; !rc && i < ts->desc->nindexes; i++) {
        bool same = had_old && db->oldlen[i] == db->newlen[i] &&
                    !memcmp(oe, ne, db->newlen[i]);
        if (!same && had_old)
            rc = del_entry(db, ts, op, oe, db->oldlen[i]);
        if (!same && !rc)
            rc = put_entry(db, ts, op, ne, db->newlen[i]);
        ne += db->newlen[i];
        if (had_old)
            oe += db->oldlen[i];
    }
    if (!rc)
        rc = put_bytes(db, ts, op, db->pk.data, db->pk.len,
                       kivis_slice_make(db->val.data, db->val.len));
    return rc;
}

static int encode_value(kivis_db *db, const kivis_table_state *ts,
                        const void *rec)
{
    db->val.len = 0;
    kivis_value_path where;
    int rc = kivis__value_encode_at(&db->val, ts->desc->record, ts->version,
                                    rec, &where);
    if (rc == KIVIS_EUTF8 || rc == KIVIS_ERANGE || rc == KIVIS_EINVAL) {
        char path[128];
        kivis__value_path_format(&where, path, sizeof path);
        return kivis__fail(db, rc, "%s%s: %s", ts->desc->name, path,
                           kivis_strerror(rc));
    }
    return rc;
}

/* What a write does with a record already under its key, or with none. */
typedef enum write_mode {
    WRITE_UPSERT, /* store either way (put, insert) */
    WRITE_ADD,    /* KIVIS_EEXIST when one is there (add) */
    WRITE_UPDATE  /* KIVIS_NOTFOUND when none is (update) */
} write_mode;

static int check_mode(kivis_db *db, const kivis_table_state *ts,
                      write_mode mode, bool had_old)
{
    if (mode == WRITE_ADD && had_old)
        return kivis__fail(db, KIVIS_EEXIST,
                           "%s: a record with this %s already exists",
                           ts->desc->name,
                           ts->desc->key_kind == KIVIS_KEY_DERIVED ? "derived key"
                                                                  : "key");
    if (mode == WRITE_UPDATE && !had_old)
        return kivis__fail(db, KIVIS_NOTFOUND, "%s: no record with this key to update",
                           ts->desc->name);
    return KIVIS_OK;
}

/* Store `rec`, already encoded in db->val, under `key`: everything is
 * encoded and checked before the first write, so only storage failures can
 * happen after it.  `fresh`: the key is known to be unused (a new
 * auto-increment id), so there is no old record to look up. */
static int write_at_pk(kivis_db *db, const kivis_table_state *ts,
                       kivis_op *op, size_t prefix_len, const void *rec,
                       bool fresh, write_mode mode);

static int write_record(kivis_db *db, const kivis_table_state *ts,
                        kivis_op *op, const void *key, const void *rec,
                        bool fresh, write_mode mode)
{
    size_t prefix_len;
    int rc = kivis__record_key(db, ts, key, &db->pk, &prefix_len);
    return rc ? rc : write_at_pk(db, ts, op, prefix_len, rec, fresh, mode);
}

/* write_record with the record key already in db->pk (its table prefix
 * prefix_len bytes long). */
static int write_at_pk(kivis_db *db, const kivis_table_state *ts,
                       kivis_op *op, size_t prefix_len, const void *rec,
                       bool fresh, write_mode mode)
{
    int rc;
    if (ts->cache)
        kivis__cache_drop(db, ts, kivis_slice_make(db->pk.data, db->pk.len));
    kivis_slice pk = kivis_slice_make(db->pk.data + prefix_len,
                                      db->pk.len - prefix_len);
    rc = kivis__index_entries(db, ts, rec, pk, &db->newidx, db->newlen);
    if (rc)
        return rc;
    bool had_old = false;
    kivis_slice old;
    if (!fresh && (ts->desc->nindexes || mode != WRITE_UPSERT)) {
        rc = read_stored(db, ts, op->txn, &old);
        if (rc < 0)
            return rc;
        had_old = rc == KIVIS_OK;
        rc = check_mode(db, ts, mode, had_old);
    }
    if (!rc && had_old && ts->desc->nindexes)
        rc = old_index_entries(db, ts, old, pk);
    if (!rc && ts->desc->nindexes)
        rc = check_unique(db, ts, op->txn, pk.len);
    if (!rc && ts->ref_targets)
        rc = kivis__refs_check_put(db, ts, op->txn, rec, had_old);
    return rc ? rc : apply_record_write(db, ts, op, had_old);
}

int kivis__rewrite_stored(kivis_db *db, kivis_table_state *ts, kivis_op *op,
                          size_t plen, const void *rec)
{
    int rc = encode_value(db, ts, rec);
    return rc ? rc : write_at_pk(db, ts, op, plen, rec, false, WRITE_UPDATE);
}

static int check_write_args(kivis_db *db, uint32_t table, const void *rec,
                            kivis_table_state **ts)
{
    if (!db)
        return KIVIS_EINVAL;
    if (!rec)
        return kivis__fail(db, KIVIS_EINVAL, "record is NULL");
    return table_state(db, table, ts);
}

/* kivis_put and kivis_add: the key from the table's strategy. */
static int put_mode(kivis_db *db, uint32_t table, const void *record,
                    void *key_out, write_mode mode)
{
    kivis_table_state *ts = NULL;
    int rc = check_write_args(db, table, record, &ts);
    if (!rc) /* validates the record before derive_key sees it */
        rc = encode_value(db, ts, record);
    if (rc)
        goto out;
    kivis_op op;
    rc = kivis__op_begin(db, true, &op);
    if (rc)
        goto out;
    bool autokey = ts->desc->key_kind == KIVIS_KEY_AUTO;
    uint64_t id = 0;
    if (autokey) {
        rc = next_auto_id(db, ts, op.txn, &id);
        if (!rc)
            rc = set_auto_key(ts, db->keytmp, id);
    } else {
        rc = kivis__key_from_record(db, ts, record, db->keytmp);
    }
    if (!rc)
        rc = write_record(db, ts, &op, db->keytmp, record, autokey, mode);
    if (!rc && autokey)
        advance_auto_id(ts, id);
    rc = kivis__op_end(db, &op, rc);
out:
    if (key_out && db && table < db->schema->ntables) {
        size_t n = db->schema->tables[table].key->size;
        if (rc)
            memset(key_out, 0, n);
        else
            memcpy(key_out, db->keytmp, n);
    }
    return rc;
}

int kivis_put(kivis_db *db, uint32_t table, const void *record, void *key_out)
{
    return put_mode(db, table, record, key_out, WRITE_UPSERT);
}

int kivis_add(kivis_db *db, uint32_t table, const void *record, void *key_out)
{
    return put_mode(db, table, record, key_out, WRITE_ADD);
}

/* The key must be the one the record's own fields give. */
static int check_key_matches(kivis_db *db, const kivis_table_state *ts,
                             const void *key, const void *rec)
{
    int rc = kivis__key_from_record(db, ts, rec, db->keytmp);
    kivis_buf want;
    kivis__buf_init(&want, &db->alloc);
    if (!rc)
        rc = kivis__record_key(db, ts, db->keytmp, &want, NULL);
    if (!rc)
        rc = kivis__record_key(db, ts, key, &db->pk, NULL);
    if (!rc && (want.len != db->pk.len || memcmp(want.data, db->pk.data, want.len)))
        rc = kivis__fail(db, KIVIS_EINVAL,
                         "%s: the key given differs from the key of the "
                         "record's own fields",
                         ts->desc->name);
    kivis__buf_free(&want);
    return rc;
}

/* For an explicit key of an auto-increment table: whether its id is above
 * every id issued (*raise), so that the counter must be raised to it. */
static int explicit_auto_id(kivis_db *db, kivis_table_state *ts, kivis_op *op,
                            const void *key, uint64_t *id, bool *raise)
{
    uint64_t highest;
    memcpy(id, (const char *)key + ts->desc->key->fields[0].offset, sizeof *id);
    int rc = highest_issued_id(db, ts, op->txn, &highest);
    *raise = !rc && *id > highest;
    return rc;
}

/* kivis_insert and kivis_update: an explicit key, or (update of a table
 * keyed by its fields) NULL for the record's own. */
static int insert_mode(kivis_db *db, uint32_t table, const void *key,
                       const void *record, write_mode mode)
{
    kivis_table_state *ts = NULL;
    int rc = check_write_args(db, table, record, &ts);
    if (rc)
        return rc;
    bool autokey = ts->desc->key_kind == KIVIS_KEY_AUTO;
    if (!key && (autokey || mode != WRITE_UPDATE))
        return kivis__fail(db, KIVIS_EINVAL, "key is NULL");
    rc = encode_value(db, ts, record);
    if (rc)
        return rc;
    if (!key) {
        rc = kivis__key_from_record(db, ts, record, db->keytmp);
        key = db->keytmp;
    } else if (!autokey) {
        rc = check_key_matches(db, ts, key, record);
    }
    if (rc)
        return rc;
    kivis_op op;
    rc = kivis__op_begin(db, true, &op);
    if (rc)
        return rc;
    uint64_t id = 0;
    bool raise = false; /* an update finds its id stored: never above */
    if (autokey && mode != WRITE_UPDATE)
        rc = explicit_auto_id(db, ts, &op, key, &id, &raise);
    if (!rc)
        rc = write_record(db, ts, &op, key, record, false, mode);
    if (!rc && raise)
        advance_auto_id(ts, id);
    return kivis__op_end(db, &op, rc);
}

int kivis_insert(kivis_db *db, uint32_t table, const void *key,
                 const void *record)
{
    return insert_mode(db, table, key, record, WRITE_UPSERT);
}

int kivis_update(kivis_db *db, uint32_t table, const void *key,
                 const void *record)
{
    return insert_mode(db, table, key, record, WRITE_UPDATE);
}

/* ---- index builds (on open, for indexes new to the store) ----------- */

static int build_one(kivis_db *db, kivis_table_state *ts, kivis_op *op,
                     kivis_slice k, kivis_slice v, size_t prefix_len,
                     uint32_t first_new)
{
    const kivis_table_desc *td = ts->desc;
    db->pk.len = 0;
    int rc = kivis__buf_append(&db->pk, k.data, k.len);
    if (!rc)
        rc = kivis__value_decode(v, td->record, db->oldrec, &db->alloc, NULL);
    if (rc == KIVIS_ECORRUPT)
        return kivis__fail(db, rc, "%s: a stored record is corrupt", td->name);
    kivis_slice pk = kivis_slice_make(db->pk.data + prefix_len, k.len - prefix_len);
    if (!rc)
        rc = kivis__index_entries(db, ts, db->oldrec, pk, &db->newidx, db->newlen);
    kivis__struct_free(td->record, db->oldrec, &db->alloc);
    if (!rc)
        rc = check_unique(db, ts, op->txn, pk.len);
    const uint8_t *e = db->newidx.data;
    for (uint32_t i = 0; !rc && i < td->nindexes; e += db->newlen[i++])
        if (ts->index_ids[i] >= first_new)
            rc = put_entry(db, ts, op, e, db->newlen[i]);
    return rc;
}

int kivis__build_indexes(kivis_db *db, kivis_storage_txn *txn, uint32_t table,
                         uint32_t first_new)
{
    kivis_table_state *ts = &db->tables[table];
    uint32_t building = 0;
    for (uint32_t i = 0; i < ts->desc->nindexes; i++)
        building += ts->index_ids[i] >= first_new;
    if (!building)
        return KIVIS_OK;
    kivis_op op = {txn, false, false};
    kivis_buf lo, hi;
    kivis__buf_init(&lo, &db->alloc);
    kivis__buf_init(&hi, &db->alloc);
    kivis_storage_cursor *cur = NULL;
    kivis_progress p;
    int rc = kivis__progress_begin(db, txn, ts, KIVIS_PROGRESS_INDEX, building, &p);
    if (!rc)
        rc = kivis__table_prefix(&lo, ts, KIVIS_SLOT_RECORDS);
    if (!rc)
        rc = kivis__table_prefix(&hi, ts, KIVIS_SLOT_RECORDS + 1);
    if (!rc)
        rc = kivis_txn_cursor(txn, kivis_slice_make(lo.data, lo.len),
                              kivis_slice_make(hi.data, hi.len), &cur);
    kivis_slice k, v;
    while (!rc && (rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        rc = build_one(db, ts, &op, k, v, lo.len, first_new);
        if (!rc)
            kivis__progress_step(db, &p);
    }
    kivis_cursor_close(cur);
    kivis__buf_free(&lo);
    kivis__buf_free(&hi);
    if (rc != KIVIS_NOTFOUND)
        return rc;
    kivis__progress_end(db, &p);
    return KIVIS_OK;
}

/* ---- reads and removal ------------------------------------------------- */

/* kivis_get, its strings and blobs allocated with a. */
static int get_with(kivis_db *db, uint32_t table, const void *key,
                    void *record_out, const kivis_allocator *a)
{
    kivis_table_state *ts = NULL;
    int rc;
    if (!db)
        return KIVIS_EINVAL;
    if (record_out && table < db->schema->ntables)
        memset(record_out, 0, db->schema->tables[table].record->size);
    if (!key || !record_out)
        return kivis__fail(db, KIVIS_EINVAL, "key or record_out is NULL");
    rc = table_state(db, table, &ts);
    if (rc)
        return rc;
    db->errmsg[0] = '\0';
    rc = kivis__record_key(db, ts, key, &db->pk, NULL);
    if (rc)
        return rc;
    kivis_slice pk = kivis_slice_make(db->pk.data, db->pk.len);
    if (ts->cache && (rc = kivis__cache_get(db, ts, pk, record_out, a)) != KIVIS_NOTFOUND)
        return rc == KIVIS_ENOMEM ? kivis__fail(db, rc, "%s: copying a cached record",
                                                ts->desc->name)
                                  : rc;
    kivis_op op;
    rc = kivis__op_begin(db, false, &op);
    if (rc)
        return rc;
    kivis_slice v;
    rc = read_stored(db, ts, op.txn, &v);
    if (rc == KIVIS_OK) {
        rc = kivis__value_decode(v, ts->desc->record, record_out, a, NULL);
        if (rc == KIVIS_ECORRUPT)
            kivis__fail(db, rc, "%s: stored record is corrupt", ts->desc->name);
    }
    if (rc == KIVIS_OK && ts->cache)
        kivis__cache_fill(db, ts, pk, record_out);
    return kivis__op_end(db, &op, rc);
}

int kivis_get(kivis_db *db, uint32_t table, const void *key, void *record_out)
{
    return get_with(db, table, key, record_out, db ? &db->alloc : NULL);
}

int kivis_get_into(kivis_db *db, uint32_t table, const void *key,
                   void *record_out, void *buf, size_t size)
{
    if (db && !buf && size)
        return kivis__fail(db, KIVIS_EINVAL, "buf is NULL");
    kivis_bump b;
    kivis__bump_init(&b, buf, size);
    int rc = get_with(db, table, key, record_out, &b.iface);
    return db ? kivis__bump_status(db, &b, size, rc) : rc;
}

/* The record keys of `keys` (n key structs of ts) packed into `all`, each
 * one's end offset appended to `ends` (as kivis__prefetch_packed takes
 * them). */
static int pack_record_keys(kivis_db *db, const kivis_table_state *ts,
                            const char *keys, size_t n, kivis_buf *all,
                            kivis_buf *ends)
{
    size_t size = ts->desc->key->size;
    int rc = KIVIS_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = kivis__record_key(db, ts, keys + i * size, &db->pk, NULL);
        if (!rc)
            rc = kivis__buf_append(all, db->pk.data, db->pk.len);
        if (!rc)
            rc = kivis__buf_append(ends, &all->len, sizeof all->len);
    }
    return rc;
}

int kivis_prefetch(kivis_db *db, uint32_t table, const void *keys, size_t n)
{
    kivis_table_state *ts = NULL;
    if (!db)
        return KIVIS_EINVAL;
    db->errmsg[0] = '\0';
    if (!keys && n)
        return kivis__fail(db, KIVIS_EINVAL, "prefetch: keys is NULL");
    int rc = table_state(db, table, &ts);
    if (rc || n == 0 || !db->txn)
        return rc;
    if (db->poisoned)
        return KIVIS_EBADTXN;
    if (!kivis_txn_prefetches(db->txn))
        return KIVIS_OK; /* nothing to gain: do not even encode */
    kivis_buf all, ends;
    kivis__buf_init(&all, &db->alloc);
    kivis__buf_init(&ends, &db->alloc);
    rc = pack_record_keys(db, ts, keys, n, &all, &ends);
    if (!rc)
        rc = kivis__prefetch_packed(db->txn, &all, &ends, &db->alloc);
    if (rc == KIVIS_ENOMEM)
        rc = kivis__fail(db, rc, "%s: prefetch: out of memory", ts->desc->name);
    else if (rc < 0 && !db->errmsg[0])
        rc = storage_error(db, ts, rc, "prefetch");
    kivis__buf_free(&ends);
    kivis__buf_free(&all);
    return rc;
}

int kivis__remove_stored(kivis_db *db, kivis_table_state *ts, kivis_op *op,
                         size_t plen)
{
    if (ts->cache)
        kivis__cache_drop(db, ts, kivis_slice_make(db->pk.data, db->pk.len));
    kivis_slice old;
    int rc = read_stored(db, ts, op->txn, &old);
    if (rc == KIVIS_OK && ts->desc->nindexes) {
        rc = old_index_entries(db, ts, old,
                               kivis_slice_make(db->pk.data + plen, db->pk.len - plen));
        const uint8_t *e = db->oldidx.data;
        for (uint32_t i = 0; !rc && i < ts->desc->nindexes; e += db->oldlen[i++])
            rc = del_entry(db, ts, op, e, db->oldlen[i]);
    }
    if (rc == KIVIS_OK)
        rc = before_write(db, ts, op, kivis_slice_make(db->pk.data, db->pk.len));
    if (rc == KIVIS_OK) {
        op->wrote = true;
        rc = kivis_txn_del(op->txn, kivis_slice_make(db->pk.data, db->pk.len));
        if (rc < 0)
            rc = storage_error(db, ts, rc, "delete");
    }
    return rc;
}

int kivis_remove(kivis_db *db, uint32_t table, const void *key)
{
    kivis_table_state *ts = NULL;
    if (!db)
        return KIVIS_EINVAL;
    if (!key)
        return kivis__fail(db, KIVIS_EINVAL, "key is NULL");
    int rc = table_state(db, table, &ts);
    if (rc)
        return rc;
    kivis_op op;
    rc = kivis__op_begin(db, true, &op);
    if (rc)
        return rc;
    size_t plen;
    rc = kivis__record_key(db, ts, key, &db->pk, &plen);
    if (!rc && ts->nreferrers)
        rc = kivis__refs_remove(db, ts, &op);
    else if (!rc)
        rc = kivis__remove_stored(db, ts, &op, plen);
    return kivis__op_end(db, &op, rc);
}

void kivis_record_clear(kivis_db *db, uint32_t table, void *record)
{
    if (db && record && table < db->schema->ntables)
        kivis__struct_free(db->schema->tables[table].record, record, &db->alloc);
}

void kivis_key_clear(kivis_db *db, uint32_t table, void *key)
{
    if (db && key && table < db->schema->ntables)
        kivis__struct_free(db->schema->tables[table].key, key, &db->alloc);
}
