/* Declared schema changes, applied at open (docs/schema.md, "Evolving a
 * schema").
 *
 * meta.c finds a stored table whose fields are not the compiled ones plus
 * fields appended; this file matches them by name or declared old name,
 * says whether the stored values can stay (renames, enums that gained
 * values) or must be rewritten (a field dropped, moved, widened or made
 * optional), and rewrites them: each value is decoded with the layout
 * kivis_schema_load builds from the stored schema, converted field by
 * field into the compiled struct and encoded again.  All of it runs in the
 * open's one write transaction, so a crash leaves the old store or the new
 * one, never a mix.
 */
#include "evolve.h"
#include "metafmt.h"

#include "codec/codec_int.h"

#include <stdio.h>
#include <string.h>

/* Report progress every this many records. */
#define PROGRESS_STEP 4096u

/* How many colliding keys a violated unique index names. */
#define REPORT_KEYS 4u

/* ---- declared changes ------------------------------------------------- */

/* The `was` of the rename declared for table `table`'s field `field`
 * (NULL: the table itself), or NULL. */
static const char *declared_was(const kivis_schema_desc *s, const char *table,
                                const char *field)
{
    for (uint32_t i = 0; i < s->nchanges; i++) {
        const kivis_schema_change *c = &s->changes[i];
        if (c->kind != KIVIS_EVOLVE_RENAME || !c->table || !c->was ||
            strcmp(c->table, table) || !c->field != !field)
            continue;
        if (!field || !strcmp(c->field, field))
            return c->was;
    }
    return NULL;
}

const char *kivis__stored_table_name(const kivis_schema_desc *s,
                                     const char *table)
{
    const char *was = declared_was(s, table, NULL);
    return was ? was : table;
}

bool kivis__declared_drop(const kivis_schema_desc *s, kivis_slice table,
                          const char *field)
{
    for (uint32_t i = 0; i < s->nchanges; i++) {
        const kivis_schema_change *c = &s->changes[i];
        if (c->kind != KIVIS_EVOLVE_DROP || !c->table ||
            !kivis__meta_str_is(table, c->table) || !c->field != !field)
            continue;
        if (!field || !strcmp(c->field, field))
            return true;
    }
    return false;
}

const char *kivis__stored_field_name(const kivis_schema_desc *s,
                                     const kivis_table_desc *td, uint32_t i)
{
    const char *name = td->record->fields[i].name;
    const char *was = declared_was(s, td->name, name);
    return was ? was : name;
}

const kivis_migration *kivis__migration_of(const kivis_schema_desc *s,
                                           uint32_t table)
{
    for (uint32_t i = 0; i < s->nmigrations; i++)
        if (s->migrations[i].table == table)
            return &s->migrations[i];
    return NULL;
}

/* ---- which changes are accepted ---------------------------------------- */

typedef enum verdict { SAME, CONVERT, REFUSE } verdict;

static int kind_rank(uint32_t kind, const uint32_t *ladder, int n)
{
    for (int i = 0; i < n; i++)
        if (ladder[i] == kind)
            return i;
    return -1;
}

/* int8 < ... < int64, uint8 < ... < uint64, float < double: a value of
 * the lower type always fits the higher one. */
static bool widens(uint32_t from, uint32_t to)
{
    static const uint32_t sgn[] = {KIVIS_I8, KIVIS_I16, KIVIS_I32, KIVIS_I64};
    static const uint32_t uns[] = {KIVIS_U8, KIVIS_U16, KIVIS_U32, KIVIS_U64};
    static const uint32_t flt[] = {KIVIS_F32, KIVIS_F64};
    int a = kind_rank(from, sgn, 4), b = kind_rank(to, sgn, 4);
    if (a >= 0 && b > a)
        return true;
    a = kind_rank(from, uns, 4);
    b = kind_rank(to, uns, 4);
    if (a >= 0 && b > a)
        return true;
    return kind_rank(from, flt, 2) == 0 && kind_rank(to, flt, 2) == 1;
}

