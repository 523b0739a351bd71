/* Reads that decode little or nothing: counts of a query's range, the
 * existence of a key, and the distinct values of an index with their
 * counts.  Each walks the same byte range a scan would (scan.c) but only
 * steps the storage cursor: a count reads no value, and the distinct
 * values decode one indexed value per group, never a record. */
#include "engine.h"

#include <string.h>

int kivis_count(kivis_db *db, const kivis_query *q, uint64_t *out)
{
    if (out)
        *out = 0;
    if (!db)
        return KIVIS_EINVAL;
    if (!out)
        return kivis__fail(db, KIVIS_EINVAL, "count: out is NULL");
    kivis_scan *s;
    int rc = kivis_scan_open(db, q, &s);
    uint64_t n = 0;
    kivis_slice k;
    while (!rc && (rc = kivis__scan_step(s, &k)) == KIVIS_OK)
        n++;
    kivis_scan_close(s);
    if (rc != KIVIS_NOTFOUND)
        return rc;
    *out = n;
    return KIVIS_OK;
}

int kivis_exists(kivis_db *db, uint32_t table, const void *key)
{
    if (!db)
        return KIVIS_EINVAL;
    db->errmsg[0] = '\0';
    if (!key)
        return kivis__fail(db, KIVIS_EINVAL, "exists: key is NULL");
    if (table >= db->schema->ntables)
        return kivis__fail(db, KIVIS_EINVAL, "no table %u in schema %s", table,
                           db->schema->name);
    const kivis_table_state *ts = &db->tables[table];
    int rc = kivis__record_key(db, ts, key, &db->pk, NULL);
    if (rc)
        return rc;
    kivis_op op;
    rc = kivis__op_begin(db, false, &op);
    if (rc)
        return rc;
    kivis_slice v;
    rc = kivis_txn_get(op.txn, kivis_slice_make(db->pk.data, db->pk.len), &v);
    if (rc && rc != KIVIS_NOTFOUND)
        rc = kivis__fail(db, rc, "%s: exists: %s", ts->desc->name,
                         kivis_strerror(rc));
    return kivis__op_end(db, &op, rc);
}

/* ---- distinct values of an index ---------------------------------------- */

struct kivis_distinct {
    kivis_scan *scan;
    kivis_db *db;          /* for messages; used only after a step worked */
    kivis_allocator alloc; /* the db's, for a close after the db's */
    kivis_field field;     /* the indexed field, at offset 0 */
    kivis_struct_desc one; /* a struct of that field alone, to free it */
    void *value;           /* the last value handed out (owns its strings) */
    kivis_buf group;       /* tableid | slot | value of the group met last */
    kivis_buf current;     /* the same of the group being returned */
    bool pending;          /* group holds a value met but not yet returned */
    bool done;             /* the scan reached its end */
};

/* The iteration over s, without its value's room yet. */
static void distinct_init(kivis_distinct *d, kivis_db *db, const kivis_query *q,
                          kivis_scan *s)
{
    const kivis_table_desc *td = &db->schema->tables[q->table];
    memset(d, 0, sizeof *d);
    d->scan = s;
    d->db = db;
    d->alloc = db->alloc;
    d->field = td->record->fields[td->indexes[q->index].field];
    d->field.offset = 0;
    size_t size = d->field.size * (d->field.count ? d->field.count : 1);
    d->one = (kivis_struct_desc){td->indexes[q->index].name, size, 1, &d->field, NULL};
    kivis__buf_init(&d->group, &d->alloc);
    kivis__buf_init(&d->current, &d->alloc);
}

int kivis_distinct_open(kivis_db *db, const kivis_query *q, kivis_distinct **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!db)
        return KIVIS_EINVAL;
    if (q && q->index < 0)
        return kivis__fail(db, KIVIS_EINVAL,
                           "distinct values need an index (index is %d)",
                           q->index);
    kivis_scan *s;
    int rc = kivis_scan_open(db, q, &s);
    if (rc)
        return rc;
    kivis_distinct *d = kivis__alloc(db, sizeof *d);
    if (d) {
        distinct_init(d, db, q, s);
        d->value = kivis__alloc(db, d->one.size);
    }
    if (!d || !d->value) {
        kivis__free(db, d);
        kivis_scan_close(s);
        return kivis__fail(db, KIVIS_ENOMEM, "distinct: out of memory");
    }
    memset(d->value, 0, d->one.size);
    *out = d;
    return KIVIS_OK;
}

/* The bytes of index entry `k` up to the end of its value (tableid | slot
 * | value), the value's length found by skipping it. */
