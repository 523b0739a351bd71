/* Referential actions: an index over a foreign-key field that carries
 * KIVIS_INDEX_RESTRICT, KIVIS_INDEX_CASCADE or KIVIS_INDEX_NULLIFY
 * (schema.h).
 *
 * The index's entries are tableid | slot | referenced key | referencing
 * key, and the encoding of a key-struct field is the encoding of that key
 * (codec: a struct encodes as its fields in order), so the records that
 * refer to one record are the entries under tableid | slot | its primary
 * key: one prefix scan per referring index, never a table scan.  A write
 * checks its targets by point reads; a remove first finds everything the
 * cascade reaches (each record once, however cycles close), failing on
 * the first restrict before anything is written, then rewrites the
 * nullified referrers with the field absent and removes the rest, all in
 * the one transaction.  An optional foreign key's index value starts with
 * its presence tag (codec.h): an absent one names nothing. */
#include "engine.h"
#include "keyset.h"

#include <string.h>

/* ---- open ----------------------------------------------------------- */

int kivis__key_table(const kivis_table_state *tables, uint32_t n,
                     const kivis_struct_desc *type)
{
    for (uint32_t i = 0; i < n; i++) {
        const kivis_struct_desc *key = tables[i].desc->key;
        if (key == type || (key->size == type->size && !strcmp(key->name, type->name)))
            return (int)i;
    }
    return -1;
}

static int ref_target(kivis_db *db, const kivis_table_desc *td,
                      const kivis_index_desc *ix, uint32_t *target)
{
    const kivis_field *f = &td->record->fields[ix->field];
    uint32_t action = ix->flags & KIVIS_INDEX_ACTION;
    if (action == KIVIS_INDEX_NULLIFY && !(f->flags & KIVIS_FIELD_OPTIONAL))
        return kivis__fail(db, KIVIS_EINVAL,
                           "%s.%s: nullify on a field that is not optional",
                           td->name, f->name);
    if (action != KIVIS_INDEX_RESTRICT && action != KIVIS_INDEX_CASCADE &&
        action != KIVIS_INDEX_NULLIFY)
        return kivis__fail(db, KIVIS_EINVAL, "%s.%s: unknown referential action 0x%x",
                           td->name, f->name, action);
    int t = f->kind == KIVIS_STRUCT && !f->count
                ? kivis__key_table(db->tables, db->schema->ntables, f->type)
                : -1;
    if (t < 0)
        return kivis__fail(db, KIVIS_EINVAL,
                           "%s.%s: a referential action on a field that is "
                           "not a table's key type",
                           td->name, f->name);
    *target = (uint32_t)t;
    return KIVIS_OK;
}

/* Note the targets of one table's indexes with an action, and count
 * each as a referrer of its target (room for them comes later). */
static int note_targets(kivis_db *db, kivis_table_state *ts)
{
    const kivis_table_desc *td = ts->desc;
    for (uint32_t i = 0; i < td->nindexes; i++) {
        if (!(td->indexes[i].flags & KIVIS_INDEX_ACTION))
            continue;
        if (!ts->ref_targets) {
            ts->ref_targets = kivis__alloc(db, td->nindexes * sizeof *ts->ref_targets);
            if (!ts->ref_targets)
                return KIVIS_ENOMEM;
            for (uint32_t j = 0; j < td->nindexes; j++)
                ts->ref_targets[j] = UINT32_MAX;
        }
        int rc = ref_target(db, td, &td->indexes[i], &ts->ref_targets[i]);
        if (rc)
            return rc;
        db->tables[ts->ref_targets[i]].nreferrers++;
    }
    return KIVIS_OK;
}

int kivis__refs_open(kivis_db *db)
{
    uint32_t n = db->schema->ntables;
    for (uint32_t t = 0; t < n; t++) {
        int rc = note_targets(db, &db->tables[t]);
        if (rc)
            return rc;
    }
    for (uint32_t t = 0; t < n; t++) {
        kivis_table_state *ts = &db->tables[t];
        if (!ts->nreferrers)
            continue;
        ts->referrers = kivis__alloc(db, ts->nreferrers * sizeof *ts->referrers);
        if (!ts->referrers)
            return KIVIS_ENOMEM;
        ts->nreferrers = 0; /* counted again as they are filled in */
    }
    for (uint32_t t = 0; t < n; t++) {
        const kivis_table_state *ts = &db->tables[t];
        for (uint32_t i = 0; ts->ref_targets && i < ts->desc->nindexes; i++)
            if (ts->ref_targets[i] != UINT32_MAX) {
                kivis_table_state *target = &db->tables[ts->ref_targets[i]];
                target->referrers[target->nreferrers++] = (kivis_referrer){t, i};
            }
    }
    return KIVIS_OK;
}

