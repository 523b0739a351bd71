/* kivis_check and kivis_stats: one ordered walk over every key of the
 * store, in one read transaction.
 *
 * Keys sort by table id, then slot (records, reserved, index ids + 2), so
 * the walk meets each table's records and then each of its indexes.  A
 * record is checked against its index entries by point reads of the
 * entries it should have; an entry is checked by reading its record and
 * re-encoding the indexed field.  Together the two directions prove that
 * every record has exactly its entries, without holding any set in
 * memory: the walk's memory does not grow with the store.
 *
 * Tables the store holds but the db's schema does not name (kivis_open
 * keeps them) are walked with their stored layout, read from table 0 in
 * the walk's transaction, as the kivis tool walks every table: so a check
 * through the application's schema and one through the stored schema
 * give the same verdict on the same store. */
#include <kivis/inspect.h>

#include "metafmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Progress is reported every this many keys. */
#define PROGRESS_STEP 4096u

typedef struct checker {
    kivis_db *db;
    kivis_storage_txn *txn;
    bool verify;
    kivis_check_fn report;
    void *ctx;
    kivis_check_stats *stats;
    uint64_t total; /* keys in the store, when progress is wanted */
    kivis_buf hex;     /* the reported key, as text */
    kivis_buf entries; /* a record's index entry keys */
    kivis_buf tmp;     /* a record key; a re-encoded field value */
    size_t *lens;      /* length of each of entries (db scratch) */
    void *rec;         /* room for the largest record (db scratch) */
    void *key;         /* room for the largest key struct (db scratch) */
    /* The stored tables the db's schema lacks, when there are some. */
    kivis_schema_desc *stored; /* the stored schema they point into */
    kivis_table_state *kept;
    uint32_t nkept;
    size_t *kept_lens; /* as lens, rec and key, for the kept tables */
    void *kept_rec, *kept_key;
} checker;

/* ---- reporting ---------------------------------------------------------- */

static int hex_key(kivis_buf *b, kivis_slice key)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = key.data;
    b->len = 0;
    int rc = kivis__buf_reserve(b, key.len * 2 + 1);
    if (rc)
        return rc;
    for (size_t i = 0; i < key.len; i++) {
        b->data[b->len++] = (uint8_t)digits[p[i] >> 4];
        b->data[b->len++] = (uint8_t)digits[p[i] & 15];
    }
    b->data[b->len] = '\0';
    return KIVIS_OK;
}

#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
static int problem(checker *c, kivis_check_kind kind,
                   const kivis_table_state *ts, int index, kivis_slice key,
                   const char *fmt, ...)
{
    c->stats->problems++;
    if (!c->report)
        return KIVIS_OK;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int rc = hex_key(&c->hex, key);
    if (rc)
        return rc;
    kivis_check_problem p;
    p.kind = kind;
    p.table = ts ? ts->desc->name : NULL;
    p.index = ts && index >= 0 ? ts->desc->indexes[index].name : NULL;
    p.key_hex = (const char *)c->hex.data;
    p.message = msg;
    c->report(c->ctx, &p);
    return KIVIS_OK;
}

/* ---- records ------------------------------------------------------------ */

/* Does the primary key at r decode, using up the rest of the key? */
static bool pk_decodes(checker *c, const kivis_table_desc *td, kivis_reader r)
{
    kivis_slice pk = kivis_slice_make(r.p, (size_t)(r.end - r.p));
    if (kivis__key_get_whole(pk, td->key, 0, c->key, &c->db->alloc) != KIVIS_OK)
        return false;
    kivis__struct_free(td->key, c->key, &c->db->alloc);
    return true;
}

/* Each index entry the decoded record c->rec should have must exist. */
static int check_record_entries(checker *c, const kivis_table_state *ts,
                                kivis_slice key, kivis_slice pk)
{
    int rc = kivis__index_entries(c->db, ts, c->rec, pk, &c->entries, c->lens);
    if (rc == KIVIS_EUTF8 || rc == KIVIS_ERANGE || rc == KIVIS_EINVAL ||
        rc == KIVIS_EKEYSIZE)
        return problem(c, KIVIS_CHECK_BAD_RECORD, ts, -1, key,
                       "its index entries cannot be built: %s",
                       kivis_strerror(rc));
    size_t off = 0;
    for (uint32_t i = 0; !rc && i < ts->desc->nindexes; i++) {
        kivis_slice entry = kivis_slice_make(c->entries.data + off, c->lens[i]), v;
        off += c->lens[i];
        if (!c->lens[i])
            continue; /* an absent value a unique index leaves out */
        rc = kivis_txn_get(c->txn, entry, &v);
        if (rc == KIVIS_NOTFOUND)
            rc = problem(c, KIVIS_CHECK_MISSING_ENTRY, ts, (int)i, key,
                         "the record has no entry in index %s",
                         ts->desc->indexes[i].name);
    }
    return rc;
}

