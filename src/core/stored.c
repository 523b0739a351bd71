/* kivis_schema_load: a runtime descriptor built from the stored schema
 * alone, for tools that read a store without its compiled schema.
 *
 * The stored schema keeps names, kinds, counts, char[N] capacities, enums
 * and nested layouts, not C offsets: those are recomputed here by the
 * rules every C compiler of this ABI applies (each member at the next
 * multiple of its alignment, the struct padded to its largest alignment),
 * from sizeof and _Alignof of the very C types the fields stand for. */
#include "metafmt.h"

#include <stddef.h>
#include <string.h>

/* Sanity bounds: a malformed schema must fail cleanly, not allocate
 * gigabytes or recurse without end. */
#define MAX_DEPTH 16
#define MAX_STRUCT_SIZE ((size_t)1 << 30)

/* Every allocation of one loaded schema, linked so that one call frees
 * them all.  The header keeps the payload maximally aligned. */
typedef union block {
    union block *next;
    max_align_t align;
} block;

typedef struct loaded_schema {
    kivis_schema_desc desc; /* first: kivis_schema_free casts back to this */
    kivis_table_state *states; /* per table: its stored id and index ids */
    block *blocks;
} loaded_schema;

typedef struct loader {
    loaded_schema *ls;
    kivis_allocator alloc;
} loader;

static void *ld_alloc(loader *l, size_t n)
{
    if (n > SIZE_MAX - sizeof(block))
        return NULL;
    block *b = l->alloc.malloc(l->alloc.ctx, sizeof(block) + n);
    if (!b)
        return NULL;
    b->next = l->ls->blocks;
    l->ls->blocks = b;
    memset(b + 1, 0, n);
    return b + 1;
}

static void *ld_array(loader *l, size_t count, size_t size)
{
    return size && count > SIZE_MAX / size ? NULL : ld_alloc(l, count * size);
}

static char *ld_str(loader *l, kivis_slice s)
{
    char *c = ld_alloc(l, s.len + 1);
    if (c && s.len)
        memcpy(c, s.data, s.len);
    return c;
}

/* "<prefix><suffix>", for the key structs' names. */
static char *ld_concat(loader *l, const char *prefix, const char *suffix)
{
    size_t a = strlen(prefix), b = strlen(suffix);
    char *c = ld_alloc(l, a + b + 1);
    if (c) {
        memcpy(c, prefix, a);
        memcpy(c + a, suffix, b + 1);
    }
    return c;
}

/* ---- layout ------------------------------------------------------------- */

/* Size and alignment of one element of a non-struct kind; 0 if unknown. */
static size_t kind_layout(uint32_t kind, size_t *align)
{
#define LAYOUT(T) (*align = _Alignof(T), sizeof(T))
    switch (kind) {
    case KIVIS_U8: return LAYOUT(uint8_t);
    case KIVIS_I8: return LAYOUT(int8_t);
    case KIVIS_BOOL: return LAYOUT(_Bool);
    case KIVIS_U16: return LAYOUT(uint16_t);
    case KIVIS_I16: return LAYOUT(int16_t);
    case KIVIS_U32: return LAYOUT(uint32_t);
    case KIVIS_I32: return LAYOUT(int32_t);
    case KIVIS_F32: return LAYOUT(float);
    case KIVIS_ENUM: return LAYOUT(int32_t); /* a C enum of int range */
    case KIVIS_U64: return LAYOUT(uint64_t);
    case KIVIS_I64: return LAYOUT(int64_t);
    case KIVIS_F64: return LAYOUT(double);
    case KIVIS_STRING: return LAYOUT(char *);
    case KIVIS_BYTES: return LAYOUT(kivis_bytes);
    default: return 0;
    }
#undef LAYOUT
}

static size_t align_up(size_t n, size_t align)
{
    return (n + align - 1) / align * align;
}

static size_t struct_align(const kivis_struct_desc *sd);