/* Every stored enum value keeps its name and number: values are stored by
 * number, so the new names change nothing stored. */
static bool enum_grew(const kivis_enum_desc *was, const kivis_enum_desc *now)
{
    for (uint32_t i = 0; i < was->count; i++) {
        bool kept = false;
        for (uint32_t j = 0; j < now->count && !kept; j++)
            kept = !strcmp(was->names[i], now->names[j]) &&
                   was->values[i] == now->values[j];
        if (!kept)
            return false;
    }
    return true;
}

static verdict worse(verdict a, verdict b)
{
    return a > b ? a : b;
}

static verdict judge_field(const kivis_field *was, const kivis_field *now);

/* A nested struct keeps its fields, by name and order; each may widen. */
static verdict judge_struct(const kivis_struct_desc *was,
                            const kivis_struct_desc *now)
{
    if (was->nfields != now->nfields)
        return REFUSE;
    verdict v = SAME;
    for (uint32_t i = 0; i < now->nfields && v != REFUSE; i++)
        v = strcmp(was->fields[i].name, now->fields[i].name)
                ? REFUSE
                : worse(v, judge_field(&was->fields[i], &now->fields[i]));
    return v;
}

static verdict judge_element(const kivis_field *was, const kivis_field *now)
{
    if (was->kind != now->kind)
        return widens(was->kind, now->kind) ||
                       (was->kind == KIVIS_CHARS && now->kind == KIVIS_STRING)
                   ? CONVERT
                   : REFUSE;
    switch (now->kind) {
    case KIVIS_STRUCT:
        return judge_struct(was->type, now->type);
    case KIVIS_ENUM:
        return enum_grew(was->enm, now->enm) ? SAME : REFUSE;
    case KIVIS_CHARS:
        return now->size == was->size ? SAME
               : now->size > was->size ? CONVERT
                                       : REFUSE;
    default:
        return SAME;
    }
}

static verdict judge_field(const kivis_field *was, const kivis_field *now)
{
    if (was->count != now->count || ((was->flags ^ now->flags) & KIVIS_FIELD_KEY) ||
        (was->flags & ~now->flags & KIVIS_FIELD_OPTIONAL))
        return REFUSE;
    verdict v = judge_element(was, now);
    if (now->flags & ~was->flags & KIVIS_FIELD_OPTIONAL)
        v = worse(v, CONVERT); /* stored values gain the presence tag */
    return v;
}

static int refuse(kivis_db *db, const kivis_table_desc *td, const char *what,
                  const kivis_field *was, const kivis_field *now, const char *why)
{
    char msg[200];
    if (!kivis__field_change(was, now, what, now->name, msg, sizeof msg))
        snprintf(msg, sizeof msg, "%s '%s' changed type", what, now->name);
    return kivis__fail(db, KIVIS_ESCHEMA, "table %s: %s%s", td->name, msg, why);
}

/* What a refused field change needs: a typed migration, or one from the
 * layout the store has when the schema's own is from another. */
static const char *migration_hint(const kivis_db *db, const kivis_table_desc *td)
{
    uint32_t table = (uint32_t)(td - db->schema->tables);
    return kivis__migration_of(db->schema, table)
               ? " (the store's layout is not the one its typed migration "
                 "converts from either)"
               : " (a typed migration can convert it: kivis-gen --previous)";
}

static int position_of(const kivis_struct_desc *sd, const char *name)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        if (!strcmp(sd->fields[i].name, name))
            return (int)i;
    return -1;
}

/* The stored field that compiled field `name` of table `td` is: by its
 * name, else by its declared old name; -1 for none. */
static int stored_position(const kivis_db *db, const kivis_table_desc *td,
                           const kivis_struct_desc *stored, const char *name)
{
    int j = position_of(stored, name);
    const char *was = declared_was(db->schema, td->name, name);
    return j < 0 && was ? position_of(stored, was) : j;
}

/* The key encodes the record's identity: its fields may be renamed and
 * their enums gain values, nothing else. */