void kivis__refs_free(kivis_db *db, kivis_table_state *ts)
{
    kivis__free(db, ts->ref_targets);
    kivis__free(db, ts->referrers);
    ts->ref_targets = NULL;
    ts->referrers = NULL;
    ts->nreferrers = 0;
}

/* ---- writes ------------------------------------------------------------- */

/* Does the record `f` of rec names exist (or is it the record itself)? */
static int check_target(kivis_db *db, const kivis_table_state *ts,
                        kivis_storage_txn *txn, const void *rec, uint32_t index)
{
    const kivis_index_desc *ix = &ts->desc->indexes[index];
    const kivis_field *f = &ts->desc->record->fields[ix->field];
    const kivis_table_state *target = &db->tables[ts->ref_targets[index]];
    if (!kivis__field_present(ts->desc->record, ix->field, rec))
        return KIVIS_OK; /* an absent optional key names nothing */
    int rc = kivis__record_key(db, target, (const char *)rec + f->offset,
                               &db->refkey, NULL);
    if (rc)
        return rc;
    kivis_slice key = kivis_slice_make(db->refkey.data, db->refkey.len), v;
    if (target == ts && key.len == db->pk.len && !memcmp(key.data, db->pk.data, key.len))
        return KIVIS_OK; /* a record may refer to itself */
    rc = kivis_txn_get(txn, key, &v);
    if (rc == KIVIS_NOTFOUND)
        return kivis__fail(db, KIVIS_ECONSTRAINT,
                           "%s.%s: no %s has the key it names "
                           "(references(%s))",
                           ts->desc->name, f->name, target->desc->name,
                           kivis_action_name(ix->flags));
    return rc ? kivis__fail(db, rc, "%s.%s: reading the %s it names: %s",
                            ts->desc->name, f->name, target->desc->name,
                            kivis_strerror(rc))
              : KIVIS_OK;
}

int kivis__refs_check_put(kivis_db *db, const kivis_table_state *ts,
                          kivis_storage_txn *txn, const void *rec,
                          bool had_old)
{
    const uint8_t *ne = db->newidx.data, *oe = db->oldidx.data;
    int rc = KIVIS_OK;
    for (uint32_t i = 0; !rc && i < ts->desc->nindexes; i++) {
        /* An unchanged value was checked when it was written, and its
         * target cannot have gone since without taking this record along
         * (cascade) or failing (restrict). */
        bool same = had_old && db->oldlen[i] == db->newlen[i] &&
                    !memcmp(oe, ne, db->newlen[i]);
        if (ts->ref_targets[i] != UINT32_MAX && !same)
            rc = check_target(db, ts, txn, rec, i);
        ne += db->newlen[i];
        if (had_old)
            oe += db->oldlen[i];
    }
    return rc;
}

/* ---- removal ------------------------------------------------------------ */

/* What a remove reaches: each record's table position and full record
 * key, in the order found (the remove's own first), and the set of those
 * keys, so that each is queued once. */
typedef struct reach {
    kivis_buf queue; /* (uint32_t table, size_t len, key bytes)* */
    kivis_buf nullify; /* (uint32_t index, then as queue)*: a referrer's
                          field to make absent */
    kivis_keyset seen;
    kivis_storage_txn *txn;
    kivis_buf prefix, end, key; /* scratch */
} reach;

static int append_entry(kivis_buf *q, uint32_t table, kivis_slice key)
{
    int rc = kivis__buf_append(q, &table, sizeof table);
    if (!rc)
        rc = kivis__buf_append(q, &key.len, sizeof key.len);
    return rc ? rc : kivis__buf_append(q, key.data, key.len);
}

static int enqueue(reach *r, uint32_t table, kivis_slice key)
{
    int rc = kivis__keyset_add(&r->seen, key, false);
    return rc ? rc : append_entry(&r->queue, table, key);
}

/* The entry of queue q at *pos, moving *pos past it. */
static void dequeue(const kivis_buf *q, size_t *pos, uint32_t *table, kivis_slice *key)
{
    const uint8_t *p = q->data + *pos;
    size_t len;
    memcpy(table, p, sizeof *table);
    memcpy(&len, p + sizeof *table, sizeof len);
    *key = kivis_slice_make(p + sizeof *table + sizeof len, len);
    *pos += sizeof *table + sizeof len + len;
}

static int queue_nullify(reach *r, const kivis_referrer *ref, kivis_slice key)
{
    int rc = kivis__buf_append(&r->nullify, &ref->index, sizeof ref->index);
    return rc ? rc : append_entry(&r->nullify, ref->table, key);
}

/* One entry of a referring index: the referring record's primary key
 * follows the prefix.  Restrict fails unless it is the record itself;
 * cascade queues it when it is new. */