/* The alignment of one element of f: a nested struct's is that of its
 * most aligned member, char[N]'s 1. */
static size_t elem_align(const kivis_field *f)
{
    size_t align = 1;
    if (f->kind == KIVIS_STRUCT)
        return f->type ? struct_align(f->type) : 1;
    if (f->kind != KIVIS_CHARS)
        kind_layout(f->kind, &align);
    return align;
}

static size_t struct_align(const kivis_struct_desc *sd)
{
    size_t max_align = 1;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        size_t a = elem_align(&sd->fields[i]);
        max_align = a > max_align ? a : max_align;
    }
    return max_align;
}

/* The size of one element of f: its kind's, a nested struct's (laid out
 * already) or N of char[N]; 0 when unknown. */
static size_t elem_size(const kivis_field *f)
{
    size_t align;
    if (f->kind == KIVIS_STRUCT)
        return f->type ? f->type->size : 0;
    return f->kind == KIVIS_CHARS ? f->size : kind_layout(f->kind, &align);
}

/* Give each of sd's fields (nested structs laid out) its element size and
 * offset, and sd its size: each member at the next multiple of its
 * alignment, a presence flag `bool has_F;` right before an optional F,
 * the struct padded to its largest alignment.  false for an unknown kind,
 * a char[0], or a struct over MAX_STRUCT_SIZE.  `fields` is sd->fields,
 * writable. */
static bool place_fields(kivis_struct_desc *sd, kivis_field *fields)
{
    size_t size = 0;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        kivis_field *f = &fields[i];
        size_t elems = f->count ? f->count : 1;
        f->size = elem_size(f);
        if (!f->size || elems > MAX_STRUCT_SIZE / f->size)
            return false;
        if (kivis__has_presence_flag(f))
            size += sizeof(bool);
        f->offset = align_up(size, elem_align(f));
        size = f->offset + elems * f->size;
        if (size > MAX_STRUCT_SIZE)
            return false;
    }
    sd->size = align_up(size ? size : 1, struct_align(sd));
    return true;
}

/* ---- signatures --------------------------------------------------------- */

static int parse_fields(loader *l, kivis_reader *r, uint32_t n,
                        const char *name, int depth, kivis_struct_desc **out);

static int parse_enum(loader *l, kivis_reader *r, kivis_field *f)
{
    kivis_enum_desc *e = ld_alloc(l, sizeof *e);
    kivis_slice name;
    int rc = e ? kivis__meta_str(r, &name) : KIVIS_ENOMEM;
    if (!rc)
        rc = kivis__meta_u32(r, &e->count);
    if (!rc && e->count > (size_t)(r->end - r->p) / 2)
        rc = KIVIS_ECORRUPT; /* each value takes two bytes at least */
    if (rc)
        return rc;
    const char **names = ld_array(l, e->count ? e->count : 1, sizeof *names);
    int32_t *values = ld_array(l, e->count ? e->count : 1, sizeof *values);
    e->name = ld_str(l, name);
    if (!names || !values || !e->name)
        return KIVIS_ENOMEM;
    for (uint32_t i = 0; !rc && i < e->count; i++) {
        kivis_slice vname;
        uint64_t zz = 0;
        rc = kivis__meta_str(r, &vname);
        if (!rc)
            rc = kivis__varint_get(r, &zz);
        if (rc)
            break;
        int64_t v = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1); /* zigzag */
        if (v < INT32_MIN || v > INT32_MAX)
            rc = KIVIS_ECORRUPT;
        values[i] = (int32_t)v;
        if (!rc && !(names[i] = ld_str(l, vname)))
            rc = KIVIS_ENOMEM;
    }
    e->names = names;
    e->values = values;
    f->enm = e;
    return rc;
}

/* One field signature (a blob of its own): kind, count, char[N] size,
 * flags, then the enum or nested struct (laid out).  Fills everything but
 * the element size and offset, which place_fields gives. */