static int match_key(kivis_db *db, const kivis_table_desc *td,
                     const kivis_table_desc *from)
{
    const kivis_struct_desc *now = td->key, *was = from->key;
    if (now->nfields != was->nfields)
        return kivis__fail(db, KIVIS_ESCHEMA,
                           "table %s: the key has %u fields in the store but "
                           "%u in the schema (a key cannot gain or lose fields)",
                           td->name, was->nfields, now->nfields);
    for (uint32_t i = 0; i < now->nfields; i++) {
        const kivis_field *f = &now->fields[i];
        if (stored_position(db, td, was, f->name) != (int)i)
            return kivis__fail(db, KIVIS_ESCHEMA,
                               "table %s: key field %u is '%s' in the store "
                               "but '%s' in the schema (key fields cannot "
                               "move)",
                               td->name, i + 1, was->fields[i].name, f->name);
        verdict v = judge_field(&was->fields[i], f);
        if (v != SAME)
            return refuse(db, td, "key field", &was->fields[i], f,
                          v == CONVERT ? " (a key field's type cannot change)"
                                       : "");
    }
    return KIVIS_OK;
}

/* Every stored field no compiled field took must be declared dropped. */
static int match_drops(kivis_db *db, const kivis_table_desc *td,
                       const kivis_struct_desc *was, const bool *taken)
{
    for (uint32_t j = 0; j < was->nfields; j++) {
        const kivis_field *f = &was->fields[j];
        if (taken[j])
            continue;
        if (f->flags & KIVIS_FIELD_KEY)
            return kivis__fail(db, KIVIS_ESCHEMA,
                               "table %s: key field '%s' cannot be dropped",
                               td->name, f->name);
        if (!kivis__declared_drop(db->schema,
                                  kivis_slice_make(td->name, strlen(td->name)),
                                  f->name))
            return kivis__fail(db, KIVIS_ESCHEMA,
                               "table %s: stored field '%s' is missing from the "
                               "schema (declare [[dropped(%s)]] to delete it)",
                               td->name, f->name, f->name);
    }
    return KIVIS_OK;
}

static int match_fields(kivis_db *db, const kivis_table_desc *td,
                        const kivis_table_desc *from, uint32_t *map,
                        bool *taken, bool *rewrite)
{
    const kivis_struct_desc *now = td->record, *was = from->record;
    for (uint32_t i = 0; i < now->nfields; i++) {
        const kivis_field *f = &now->fields[i];
        int j = stored_position(db, td, was, f->name);
        map[i] = j < 0 ? UINT32_MAX : (uint32_t)j;
        /* A new field before a stored one moves that one: rewrite. */
        *rewrite |= (uint32_t)j != i && i < was->nfields;
        if (j < 0)
            continue;
        if (taken[j])
            return kivis__fail(db, KIVIS_ESCHEMA,
                               "table %s: two fields claim stored field '%s'",
                               td->name, was->fields[j].name);
        taken[j] = true;
        verdict v = judge_field(&was->fields[j], f);
        if (v == REFUSE || (v == CONVERT && (f->flags & KIVIS_FIELD_KEY)))
            return refuse(db, td, "field", &was->fields[j], f,
                          v == CONVERT ? " (a key field's type cannot change)"
                                       : migration_hint(db, td));
        *rewrite |= v == CONVERT;
    }
    *rewrite |= was->nfields > now->nfields;
    return match_drops(db, td, was, taken);
}

int kivis__evolve_match(kivis_db *db, const kivis_table_desc *td,
                        const kivis_table_desc *from, uint32_t *map,
                        bool *rewrite)
{
    *rewrite = false;
    int rc = match_key(db, td, from);
    if (rc)
        return rc;
    uint32_t n = from->record->nfields;
    bool *taken = kivis__alloc(db, n ? n : 1);
    if (!taken)
        return KIVIS_ENOMEM;
    memset(taken, 0, n ? n : 1);
    rc = match_fields(db, td, from, map, taken, rewrite);
    kivis__free(db, taken);
    return rc;
}

/* ---- converting a value ------------------------------------------------ */