static int referred_by(kivis_db *db, reach *r, const kivis_table_state *ts,
                       const kivis_referrer *ref, kivis_slice removed,
                       kivis_slice entry)
{
    const kivis_table_state *rts = &db->tables[ref->table];
    const kivis_index_desc *ix = &rts->desc->indexes[ref->index];
    int rc = kivis__table_prefix(&r->key, rts, KIVIS_SLOT_RECORDS);
    if (!rc)
        rc = kivis__buf_append(&r->key, (const uint8_t *)entry.data + r->prefix.len,
                               entry.len - r->prefix.len);
    if (rc)
        return rc;
    kivis_slice key = kivis_slice_make(r->key.data, r->key.len);
    bool self = key.len == removed.len && !memcmp(key.data, removed.data, key.len);
    bool flag;
    if ((ix->flags & KIVIS_INDEX_ACTION) == KIVIS_INDEX_NULLIFY)
        return self ? KIVIS_OK /* it goes anyway */
                    : queue_nullify(r, ref, key);
    if ((ix->flags & KIVIS_INDEX_ACTION) == KIVIS_INDEX_RESTRICT)
        return self ? KIVIS_OK
                    : kivis__fail(db, KIVIS_ECONSTRAINT,
                                  "%s: cannot remove a record that %s.%s "
                                  "refers to (references(restrict))",
                                  ts->desc->name, rts->desc->name,
                                  rts->desc->record->fields[ix->field].name);
    return kivis__keyset_find(&r->seen, key, &flag) ? KIVIS_OK
                                                    : enqueue(r, ref->table, key);
}

/* Every record referring to `removed` (of table ts) through `ref`. */
static int scan_referrers(kivis_db *db, reach *r, const kivis_table_state *ts,
                          const kivis_referrer *ref, kivis_slice removed)
{
    const kivis_table_state *rts = &db->tables[ref->table];
    int rc = kivis__table_prefix(&r->prefix, ts, KIVIS_SLOT_RECORDS);
    size_t plen = r->prefix.len; /* the removed key's own table prefix */
    if (!rc)
        rc = kivis__table_prefix(&r->prefix, rts,
                                 rts->index_ids[ref->index] + KIVIS_SLOT_FIRST_INDEX);
    const kivis_field *f =
        &rts->desc->record->fields[rts->desc->indexes[ref->index].field];
    uint8_t present = KIVIS_TAG_PRESENT;
    if (!rc && (f->flags & KIVIS_FIELD_OPTIONAL))
        rc = kivis__buf_append(&r->prefix, &present, 1);
    if (!rc)
        rc = kivis__buf_append(&r->prefix, (const uint8_t *)removed.data + plen,
                               removed.len - plen);
    bool unbounded;
    if (!rc)
        rc = kivis__prefix_end(&r->prefix, &r->end, &unbounded);
    kivis_storage_cursor *cur = NULL;
    if (!rc)
        rc = kivis_txn_cursor(r->txn, kivis_slice_make(r->prefix.data, r->prefix.len),
                              kivis_slice_make(unbounded ? NULL : r->end.data, r->end.len),
                              &cur);
    kivis_slice k, v;
    for (int op = KIVIS_FIRST;
         !rc && (rc = kivis_cursor_get(cur, op, &k, &v)) == KIVIS_OK; op = KIVIS_NEXT)
        rc = referred_by(db, r, ts, ref, removed, k);
    kivis_cursor_close(cur);
    if (rc == KIVIS_NOTFOUND)
        return KIVIS_OK;
    if (rc && rc != KIVIS_ECONSTRAINT && rc != KIVIS_ENOMEM)
        kivis__fail(db, rc, "%s: finding the records that refer to it: %s",
                    ts->desc->name, kivis_strerror(rc));
    return rc;
}

/* Breadth first from the record under db->pk: queue every record the
 * cascade reaches, each once. */
static int find_reached(kivis_db *db, reach *r, uint32_t table)
{
    int rc = enqueue(r, table, kivis_slice_make(db->pk.data, db->pk.len));
    for (size_t pos = 0; !rc && pos < r->queue.len;) {
        uint32_t t;
        kivis_slice key;
        dequeue(&r->queue, &pos, &t, &key);
        /* The queue may move as it grows: scan with a copy of the key. */
        kivis_buf removed;
        kivis__buf_init(&removed, &db->alloc);
        rc = kivis__buf_append(&removed, key.data, key.len);
        const kivis_table_state *ts = &db->tables[t];
        for (uint32_t i = 0; !rc && i < ts->nreferrers; i++)
            rc = scan_referrers(db, r, ts, &ts->referrers[i],
                                kivis_slice_make(removed.data, removed.len));
        kivis__buf_free(&removed);
    }
    return rc;
}

/* Make field `field` of the record at obj absent (its owned members stay
 * for kivis__struct_free). */