static int parse_sig(loader *l, kivis_slice sig, int depth, kivis_field *f)
{
    kivis_reader r = kivis__reader(sig);
    uint32_t chars;
    int rc = kivis__meta_u32(&r, &f->kind);
    if (!rc)
        rc = kivis__meta_u32(&r, &f->count);
    if (!rc)
        rc = kivis__meta_u32(&r, &chars);
    if (!rc)
        rc = kivis__meta_u32(&r, &f->flags);
    if (rc)
        return rc;
    if (f->kind == KIVIS_CHARS) {
        f->size = chars;
    } else if (f->kind == KIVIS_STRUCT) {
        kivis_struct_desc *sd;
        kivis_slice name;
        uint32_t n;
        rc = kivis__meta_str(&r, &name);
        if (!rc)
            rc = kivis__meta_u32(&r, &n);
        char *cname = rc ? NULL : ld_str(l, name);
        if (!rc && !cname)
            rc = KIVIS_ENOMEM;
        if (!rc)
            rc = parse_fields(l, &r, n, cname, depth + 1, &sd);
        if (rc)
            return rc;
        f->type = sd;
    } else if (f->kind == KIVIS_ENUM) {
        rc = parse_enum(l, &r, f);
    }
    if (!rc && r.p != r.end)
        rc = KIVIS_ECORRUPT;
    return rc;
}

/* n (name, signature blob) pairs: a struct, laid out as C would. */
static int parse_fields(loader *l, kivis_reader *r, uint32_t n,
                        const char *name, int depth, kivis_struct_desc **out)
{
    if (depth > MAX_DEPTH || n > (size_t)(r->end - r->p) / 2)
        return KIVIS_ECORRUPT;
    kivis_struct_desc *sd = ld_alloc(l, sizeof *sd);
    kivis_field *fields = ld_array(l, n ? n : 1, sizeof *fields);
    if (!sd || !fields)
        return KIVIS_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        kivis_field *f = &fields[i];
        kivis_slice fname, sig;
        int rc = kivis__meta_str(r, &fname);
        if (!rc)
            rc = kivis__meta_str(r, &sig);
        if (!rc)
            rc = parse_sig(l, sig, depth, f);
        if (rc)
            return rc;
        if (!(f->name = ld_str(l, fname)))
            return KIVIS_ENOMEM;
    }
    sd->name = name;
    sd->nfields = n;
    sd->fields = fields;
    *out = sd;
    return place_fields(sd, fields) ? KIVIS_OK : KIVIS_ECORRUPT;
}

/* ---- tables ------------------------------------------------------------- */

/* A derived key's function is compiled code the store cannot hold: reads
 * work without it, writes are refused. */
static int derive_unsupported(const void *record, void *key_out)
{
    (void)record;
    (void)key_out;
    return KIVIS_ENOTSUP;
}

static int field_position(const kivis_struct_desc *sd, kivis_slice name)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        if (kivis__meta_str_is(name, sd->fields[i].name))
            return (int)i;
    return -1;
}

/* KEY_FIELDS: map each key field to the record field of its name.  The
 * key field shares the record field's enum and struct descriptors, as a
 * compiled schema does (kivis_open compares them by pointer). */
static int map_key_fields(loader *l, kivis_table_desc *td)
{
    kivis_struct_desc *key = (kivis_struct_desc *)td->key;
    uint32_t *map = ld_array(l, key->nfields ? key->nfields : 1, sizeof *map);
    if (!map)
        return KIVIS_ENOMEM;
    for (uint32_t i = 0; i < key->nfields; i++) {
        kivis_field *kf = (kivis_field *)&key->fields[i];
        int pos = field_position(td->record,
                                 kivis_slice_make(kf->name, strlen(kf->name)));
        if (pos < 0)
            return KIVIS_ECORRUPT;
        const kivis_field *rf = &td->record->fields[pos];
        if (kf->kind != rf->kind || kf->count != rf->count || kf->size != rf->size)
            return KIVIS_ECORRUPT;
        kf->type = rf->type;
        kf->enm = rf->enm;
        map[i] = (uint32_t)pos;
    }
    td->key_fields = map;
    return KIVIS_OK;
}