/* One element of a field whose judge said SAME or CONVERT: widen it, or
 * move it (an owned pointer leaves `w`, so freeing w does not free it). */
static int convert_element(const kivis_field *wf, void *w, const kivis_field *nf,
                           void *n, const kivis_allocator *a);

static int convert_field(const kivis_struct_desc *was, uint32_t j, void *w,
                         const kivis_struct_desc *now, uint32_t i, void *n,
                         const kivis_allocator *a);

static int convert_struct(const kivis_struct_desc *was, void *w,
                          const kivis_struct_desc *now, void *n,
                          const uint32_t *map, const kivis_allocator *a)
{
    int rc = KIVIS_OK;
    for (uint32_t i = 0; !rc && i < now->nfields; i++) {
        uint32_t j = map ? map[i] : i;
        if (j != UINT32_MAX) /* a new field stays zero, so absent */
            rc = convert_field(was, j, w, now, i, n, a);
    }
    return rc;
}

static int convert_element(const kivis_field *wf, void *w, const kivis_field *nf,
                           void *n, const kivis_allocator *a)
{
    if (nf->kind == KIVIS_STRUCT)
        return convert_struct(wf->type, w, nf->type, n, NULL, a);
    if (wf->kind == KIVIS_CHARS) { /* to char[M >= N] or char * */
        size_t len = strnlen(w, wf->size);
        char *s = n;
        if (nf->kind == KIVIS_STRING) {
            s = a->malloc(a->ctx, len + 1);
            if (!s)
                return KIVIS_ENOMEM;
            memcpy(n, &s, sizeof s);
        }
        memcpy(s, w, len);
        s[len] = '\0';
        return KIVIS_OK;
    }
    if (wf->kind != nf->kind) {
        if (nf->kind == KIVIS_F64) {
            float f;
            memcpy(&f, w, sizeof f);
            double d = f;
            memcpy(n, &d, sizeof d);
        } else if (kivis__kind_signed(nf->kind)) {
            kivis__store_int(n, kivis__kind_width(nf->kind),
                             kivis__load_int(w, kivis__kind_width(wf->kind)));
        } else {
            kivis__store_uint(n, kivis__kind_width(nf->kind),
                              kivis__load_uint(w, kivis__kind_width(wf->kind)));
        }
        return KIVIS_OK;
    }
    memcpy(n, w, nf->size); /* same kind: a scalar, or an owned pointer */
    memset(w, 0, wf->size);
    return KIVIS_OK;
}

/* A field that was not optional and now is says present; a char * or
 * kivis_bytes says it by a pointer that is not NULL. */
static int make_present(const kivis_struct_desc *now, uint32_t i, void *n,
                        const kivis_allocator *a)
{
    const kivis_field *nf = &now->fields[i];
    size_t flag = kivis__presence_offset(now, i);
    if (kivis__has_presence_flag(nf)) {
        ((unsigned char *)n)[flag] = 1;
        return KIVIS_OK;
    }
    void *p;
    memcpy(&p, (char *)n + nf->offset, sizeof p);
    if (!kivis__absent_by_null(nf) || p)
        return KIVIS_OK;
    char *empty = a->malloc(a->ctx, 1); /* "" or a present empty blob */
    if (!empty)
        return KIVIS_ENOMEM;
    *empty = '\0';
    memcpy((char *)n + nf->offset, &empty, sizeof empty);
    return KIVIS_OK;
}

static int convert_field(const kivis_struct_desc *was, uint32_t j, void *w,
                         const kivis_struct_desc *now, uint32_t i, void *n,
                         const kivis_allocator *a)
{
    const kivis_field *wf = &was->fields[j], *nf = &now->fields[i];
    if (!kivis__field_present(was, j, w))
        return KIVIS_OK; /* stays absent */
    uint32_t count = nf->count ? nf->count : 1;
    int rc = KIVIS_OK;
    for (uint32_t e = 0; !rc && e < count; e++)
        rc = convert_element(wf, (char *)w + wf->offset + e * wf->size, nf,
                             (char *)n + nf->offset + e * nf->size, a);
    return rc || !(nf->flags & KIVIS_FIELD_OPTIONAL) ? rc
                                                     : make_present(now, i, n, a);
}

