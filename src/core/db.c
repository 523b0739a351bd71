/* The db handle: open and close, errors, and the transaction every
 * operation runs in (the user's, or one of its own). */
#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void *kivis__alloc(kivis_db *db, size_t n)
{
    return db->alloc.malloc(db->alloc.ctx, n);
}

void kivis__free(kivis_db *db, void *p)
{
    if (p)
        db->alloc.free(db->alloc.ctx, p);
}

int kivis__fail(kivis_db *db, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof db->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

/* A storage error has no detail of its own: name it. */
static int storage_fail(kivis_db *db, int rc, const char *what)
{
    return kivis__fail(db, rc, "%s: storage %s: %s", what,
                       db->st->methods->name, kivis_strerror(rc));
}

const char *kivis_errmsg(const kivis_db *db)
{
    return db ? db->errmsg : "";
}

/* ---- descriptor validation ------------------------------------------ */

static int check_struct(kivis_db *db, const kivis_struct_desc *sd, int depth);

/* An optional field is a record's own, never part of a key, and its
 * presence flag (when it has one) lies before it (kivis/schema.h). */
static int check_optional(kivis_db *db, const kivis_struct_desc *sd,
                          const kivis_field *f, int depth)
{
    if (!(f->flags & KIVIS_FIELD_OPTIONAL))
        return KIVIS_OK;
    if (depth > 0 || (f->flags & KIVIS_FIELD_KEY))
        return kivis__fail(db, KIVIS_EINVAL,
                           "%s.%s: only a record's non-key field can be optional",
                           sd->name, f->name);
    uint32_t i = (uint32_t)(f - sd->fields);
    if (kivis__has_presence_flag(f) && kivis__presence_offset(sd, i) >= f->offset)
        return kivis__fail(db, KIVIS_EINVAL,
                           "%s.%s: no room for the presence flag before it",
                           sd->name, f->name);
    return KIVIS_OK;
}

static int check_field(kivis_db *db, const kivis_struct_desc *sd,
                       const kivis_field *f, int depth)
{
    if (!f->name || f->kind < KIVIS_U8 || f->kind > KIVIS_STRUCT)
        return kivis__fail(db, KIVIS_EINVAL, "%s: field with bad kind",
                           sd->name);
    int rc = check_optional(db, sd, f, depth);
    if (rc)
        return rc;
    if (f->kind == KIVIS_STRUCT)
        return check_struct(db, f->type, depth + 1);
    if (f->kind == KIVIS_ENUM && !f->enm)
        return kivis__fail(db, KIVIS_EINVAL, "%s.%s: enum without values",
                           sd->name, f->name);
    if (f->kind == KIVIS_CHARS && f->size < 1)
        return kivis__fail(db, KIVIS_EINVAL, "%s.%s: char[0]", sd->name,
                           f->name);
    return KIVIS_OK;
}

static int check_struct(kivis_db *db, const kivis_struct_desc *sd, int depth)
{
    if (!sd || !sd->name || (sd->nfields && !sd->fields) || depth > 16)
        return kivis__fail(db, KIVIS_EINVAL, "malformed struct descriptor");
    for (uint32_t i = 0; i < sd->nfields; i++) {
        int rc = check_field(db, sd, &sd->fields[i], depth);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

static bool same_field_type(const kivis_field *a, const kivis_field *b)
{
    return a->kind == b->kind && a->count == b->count && a->size == b->size &&
           a->type == b->type && a->enm == b->enm;
}

static int check_key_strategy(kivis_db *db, const kivis_table_desc *td)
{
    const kivis_struct_desc *k = td->key;
    switch (td->key_kind) {
    case KIVIS_KEY_AUTO:
        if (k->nfields == 1 && k->fields[0].kind == KIVIS_U64 &&
            k->fields[0].count == 0)
            return KIVIS_OK;
        return kivis__fail(db, KIVIS_EINVAL,
                           "%s: auto-increment key must be one uint64_t",
                           td->name);
    case KIVIS_KEY_FIELDS:
        if (!td->key_fields || k->nfields == 0)
            return kivis__fail(db, KIVIS_EINVAL, "%s: no key fields", td->name);
        for (uint32_t i = 0; i < k->nfields; i++) {
            uint32_t rf = td->key_fields[i];
            if (rf >= td->record->nfields ||
                !same_field_type(&k->fields[i], &td->record->fields[rf]))
                return kivis__fail(db, KIVIS_EINVAL,
                                   "%s: key field %u does not match the record",
                                   td->name, i);
        }
        return KIVIS_OK;
    case KIVIS_KEY_DERIVED:
        if (td->derive_key)
            return KIVIS_OK;
        return kivis__fail(db, KIVIS_EINVAL, "%s: derived key without function",
                           td->name);
    }
    return kivis__fail(db, KIVIS_EINVAL, "%s: unknown key kind", td->name);
}

static int check_table(kivis_db *db, const kivis_table_desc *td)
{
    if (!td->name || !td->record || !td->key ||
        (td->nindexes && !td->indexes))
        return kivis__fail(db, KIVIS_EINVAL, "malformed table descriptor");
    int rc = check_struct(db, td->record, 0);
    for (uint32_t i = 0; !rc && td->key->fields && i < td->key->nfields; i++)
        if (td->key->fields[i].flags & KIVIS_FIELD_OPTIONAL)
            rc = kivis__fail(db, KIVIS_EINVAL, "%s: key field %s is optional",
                             td->name, td->key->fields[i].name);
    if (!rc)
        rc = check_struct(db, td->key, 0);
    if (!rc)
        rc = check_key_strategy(db, td);
    for (uint32_t i = 0; !rc && i < td->nindexes; i++)
        if (!td->indexes[i].name || td->indexes[i].field >= td->record->nfields)
            rc = kivis__fail(db, KIVIS_EINVAL, "%s: index %u names no field",
                             td->name, i);
    return rc;
}

/* Each migration names a table of the schema, at most one per table, and
 * an old layout whose structs are well formed. */
static int check_migrations(kivis_db *db, const kivis_schema_desc *s)
{
    if (s->nmigrations && !s->migrations)
        return kivis__fail(db, KIVIS_EINVAL, "malformed schema descriptor");
    for (uint32_t i = 0; i < s->nmigrations; i++) {
        const kivis_migration *m = &s->migrations[i];
        if (!m->fn || !m->from || !m->from->name || !m->from->record ||
            !m->from->key || m->table >= s->ntables)
            return kivis__fail(db, KIVIS_EINVAL, "malformed migration %u", i);
        for (uint32_t j = 0; j < i; j++)
            if (s->migrations[j].table == m->table)
                return kivis__fail(db, KIVIS_EINVAL,
                                   "table %s has two migrations",
                                   s->tables[m->table].name);
        int rc = check_struct(db, m->from->record, 0);
        if (!rc)
            rc = check_struct(db, m->from->key, 0);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

static int check_schema(kivis_db *db, const kivis_schema_desc *s)
{
    if (!s->name || !s->ntables || !s->tables || s->ntables > KIVIS_ID_MAX - 1)
        return kivis__fail(db, KIVIS_EINVAL, "malformed schema descriptor");
    for (uint32_t i = 0; i < s->ntables; i++) {
        int rc = check_table(db, &s->tables[i]);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(s->tables[i].name, s->tables[j].name))
                return kivis__fail(db, KIVIS_EINVAL, "table %s declared twice",
                                   s->tables[i].name);
    }
    return check_migrations(db, s);
}

/* ---- open and close -------------------------------------------------- */

/* Size the scratch areas for the largest record, key and index count. */
static int alloc_scratch(kivis_db *db)
{
    size_t rec = 1, key = 1, nidx = 1;
    for (uint32_t i = 0; i < db->schema->ntables; i++) {
        const kivis_table_desc *td = &db->schema->tables[i];
        rec = td->record->size > rec ? td->record->size : rec;
        key = td->key->size > key ? td->key->size : key;
        nidx = td->nindexes > nidx ? td->nindexes : nidx;
    }
    db->oldrec = kivis__alloc(db, rec);
    db->keytmp = kivis__alloc(db, key);
    db->newlen = kivis__alloc(db, nidx * sizeof *db->newlen);
    db->oldlen = kivis__alloc(db, nidx * sizeof *db->oldlen);
    db->tables = kivis__alloc(db, db->schema->ntables * sizeof *db->tables);
    if (db->tables) /* before any early return: free_scratch walks it */
        memset(db->tables, 0, db->schema->ntables * sizeof *db->tables);
    if (!db->oldrec || !db->keytmp || !db->newlen || !db->oldlen || !db->tables)
        return KIVIS_ENOMEM;
    for (uint32_t i = 0; i < db->schema->ntables; i++) {
        kivis_table_state *ts = &db->tables[i];
        ts->desc = &db->schema->tables[i];
        ts->key_width = kivis__key_uint_width(ts->desc->key);
        size_t n = ts->desc->nindexes ? ts->desc->nindexes : 1;
        ts->index_ids = kivis__alloc(db, n * sizeof *ts->index_ids);
        if (!ts->index_ids)
            return KIVIS_ENOMEM;
    }
    return KIVIS_OK;
}

static void free_scratch(kivis_db *db)
{
    if (db->tables)
        for (uint32_t i = 0; i < db->schema->ntables; i++) {
            kivis__cache_free(db, &db->tables[i]);
            kivis__refs_free(db, &db->tables[i]);
            kivis__free(db, db->tables[i].index_ids);
        }
    kivis__free(db, db->tables);
    kivis__free(db, db->kept);
    kivis__free(db, db->oldrec);
    kivis__free(db, db->keytmp);
    kivis__free(db, db->newlen);
    kivis__free(db, db->oldlen);
    kivis__buf_free(&db->pk);
    kivis__buf_free(&db->val);
    kivis__buf_free(&db->newidx);
    kivis__buf_free(&db->oldidx);
    kivis__buf_free(&db->autoid);
    kivis__buf_free(&db->refkey);
}

int kivis_open(kivis_storage *st, const kivis_schema_desc *schema,
               const kivis_options *opts, kivis_db **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!st || !schema)
        return KIVIS_EINVAL;
    int rc = kivis_storage_check(st);
    if (rc)
        return rc;
    const kivis_allocator *a = opts && opts->allocator
                                   ? opts->allocator
                                   : kivis_default_allocator();
    kivis_db *db = a->malloc(a->ctx, sizeof *db);
    if (!db)
        return KIVIS_ENOMEM;
    memset(db, 0, sizeof *db);
    db->st = st;
    db->schema = schema;
    db->alloc = *a;
    db->durability = opts ? opts->durability : KIVIS_SYNC;
    db->open_flags = opts ? opts->flags : 0;
    db->progress = opts ? opts->progress : NULL;
    db->progress_ctx = opts ? opts->progress_ctx : NULL;
    db->migrate_ctx = opts ? opts->migrate_ctx : NULL;
    db->max_key = kivis_storage_max_key(st);
    kivis__buf_init(&db->pk, &db->alloc);
    kivis__buf_init(&db->val, &db->alloc);
    kivis__buf_init(&db->newidx, &db->alloc);
    kivis__buf_init(&db->oldidx, &db->alloc);
    kivis__buf_init(&db->autoid, &db->alloc);
    kivis__buf_init(&db->refkey, &db->alloc);
    rc = check_schema(db, schema);
    if (!rc)
        rc = alloc_scratch(db);
    if (!rc)
        rc = kivis__refs_open(db);
    if (!rc)
        rc = kivis__meta_load(db);
    if (rc) {
        if (opts && opts->errbuf && opts->errbuf_size)
            snprintf(opts->errbuf, opts->errbuf_size, "%s",
                     db->errmsg[0] ? db->errmsg : kivis_strerror(rc));
        free_scratch(db);
        a->free(a->ctx, db);
        return rc;
    }
    __atomic_add_fetch(&st->handles, 1, __ATOMIC_ACQ_REL);
    *out = db;
    return KIVIS_OK;
}

void kivis_close(kivis_db *db)
{
    if (!db)
        return;
    kivis_abort(db);
    kivis__orphan_scans(db); /* scans opened outside a transaction */
    __atomic_sub_fetch(&db->st->handles, 1, __ATOMIC_ACQ_REL);
    free_scratch(db);
    kivis_allocator a = db->alloc;
    a.free(a.ctx, db);
}

int kivis_table(const kivis_db *db, const char *name)
{
    if (!db || !name)
        return -1;
    for (uint32_t i = 0; i < db->schema->ntables; i++)
        if (!strcmp(db->schema->tables[i].name, name))
            return (int)i;
    return -1;
}

int kivis_index(const kivis_db *db, uint32_t table, const char *name)
{
    if (!db || !name || table >= db->schema->ntables)
        return -1;
    const kivis_table_desc *td = &db->schema->tables[table];
    for (uint32_t i = 0; i < td->nindexes; i++)
        if (!strcmp(td->indexes[i].name, name))
            return (int)i;
    return -1;
}

const kivis_schema_desc *kivis_db_schema(const kivis_db *db)
{
    return db ? db->schema : NULL;
}

int kivis_db_expect(kivis_db *db, const kivis_schema_desc *schema)
{
    if (!db || !schema)
        return KIVIS_EINVAL;
    if (db->schema == schema)
        return KIVIS_OK;
    return kivis__fail(db, KIVIS_ESCHEMA,
                       "a handle opened with schema '%s' was passed to "
                       "schema '%s''s functions",
                       db->schema->name, schema->name ? schema->name : "?");
}

/* ---- transactions ----------------------------------------------------- */

static void forget_txn_state(kivis_db *db)
{
    kivis__detach_scans(db);
    db->txn = NULL;
    db->poisoned = false;
    kivis__forget_auto_ids(db);
}

static int begin_txn(kivis_db *db, unsigned flags)
{
    if (!db)
        return KIVIS_EINVAL;
    if (db->txn)
        return kivis__fail(db, KIVIS_EINVAL, "a transaction is already open");
    kivis_storage_txn *txn;
    int rc = kivis_storage_begin(db->st, flags, &txn);
    if (rc)
        return storage_fail(db, rc, "begin");
    forget_txn_state(db);
    db->txn = txn;
    db->errmsg[0] = '\0';
    return KIVIS_OK;
}

int kivis_begin(kivis_db *db)
{
    return begin_txn(db, 0);
}

int kivis_begin_read(kivis_db *db)
{
    return begin_txn(db, KIVIS_TXN_RDONLY);
}

static bool txn_is_read_only(const kivis_db *db)
{
    return db->txn->flags & KIVIS_TXN_RDONLY;
}

int kivis_commit(kivis_db *db)
{
    if (!db)
        return KIVIS_EINVAL;
    if (!db->txn)
        return kivis__fail(db, KIVIS_EINVAL, "no transaction is open");
    kivis__detach_scans(db); /* their cursors must close before the txn ends */
    if (db->poisoned) {
        kivis_txn_abort(db->txn);
        forget_txn_state(db);
        return KIVIS_EBADTXN; /* errmsg still names the first failure */
    }
    if (txn_is_read_only(db)) {
        kivis_txn_abort(db->txn); /* nothing to apply */
        forget_txn_state(db);
        return KIVIS_OK;
    }
    int rc = kivis__save_auto_ids(db, db->txn);
    if (rc) {
        kivis_txn_abort(db->txn);
        forget_txn_state(db);
        return rc;
    }
    rc = kivis_txn_commit(db->txn, db->durability);
    forget_txn_state(db);
    return rc ? storage_fail(db, rc, "commit") : KIVIS_OK;
}

void kivis_abort(kivis_db *db)
{
    if (!db || !db->txn)
        return;
    kivis__detach_scans(db);
    kivis_txn_abort(db->txn);
    forget_txn_state(db);
}

/* ---- per-operation transactions -------------------------------------- */

int kivis__op_begin(kivis_db *db, bool write, kivis_op *op)
{
    op->wrote = false;
    if (db->txn) {
        if (db->poisoned)
            return KIVIS_EBADTXN;
        if (write && txn_is_read_only(db))
            return kivis__fail(db, KIVIS_EINVAL,
                               "a write in a read-only transaction");
        op->txn = db->txn;
        op->own = false;
        db->errmsg[0] = '\0';
        return KIVIS_OK;
    }
    db->errmsg[0] = '\0';
    op->own = true;
    int rc = kivis_storage_begin(db->st, write ? 0 : KIVIS_TXN_RDONLY, &op->txn);
    return rc ? storage_fail(db, rc, "begin") : KIVIS_OK;
}

int kivis__op_end(kivis_db *db, kivis_op *op, int rc)
{
    if (!op->own) {
        if (rc < 0 && op->wrote) {
            db->poisoned = true;
            /* Keep the cause; later calls only say EBADTXN. */
        }
        return rc;
    }
    int src = rc >= 0 && op->wrote ? kivis__save_auto_ids(db, op->txn) : KIVIS_OK;
    if (src) {
        kivis_txn_abort(op->txn);
        rc = src;
    } else if (rc >= 0 && op->wrote) {
        int crc = kivis_txn_commit(op->txn, db->durability);
        if (crc)
            rc = storage_fail(db, crc, "commit");
    } else {
        kivis_txn_abort(op->txn);
    }
    /* Ids cached for one autocommit operation do not outlive it. */
    kivis__forget_auto_ids(db);
    return rc;
}