/* The table a foreign-key field refers to, among the db's and the kept
 * ones; NULL when the field is none. */
static const kivis_table_state *ref_table(const checker *c, const kivis_field *f)
{
    if (f->kind != KIVIS_STRUCT || f->count)
        return NULL;
    int t = kivis__key_table(c->db->tables, c->db->schema->ntables, f->type);
    if (t >= 0)
        return &c->db->tables[t];
    t = c->nkept ? kivis__key_table(c->kept, c->nkept, f->type) : -1;
    return t >= 0 ? &c->kept[t] : NULL;
}

static bool has_action(const kivis_table_desc *td, uint32_t field)
{
    for (uint32_t i = 0; i < td->nindexes; i++)
        if (td->indexes[i].field == field && td->indexes[i].flags & KIVIS_INDEX_ACTION)
            return true;
    return false;
}

/* Each foreign-key field of the decoded record c->rec must name a stored
 * record: a problem for one with a referential action, a warning else. */
static int check_references(checker *c, const kivis_table_state *ts,
                            kivis_slice key)
{
    const kivis_struct_desc *rd = ts->desc->record;
    for (uint32_t i = 0; i < rd->nfields; i++) {
        const kivis_table_state *target = ref_table(c, &rd->fields[i]);
        if (!target || !kivis__field_present(rd, i, c->rec))
            continue; /* an absent optional key names nothing */
        kivis_slice v;
        int rc = kivis__record_key(c->db, target,
                                   (const char *)c->rec + rd->fields[i].offset,
                                   &c->tmp, NULL);
        if (!rc)
            rc = kivis_txn_get(c->txn, kivis_slice_make(c->tmp.data, c->tmp.len), &v);
        if (rc == KIVIS_OK)
            continue;
        if (rc == KIVIS_ENOMEM || (rc < 0 && rc != KIVIS_EUTF8 && rc != KIVIS_ERANGE &&
                                   rc != KIVIS_EINVAL && rc != KIVIS_EKEYSIZE))
            return rc;
        if (!has_action(ts->desc, i))
            c->stats->warnings++;
        else if ((rc = problem(c, KIVIS_CHECK_DANGLING_REF, ts, -1, key,
                               "its %s names no stored %s", rd->fields[i].name,
                               target->desc->name)))
            return rc;
    }
    return KIVIS_OK;
}

static int check_record(checker *c, const kivis_table_state *ts,
                        kivis_slice key, kivis_slice value, size_t prefix)
{
    const kivis_table_desc *td = ts->desc;
    kivis_reader r = kivis__reader(key);
    r.p += prefix;
    kivis_slice pk = kivis_slice_make(r.p, (size_t)(r.end - r.p));
    if (!pk_decodes(c, td, r))
        return problem(c, KIVIS_CHECK_BAD_RECORD, ts, -1, key,
                       "the record's key does not decode");
    int rc = kivis__value_decode(value, td->record, c->rec, &c->db->alloc, NULL);
    if (rc == KIVIS_ECORRUPT)
        return problem(c, KIVIS_CHECK_BAD_RECORD, ts, -1, key,
                       "the record's value does not decode");
    if (rc)
        return rc;
    rc = check_record_entries(c, ts, key, pk);
    if (!rc)
        rc = check_references(c, ts, key);
    kivis__struct_free(td->record, c->rec, &c->db->alloc);
    return rc;
}

/* ---- index entries ---------------------------------------------------- */