static int parse_indexes(loader *l, const kivis_meta_table *mt,
                         kivis_table_desc *td, kivis_table_state *ts)
{
    kivis_reader r = mt->indexes;
    if (mt->nindexes > (size_t)(r.end - r.p) / 4)
        return KIVIS_ECORRUPT;
    kivis_index_desc *ix = ld_array(l, mt->nindexes ? mt->nindexes : 1, sizeof *ix);
    uint32_t *ids = ld_array(l, mt->nindexes ? mt->nindexes : 1, sizeof *ids);
    if (!ix || !ids)
        return KIVIS_ENOMEM;
    for (uint32_t i = 0; i < mt->nindexes; i++) {
        kivis_meta_index mi;
        int rc = kivis__meta_index(&r, &mi);
        if (rc)
            return rc;
        int pos = field_position(td->record, mi.field);
        if (pos < 0)
            return KIVIS_ECORRUPT;
        if (!(ix[i].name = ld_str(l, mi.name)))
            return KIVIS_ENOMEM;
        ix[i].field = (uint32_t)pos;
        ix[i].flags = mi.flags;
        ids[i] = mi.id;
    }
    td->nindexes = mt->nindexes;
    td->indexes = ix;
    ts->index_ids = ids;
    return KIVIS_OK;
}

static int parse_table(loader *l, kivis_reader *r, kivis_table_desc *td,
                       kivis_table_state *ts)
{
    kivis_meta_table mt;
    kivis_struct_desc *rec, *key;
    int rc = kivis__meta_table(r, &mt);
    if (rc)
        return rc;
    if (mt.key_kind < KIVIS_KEY_AUTO || mt.key_kind > KIVIS_KEY_DERIVED)
        return KIVIS_ECORRUPT;
    td->name = ld_str(l, mt.name);
    const char *key_name = td->name ? ld_concat(l, td->name, "_key") : NULL;
    if (!key_name)
        return KIVIS_ENOMEM;
    rc = parse_fields(l, &mt.fields, mt.nfields, td->name, 0, &rec);
    if (!rc)
        rc = parse_fields(l, &mt.keys, mt.nkeys, key_name, 0, &key);
    if (rc)
        return rc;
    td->record = rec;
    td->key = key;
    td->key_kind = mt.key_kind;
    if (td->key_kind == KIVIS_KEY_FIELDS)
        rc = map_key_fields(l, td);
    if (td->key_kind == KIVIS_KEY_DERIVED)
        td->derive_key = derive_unsupported;
    ts->desc = td;
    ts->key_width = kivis__key_uint_width(td->key);
    ts->id = mt.id;
    ts->version = mt.version;
    return rc ? rc : parse_indexes(l, &mt, td, ts);
}

static int parse_schema(loader *l, kivis_slice stored)
{
    kivis_reader r = kivis__reader(stored);
    kivis_meta_header h;
    int rc = kivis__meta_header(&r, &h);
    if (rc)
        return rc;
    if (h.ntables > (size_t)(r.end - r.p) / 8)
        return KIVIS_ECORRUPT;
    kivis_schema_desc *s = &l->ls->desc;
    kivis_table_desc *tables = ld_array(l, h.ntables ? h.ntables : 1, sizeof *tables);
    kivis_table_state *states = ld_array(l, h.ntables ? h.ntables : 1, sizeof *states);
    s->name = ld_str(l, h.name);
    if (!tables || !states || !s->name)
        return KIVIS_ENOMEM;
    l->ls->states = states;
    for (uint32_t i = 0; !rc && i < h.ntables; i++)
        rc = parse_table(l, &r, &tables[i], &states[i]);
    if (!rc && r.p != r.end)
        rc = KIVIS_ECORRUPT;
    s->ntables = h.ntables;
    s->tables = tables;
    return rc;
}

