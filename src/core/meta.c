/* The stored schema (table 0): names to ids, field signatures, indexes.
 *
 * On open the compiled descriptor is checked against it.  Compatible
 * changes are applied in one write transaction: a new table (new id, never
 * reusing one), fields appended to a record (its layout version grows; old
 * values decode with the new fields zeroed), a new index (built over the
 * existing records), a dropped index (its entries deleted), a table the
 * schema no longer declares (kept, untouched).  Anything else fails with
 * KIVIS_ESCHEMA naming the table and field, and changes nothing.
 *
 * Format (varints are LEB128, strings and blobs are varint length + bytes):
 *   "KVS" format=1 schema_name next_table_id ntables table*
 *   table:  id name key_kind version next_index_id
 *           nkey (name sig)*  nfields (name sig)*  nindexes (id name field flags)*
 *   sig:    kind count chars_size flags [enum: name n (name zigzag)*]
 *           [struct: name n (name sig)*]
 *
 * Beside it, each auto-increment table that has issued an id holds its
 * counter under 00 00 "autoid" id(table): a varint, the highest id the
 * table ever issued (record.c writes it once in each transaction that
 * issued ids, at its commit).
 */
#include "evolve.h"
#include "metafmt.h"

#include <kivis/inspect.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const uint8_t kivis__schema_key[8] = {0x00, 0x00, 's', 'c', 'h', 'e', 'm', 'a'};

static const uint8_t autoid_prefix[8] = {0x00, 0x00, 'a', 'u', 't', 'o', 'i', 'd'};

int kivis__autoid_key(kivis_buf *b, uint32_t table_id)
{
    b->len = 0;
    int rc = kivis__buf_append(b, autoid_prefix, sizeof autoid_prefix);
    return rc ? rc : kivis__id_put(b, table_id);
}

int kivis__autoid_get(kivis_storage_txn *txn, kivis_buf *key, uint32_t table_id,
                      uint64_t *highest)
{
    *highest = 0;
    int rc = kivis__autoid_key(key, table_id);
    kivis_slice v;
    if (!rc)
        rc = kivis_txn_get(txn, kivis_slice_make(key->data, key->len), &v);
    if (rc) /* KIVIS_NOTFOUND: never issued, or written before the counter */
        return rc;
    kivis_reader r = kivis__reader(v);
    rc = kivis__varint_get(&r, highest);
    return rc || r.p != r.end ? KIVIS_ECORRUPT : KIVIS_OK;
}

/* ---- small readers and writers ---------------------------------------- */

static int put_str(kivis_buf *b, const char *s, size_t n)
{
    int rc = kivis__varint_put(b, n);
    return rc ? rc : kivis__buf_append(b, s, n);
}

static int put_cstr(kivis_buf *b, const char *s)
{
    return put_str(b, s, strlen(s));
}

/* ---- signatures ----------------------------------------------------------- */

static int put_fields(kivis_buf *b, const kivis_struct_desc *sd);