/* The entry's record must exist and hold the entry's value. */
static int check_entry_record(checker *c, const kivis_table_state *ts,
                              int index, kivis_slice key, kivis_slice value,
                              kivis_slice pk)
{
    const kivis_table_desc *td = ts->desc;
    const kivis_field *f = &td->record->fields[td->indexes[index].field];
    kivis_slice v;
    int rc = kivis__table_prefix(&c->tmp, ts, KIVIS_SLOT_RECORDS);
    if (!rc)
        rc = kivis__buf_append(&c->tmp, pk.data, pk.len);
    if (!rc)
        rc = kivis_txn_get(c->txn, kivis_slice_make(c->tmp.data, c->tmp.len), &v);
    if (rc == KIVIS_NOTFOUND)
        return problem(c, KIVIS_CHECK_STALE_ENTRY, ts, index, key,
                       "the entry points at a missing record");
    if (!rc)
        rc = kivis__value_decode(v, td->record, c->rec, &c->db->alloc, NULL);
    if (rc == KIVIS_ECORRUPT)
        return KIVIS_OK; /* the walk reports the record itself */
    if (rc)
        return rc;
    c->tmp.len = 0;
    rc = kivis__unindexed(td, (uint32_t)index, c->rec)
             ? KIVIS_OK /* an entry no record value makes: never equal */
             : kivis__key_put_index(&c->tmp, td->record,
                                    td->indexes[index].field, c->rec);
    kivis__struct_free(td->record, c->rec, &c->db->alloc);
    if (rc == KIVIS_OK &&
        (c->tmp.len != value.len || memcmp(c->tmp.data, value.data, value.len)))
        return problem(c, KIVIS_CHECK_STALE_ENTRY, ts, index, key,
                       "the record's %s holds another value", f->name);
    return rc == KIVIS_ENOMEM ? rc : KIVIS_OK;
}

static int check_entry(checker *c, const kivis_table_state *ts, int index,
                       kivis_slice key, kivis_slice value, size_t prefix)
{
    const kivis_table_desc *td = ts->desc;
    kivis_reader r = kivis__reader(key);
    r.p += prefix;
    const uint8_t *start = r.p;
    if (kivis__key_skip_field(&r, &td->record->fields[td->indexes[index].field]))
        return problem(c, KIVIS_CHECK_BAD_ENTRY, ts, index, key,
                       "the indexed value does not decode");
    kivis_slice indexed = kivis_slice_make(start, (size_t)(r.p - start));
    kivis_slice pk = kivis_slice_make(r.p, (size_t)(r.end - r.p));
    if (!pk_decodes(c, td, r))
        return problem(c, KIVIS_CHECK_BAD_ENTRY, ts, index, key,
                       "the primary key does not decode");
    if (value.len)
        return problem(c, KIVIS_CHECK_BAD_ENTRY, ts, index, key,
                       "an index entry has a value (%zu bytes)", value.len);
    return check_entry_record(c, ts, index, key, indexed, pk);
}

/* ---- the walk ---------------------------------------------------------- */

/* The table of a stored id and its position in stats->tables: the db's
 * tables first, then the kept ones. */
static kivis_table_state *table_by_id(checker *c, uint32_t id, uint32_t *pos)
{
    kivis_db *db = c->db;
    for (uint32_t i = 0; i < db->schema->ntables; i++)
        if (db->tables[i].id == id) {
            *pos = i;
            return &db->tables[i];
        }
    for (uint32_t i = 0; i < c->nkept; i++)
        if (c->kept[i].id == id) {
            *pos = db->schema->ntables + i;
            return &c->kept[i];
        }
    return NULL;
}

/* Decode into room sized for the table: the db's scratch (free, as no
 * write runs on the handle meanwhile) fits its own tables, the check's
 * own fits the kept ones. */
static void use_scratch(checker *c, bool kept)
{
    c->rec = kept ? c->kept_rec : c->db->oldrec;
    c->key = kept ? c->kept_key : c->db->keytmp;
    c->lens = kept ? c->kept_lens : c->db->newlen;
}

static int index_by_slot(const kivis_table_state *ts, uint32_t slot)
{
    for (uint32_t i = 0; i < ts->desc->nindexes; i++)
        if (ts->index_ids[i] + KIVIS_SLOT_FIRST_INDEX == slot)
            return (int)i;
    return -1;
}