/* ---- public API ----------------------------------------------------------- */

/* The nested structs first, then sd itself; the caller's fields are
 * writable (kivis_schema_layout's contract). */
static int lay_out_struct(kivis_struct_desc *sd, int depth)
{
    if (depth > MAX_DEPTH || (sd->nfields && !sd->fields))
        return KIVIS_EINVAL;
    kivis_field *fields = (kivis_field *)sd->fields;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        if (fields[i].kind != KIVIS_STRUCT || !fields[i].type)
            continue;
        int rc = lay_out_struct((kivis_struct_desc *)fields[i].type, depth + 1);
        if (rc)
            return rc;
    }
    return place_fields(sd, fields) ? KIVIS_OK : KIVIS_EINVAL;
}

int kivis_schema_layout(kivis_schema_desc *s)
{
    if (!s || (s->ntables && !s->tables))
        return KIVIS_EINVAL;
    kivis_table_desc *tables = (kivis_table_desc *)s->tables;
    int rc = KIVIS_OK;
    for (uint32_t i = 0; !rc && i < s->ntables; i++) {
        kivis_table_desc *td = &tables[i];
        if (!td->record || !td->key)
            return KIVIS_EINVAL;
        rc = lay_out_struct((kivis_struct_desc *)td->record, 0);
        if (!rc)
            rc = lay_out_struct((kivis_struct_desc *)td->key, 0);
        if (td->key_kind == KIVIS_KEY_DERIVED && !td->derive_key)
            td->derive_key = derive_unsupported;
    }
    return rc;
}

static void free_blocks(block *b, const kivis_allocator *a)
{
    while (b) {
        block *next = b->next;
        a->free(a->ctx, b);
        b = next;
    }
}

void kivis_schema_free(kivis_schema_desc *s, const kivis_allocator *alloc)
{
    if (!s)
        return;
    const kivis_allocator *a = alloc ? alloc : kivis_default_allocator();
    loaded_schema *ls = (loaded_schema *)s;
    free_blocks(ls->blocks, a);
    a->free(a->ctx, ls);
}

static int loader_init(loader *l, const kivis_allocator *alloc)
{
    l->alloc = *(alloc ? alloc : kivis_default_allocator());
    l->ls = l->alloc.malloc(l->alloc.ctx, sizeof *l->ls);
    if (!l->ls)
        return KIVIS_ENOMEM;
    memset(l->ls, 0, sizeof *l->ls);
    return KIVIS_OK;
}

/* Hand the loaded descriptor out on success, free it on failure. */
static int loader_finish(loader *l, int rc, kivis_schema_desc **out)
{
    if (rc) {
        kivis_schema_free(&l->ls->desc, &l->alloc);
        return rc;
    }
    *out = &l->ls->desc;
    return KIVIS_OK;
}

int kivis__schema_parse(kivis_slice stored, const kivis_allocator *alloc,
                        kivis_schema_desc **out, kivis_table_state **states)
{
    loader l;
    *out = NULL;
    int rc = loader_init(&l, alloc);
    if (rc)
        return rc;
    rc = loader_finish(&l, parse_schema(&l, stored), out);
    *states = rc ? NULL : l.ls->states;
    return rc;
}

int kivis_schema_load(kivis_storage *st, const kivis_allocator *alloc,
                      kivis_schema_desc **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!st)
        return KIVIS_EINVAL;
    loader l;
    int rc = loader_init(&l, alloc);
    if (rc)
        return rc;
    kivis_storage_txn *txn;
    rc = kivis_storage_begin(st, KIVIS_TXN_RDONLY, &txn);
    if (rc == KIVIS_OK) {
        kivis_slice stored;
        rc = kivis_txn_get(txn, kivis__schema_key_slice(), &stored);
        if (rc == KIVIS_OK)
            rc = parse_schema(&l, stored);
        kivis_txn_abort(txn);
    }
    return loader_finish(&l, rc, out);
}