static int entry_group(kivis_distinct *d, kivis_slice k, kivis_slice *group)
{
    kivis_reader r = kivis__reader(k);
    r.p += kivis__scan_prefix_len(d->scan);
    if (r.p > r.end || kivis__key_skip_field(&r, &d->field))
        return KIVIS_ECORRUPT;
    *group = kivis_slice_make(k.data, (size_t)(r.p - (const uint8_t *)k.data));
    return KIVIS_OK;
}

/* Entry k holds the group's value: the encoding is prefix-free, so an
 * entry starts with the group's bytes only when its value is the same. */
static bool in_group(const kivis_distinct *d, kivis_slice k)
{
    return k.len >= d->group.len &&
           memcmp(k.data, d->group.data, d->group.len) == 0;
}

/* Make the group the value of entry k. */
static int start_group(kivis_distinct *d, kivis_slice k)
{
    kivis_slice g;
    int rc = entry_group(d, k, &g);
    d->group.len = 0;
    if (!rc)
        rc = kivis__buf_append(&d->group, g.data, g.len);
    d->pending = rc == KIVIS_OK;
    return rc;
}

/* Take the pending group to return it: its bytes move to d->current, as
 * the next group overwrites them. */
static int take_group(kivis_distinct *d)
{
    d->current.len = 0;
    d->pending = false;
    return kivis__buf_append(&d->current, d->group.data, d->group.len);
}

/* After a step or skip: the entry k met starts the next group, or the
 * scan has ended. */
static int met(kivis_distinct *d, int rc, kivis_slice k)
{
    if (rc == KIVIS_OK)
        return start_group(d, k);
    if (rc == KIVIS_NOTFOUND) {
        d->done = true;
        rc = KIVIS_OK;
    }
    return rc;
}

/* Count the entries of the taken group, stopping at the first entry of
 * the next one (which becomes pending) or at the end. */
static int count_group(kivis_distinct *d, uint64_t *n)
{
    *n = 1;
    kivis_slice k;
    int rc;
    while ((rc = kivis__scan_step(d->scan, &k)) == KIVIS_OK && in_group(d, k))
        (*n)++;
    return met(d, rc, k);
}

/* Pass over the taken group without counting it: one seek. */
static int skip_group(kivis_distinct *d)
{
    kivis_slice k;
    int rc = kivis__scan_skip(
        d->scan, kivis_slice_make(d->current.data, d->current.len), &k);
    return met(d, rc, k);
}

/* Decode the taken group's value into d->value, dropping the previous. */
static int decode_value(kivis_distinct *d)
{
    kivis__struct_free(&d->one, d->value, &d->alloc);
    kivis_reader r = kivis__reader(kivis_slice_make(d->current.data, d->current.len));
    r.p += kivis__scan_prefix_len(d->scan);
    int rc = kivis__key_get_field(&r, &d->field, d->value, &d->alloc);
    if (!rc && r.p != r.end) {
        kivis__struct_free(&d->one, d->value, &d->alloc);
        rc = KIVIS_ECORRUPT;
    }
    return rc;
}

/* Step to the first entry of the next group unless one is pending. */
static int next_group(kivis_distinct *d)
{
    kivis_slice k;
    int rc = KIVIS_OK;
    if (!d->pending && !d->done)
        rc = met(d, kivis__scan_step(d->scan, &k), k);
    return !rc && !d->pending ? KIVIS_NOTFOUND : rc;
}

int kivis_distinct_next(kivis_distinct *d, void *value_out, uint64_t *count)
{
    if (count)
        *count = 0;
    if (!d)
        return KIVIS_EINVAL;
    if (value_out)
        memset(value_out, 0, d->one.size);
    uint64_t n = 0;
    int rc = next_group(d);
    if (!rc)
        rc = take_group(d);
    if (!rc)
        rc = count ? count_group(d, &n) : skip_group(d);
    if (!rc)
        rc = decode_value(d);
    if (rc == KIVIS_ECORRUPT)
        return kivis__fail(d->db, rc, "index %s: undecodable stored value",
                           d->one.name);
    if (rc)
        return rc;
    if (value_out)
        memcpy(value_out, d->value, d->one.size);
    if (count)
        *count = n;
    return KIVIS_OK;
}

void kivis_distinct_close(kivis_distinct *d)
{
    if (!d)
        return;
    kivis_scan_close(d->scan);
    kivis__struct_free(&d->one, d->value, &d->alloc);
    kivis__buf_free(&d->group);
    kivis__buf_free(&d->current);
    kivis_allocator a = d->alloc;
    a.free(a.ctx, d->value);
    a.free(a.ctx, d);
}