/* Count one key and, when verifying, check it. */
static int visit(checker *c, kivis_slice key, kivis_slice value)
{
    kivis_check_stats *s = c->stats;
    s->keys++;
    s->key_bytes += key.len;
    s->value_bytes += value.len;
    kivis_reader r = kivis__reader(key);
    uint32_t id, slot, pos;
    if (kivis__id_get(&r, &id) || kivis__id_get(&r, &slot))
        return problem(c, KIVIS_CHECK_UNKNOWN_TABLE, NULL, -1, key,
                       "the key does not start with a table id and slot");
    if (id == 0)
        return KIVIS_OK; /* metadata */
    kivis_table_state *ts = table_by_id(c, id, &pos);
    if (!ts)
        return problem(c, KIVIS_CHECK_UNKNOWN_TABLE, NULL, -1, key,
                       "no table has id %u", id);
    use_scratch(c, pos >= c->db->schema->ntables);
    kivis_table_stats *t = &s->tables[pos];
    size_t prefix = (size_t)(r.p - (const uint8_t *)key.data);
    t->key_bytes += key.len;
    if (slot == KIVIS_SLOT_RECORDS) {
        t->records++;
        t->value_bytes += value.len;
        return c->verify ? check_record(c, ts, key, value, prefix) : KIVIS_OK;
    }
    if (slot < KIVIS_SLOT_FIRST_INDEX)
        return KIVIS_OK; /* reserved per-table metadata */
    int index = index_by_slot(ts, slot);
    if (index < 0)
        return problem(c, KIVIS_CHECK_UNKNOWN_SLOT, ts, -1, key,
                       "table %s has no index with id %u", ts->desc->name,
                       slot - KIVIS_SLOT_FIRST_INDEX);
    t->index_entries++;
    return c->verify ? check_entry(c, ts, index, key, value, prefix) : KIVIS_OK;
}