static void make_absent(const kivis_struct_desc *sd, uint32_t field, void *obj)
{
    size_t flag = kivis_presence_offset(sd, field);
    if (flag != SIZE_MAX)
        ((unsigned char *)obj)[flag] = 0;
}

/* Rewrite the record under `key` (a full record key of ts) with the field
 * of index `index` absent.  db->pk is its key afterwards. */
static int nullify_one(kivis_db *db, kivis_table_state *ts, uint32_t index,
                       kivis_slice key, kivis_op *op)
{
    const kivis_struct_desc *rd = ts->desc->record;
    int rc = kivis__table_prefix(&db->pk, ts, KIVIS_SLOT_RECORDS);
    size_t plen = db->pk.len;
    db->pk.len = 0;
    if (!rc)
        rc = kivis__buf_append(&db->pk, key.data, key.len);
    kivis_slice v;
    if (!rc)
        rc = kivis_txn_get(op->txn, key, &v);
    void *rec = rc ? NULL : kivis__alloc(db, rd->size);
    if (!rc && !rec)
        rc = KIVIS_ENOMEM;
    if (!rc) {
        memset(rec, 0, rd->size);
        rc = kivis__value_decode(v, rd, rec, &db->alloc, NULL);
        if (rc == KIVIS_ECORRUPT)
            kivis__fail(db, rc, "%s: a stored record is corrupt", ts->desc->name);
    }
    if (!rc) {
        make_absent(rd, ts->desc->indexes[index].field, rec);
        rc = kivis__rewrite_stored(db, ts, op, plen, rec);
    }
    if (rec) {
        kivis__struct_free(rd, rec, &db->alloc);
        kivis__free(db, rec);
    }
    return rc;
}

/* Rewrite each nullified referrer that the remove does not take away. */
static int nullify_reached(kivis_db *db, reach *r, kivis_op *op)
{
    int rc = KIVIS_OK;
    for (size_t pos = 0; !rc && pos < r->nullify.len;) {
        uint32_t index, t;
        kivis_slice key;
        bool flag;
        memcpy(&index, r->nullify.data + pos, sizeof index);
        pos += sizeof index;
        dequeue(&r->nullify, &pos, &t, &key);
        if (!kivis__keyset_find(&r->seen, key, &flag)) /* else removed */
            rc = nullify_one(db, &db->tables[t], index, key, op);
    }
    return rc;
}

/* Remove everything queued, each with its index entries. */
static int remove_reached(kivis_db *db, reach *r, kivis_op *op)
{
    int rc = KIVIS_OK;
    for (size_t pos = 0; !rc && pos < r->queue.len;) {
        uint32_t t;
        kivis_slice key;
        dequeue(&r->queue, &pos, &t, &key);
        kivis_table_state *ts = &db->tables[t];
        size_t plen;
        rc = kivis__table_prefix(&db->pk, ts, KIVIS_SLOT_RECORDS);
        plen = db->pk.len;
        db->pk.len = 0;
        if (!rc)
            rc = kivis__buf_append(&db->pk, key.data, key.len);
        if (!rc)
            rc = kivis__remove_stored(db, ts, op, plen);
        if (rc == KIVIS_NOTFOUND) /* its index entry outlived it */
            rc = kivis__fail(db, KIVIS_ECORRUPT,
                             "%s: an index entry refers to a missing record",
                             ts->desc->name);
    }
    return rc;
}

int kivis__refs_remove(kivis_db *db, kivis_table_state *ts, kivis_op *op)
{
    kivis_slice v;
    int rc = kivis_txn_get(op->txn, kivis_slice_make(db->pk.data, db->pk.len), &v);
    if (rc)
        return rc == KIVIS_NOTFOUND ? rc
                                    : kivis__fail(db, rc, "%s: read: %s", ts->desc->name,
                                                  kivis_strerror(rc));
    reach r;
    memset(&r, 0, sizeof r);
    r.txn = op->txn;
    kivis__buf_init(&r.queue, &db->alloc);
    kivis__buf_init(&r.nullify, &db->alloc);
    kivis__buf_init(&r.prefix, &db->alloc);
    kivis__buf_init(&r.end, &db->alloc);
    kivis__buf_init(&r.key, &db->alloc);
    kivis__keyset_init(&r.seen, &db->alloc);
    rc = find_reached(db, &r, (uint32_t)(ts - db->tables));
    if (!rc)
        rc = nullify_reached(db, &r, op);
    if (!rc)
        rc = remove_reached(db, &r, op);
    if (rc == KIVIS_ENOMEM)
        kivis__fail(db, rc, "%s: remove: out of memory", ts->desc->name);
    kivis__buf_free(&r.queue);
    kivis__buf_free(&r.nullify);
    kivis__buf_free(&r.prefix);
    kivis__buf_free(&r.end);
    kivis__buf_free(&r.key);
    kivis__keyset_free(&r.seen);
    return rc;
}