static int put_sig(kivis_buf *b, const kivis_field *f)
{
    int rc = kivis__varint_put(b, f->kind);
    if (!rc)
        rc = kivis__varint_put(b, f->count);
    if (!rc)
        rc = kivis__varint_put(b, f->kind == KIVIS_CHARS ? f->size : 0);
    if (!rc)
        rc = kivis__varint_put(b, f->flags);
    if (!rc && f->kind == KIVIS_ENUM) {
        rc = put_cstr(b, f->enm->name);
        if (!rc)
            rc = kivis__varint_put(b, f->enm->count);
        for (uint32_t i = 0; !rc && i < f->enm->count; i++) {
            int64_t v = f->enm->values[i];
            rc = put_cstr(b, f->enm->names[i]);
            if (!rc)
                rc = kivis__varint_put(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
        }
    }
    if (!rc && f->kind == KIVIS_STRUCT) {
        rc = put_cstr(b, f->type->name);
        if (!rc)
            rc = put_fields(b, f->type);
    }
    return rc;
}

/* A field's signature as a blob, so that readers can compare it whole. */
static int put_sig_blob(kivis_buf *b, const kivis_field *f)
{
    kivis_buf sig;
    kivis__buf_init(&sig, b->alloc);
    int rc = put_sig(&sig, f);
    if (!rc)
        rc = put_str(b, (const char *)sig.data, sig.len);
    kivis__buf_free(&sig);
    return rc;
}

static int put_fields(kivis_buf *b, const kivis_struct_desc *sd)
{
    int rc = kivis__varint_put(b, sd->nfields);
    for (uint32_t i = 0; !rc && i < sd->nfields; i++) {
        rc = put_cstr(b, sd->fields[i].name);
        if (!rc)
            rc = put_sig_blob(b, &sd->fields[i]);
    }
    return rc;
}

static int put_table(kivis_buf *b, const kivis_table_state *ts,
                     uint32_t next_index)
{
    const kivis_table_desc *td = ts->desc;
    int rc = kivis__varint_put(b, ts->id);
    if (!rc)
        rc = put_cstr(b, td->name);
    if (!rc)
        rc = kivis__varint_put(b, td->key_kind);
    if (!rc)
        rc = kivis__varint_put(b, ts->version);
    if (!rc)
        rc = kivis__varint_put(b, next_index);
    if (!rc)
        rc = put_fields(b, td->key);
    if (!rc)
        rc = put_fields(b, td->record);
    if (!rc)
        rc = kivis__varint_put(b, td->nindexes);
    for (uint32_t i = 0; !rc && i < td->nindexes; i++) {
        const kivis_index_desc *ix = &td->indexes[i];
        rc = kivis__varint_put(b, ts->index_ids[i]);
        if (!rc)
            rc = put_cstr(b, ix->name);
        if (!rc)
            rc = put_cstr(b, td->record->fields[ix->field].name);
        if (!rc)
            rc = kivis__varint_put(b, ix->flags);
    }
    return rc;
}

/* ---- the stored schema, parsed in place ------------------------------- */

int kivis__meta_index(kivis_reader *r, kivis_meta_index *ix)
{
    int rc = kivis__meta_u32(r, &ix->id);
    if (!rc)
        rc = kivis__meta_str(r, &ix->name);
    if (!rc)
        rc = kivis__meta_str(r, &ix->field);
    if (!rc)
        rc = kivis__meta_u32(r, &ix->flags);
    return rc;
}

static int skip_pairs(kivis_reader *r, uint32_t n)
{
    kivis_slice a, b;
    for (uint32_t i = 0; i < n; i++) {
        int rc = kivis__meta_str(r, &a);
        if (!rc)
            rc = kivis__meta_str(r, &b);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

static int skip_indexes(kivis_reader *r, uint32_t n)
{
    kivis_meta_index ix;
    for (uint32_t i = 0; i < n; i++) {
        int rc = kivis__meta_index(r, &ix);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

int kivis__meta_table(kivis_reader *r, kivis_meta_table *t)
{
    const uint8_t *start = r->p;
    int rc = kivis__meta_u32(r, &t->id);
    if (!rc)
        rc = kivis__meta_str(r, &t->name);
    if (!rc)
        rc = kivis__meta_u32(r, &t->key_kind);
    if (!rc)
        rc = kivis__meta_u32(r, &t->version);
    if (!rc)
        rc = kivis__meta_u32(r, &t->next_index);
    if (!rc)
        rc = kivis__meta_u32(r, &t->nkeys);
    t->keys = *r;
    if (!rc)
        rc = skip_pairs(r, t->nkeys);
    if (!rc)
        rc = kivis__meta_u32(r, &t->nfields);
    t->fields = *r;
    if (!rc)
        rc = skip_pairs(r, t->nfields);
    if (!rc)
        rc = kivis__meta_u32(r, &t->nindexes);
    t->indexes = *r;
    if (!rc)
        rc = skip_indexes(r, t->nindexes);
    if (!rc && (t->id == 0 || t->id > KIVIS_ID_MAX))
        rc = KIVIS_ECORRUPT;
    t->span = kivis_slice_make(start, (size_t)(r->p - start));
    return rc;
}

int kivis__meta_header(kivis_reader *r, kivis_meta_header *h)
{
    if (r->end - r->p < 3 || memcmp(r->p, "KVS", 3))
        return KIVIS_ECORRUPT;
    r->p += 3;
    int rc = kivis__meta_u32(r, &h->format);
    if (!rc && h->format != KIVIS_META_FORMAT)
        rc = KIVIS_EVERSION;
    if (!rc)
        rc = kivis__meta_str(r, &h->name);
    if (!rc)
        rc = kivis__meta_u32(r, &h->next_table);
    if (!rc)
        rc = kivis__meta_u32(r, &h->ntables);
    return rc;
}

/* ---- comparison --------------------------------------------------------- */

/* What opening with the compiled schema changes in the store. */
typedef struct meta_plan {
    kivis_buf schema;     /* the new stored schema */
    kivis_buf drops;      /* (table id, index id) varint pairs to delete */
    kivis_buf kept;       /* names of stored tables the schema lacks, each
                             NUL-terminated */
    uint32_t nkept;
    uint32_t *first_new;  /* per compiled table: index ids >= this are new */
    kivis_buf dropped;    /* ids of stored tables declared dropped, varints */
    kivis_slice stored;   /* the stored schema blob */
    kivis_schema_desc *old;        /* it, loaded when a table changed */
    kivis_table_state *old_states; /* the loaded tables' stored ids */
    /* Per compiled table whose records are rewritten: their stored layout
     * and kivis__evolve_match's field map, or the typed migration whose
     * old layout the store has (map NULL); NULL for the others. */
    const kivis_table_desc **from;
    uint32_t **maps;
    const kivis_migration **migs;
    bool changed;
} meta_plan;

/* ---- describing a changed field ------------------------------------------ */

static const char *const kind_names[] = {
    [KIVIS_U8] = "uint8_t",   [KIVIS_U16] = "uint16_t", [KIVIS_U32] = "uint32_t",
    [KIVIS_U64] = "uint64_t", [KIVIS_I8] = "int8_t",    [KIVIS_I16] = "int16_t",
    [KIVIS_I32] = "int32_t",  [KIVIS_I64] = "int64_t",  [KIVIS_BOOL] = "bool",
    [KIVIS_F32] = "float",    [KIVIS_F64] = "double",   [KIVIS_STRING] = "char *",
    [KIVIS_BYTES] = "kivis_bytes"};

/* snprintf for messages, where a cut message is acceptable (and GCC's
 * truncation warnings are not). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void say(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

/* The C type a field declares: "uint32_t", "char[16]", "enum color",
 * "struct point", followed by "[N]" for an array. */
static void type_name(const kivis_field *f, char *out, size_t n)
{
    int len;
    if (f->kind == KIVIS_CHARS)
        len = snprintf(out, n, "char[%zu]", f->size);
    else if (f->kind == KIVIS_ENUM)
        len = snprintf(out, n, "enum %s", f->enm->name);
    else if (f->kind == KIVIS_STRUCT)
        len = snprintf(out, n, "struct %s", f->type->name);
    else if (f->kind < sizeof kind_names / sizeof *kind_names && kind_names[f->kind])
        len = snprintf(out, n, "%s", kind_names[f->kind]);
    else
        len = snprintf(out, n, "kind %u", f->kind);
    if (f->count && len >= 0 && (size_t)len < n)
        say(out + len, n - (size_t)len, "[%u]", f->count);
}

static int enum_find(const kivis_enum_desc *e, const char *name)
{
    for (uint32_t i = 0; i < e->count; i++)
        if (!strcmp(e->names[i], name))
            return (int)i;
    return -1;
}

/* The first difference between two enums of one name that the store
 * cannot take (a value lost or renumbered), else the first gained value,
 * into out. */
static void enum_change(const kivis_enum_desc *was, const kivis_enum_desc *now,
                        char *out, size_t n)
{
    for (uint32_t j = 0; j < was->count; j++) {
        int i = enum_find(now, was->names[j]);
        if (i < 0) {
            say(out, n, "enum '%s' lost value '%s' (%d)", was->name,
                     was->names[j], (int)was->values[j]);
            return;
        }
        if (was->values[j] != now->values[i]) {
            say(out, n, "enum '%s' value '%s' was %d, now %d", now->name,
                     now->names[i], (int)was->values[j], (int)now->values[i]);
            return;
        }
    }
    for (uint32_t i = 0; i < now->count; i++)
        if (enum_find(was, now->names[i]) < 0) {
            say(out, n, "enum '%s' gained value '%s' (%d)", now->name,
                     now->names[i], (int)now->values[i]);
            return;
        }
    say(out, n, "enum '%s' lists its values in another order", now->name);
}


/* The first difference between two structs of one name, into out. */
static bool struct_change(const kivis_struct_desc *was, const kivis_struct_desc *now,
                          const char *what, const char *path, char *out, size_t n)
{
    for (uint32_t i = 0; i < was->nfields && i < now->nfields; i++) {
        const kivis_field *a = &was->fields[i], *b = &now->fields[i];
        if (strcmp(a->name, b->name)) {
            say(out, n, "%s '%s': struct '%s' has '%s' in the store but "
                     "'%s' in the schema at position %u",
                     what, path, now->name, a->name, b->name, i + 1);
            return true;
        }
        char sub[128];
        say(sub, sizeof sub, "%s.%s", path, b->name);
        if (kivis__field_change(a, b, what, sub, out, n))
            return true;
    }
    if (was->nfields == now->nfields)
        return false;
    bool gained = now->nfields > was->nfields;
    say(out, n, "%s '%s': struct '%s' %s field '%s'", what, path, now->name,
             gained ? "gained" : "lost",
             gained ? now->fields[was->nfields].name : was->fields[now->nfields].name);
    return true;
}

/* Say how the stored field `was` differs from the compiled `now` ("field
 * 'age' was uint32_t, now int64_t"), into out; false if it does not. */
bool kivis__field_change(const kivis_field *was, const kivis_field *now,
                         const char *what, const char *path, char *out, size_t n)
{
    char a[96], b[96];
    type_name(was, a, sizeof a);
    type_name(now, b, sizeof b);
    if (strcmp(a, b)) {
        say(out, n, "%s '%s' was %s, now %s", what, path, a, b);
        return true;
    }
    if ((was->flags ^ now->flags) & KIVIS_FIELD_KEY) {
        say(out, n, "%s '%s' %s", what, path,
                 now->flags & KIVIS_FIELD_KEY ? "became a [[key]] field"
                                              : "is no longer a [[key]] field");
        return true;
    }
    if ((was->flags ^ now->flags) & KIVIS_FIELD_OPTIONAL) {
        say(out, n, "%s '%s' %s", what, path,
                 now->flags & KIVIS_FIELD_OPTIONAL
                     ? "became [[optional]]"
                     : "is no longer [[optional]] (stored records may lack it)");
        return true;
    }
    if (was->flags != now->flags) {
        say(out, n, "%s '%s' flags were 0x%x, now 0x%x", what, path,
                 was->flags, now->flags);
        return true;
    }
    if (now->kind == KIVIS_STRUCT)
        return struct_change(was->type, now->type, what, path, out, n);
    if (now->kind != KIVIS_ENUM)
        return false;
    char change[160];
    enum_change(was->enm, now->enm, change, sizeof change);
    say(out, n, "%s '%s': %s; an enum may only gain values", what, path,
             change);
    return true;
}

/* Whether the n stored (name, signature) pairs at r are the fields of sd
 * (or, when may_append, its first n fields): *same, or an error. */
static int fields_same(kivis_reader r, uint32_t n, const kivis_struct_desc *sd,
                       bool may_append, kivis_buf *tmp, bool *same)
{
    *same = n <= sd->nfields && (may_append || n == sd->nfields);
    for (uint32_t i = 0; *same && i < n; i++) {
        kivis_slice name, sig;
        int rc = kivis__meta_str(&r, &name);
        if (!rc)
            rc = kivis__meta_str(&r, &sig);
        tmp->len = 0;
        if (!rc)
            rc = put_sig(tmp, &sd->fields[i]);
        if (rc)
            return rc;
        *same = kivis__meta_str_is(name, sd->fields[i].name) &&
                sig.len == tmp->len && !memcmp(sig.data, tmp->data, sig.len);
    }
    return KIVIS_OK;
}

static int find_compiled_index(const kivis_table_desc *td, kivis_slice name)
{
    for (uint32_t i = 0; i < td->nindexes; i++)
        if (kivis__meta_str_is(name, td->indexes[i].name))
            return (int)i;
    return -1;
}

static int plan_drop_index(meta_plan *plan, uint32_t table, uint32_t index)
{
    plan->changed = true;
    int rc = kivis__varint_put(&plan->drops, table);
    return rc ? rc : kivis__varint_put(&plan->drops, index);
}

/* Whether stored index `six` is compiled index `ix` as it was: over the
 * same field (under its name or declared old name), as unique as it was. */
static bool index_kept(const kivis_db *db, const kivis_table_desc *td,
                       const kivis_index_desc *ix, const kivis_meta_index *six)
{
    return (kivis__meta_str_is(six->field, td->record->fields[ix->field].name) ||
            kivis__meta_str_is(six->field,
                               kivis__stored_field_name(db->schema, td, ix->field))) &&
           !((six->flags ^ ix->flags) & KIVIS_INDEX_UNIQUE);
}

/* Match stored indexes to compiled ones: keep ids, plan drops and new ids.
 * An index whose field or uniqueness changed is dropped and built anew
 * under a new id; when `rebuild` (the records are rewritten) every stored
 * index's entries are dropped, to be built again under its id. */
static int plan_indexes(kivis_db *db, kivis_table_state *ts,
                        const kivis_meta_table *st, meta_plan *plan,
                        uint32_t *next, bool rebuild)
{
    const kivis_table_desc *td = ts->desc;
    for (uint32_t i = 0; i < td->nindexes; i++)
        ts->index_ids[i] = UINT32_MAX;
    kivis_reader r = st->indexes;
    for (uint32_t i = 0; i < st->nindexes; i++) {
        kivis_meta_index six;
        int rc = kivis__meta_index(&r, &six);
        if (rc)
            return rc;
        int c = find_compiled_index(td, six.name);
        bool kept = c >= 0 && index_kept(db, td, &td->indexes[c], &six);
        if ((!kept || rebuild) && (rc = plan_drop_index(plan, st->id, six.id)))
            return rc;
        if (!kept)
            continue;
        /* A referential action may come, go or change: the entries stay
         * the same, only the stored flags are rewritten. */
        plan->changed |= six.flags != td->indexes[c].flags;
        ts->index_ids[c] = six.id;
    }
    for (uint32_t i = 0; i < td->nindexes; i++)
        if (ts->index_ids[i] == UINT32_MAX) {
            if (*next > KIVIS_ID_MAX - KIVIS_SLOT_FIRST_INDEX)
                return kivis__fail(db, KIVIS_ESCHEMA, "table %s: too many indexes",
                                   td->name);
            ts->index_ids[i] = (*next)++;
            plan->changed = true;
        }
    return KIVIS_OK;
}

/* The stored layout of stored table `id`, from the stored schema loaded
 * once per open. */
static int stored_layout(kivis_db *db, meta_plan *plan, uint32_t id,
                         const kivis_table_desc **out)
{
    if (!plan->old) {
        int rc = kivis__schema_parse(plan->stored, &db->alloc, &plan->old,
                                     &plan->old_states);
        if (rc)
            return rc == KIVIS_ENOMEM ? rc
                                      : kivis__fail(db, rc, "the stored schema "
                                                            "is corrupt");
    }
    for (uint32_t i = 0; i < plan->old->ntables; i++)
        if (plan->old_states[i].id == id) {
            *out = plan->old_states[i].desc;
            return KIVIS_OK;
        }
    return KIVIS_ECORRUPT;
}

/* A table whose fields are not the stored ones plus fields appended:
 * match them (evolve.c); when its records must be rewritten, note how. */
static int plan_evolve(kivis_db *db, uint32_t c, const kivis_meta_table *st,
                       meta_plan *plan, bool *rewrite)
{
    const kivis_table_desc *td = db->tables[c].desc, *from = NULL;
    int rc = stored_layout(db, plan, st->id, &from);
    uint32_t n = td->record->nfields;
    uint32_t *map = rc ? NULL : kivis__alloc(db, (n ? n : 1) * sizeof *map);
    if (!rc && !map)
        rc = KIVIS_ENOMEM;
    if (!rc)
        rc = kivis__evolve_match(db, td, from, map, rewrite);
    if (rc || !*rewrite) {
        kivis__free(db, map);
        return rc;
    }
    plan->from[c] = from;
    plan->maps[c] = map;
    return KIVIS_OK;
}

/* Whether table st is stored with exactly the layout `from` has. */
static int layout_is(const kivis_meta_table *st, const kivis_table_desc *from,
                     kivis_buf *tmp, bool *same)
{
    int rc = fields_same(st->keys, st->nkeys, from->key, false, tmp, same);
    if (!rc && *same)
        rc = fields_same(st->fields, st->nfields, from->record, false, tmp, same);
    return rc;
}

/* A typed migration of compiled table c whose old layout is st's: its
 * records are rewritten by its function (keys_same: the stored key is the
 * compiled one, which a migration cannot change). */
static int plan_migrate(kivis_db *db, uint32_t c, const kivis_meta_table *st,
                        meta_plan *plan, bool keys_same, kivis_buf *tmp)
{
    const kivis_migration *m = kivis__migration_of(db->schema, c);
    bool same = false;
    int rc = m ? layout_is(st, m->from, tmp, &same) : KIVIS_OK;
    if (rc || !same)
        return rc;
    if (!keys_same)
        return kivis__fail(db, KIVIS_ESCHEMA,
                           "table %s: its typed migration changes the key "
                           "(a migration keeps every record's key)",
                           db->tables[c].desc->name);
    plan->from[c] = m->from;
    plan->migs[c] = m;
    return KIVIS_OK;
}

static int match_table(kivis_db *db, uint32_t c, const kivis_meta_table *st,
                       meta_plan *plan, uint32_t *next_index, kivis_buf *tmp)
{
    kivis_table_state *ts = &db->tables[c];
    const kivis_table_desc *td = ts->desc;
    if (st->key_kind != td->key_kind)
        return kivis__fail(db, KIVIS_ESCHEMA,
                           "table %s: its key strategy changed since the store "
                           "was written",
                           td->name);
    bool keys_same, same, rewrite = false;
    int rc = fields_same(st->keys, st->nkeys, td->key, false, tmp, &keys_same);
    same = keys_same;
    if (!rc && same)
        rc = fields_same(st->fields, st->nfields, td->record, true, tmp, &same);
    if (!rc && !same)
        rc = plan_migrate(db, c, st, plan, keys_same, tmp);
    rewrite = plan->migs[c] != NULL;
    if (!rc && !same && !rewrite)
        rc = plan_evolve(db, c, st, plan, &rewrite);
    if (rc)
        return rc;
    ts->id = st->id;
    ts->version = st->version;
    plan->changed |= !same || !kivis__meta_str_is(st->name, td->name);
    if (rewrite || td->record->nfields > st->nfields) {
        ts->version++;
        plan->changed = true;
    }
    *next_index = st->next_index;
    return plan_indexes(db, ts, st, plan, next_index, rewrite);
}

/* The compiled table stored as `name`: by its name, else by a declared
 * rename from it; -1 for none. */
static int compiled_table(const kivis_db *db, kivis_slice name)
{
    const kivis_schema_desc *s = db->schema;
    for (uint32_t i = 0; i < s->ntables; i++)
        if (kivis__meta_str_is(name, s->tables[i].name))
            return (int)i;
    for (uint32_t i = 0; i < s->ntables; i++)
        if (kivis__meta_str_is(name, kivis__stored_table_name(s, s->tables[i].name)))
            return (int)i;
    return -1;
}

/* A stored table declared dropped: its id goes to plan->dropped, its
 * entry leaves the stored schema. */
static int drop_table(meta_plan *plan, const kivis_meta_table *st)
{
    plan->changed = true;
    return kivis__varint_put(&plan->dropped, st->id);
}

/* A store written under another schema name holds another application's
 * data: merging the two sets of tables takes an explicit rename. */
static int check_schema_name(kivis_db *db, kivis_slice stored, meta_plan *plan)
{
    if (kivis__meta_str_is(stored, db->schema->name))
        return KIVIS_OK;
    if (!(db->open_flags & KIVIS_OPEN_RENAME_SCHEMA))
        return kivis__fail(db, KIVIS_ESCHEMA,
                           "the store holds schema '%.*s', not '%s' (opening "
                           "with KIVIS_OPEN_RENAME_SCHEMA renames it)",
                           (int)stored.len, (const char *)stored.data,
                           db->schema->name);
    plan->changed = true;
    return KIVIS_OK;
}

/* A stored table the schema does not name is kept untouched: copied into
 * the new schema blob, and its name noted for kivis_kept_tables. */
static int keep_table(meta_plan *plan, const kivis_meta_table *st)
{
    plan->nkept++;
    int rc = kivis__buf_append(&plan->kept,
                               st->name.data, st->name.len);
    return rc ? rc : kivis__buf_append(&plan->kept, "", 1);
}

/* Write the new schema blob: stored tables in stored order (unknown ones
 * copied unchanged), then the tables new to the store. */
static int plan_schema(kivis_db *db, kivis_slice stored, meta_plan *plan)
{
    uint32_t n = db->schema->ntables;
    bool *seen = kivis__alloc(db, n * sizeof *seen);
    kivis_buf body, tmp;
    kivis__buf_init(&body, &db->alloc);
    kivis__buf_init(&tmp, &db->alloc);
    if (!seen)
        return KIVIS_ENOMEM;
    memset(seen, 0, n * sizeof *seen);
    uint32_t next_table = 1, ntables = 0, stored_n = 0;
    int rc = KIVIS_OK;
    kivis_reader r = kivis__reader(stored);
    if (stored.data) {
        kivis_meta_header h;
        rc = kivis__meta_header(&r, &h);
        if (rc == KIVIS_EVERSION)
            kivis__fail(db, rc, "stored schema format %u is not supported",
                        h.format);
        if (!rc)
            rc = check_schema_name(db, h.name, plan);
        next_table = rc ? next_table : h.next_table;
        stored_n = rc ? stored_n : h.ntables;
    }
    for (uint32_t i = 0; !rc && i < stored_n; i++) {
        kivis_meta_table st;
        rc = kivis__meta_table(&r, &st);
        if (rc)
            break;
        int c = compiled_table(db, st.name);
        if (c < 0 && kivis__declared_drop(db->schema, st.name, NULL)) {
            rc = drop_table(plan, &st);
            continue;
        }
        ntables++;
        if (c < 0) {
            rc = kivis__buf_append(&body, st.span.data, st.span.len);
            if (!rc)
                rc = keep_table(plan, &st);
            continue;
        }
        if (seen[c]) {
            rc = kivis__fail(db, KIVIS_ESCHEMA,
                             "table %s: the store holds it twice, under its "
                             "name and the name it was renamed from",
                             db->schema->tables[c].name);
            break;
        }
        seen[c] = true;
        uint32_t next_index = 0;
        rc = match_table(db, (uint32_t)c, &st, plan, &next_index, &tmp);
        /* Rewritten records get every index built again. */
        plan->first_new[c] = plan->from[c] ? 0 : st.next_index;
        if (!rc)
            rc = put_table(&body, &db->tables[c], next_index);
    }
    if (!rc && r.p != r.end)
        rc = KIVIS_ECORRUPT;
    for (uint32_t c = 0; !rc && c < n; c++) {
        if (seen[c])
            continue;
        kivis_table_state *ts = &db->tables[c];
        if (next_table > KIVIS_ID_MAX) {
            rc = kivis__fail(db, KIVIS_ESCHEMA, "too many tables");
            break;
        }
        ts->id = next_table++;
        ts->version = 1;
        for (uint32_t i = 0; i < ts->desc->nindexes; i++)
            ts->index_ids[i] = i;
        plan->first_new[c] = ts->desc->nindexes; /* empty: nothing to build */
        plan->changed = true;
        ntables++;
        rc = put_table(&body, ts, ts->desc->nindexes);
    }
    if (!rc)
        rc = kivis__buf_append(&plan->schema, "KVS", 3);
    if (!rc)
        rc = kivis__varint_put(&plan->schema, KIVIS_META_FORMAT);
    if (!rc)
        rc = put_cstr(&plan->schema, db->schema->name);
    if (!rc)
        rc = kivis__varint_put(&plan->schema, next_table);
    if (!rc)
        rc = kivis__varint_put(&plan->schema, ntables);
    if (!rc)
        rc = kivis__buf_append(&plan->schema, body.data, body.len);
    if (rc == KIVIS_ECORRUPT && !db->errmsg[0])
        kivis__fail(db, rc, "the stored schema is corrupt");
    kivis__free(db, seen);
    kivis__buf_free(&body);
    kivis__buf_free(&tmp);
    return rc;
}

/* ---- applying the plan ------------------------------------------------ */

static int delete_range(kivis_storage_txn *txn, kivis_buf *lo, kivis_buf *hi)
{
    bool unbounded;
    int rc = kivis__prefix_end(lo, hi, &unbounded);
    kivis_storage_cursor *cur = NULL;
    if (!rc)
        rc = kivis_txn_cursor(txn, kivis_slice_make(lo->data, lo->len),
                              kivis_slice_make(unbounded ? NULL : hi->data, hi->len),
                              &cur);
    kivis_slice k, v;
    /* NEXT, not FIRST again: after a delete it still finds the next key,
     * where FIRST would walk every key deleted so far on a backend that
     * hides them behind tombstones (the overlay over RocksDB). */
    while (!rc && (rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        /* Copy: the view dies with the delete. */
        kivis_buf key;
        kivis__buf_init(&key, lo->alloc);
        rc = kivis__buf_append(&key, k.data, k.len);
        if (!rc)
            rc = kivis_txn_del(txn, kivis_slice_make(key.data, key.len));
        kivis__buf_free(&key);
    }
    kivis_cursor_close(cur);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

static int drop_indexes(kivis_db *db, kivis_storage_txn *txn, meta_plan *plan)
{
    kivis_reader r = kivis__reader(kivis_slice_make(plan->drops.data, plan->drops.len));
    kivis_buf lo, hi;
    kivis__buf_init(&lo, &db->alloc);
    kivis__buf_init(&hi, &db->alloc);
    int rc = KIVIS_OK;
    while (!rc && r.p < r.end) {
        uint32_t table, index;
        rc = kivis__meta_u32(&r, &table);
        if (!rc)
            rc = kivis__meta_u32(&r, &index);
        lo.len = 0;
        if (!rc)
            rc = kivis__id_put(&lo, table);
        if (!rc)
            rc = kivis__id_put(&lo, index + KIVIS_SLOT_FIRST_INDEX);
        if (!rc)
            rc = delete_range(txn, &lo, &hi);
    }
    kivis__buf_free(&lo);
    kivis__buf_free(&hi);
    return rc;
}

/* Delete every key of each table declared dropped (records, index
 * entries) and its auto-increment counter. */
static int drop_tables(kivis_db *db, kivis_storage_txn *txn, meta_plan *plan)
{
    kivis_reader r = kivis__reader(kivis_slice_make(plan->dropped.data,
                                                    plan->dropped.len));
    kivis_buf lo, hi;
    kivis__buf_init(&lo, &db->alloc);
    kivis__buf_init(&hi, &db->alloc);
    int rc = KIVIS_OK;
    while (!rc && r.p < r.end) {
        uint32_t table;
        rc = kivis__meta_u32(&r, &table);
        lo.len = 0;
        if (!rc)
            rc = kivis__id_put(&lo, table);
        if (!rc)
            rc = delete_range(txn, &lo, &hi);
        if (!rc)
            rc = kivis__autoid_key(&lo, table);
        if (!rc)
            rc = kivis_txn_del(txn, kivis_slice_make(lo.data, lo.len));
        rc = rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
    }
    kivis__buf_free(&lo);
    kivis__buf_free(&hi);
    return rc;
}

/* Build table c's new indexes (all of them when its records were
 * rewritten); a unique one the records violate says which. */
static int build_indexes(kivis_db *db, kivis_storage_txn *txn, uint32_t c,
                         uint32_t first_new)
{
    int rc = kivis__build_indexes(db, txn, c, first_new);
    return rc == KIVIS_ECONSTRAINT ? kivis__evolve_unique_report(db, txn, c) : rc;
}

static int apply_plan(kivis_db *db, kivis_storage_txn *txn, meta_plan *plan)
{
    int rc = kivis_txn_put(txn, kivis__schema_key_slice(),
                           kivis_slice_make(plan->schema.data, plan->schema.len));
    if (!rc)
        rc = drop_indexes(db, txn, plan);
    if (!rc)
        rc = drop_tables(db, txn, plan);
    for (uint32_t c = 0; !rc && c < db->schema->ntables; c++)
        if (plan->from[c])
            rc = kivis__evolve_rewrite(db, txn, c, plan->from[c], plan->maps[c],
                                       plan->migs[c]);
    for (uint32_t c = 0; !rc && c < db->schema->ntables; c++)
        rc = build_indexes(db, txn, c, plan->first_new[c]);
    return rc;
}

/* Note the kept tables' names on the handle: one allocation, the pointers
 * followed by the strings. */
static int note_kept(kivis_db *db, const meta_plan *plan)
{
    kivis__free(db, db->kept);
    db->kept = NULL;
    db->nkept = 0;
    if (!plan->nkept)
        return KIVIS_OK;
    size_t ptrs = plan->nkept * sizeof *db->kept;
    const char **kept = kivis__alloc(db, ptrs + plan->kept.len);
    if (!kept)
        return KIVIS_ENOMEM;
    char *names = (char *)kept + ptrs;
    memcpy(names, plan->kept.data, plan->kept.len);
    for (uint32_t i = 0; i < plan->nkept; i++) {
        kept[i] = names;
        names += strlen(names) + 1;
    }
    db->kept = kept;
    db->nkept = plan->nkept;
    return KIVIS_OK;
}

uint32_t kivis_kept_tables(const kivis_db *db, const char *const **names)
{
    if (names)
        *names = db ? db->kept : NULL;
    return db ? db->nkept : 0;
}

/* Read, compare and (when write) apply, all in `txn`. */
static int load_in(kivis_db *db, kivis_storage_txn *txn, bool write,
                   bool *need_write)
{
    meta_plan plan;
    uint32_t n = db->schema->ntables;
    memset(&plan, 0, sizeof plan);
    kivis__buf_init(&plan.schema, &db->alloc);
    kivis__buf_init(&plan.drops, &db->alloc);
    kivis__buf_init(&plan.kept, &db->alloc);
    kivis__buf_init(&plan.dropped, &db->alloc);
    plan.first_new = kivis__alloc(db, n * sizeof *plan.first_new);
    plan.from = kivis__alloc(db, n * sizeof *plan.from);
    plan.maps = kivis__alloc(db, n * sizeof *plan.maps);
    plan.migs = kivis__alloc(db, n * sizeof *plan.migs);
    if (plan.from)
        memset(plan.from, 0, n * sizeof *plan.from);
    if (plan.maps)
        memset(plan.maps, 0, n * sizeof *plan.maps);
    if (plan.migs)
        memset(plan.migs, 0, n * sizeof *plan.migs);
    kivis_slice stored = {NULL, 0};
    int rc = plan.first_new && plan.from && plan.maps && plan.migs ? KIVIS_OK
                                                                   : KIVIS_ENOMEM;
    if (!rc)
        rc = kivis_txn_get(txn, kivis__schema_key_slice(), &stored);
    if (rc == KIVIS_NOTFOUND)
        rc = KIVIS_OK;
    plan.stored = stored;
    if (!rc)
        rc = plan_schema(db, stored, &plan);
    if (!rc)
        rc = note_kept(db, &plan);
    *need_write = !rc && (plan.changed || !stored.data);
    if (!rc && write && *need_write)
        rc = apply_plan(db, txn, &plan);
    kivis__buf_free(&plan.schema);
    kivis__buf_free(&plan.drops);
    kivis__buf_free(&plan.kept);
    kivis__buf_free(&plan.dropped);
    kivis__free(db, plan.first_new);
    for (uint32_t c = 0; plan.maps && c < n; c++)
        kivis__free(db, plan.maps[c]);
    kivis__free(db, plan.maps);
    kivis__free(db, plan.migs);
    kivis__free(db, plan.from);
    kivis_schema_free(plan.old, &db->alloc);
    return rc;
}

int kivis__meta_load(kivis_db *db)
{
    kivis_storage_txn *txn;
    bool need_write;
    int rc = kivis_storage_begin(db->st, KIVIS_TXN_RDONLY, &txn);
    if (rc)
        return kivis__fail(db, rc, "open: begin: %s", kivis_strerror(rc));
    rc = load_in(db, txn, false, &need_write);
    kivis_txn_abort(txn);
    if (rc || !need_write)
        return rc;
    /* Compare again inside the write transaction: another handle may have
     * changed the schema in between. */
    rc = kivis_storage_begin(db->st, 0, &txn);
    if (rc)
        return kivis__fail(db, rc, "open: begin: %s", kivis_strerror(rc));
    rc = load_in(db, txn, true, &need_write);
    if (rc) {
        kivis_txn_abort(txn);
        return rc;
    }
    rc = kivis_txn_commit(txn, db->durability);
    return rc ? kivis__fail(db, rc, "open: writing the schema: %s",
                            kivis_strerror(rc))
              : KIVIS_OK;
}