static int count_keys(kivis_storage_txn *txn, uint64_t *n)
{
    kivis_storage_cursor *cur;
    kivis_slice k, v;
    int rc = kivis_txn_cursor(txn, kivis_slice_make(NULL, 0),
                              kivis_slice_make(NULL, 0), &cur);
    if (rc)
        return rc;
    *n = 0;
    for (int op = KIVIS_FIRST; (rc = kivis_cursor_get(cur, op, &k, &v)) == KIVIS_OK;
         op = KIVIS_NEXT)
        ++*n;
    kivis_cursor_close(cur);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

static void progress(checker *c, bool last)
{
    kivis_check_stats *s = c->stats;
    if (s->progress && (last || s->keys % PROGRESS_STEP == 0))
        s->progress(s->progress_ctx, s->keys, c->total);
}

static int walk(checker *c)
{
    int rc = c->stats->progress ? count_keys(c->txn, &c->total) : KIVIS_OK;
    kivis_storage_cursor *cur = NULL;
    if (!rc)
        rc = kivis_txn_cursor(c->txn, kivis_slice_make(NULL, 0),
                              kivis_slice_make(NULL, 0), &cur);
    kivis_slice k, v;
    for (int op = KIVIS_FIRST;
         !rc && (rc = kivis_cursor_get(cur, op, &k, &v)) == KIVIS_OK; op = KIVIS_NEXT) {
        rc = visit(c, k, v);
        progress(c, false);
    }
    kivis_cursor_close(cur);
    if (rc == KIVIS_NOTFOUND) {
        rc = KIVIS_OK;
        progress(c, true);
    }
    return rc;
}

/* ---- setup ------------------------------------------------------------- */

static int alloc_kept_scratch(checker *c)
{
    size_t rec = 1, key = 1, nidx = 1;
    for (uint32_t i = 0; i < c->nkept; i++) {
        const kivis_table_desc *td = c->kept[i].desc;
        rec = td->record->size > rec ? td->record->size : rec;
        key = td->key->size > key ? td->key->size : key;
        nidx = td->nindexes > nidx ? td->nindexes : nidx;
    }
    c->kept_rec = kivis__alloc(c->db, rec);
    c->kept_key = kivis__alloc(c->db, key);
    c->kept_lens = kivis__alloc(c->db, nidx * sizeof *c->kept_lens);
    return c->kept_rec && c->kept_key && c->kept_lens ? KIVIS_OK : KIVIS_ENOMEM;
}

/* The stored tables the db's schema does not name, read in the walk's
 * transaction. */
static int load_kept(checker *c)
{
    kivis_db *db = c->db;
    kivis_slice blob;
    kivis_table_state *states;
    int rc = kivis_txn_get(c->txn, kivis__schema_key_slice(), &blob);
    if (rc == KIVIS_NOTFOUND)
        return KIVIS_OK; /* nothing stored: nothing kept */
    if (!rc)
        rc = kivis__schema_parse(blob, &db->alloc, &c->stored, &states);
    if (rc == KIVIS_ECORRUPT || rc == KIVIS_EVERSION)
        return kivis__fail(db, rc, "check: the stored schema cannot be read: %s",
                           kivis_strerror(rc));
    if (rc)
        return rc;
    for (uint32_t i = 0; i < c->stored->ntables; i++)
        c->nkept += kivis_table(db, c->stored->tables[i].name) < 0;
    if (!c->nkept)
        return KIVIS_OK;
    c->kept = kivis__alloc(db, c->nkept * sizeof *c->kept);
    if (!c->kept)
        return KIVIS_ENOMEM;
    for (uint32_t i = 0, k = 0; i < c->stored->ntables; i++)
        if (kivis_table(db, c->stored->tables[i].name) < 0)
            c->kept[k++] = states[i];
    return alloc_kept_scratch(c);
}

/* One stats entry per table, the db's then the kept ones; the kept
 * tables' names are copied behind the array (they outlive the walk). */
static int stats_init(checker *c, kivis_check_stats *stats)
{
    kivis_db *db = c->db;
    uint32_t own = db->schema->ntables, n = own + c->nkept;
    size_t names = 0;
    for (uint32_t i = 0; i < c->nkept; i++)
        names += strlen(c->kept[i].desc->name) + 1;
    stats->tables = kivis__alloc(db, n * sizeof *stats->tables + names);
    if (!stats->tables)
        return KIVIS_ENOMEM;
    stats->ntables = n;
    memset(stats->tables, 0, n * sizeof *stats->tables);
    char *p = (char *)(stats->tables + n);
    for (uint32_t i = 0; i < n; i++) {
        kivis_table_stats *t = &stats->tables[i];
        if (i < own) {
            t->name = db->schema->tables[i].name;
            continue;
        }
        size_t len = strlen(c->kept[i - own].desc->name) + 1;
        t->name = memcpy(p, c->kept[i - own].desc->name, len);
        t->kept = true;
        p += len;
    }
    return KIVIS_OK;
}

static void checker_init(checker *c, kivis_db *db, kivis_check_stats *stats)
{
    c->db = db;
    c->stats = stats;
    use_scratch(c, false);
    kivis__buf_init(&c->hex, &db->alloc);
    kivis__buf_init(&c->entries, &db->alloc);
    kivis__buf_init(&c->tmp, &db->alloc);
}

static void checker_free(checker *c)
{
    kivis__buf_free(&c->hex);
    kivis__buf_free(&c->entries);
    kivis__buf_free(&c->tmp);
    kivis__free(c->db, c->kept);
    kivis__free(c->db, c->kept_rec);
    kivis__free(c->db, c->kept_key);
    kivis__free(c->db, c->kept_lens);
    kivis_schema_free(c->stored, &c->db->alloc);
}

/* The walk and what it needs, in the operation's transaction. */
static int check_in(checker *c, kivis_storage_txn *txn)
{
    c->txn = txn;
    int rc = load_kept(c);
    if (!rc)
        rc = stats_init(c, c->stats);
    return rc ? rc : walk(c);
}

static int run(kivis_db *db, bool verify, kivis_check_fn report, void *ctx,
               kivis_check_stats *stats)
{
    kivis_check_stats local;
    if (!stats) {
        memset(&local, 0, sizeof local);
        stats = &local;
    }
    stats->tables = NULL;
    stats->ntables = 0;
    stats->keys = stats->key_bytes = stats->value_bytes = stats->problems = 0;
    stats->warnings = 0;
    checker c;
    memset(&c, 0, sizeof c);
    c.verify = verify;
    c.report = report;
    c.ctx = ctx;
    checker_init(&c, db, stats);
    kivis_op op;
    int rc = kivis__op_begin(db, false, &op);
    if (!rc)
        rc = kivis__op_end(db, &op, check_in(&c, op.txn));
    checker_free(&c);
    if (rc == KIVIS_ENOMEM)
        kivis__fail(db, rc, "check: out of memory");
    if (!rc && stats->problems)
        rc = kivis__fail(db, KIVIS_ECORRUPT, "check: %llu problems found",
                         (unsigned long long)stats->problems);
    if (stats == &local)
        kivis_stats_free(db, &local);
    return rc;
}

int kivis_check(kivis_db *db, kivis_check_fn report, void *ctx,
                kivis_check_stats *stats)
{
    return db ? run(db, true, report, ctx, stats) : KIVIS_EINVAL;
}

int kivis_stats(kivis_db *db, kivis_check_stats *stats)
{
    return db && stats ? run(db, false, NULL, NULL, stats) : KIVIS_EINVAL;
}

void kivis_stats_free(kivis_db *db, kivis_check_stats *stats)
{
    if (!db || !stats)
        return;
    kivis__free(db, stats->tables);
    stats->tables = NULL;
    stats->ntables = 0;
}