/* ---- rewriting a table ------------------------------------------------- */

static int records_cursor(kivis_db *db, kivis_storage_txn *txn,
                          const kivis_table_state *ts,
                          kivis_storage_cursor **cur, size_t *prefix_len)
{
    kivis_buf lo, hi;
    kivis__buf_init(&lo, &db->alloc);
    kivis__buf_init(&hi, &db->alloc);
    int rc = kivis__table_prefix(&lo, ts, KIVIS_SLOT_RECORDS);
    if (!rc)
        rc = kivis__table_prefix(&hi, ts, KIVIS_SLOT_RECORDS + 1);
    if (!rc)
        rc = kivis_txn_cursor(txn, kivis_slice_make(lo.data, lo.len),
                              kivis_slice_make(hi.data, hi.len), cur);
    *prefix_len = lo.len;
    kivis__buf_free(&lo);
    kivis__buf_free(&hi);
    return rc;
}

static int count_records(kivis_db *db, kivis_storage_txn *txn,
                         const kivis_table_state *ts, uint64_t *total)
{
    kivis_storage_cursor *cur = NULL;
    size_t plen;
    kivis_slice k, v;
    *total = 0;
    int rc = records_cursor(db, txn, ts, &cur, &plen);
    while (!rc && (rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK)
        ++*total;
    kivis_cursor_close(cur);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

static void format_key(const kivis_struct_desc *sd, const void *key, char *out,
                       size_t n);

/* The key of the record under db->pk (its table prefix plen bytes) as
 * format_key says it, into out. */
static void describe_pk(kivis_db *db, const kivis_table_desc *td, size_t plen,
                        char *out, size_t n)
{
    kivis_reader r = kivis__reader(
        kivis_slice_make(db->pk.data + plen, db->pk.len - plen));
    if (kivis__key_get_struct(&r, td->key, db->keytmp, &db->alloc)) {
        snprintf(out, n, "(?)");
        return;
    }
    format_key(td->key, db->keytmp, out, n);
    kivis__struct_free(td->key, db->keytmp, &db->alloc);
}

/* Whether the record `rec` the migration made has the key it is stored
 * under (db->pk): an auto-increment key is not in the record. */
static int key_kept(kivis_db *db, const kivis_table_state *ts, const void *rec,
                    bool *kept)
{
    *kept = true;
    if (ts->desc->key_kind == KIVIS_KEY_AUTO)
        return KIVIS_OK;
    int rc = kivis__key_from_record(db, ts, rec, db->keytmp);
    if (!rc) /* refkey is free during the open: no write checks references */
        rc = kivis__record_key(db, ts, db->keytmp, &db->refkey, NULL);
    *kept = !rc && db->refkey.len == db->pk.len &&
            !memcmp(db->refkey.data, db->pk.data, db->pk.len);
    return rc;
}

/* The typed migration of the record under db->pk from `old` into
 * db->oldrec (zeroed), which must keep its key. */
static int migrate_one(kivis_db *db, const kivis_table_state *ts,
                       const kivis_migration *mig, size_t plen, void *old)
{
    const kivis_table_desc *td = ts->desc;
    char key[96];
    int rc = mig->fn(old, db->oldrec, db->migrate_ctx);
    if (rc) {
        describe_pk(db, td, plen, key, sizeof key);
        return kivis__fail(db, rc < 0 ? rc : KIVIS_EINVAL,
                           "table %s: the typed migration of record %s "
                           "returned %d (%s); nothing was changed",
                           td->name, key, rc, kivis_errname(rc));
    }
    bool kept;
    rc = key_kept(db, ts, db->oldrec, &kept);
    if (rc || kept)
        return rc;
    describe_pk(db, td, plen, key, sizeof key);
    return kivis__fail(db, KIVIS_ESCHEMA,
                       "table %s: the typed migration changed the key of "
                       "record %s (a migration keeps every record's key); "
                       "nothing was changed",
                       td->name, key);
}

/* The stored value v of the record under db->pk (its table prefix plen
 * bytes), in layout `from`, written back in the compiled layout, by `map`
 * or by `mig`; `old` is room for one `from` record. */
static int rewrite_one(kivis_db *db, kivis_storage_txn *txn,
                       const kivis_table_state *ts, const kivis_table_desc *from,
                       const uint32_t *map, const kivis_migration *mig,
                       size_t plen, kivis_slice v, void *old)
{
    const kivis_table_desc *td = ts->desc;
    int rc = kivis__value_decode(v, from->record, old, &db->alloc, NULL);
    if (rc == KIVIS_ECORRUPT)
        return kivis__fail(db, rc, "table %s: a stored record does not decode "
                                   "with the stored schema", td->name);
    memset(db->oldrec, 0, td->record->size);
    if (!rc && mig)
        rc = migrate_one(db, ts, mig, plen, old);
    else if (!rc)
        rc = convert_struct(from->record, old, td->record, db->oldrec, map,
                            &db->alloc);
    db->val.len = 0;
    if (!rc)
        rc = kivis__value_encode(&db->val, td->record, ts->version, db->oldrec);
    if (rc && mig && !db->errmsg[0])
        kivis__fail(db, rc, "table %s: the record a typed migration made "
                            "does not encode: %s", td->name, kivis_strerror(rc));
    /* A conversion moved old's pointers into the new record, which owns
     * them; a migration's record points into old or the caller's memory. */
    kivis__struct_free(from->record, old, &db->alloc);
    if (!mig)
        kivis__struct_free(td->record, db->oldrec, &db->alloc);
    if (!rc)
        rc = kivis_txn_put(txn, kivis_slice_make(db->pk.data, db->pk.len),
                           kivis_slice_make(db->val.data, db->val.len));
    return rc;
}

/* How far a pass over a table's records (this rewrite, an index build in
 * record.c) has come, for kivis_options.progress. */
static void tell(const kivis_db *db, const kivis_progress *p)
{
    if (db->progress)
        db->progress(db->progress_ctx, p);
}

int kivis__progress_begin(kivis_db *db, kivis_storage_txn *txn,
                          const kivis_table_state *ts, uint32_t phase,
                          uint32_t indexes, kivis_progress *p)
{
    memset(p, 0, sizeof *p);
    p->phase = phase;
    p->table = ts->desc->name;
    p->indexes = indexes;
    /* The count is a walk of its own: only for someone listening. */
    int rc = db->progress ? count_records(db, txn, ts, &p->total) : KIVIS_OK;
    if (!rc)
        tell(db, p);
    return rc;
}

void kivis__progress_step(const kivis_db *db, kivis_progress *p)
{
    if (++p->done % PROGRESS_STEP)
        return;
    p->total = p->total > p->done ? p->total : p->done;
    tell(db, p);
}

void kivis__progress_end(const kivis_db *db, kivis_progress *p)
{
    p->total = p->done;
    tell(db, p);
}

int kivis__evolve_rewrite(kivis_db *db, kivis_storage_txn *txn, uint32_t table,
                          const kivis_table_desc *from, const uint32_t *map,
                          const kivis_migration *mig)
{
    const kivis_table_state *ts = &db->tables[table];
    kivis_progress p;
    int rc = kivis__progress_begin(db, txn, ts, KIVIS_PROGRESS_REWRITE, 0, &p);
    void *old = rc ? NULL : kivis__alloc(db, from->record->size);
    if (!rc && !old)
        rc = KIVIS_ENOMEM;
    kivis_storage_cursor *cur = NULL;
    size_t plen;
    if (!rc)
        rc = records_cursor(db, txn, ts, &cur, &plen);
    kivis_slice k, v;
    while (!rc && (rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        db->pk.len = 0; /* copied: the views die with the put */
        rc = kivis__buf_append(&db->pk, k.data, k.len);
        if (!rc)
            rc = rewrite_one(db, txn, ts, from, map, mig, plen, v, old);
        if (!rc)
            kivis__progress_step(db, &p);
    }
    kivis_cursor_close(cur);
    kivis__free(db, old);
    if (rc == KIVIS_NOTFOUND) {
        rc = KIVIS_OK;
        kivis__progress_end(db, &p);
    }
    return rc;
}

/* ---- a unique index the stored records violate -------------------------- */

/* Every unique index entry of every record, unchecked. */
static int put_unique_entries(kivis_db *db, kivis_storage_txn *txn,
                              const kivis_table_state *ts)
{
    const kivis_table_desc *td = ts->desc;
    kivis_storage_cursor *cur = NULL;
    size_t plen;
    kivis_slice k, v;
    int rc = records_cursor(db, txn, ts, &cur, &plen);
    while (!rc && (rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        db->pk.len = 0;
        rc = kivis__buf_append(&db->pk, k.data, k.len);
        if (!rc)
            rc = kivis__value_decode(v, td->record, db->oldrec, &db->alloc, NULL);
        kivis_slice pk = kivis_slice_make(db->pk.data + plen, db->pk.len - plen);
        if (!rc)
            rc = kivis__index_entries(db, ts, db->oldrec, pk, &db->newidx,
                                      db->newlen);
        kivis__struct_free(td->record, db->oldrec, &db->alloc);
        const uint8_t *e = db->newidx.data;
        for (uint32_t i = 0; !rc && i < td->nindexes; e += db->newlen[i++])
            if ((td->indexes[i].flags & KIVIS_INDEX_UNIQUE) && db->newlen[i])
                rc = kivis_txn_put(txn, kivis_slice_make(e, db->newlen[i]),
                                   kivis_slice_make("", 0));
    }
    kivis_cursor_close(cur);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

/* Append text to the NUL-terminated out of capacity n, cut to fit. */
static void append(char *out, size_t n, const char *text)
{
    size_t len = strlen(out), add = strlen(text);
    if (len + 1 >= n)
        return;
    add = add < n - len - 1 ? add : n - len - 1;
    memcpy(out + len, text, add);
    out[len + add] = '\0';
}

/* A key struct as "(name=value, ...)": numbers and text, others "?". */
static void format_key(const kivis_struct_desc *sd, const void *key, char *out,
                       size_t n)
{
    char v[96];
    out[0] = '\0';
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        const char *p = (const char *)key + f->offset;
        const char *s = NULL;
        if (f->count || f->kind == KIVIS_STRUCT || f->kind == KIVIS_BYTES)
            snprintf(v, sizeof v, "?");
        else if (f->kind == KIVIS_CHARS)
            snprintf(v, sizeof v, "\"%.*s\"", (int)strnlen(p, f->size), p);
        else if (f->kind == KIVIS_STRING)
            snprintf(v, sizeof v, "\"%s\"", (memcpy(&s, p, sizeof s), s ? s : ""));
        else if (f->kind == KIVIS_F32 || f->kind == KIVIS_F64 || f->kind == KIVIS_BOOL)
            snprintf(v, sizeof v, "?");
        else if (kivis__kind_signed(f->kind) || f->kind == KIVIS_ENUM)
            snprintf(v, sizeof v, "%lld",
                     (long long)kivis__load_int((const uint8_t *)p, (unsigned)f->size));
        else
            snprintf(v, sizeof v, "%llu",
                     (unsigned long long)kivis__load_uint((const uint8_t *)p,
                                                          (unsigned)f->size));
        append(out, n, i ? ", " : "(");
        append(out, n, f->name);
        append(out, n, "=");
        append(out, n, v);
    }
    append(out, n, ")");
}

typedef struct dup_scan {
    uint64_t count;    /* records whose value another record holds */
    uint32_t named;    /* keys written into `keys` */
    char keys[160];
    kivis_buf prev;    /* the previous entry */
    size_t prev_value; /* where its primary key starts */
    bool prev_counted;
} dup_scan;

/* Count the record of an entry whose primary key starts at `at`. */
static int note_dup(kivis_db *db, const kivis_table_desc *td, dup_scan *d,
                    kivis_slice entry, size_t at)
{
    d->count++;
    if (d->named >= REPORT_KEYS)
        return KIVIS_OK;
    kivis_reader r = kivis__reader(
        kivis_slice_make((const uint8_t *)entry.data + at, entry.len - at));
    char key[96];
    int rc = kivis__key_get_struct(&r, td->key, db->keytmp, &db->alloc);
    if (rc)
        return rc;
    format_key(td->key, db->keytmp, key, sizeof key);
    kivis__struct_free(td->key, db->keytmp, &db->alloc);
    if (d->named++)
        append(d->keys, sizeof d->keys, ", ");
    append(d->keys, sizeof d->keys, key);
    return KIVIS_OK;
}

/* Entries of one value are neighbours: walk index `i` comparing each
 * entry's value with the one before. */
static int scan_dups(kivis_db *db, kivis_storage_txn *txn,
                     const kivis_table_state *ts, uint32_t i, dup_scan *d)
{
    const kivis_table_desc *td = ts->desc;
    const kivis_field *f = &td->record->fields[td->indexes[i].field];
    kivis_buf lo, hi;
    kivis__buf_init(&lo, &db->alloc);
    kivis__buf_init(&hi, &db->alloc);
    int rc = kivis__table_prefix(&lo, ts, ts->index_ids[i] + KIVIS_SLOT_FIRST_INDEX);
    if (!rc)
        rc = kivis__table_prefix(&hi, ts, ts->index_ids[i] + KIVIS_SLOT_FIRST_INDEX + 1);
    kivis_storage_cursor *cur = NULL;
    if (!rc)
        rc = kivis_txn_cursor(txn, kivis_slice_make(lo.data, lo.len),
                              kivis_slice_make(hi.data, hi.len), &cur);
    kivis_slice k, v;
    while (!rc && (rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        kivis_reader r = kivis__reader(k);
        r.p += lo.len;
        rc = kivis__key_skip_field(&r, f);
        size_t at = (size_t)(r.p - (const uint8_t *)k.data);
        bool dup = !rc && d->prev.len && at == d->prev_value &&
                   !memcmp(k.data, d->prev.data, at);
        if (dup && !d->prev_counted)
            rc = note_dup(db, td, d, kivis_slice_make(d->prev.data, d->prev.len),
                          d->prev_value);
        if (dup && !rc)
            rc = note_dup(db, td, d, k, at);
        d->prev_counted = dup;
        d->prev.len = 0;
        d->prev_value = at;
        if (!rc)
            rc = kivis__buf_append(&d->prev, k.data, k.len);
    }
    kivis_cursor_close(cur);
    kivis__buf_free(&lo);
    kivis__buf_free(&hi);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

int kivis__evolve_unique_report(kivis_db *db, kivis_storage_txn *txn,
                                uint32_t table)
{
    const kivis_table_state *ts = &db->tables[table];
    const kivis_table_desc *td = ts->desc;
    int rc = put_unique_entries(db, txn, ts);
    for (uint32_t i = 0; !rc && i < td->nindexes; i++) {
        if (!(td->indexes[i].flags & KIVIS_INDEX_UNIQUE))
            continue;
        dup_scan d;
        memset(&d, 0, sizeof d);
        kivis__buf_init(&d.prev, &db->alloc);
        rc = scan_dups(db, txn, ts, i, &d);
        kivis__buf_free(&d.prev);
        if (!rc && d.count)
            return kivis__fail(db, KIVIS_ECONSTRAINT,
                               "table %s: unique index %s: %llu records hold "
                               "a value another record holds too (%s%s); "
                               "nothing was changed",
                               td->name, td->indexes[i].name,
                               (unsigned long long)d.count, d.keys,
                               d.count > d.named ? ", ..." : "");
    }
    return rc ? rc : KIVIS_ECONSTRAINT;
}
