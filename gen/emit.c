/*
 * gen/emit.c - kg_emit: write <schema>.kivis.h and <schema>.kivis.c from a
 * checked kg_schema.
 *
 * The header holds the C types and typed static inline wrappers over the
 * record engine (kivis.h); the source holds the constant descriptor.  The
 * header must compile cleanly as C11/C17 and as C++17, so inline bodies use
 * neither designated initializers nor compound literals.
 *
 * Output is a pure function of the model (no dates, no paths beyond the
 * schema's base name), so it can be compared against golden files.  Each
 * file is written to a temporary name and renamed into place, so a failed
 * run never leaves half a file that a build would pick up.
 */
#include "model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One run of the emitter.  Nothing here outlives kg_emit. */
typedef struct emitter {
    const kg_schema *s;
    FILE *out;
    const char *source; /* base name of the schema file, for the banner */
    size_t *order;      /* struct and key nodes in dependency order */
    size_t norder;
    unsigned char *mark; /* per node: 0 new, 1 in progress, 2 done */
} emitter;

/*
 * Nodes of the dependency graph: plain structs 0..nstructs-1, then the key
 * struct of each record.  A struct may contain other structs and keys; a
 * key may contain structs and other keys.  Records contain only those, so
 * emitting every node first leaves records free of ordering concerns.
 */
static size_t node_count(const kg_schema *s)
{
    return s->nstructs + s->nrecords;
}

static size_t node_nfields(const kg_schema *s, size_t node)
{
    if (node < s->nstructs)
        return s->structs[node].nfields;
    return kg_key_nfields(&s->records[node - s->nstructs]);
}

static const kg_field *node_field(const kg_schema *s, size_t node, size_t i)
{
    size_t pos;
    if (node < s->nstructs)
        return &s->structs[node].fields[i];
    return kg_key_field(&s->records[node - s->nstructs], i, &pos);
}

/* The node a field's type depends on, or (size_t)-1. */
static size_t type_node(const kg_schema *s, const kg_type *t)
{
    if (t->kind == KG_STRUCT && t->strct)
        return (size_t)(t->strct - s->structs);
    if (t->kind == KG_KEY && t->record)
        return s->nstructs + (size_t)(t->record - s->records);
    return (size_t)-1;
}

/* Depth-first post-order.  The checker rejects cycles; the in-progress
 * mark only keeps a bad model from recursing forever. */
static void visit(emitter *e, size_t node)
{
    if (e->mark[node])
        return;
    e->mark[node] = 1;
    size_t n = node_nfields(e->s, node);
    for (size_t i = 0; i < n; i++) {
        size_t dep = type_node(e->s, &node_field(e->s, node, i)->type);
        if (dep < node_count(e->s))
            visit(e, dep);
    }
    e->mark[node] = 2;
    e->order[e->norder++] = node;
}

/* ---- C spellings ---------------------------------------------------- */

static const char *scalar_ctype(kg_kind k)
{
    switch (k) {
    case KG_U8: return "uint8_t";
    case KG_U16: return "uint16_t";
    case KG_U32: return "uint32_t";
    case KG_U64: return "uint64_t";
    case KG_I8: return "int8_t";
    case KG_I16: return "int16_t";
    case KG_I32: return "int32_t";
    case KG_I64: return "int64_t";
    case KG_BOOL: return "bool";
    case KG_F32: return "float";
    case KG_F64: return "double";
    case KG_STRING: return "const char *";
    case KG_CHARS: return "char";
    case KG_BYTES: return "kivis_bytes";
    default: return NULL;
    }
}

/* The C type of one element: "uint32_t", "const char *", "toy_kind",
 * "point".  Strings are const: a record is a value that gets fill and
 * R_clear frees (the engine owns what it allocated), and a const member
 * takes a string literal in C++ without a cast. */
static const char *elem_ctype(const kg_type *t)
{
    const char *c = scalar_ctype(t->kind);
    return c ? c : t->name;
}

static const char *kivis_kind(kg_kind k)
{
    static const char *const names[] = {
        NULL, "KIVIS_U8", "KIVIS_U16", "KIVIS_U32", "KIVIS_U64",
        "KIVIS_I8", "KIVIS_I16", "KIVIS_I32", "KIVIS_I64", "KIVIS_BOOL",
        "KIVIS_F32", "KIVIS_F64", "KIVIS_ENUM", "KIVIS_STRING",
        "KIVIS_CHARS", "KIVIS_BYTES", "KIVIS_STRUCT", "KIVIS_STRUCT"};
    return (size_t)k < sizeof names / sizeof names[0] ? names[k] : "0";
}

static int is_text(const kg_type *t)
{
    return t->array == 0 && (t->kind == KG_STRING || t->kind == KG_CHARS);
}

static int is_prefixable(const kg_type *t)
{
    return is_text(t) || (t->array == 0 && t->kind == KG_BYTES);
}

/* ---- output --------------------------------------------------------- */

/* A name as the database stores it: without kg_prefix's prefix, which
 * only the C identifiers carry. */
static const char *stored(const emitter *e, const char *name)
{
    return e->s->prefix ? name + strlen(e->s->prefix) : name;
}

static void out(emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->out, fmt, ap);
    va_end(ap);
}

static void out_upper(emitter *e, const char *name)
{
    for (const char *p = name; *p; p++)
        fputc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, e->out);
}

/* "char *name", "char name[32]", "uint8_t rgb[3]" */
static void out_decl(emitter *e, const kg_type *t, const char *name)
{
    const char *c = elem_ctype(t);
    size_t n = strlen(c);
    out(e, "%s%s%s", c, c[n - 1] == '*' ? "" : " ", name);
    if (t->kind == KG_CHARS)
        out(e, "[%u]", (unsigned)t->chars);
    if (t->array)
        out(e, "[%u]", (unsigned)t->array);
}

/* Table constant PETS_USER. */
static void out_table(emitter *e, const kg_record *r)
{
    out_upper(e, e->s->name);
    out(e, "_");
    out_upper(e, r->name);
}

/* Index constant PETS_USER_BY_NAME. */
static void out_index(emitter *e, const kg_record *r, const kg_field *f)
{
    out_table(e, r);
    out(e, "_BY_");
    out_upper(e, f->name);
}


/* ---- index lookup parameters ---------------------------------------- */

/* Strings are looked up by `const char *` whatever their storage; arrays
 * by a pointer to their first element; everything else by value (exact)
 * or by a pointer to a value (range bounds, NULL = unbounded). */
static void out_value_param(emitter *e, const kg_type *t, const char *name,
                            int bound)
{
    if (is_text(t))
        out(e, "const char *%s", name);
    else if (t->array && t->kind == KG_STRING)
        out(e, "const char *const *%s", name);
    else if (t->array || bound)
        out(e, "const %s *%s", elem_ctype(t), name);
    else
        out(e, "%s %s", elem_ctype(t), name);
}

/* What the runtime wants: a pointer to a value of the field's C type. */
static void out_value_arg(emitter *e, const kg_type *t, const char *name,
                          int bound)
{
    if (is_text(t) && t->kind == KG_STRING)
        out(e, bound ? "%s ? (const void *)&%s : NULL" : "&%s", name, name);
    else if (is_text(t) || t->array || bound)
        out(e, "%s", name);
    else
        out(e, "&%s", name);
}

/* Where a distinct value goes: a pointer to the field's C type (a
 * string's `const char *`, a char[N]'s first char, an array's first
 * element). */
static void out_value_out(emitter *e, const kg_type *t)
{
    if (t->kind == KG_CHARS && t->array)
        out(e, "char (*value)[%u]", (unsigned)t->chars);
    else if (t->kind == KG_CHARS)
        out(e, "char *value");
    else
        out(e, "%s%s*value", elem_ctype(t), t->kind == KG_STRING ? "" : " ");
}

/* "an airport", "an order", but "a user" (a "you" sound) and "a toy". */
static const char *article(const char *noun)
{
    return noun[0] && strchr("aeioAEIO", noun[0]) ? "an" : "a";
}

/*
 * Expand a template: $R record, $A its article ("a", "an"), $S schema,
 * $T table constant, $F field,
 * $I index constant, $V the exact-lookup parameter and $v its argument,
 * $L the range bound parameters and $l/$h their arguments, $P the prefix
 * parameter (text is looked up by `const char *`, bytes by any pointer),
 * $O the distinct value's out parameter, $M the query mode over every
 * value (absent ones left out: a range without bounds).
 */
static void tpl(emitter *e, const kg_record *r, const kg_field *f,
                const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p != '$') {
            fputc(*p, e->out);
            continue;
        }
        switch (*++p) {
        case 'R': out(e, "%s", r->name); break;
        case 'S': out(e, "%s", e->s->name); break;
        case 'A': out(e, "%s", article(r->name)); break;
        case 'T': out_table(e, r); break;
        case 'F': out(e, "%s", f->name); break;
        case 'I': out_index(e, r, f); break;
        case 'V': out_value_param(e, &f->type, "value", 0); break;
        case 'v': out_value_arg(e, &f->type, "value", 0); break;
        case 'L':
            out_value_param(e, &f->type, "lo", 1);
            out(e, ", ");
            out_value_param(e, &f->type, "hi", 1);
            break;
        case 'P':
            out(e, "%s", is_text(&f->type) ? "const char *prefix" : "const void *prefix");
            break;
        case 'O': out_value_out(e, &f->type); break;
        case 'M':
            out(e, "%s", f->attrs & KG_ATTR_OPTIONAL ? "KIVIS_Q_RANGE" : "KIVIS_Q_ALL");
            break;
        case 'l': out_value_arg(e, &f->type, "lo", 1); break;
        case 'h': out_value_arg(e, &f->type, "hi", 1); break;
        default: fputc(*p, e->out); break;
        }
    }
}

/* ---- the header ----------------------------------------------------- */

static void out_banner(emitter *e)
{
    out(e, "/* generated by kivis-gen from %s; do not edit */\n", e->source);
}

static void header_enum(emitter *e, const kg_enum *en)
{
    out(e, "enum %s {\n", en->name);
    for (size_t i = 0; i < en->count; i++)
        out(e, "    %s = %lld%s\n", en->names[i], (long long)en->values[i],
            i + 1 < en->count ? "," : "");
    out(e, "};\ntypedef enum %s %s;\n\n", en->name, en->name);
}

static const char *const action_names[] = {"", "restrict", "cascade", "nullify"};

static void out_attrs(emitter *e, const kg_field *f)
{
    unsigned attrs = f->attrs;
    if (!attrs && !f->action)
        return;
    out(e, " /*%s%s%s%s", attrs & KG_ATTR_KEY ? " [[key]]" : "",
        attrs & KG_ATTR_INDEX ? " [[index]]" : "",
        attrs & KG_ATTR_UNIQUE ? " [[unique]]" : "",
        attrs & KG_ATTR_OPTIONAL ? " [[optional]]" : "");
    if (f->action)
        out(e, " [[references(%s)]]", action_names[f->action]);
    out(e, " */");
}

/* "enum " or "struct " when a field of the struct (its n fields) is named
 * like t (`enum color color;`): C++ would read the bare name as that field
 * (g++: "changes meaning"), the tagged one it looks up as a type. */
static const char *type_tag(const kg_schema *s, size_t node,
                            const kg_record *r, size_t n, const kg_type *t)
{
    if (t->kind != KG_ENUM && t->kind != KG_STRUCT && t->kind != KG_KEY)
        return "";
    for (size_t i = 0; i < n; i++)
        if (!strcmp((r ? &r->fields[i] : node_field(s, node, i))->name, t->name))
            return t->kind == KG_ENUM ? "enum " : "struct ";
    return "";
}

/* typedef struct name { fields } name; -- for structs, keys and records. */
static void header_struct(emitter *e, const char *name, const char *suffix,
                          const kg_schema *s, size_t node, const kg_record *r)
{
    out(e, "typedef struct %s%s {\n", name, suffix);
    size_t n = r ? r->nfields : node_nfields(s, node);
    for (size_t i = 0; i < n; i++) {
        const kg_field *f = r ? &r->fields[i] : node_field(s, node, i);
        if (r && kg_has_presence_flag(f))
            out(e, "    bool has_%s; /* false: %s is absent */\n", f->name,
                f->name);
        out(e, "    %s", type_tag(s, node, r, n, &f->type));
        out_decl(e, &f->type, f->name);
        out(e, ";");
        if (r)
            out_attrs(e, f);
        out(e, "\n");
    }
    out(e, "} %s%s;\n\n", name, suffix);
}

static void header_node(emitter *e, size_t node)
{
    const kg_schema *s = e->s;
    if (node < s->nstructs) {
        header_struct(e, s->structs[node].name, "", s, node, NULL);
        return;
    }
    const kg_record *r = &s->records[node - s->nstructs];
    if (r->key_kind == KG_KEY_DERIVED)
        out(e, "/* The key of %s: made by %s_derive_key. */\n", r->name,
            r->name);
    else
        out(e, "/* The key of %s: %s. */\n", r->name,
            r->key_kind == KG_KEY_AUTO ? "auto-increment"
                                       : "its [[key]] fields");
    header_struct(e, r->name, "_key", s, node, NULL);
}

static void header_constants(emitter *e)
{
    const kg_schema *s = e->s;
    if (s->nrecords) /* C and C++ refuse an empty enum */
        out(e, "/* Table positions in %s_schema. */\nenum %s_tables {\n",
            s->name, s->name);
    for (size_t i = 0; i < s->nrecords; i++) {
        out(e, "    ");
        out_table(e, &s->records[i]);
        out(e, "%s", i + 1 < s->nrecords ? ",\n" : "\n};\n\n");
    }
    int any = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i];
        uint32_t pos = 0;
        for (size_t j = 0; j < r->nfields; j++) {
            if (!(r->fields[j].attrs & (KG_ATTR_INDEX | KG_ATTR_UNIQUE)))
                continue;
            if (!any++)
                out(e, "/* Index positions within their table. */\n"
                       "enum %s_indexes {\n", s->name);
            else
                out(e, ",\n");
            out(e, "    ");
            out_index(e, r, &r->fields[j]);
            out(e, " = %u", (unsigned)pos++);
        }
    }
    if (any)
        out(e, "\n};\n\n");
    out(e, "extern const kivis_schema_desc %s_schema;\n\n", s->name);
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i];
        if (r->key_kind == KG_KEY_DERIVED)
            out(e, "/* Written by the user: the key of a %s. */\n"
                   "%s_key %s_derive_key(const %s *rec);\n\n",
                r->name, r->name, r->name, r->name);
    }
}

/* kivis-gen --previous: the record as the previous schema had it, and
 * the function the user writes to convert it. */
static void header_migration(emitter *e, const kg_record *r)
{
    const kg_record *old = r->migrates_from;
    out(e, "/* A %s as the previous schema stored it: kivis_open hands each\n"
           " * stored one to %s_migrate (kivis-gen --previous). */\n",
        r->name, r->name);
    header_struct(e, old->name, "", e->s, 0, old);
    out(e, "/* Written by the user: fill out (zeroed) from old, keeping its\n"
           " * key; ctx is kivis_options.migrate_ctx.  Strings and blobs in\n"
           " * out are not freed: point them into old (freed once out is\n"
           " * written) or into memory of your own.  KIVIS_OK, or a status\n"
           " * that aborts kivis_open with nothing changed. */\n"
           "int %s_migrate(const %s *old, %s *out, void *ctx);\n\n",
        r->name, old->name, r->name);
}

static const char handle_fns[] =
    "/* A database opened with $S_schema.  Every function below takes one,\n"
    " * so a handle of another schema does not compile.  Opaque: a kivis_db\n"
    " * underneath, which $S_kivis_db hands to generic code. */\n"
    "typedef struct $S_db $S_db;\n\n"
    "/* The kivis_db under db, for generic code (tools, bindings); borrowed,\n"
    " * it lives as long as db. */\n"
    "static inline kivis_db *$S_kivis_db($S_db *db)\n"
    "{\n"
    "    return (kivis_db *)db;\n"
    "}\n\n"
    "/* KIVIS_OK when db was opened with $S_schema, else KIVIS_ESCHEMA: a\n"
    " * handle cast from another schema never reaches the engine. */\n"
    "static inline int $S_check_(const $S_db *db)\n"
    "{\n"
    "    return kivis_db_expect((kivis_db *)db, &$S_schema);\n"
    "}\n\n"
    "/* Open a $S database over st (see kivis_open); opts may be NULL.\n"
    " * Close it with $S_close before closing st. */\n"
    "static inline int $S_open(kivis_storage *st, const kivis_options *opts,\n"
    "    $S_db **out)\n"
    "{\n"
    "    kivis_db *db = NULL;\n"
    "    int rc = kivis_open(st, &$S_schema, opts, out ? &db : NULL);\n"
    "    if (out)\n"
    "        *out = ($S_db *)db;\n"
    "    return rc;\n"
    "}\n\n"
    "/* Close db, aborting its open transaction (kivis_close).  NULL: no-op. */\n"
    "static inline void $S_close($S_db *db)\n"
    "{\n"
    "    kivis_close((kivis_db *)db);\n"
    "}\n\n"
    "/* Begin a write transaction (kivis_begin). */\n"
    "static inline int $S_begin($S_db *db)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_begin((kivis_db *)db);\n"
    "}\n\n"
    "/* Begin a read-only transaction (kivis_begin_read). */\n"
    "static inline int $S_begin_read($S_db *db)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_begin_read((kivis_db *)db);\n"
    "}\n\n"
    "/* Commit the open transaction (kivis_commit). */\n"
    "static inline int $S_commit($S_db *db)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_commit((kivis_db *)db);\n"
    "}\n\n"
    "/* Abort the open transaction, if any (kivis_abort). */\n"
    "static inline void $S_abort($S_db *db)\n"
    "{\n"
    "    kivis_abort((kivis_db *)db);\n"
    "}\n\n"
    "/* The detail of the last failure on db (kivis_errmsg). */\n"
    "static inline const char *$S_errmsg(const $S_db *db)\n"
    "{\n"
    "    return kivis_errmsg((const kivis_db *)db);\n"
    "}\n\n";

static const char scan_helper[] =
    "/* The query of every scan, count and distinct function below. */\n"
    "static inline kivis_query $S_query_(uint32_t table, int32_t index,\n"
    "    uint32_t mode, const void *lo, const void *hi, const void *prefix,\n"
    "    size_t prefix_len, unsigned flags)\n"
    "{\n"
    "    kivis_query q;\n"
    "    q.table = table;\n"
    "    q.index = index;\n"
    "    q.mode = mode;\n"
    "    q.lo = lo;\n"
    "    q.hi = hi;\n"
    "    q.prefix = prefix;\n"
    "    q.prefix_len = prefix_len;\n"
    "    q.flags = flags;\n"
    "    return q;\n"
    "}\n\n"
    "/* Open a scan; every cursor function below goes through here. */\n"
    "static inline int $S_open_scan_($S_db *db, uint32_t table,\n"
    "    int32_t index, uint32_t mode, const void *lo, const void *hi,\n"
    "    const void *prefix, size_t prefix_len, unsigned flags,\n"
    "    kivis_scan **out)\n"
    "{\n"
    "    kivis_query q = $S_query_(table, index, mode, lo, hi, prefix,\n"
    "        prefix_len, flags);\n"
    "    int rc = $S_check_(db);\n"
    "    *out = NULL;\n"
    "    return rc ? rc : kivis_scan_open((kivis_db *)db, &q, out);\n"
    "}\n\n"
    "/* Count a query's entries, decoding nothing (kivis_count); every count\n"
    " * function below goes through here. */\n"
    "static inline int $S_count_($S_db *db, uint32_t table, int32_t index,\n"
    "    uint32_t mode, const void *lo, const void *hi, const void *prefix,\n"
    "    size_t prefix_len, uint64_t *n)\n"
    "{\n"
    "    kivis_query q = $S_query_(table, index, mode, lo, hi, prefix,\n"
    "        prefix_len, 0);\n"
    "    int rc = $S_check_(db);\n"
    "    if (n)\n"
    "        *n = 0;\n"
    "    return rc ? rc : kivis_count((kivis_db *)db, &q, n);\n"
    "}\n\n";

/* The three writes, the same meaning for every key strategy: add never
 * replaces, put replaces or creates, update never creates. */
static const char fn_auto[] =
    "/* Add a new $R under the next id; key_out (may be NULL) gets it. */\n"
    "static inline int $R_add($S_db *db, const $R *rec, $R_key *key_out)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_add((kivis_db *)db, $T, rec, key_out);\n"
    "}\n\n"
    "/* Store a new $R under the next id (ids are never reused); key_out\n"
    " * (may be NULL) gets it. */\n"
    "static inline int $R_put($S_db *db, const $R *rec, $R_key *key_out)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_put((kivis_db *)db, $T, rec, key_out);\n"
    "}\n\n"
    "/* Replace the $R under key; KIVIS_NOTFOUND (nothing written) if none. */\n"
    "static inline int $R_update($S_db *db, $R_key key, const $R *rec)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_update((kivis_db *)db, $T, &key, rec);\n"
    "}\n\n";

static const char fn_keyed[] =
    "/* Add $A $R under the key it gives; KIVIS_EEXIST (nothing written) if\n"
    " * a record is there.  key_out (may be NULL) gets the key. */\n"
    "static inline int $R_add($S_db *db, const $R *rec, $R_key *key_out)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_add((kivis_db *)db, $T, rec, key_out);\n"
    "}\n\n"
    "/* Store $A $R under the key it gives, replacing any record there. */\n"
    "static inline int $R_put($S_db *db, const $R *rec, $R_key *key_out)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_put((kivis_db *)db, $T, rec, key_out);\n"
    "}\n\n"
    "/* Replace the $R under the key it gives; KIVIS_NOTFOUND (nothing\n"
    " * written) if none is there. */\n"
    "static inline int $R_update($S_db *db, const $R *rec)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_update((kivis_db *)db, $T, NULL, rec);\n"
    "}\n\n";

static const char fn_common[] =
    "static inline int $R_get($S_db *db, $R_key key, $R *out)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_get((kivis_db *)db, $T, &key, out);\n"
    "}\n\n"
    "/* $R_get with the strings and blobs in buf (size bytes) instead of\n"
    " * allocated: do not clear *out.  KIVIS_ETOOSMALL if buf is short. */\n"
    "static inline int $R_get_into($S_db *db, $R_key key, $R *out,\n"
    "    void *buf, size_t size)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc\n"
    "              : kivis_get_into((kivis_db *)db, $T, &key, out, buf, size);\n"
    "}\n\n"
    "static inline int $R_remove($S_db *db, $R_key key)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_remove((kivis_db *)db, $T, &key);\n"
    "}\n\n"
    "/* Free what a get or scan allocated in $A $R, and zero it. */\n"
    "static inline void $R_clear($S_db *db, $R *rec)\n"
    "{\n"
    "    if ($S_check_(db) == KIVIS_OK)\n"
    "        kivis_record_clear((kivis_db *)db, $T, rec);\n"
    "}\n\n"
    "static inline void $R_key_clear($S_db *db, $R_key *key)\n"
    "{\n"
    "    if ($S_check_(db) == KIVIS_OK)\n"
    "        kivis_key_clear((kivis_db *)db, $T, key);\n"
    "}\n\n"
    "/* Cache up to max decoded $R records in front of $R_get (0: off). */\n"
    "static inline int $R_cache($S_db *db, size_t max)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_cache_enable((kivis_db *)db, $T, max);\n"
    "}\n\n"
    "static inline int $R_cache_stats(const $S_db *db, kivis_cache_stats *out)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_cache_get_stats((const kivis_db *)db, $T, out);\n"
    "}\n\n"
    "static inline void $R_cache_clear($S_db *db)\n"
    "{\n"
    "    if ($S_check_(db) == KIVIS_OK)\n"
    "        kivis_cache_clear((kivis_db *)db, $T);\n"
    "}\n\n"
    "typedef struct $R_cursor {\n"
    "    kivis_scan *scan;\n"
    "} $R_cursor;\n\n"
    "/* Scan $R by key over [lo, hi); NULL bounds are open. */\n"
    "static inline int $R_scan($S_db *db, const $R_key *lo,\n"
    "    const $R_key *hi, unsigned flags, $R_cursor *cur)\n"
    "{\n"
    "    return $S_open_scan_(db, $T, -1, KIVIS_Q_RANGE, lo, hi, NULL, 0,\n"
    "        flags, &cur->scan);\n"
    "}\n\n"
    "/* KIVIS_OK with the next key and/or record, KIVIS_NOTFOUND at the end. */\n"
    "static inline int $R_next($R_cursor *cur, $R_key *key, $R *rec)\n"
    "{\n"
    "    return kivis_scan_next(cur->scan, key, rec);\n"
    "}\n\n"
    "/* $R_next with the strings and blobs in buf (size bytes): clear\n"
    " * neither; on KIVIS_ETOOSMALL the next call returns the same entry. */\n"
    "static inline int $R_next_into($R_cursor *cur, $R_key *key, $R *rec,\n"
    "    void *buf, size_t size)\n"
    "{\n"
    "    return kivis_scan_next_into(cur->scan, key, rec, buf, size);\n"
    "}\n\n"
    "static inline void $R_close($R_cursor *cur)\n"
    "{\n"
    "    kivis_scan_close(cur->scan);\n"
    "    cur->scan = NULL;\n"
    "}\n\n";

static const char fn_count[] =
    "/* How many $R records are stored: the keys are counted, no record is\n"
    " * decoded (kivis_count). */\n"
    "static inline int $R_count($S_db *db, uint64_t *n)\n"
    "{\n"
    "    return $S_count_(db, $T, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, n);\n"
    "}\n\n"
    "/* KIVIS_OK when $A $R is stored under key, KIVIS_NOTFOUND if not;\n"
    " * nothing decoded (kivis_exists). */\n"
    "static inline int $R_exists($S_db *db, $R_key key)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_exists((kivis_db *)db, $T, &key);\n"
    "}\n\n"
    "/* Inside a transaction: the next reads and writes will touch the $R\n"
    " * records of keys[0..n-1]; a backend whose reads are round trips\n"
    " * (PostgreSQL) reads them all in one (kivis_prefetch). */\n"
    "static inline int $R_prefetch($S_db *db, const $R_key *keys, size_t n)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    return rc ? rc : kivis_prefetch((kivis_db *)db, $T, keys, n);\n"
    "}\n\n"
    "/* $R_next for the key alone: an index cursor reads only its index\n"
    " * entries and fetches no record.  Clear the key with $R_key_clear. */\n"
    "static inline int $R_next_key($R_cursor *cur, $R_key *key)\n"
    "{\n"
    "    return kivis_scan_next(cur->scan, key, NULL);\n"
    "}\n\n";

static const char fn_watch[] =
    "typedef struct $R_watch {\n"
    "    kivis_watch *watch;\n"
    "} $R_watch;\n\n"
    "/* Watch the committed inserts, updates and removes of $R records after\n"
    " * position `after` (KIVIS_FEED_NOW: from now on).  KIVIS_ENOTSUP when the\n"
    " * storage has no change feed.  Close it before the db. */\n"
    "static inline int $R_watch_open($S_db *db, uint64_t after, $R_watch *w)\n"
    "{\n"
    "    int rc = $S_check_(db);\n"
    "    w->watch = NULL;\n"
    "    return rc ? rc : kivis_watch_open((kivis_db *)db, $T, after, &w->watch);\n"
    "}\n\n"
    "/* The next change (ev->kind, ev->pos) and its key, waiting up to\n"
    " * timeout_ms (-1: forever); KIVIS_NOTFOUND when none came.  Clear the\n"
    " * key with $R_key_clear.  KIVIS_CHANGE_RESYNC: changes were lost, re-read. */\n"
    "static inline int $R_watch_next($R_watch *w, int timeout_ms,\n"
    "    kivis_watch_event *ev, $R_key *key)\n"
    "{\n"
    "    return kivis_watch_next(w->watch, timeout_ms, ev, key);\n"
    "}\n\n"
    "/* A descriptor to poll(2) for readability before $R_watch_next. */\n"
    "static inline int $R_watch_fd(const $R_watch *w)\n"
    "{\n"
    "    return kivis_watch_fd(w->watch);\n"
    "}\n\n"
    "static inline void $R_watch_close($R_watch *w)\n"
    "{\n"
    "    kivis_watch_close(w->watch);\n"
    "    w->watch = NULL;\n"
    "}\n\n";

static const char fn_scan_prefix[] =
    "/* Scan $R whose first key field starts with prefix[0..len). */\n"
    "static inline int $R_scan_prefix($S_db *db, $P,\n"
    "    size_t len, unsigned flags, $R_cursor *cur)\n"
    "{\n"
    "    return $S_open_scan_(db, $T, -1, KIVIS_Q_PREFIX, NULL, NULL, prefix,\n"
    "        len, flags, &cur->scan);\n"
    "}\n\n";

static const char fn_index[] =
    "/* $R whose $F equals value, in primary key order. */\n"
    "static inline int $R_by_$F($S_db *db, $V, unsigned flags,\n"
    "    $R_cursor *cur)\n"
    "{\n"
    "    return $S_open_scan_(db, $T, $I, KIVIS_Q_EQ, $v, NULL, NULL, 0,\n"
    "        flags, &cur->scan);\n"
    "}\n\n"
    "/* $R whose $F is in [lo, hi); NULL bounds are open. */\n"
    "static inline int $R_by_$F_range($S_db *db, $L,\n"
    "    unsigned flags, $R_cursor *cur)\n"
    "{\n"
    "    return $S_open_scan_(db, $T, $I, KIVIS_Q_RANGE, $l, $h, NULL, 0,\n"
    "        flags, &cur->scan);\n"
    "}\n\n";

static const char fn_index_count[] =
    "/* How many $R records have $F equal to value: index entries are\n"
    " * counted, no record is fetched. */\n"
    "static inline int $R_count_by_$F($S_db *db, $V, uint64_t *n)\n"
    "{\n"
    "    return $S_count_(db, $T, $I, KIVIS_Q_EQ, $v, NULL, NULL, 0, n);\n"
    "}\n\n"
    "/* How many $R records have $F in [lo, hi); NULL bounds are open. */\n"
    "static inline int $R_count_by_$F_range($S_db *db, $L, uint64_t *n)\n"
    "{\n"
    "    return $S_count_(db, $T, $I, KIVIS_Q_RANGE, $l, $h, NULL, 0, n);\n"
    "}\n\n";

static const char fn_index_distinct[] =
    "typedef struct $R_distinct_$F_cursor {\n"
    "    kivis_distinct *distinct;\n"
    "} $R_distinct_$F_cursor;\n\n"
    "/* The distinct values of $F among $R records, each once in index order\n"
    " * (flags: KIVIS_REVERSE) with how many records hold it: only index\n"
    " * entries are read, one value decoded a group (kivis_distinct_open). */\n"
    "static inline int $R_distinct_$F($S_db *db, unsigned flags,\n"
    "    $R_distinct_$F_cursor *cur)\n"
    "{\n"
    "    kivis_query q = $S_query_($T, $I, $M, NULL, NULL, NULL, 0,\n"
    "        flags);\n"
    "    int rc = $S_check_(db);\n"
    "    cur->distinct = NULL;\n"
    "    return rc ? rc : kivis_distinct_open((kivis_db *)db, &q, &cur->distinct);\n"
    "}\n\n"
    "/* KIVIS_OK with the next value of $F and its count (either may be\n"
    " * NULL), KIVIS_NOTFOUND at the end.  The value's strings and blobs\n"
    " * belong to the cursor: valid until the next call or the close. */\n"
    "static inline int $R_distinct_$F_next($R_distinct_$F_cursor *cur,\n"
    "    $O, uint64_t *count)\n"
    "{\n"
    "    return kivis_distinct_next(cur->distinct, value, count);\n"
    "}\n\n"
    "static inline void $R_distinct_$F_close($R_distinct_$F_cursor *cur)\n"
    "{\n"
    "    kivis_distinct_close(cur->distinct);\n"
    "    cur->distinct = NULL;\n"
    "}\n\n";

static const char fn_index_count_prefix[] =
    "/* How many $R records have $F starting with prefix[0..len). */\n"
    "static inline int $R_count_by_$F_prefix($S_db *db, $P,\n"
    "    size_t len, uint64_t *n)\n"
    "{\n"
    "    return $S_count_(db, $T, $I, KIVIS_Q_PREFIX, NULL, NULL, prefix, len,\n"
    "        n);\n"
    "}\n\n";

static const char fn_index_prefix[] =
    "/* $R whose $F starts with prefix[0..len). */\n"
    "static inline int $R_by_$F_prefix($S_db *db, $P,\n"
    "    size_t len, unsigned flags, $R_cursor *cur)\n"
    "{\n"
    "    return $S_open_scan_(db, $T, $I, KIVIS_Q_PREFIX, NULL, NULL, prefix,\n"
    "        len, flags, &cur->scan);\n"
    "}\n\n";

static const char fn_index_absent[] =
    "/* $R whose $F is absent, in primary key order. */\n"
    "static inline int $R_by_$F_absent($S_db *db, unsigned flags,\n"
    "    $R_cursor *cur)\n"
    "{\n"
    "    return $S_open_scan_(db, $T, $I, KIVIS_Q_ABSENT, NULL, NULL, NULL, 0,\n"
    "        flags, &cur->scan);\n"
    "}\n\n"
    "/* How many $R records have no $F. */\n"
    "static inline int $R_count_by_$F_absent($S_db *db, uint64_t *n)\n"
    "{\n"
    "    return $S_count_(db, $T, $I, KIVIS_Q_ABSENT, NULL, NULL, NULL, 0, n);\n"
    "}\n\n";

static void header_functions(emitter *e, const kg_record *r)
{
    size_t pos;
    out(e, "/* ---- %s ---- */\n\n", r->name);
    tpl(e, r, NULL, r->key_kind == KG_KEY_AUTO ? fn_auto : fn_keyed);
    tpl(e, r, NULL, fn_common);
    tpl(e, r, NULL, fn_count);
    tpl(e, r, NULL, fn_watch);
    if (is_prefixable(&kg_key_field(r, 0, &pos)->type))
        tpl(e, r, kg_key_field(r, 0, &pos), fn_scan_prefix);
    for (size_t i = 0; i < r->nfields; i++) {
        const kg_field *f = &r->fields[i];
        if (!(f->attrs & (KG_ATTR_INDEX | KG_ATTR_UNIQUE)))
            continue;
        tpl(e, r, f, fn_index);
        if (is_prefixable(&f->type))
            tpl(e, r, f, fn_index_prefix);
        tpl(e, r, f, fn_index_count);
        if (is_prefixable(&f->type))
            tpl(e, r, f, fn_index_count_prefix);
        if ((f->attrs & KG_ATTR_OPTIONAL) && !(f->attrs & KG_ATTR_UNIQUE))
            tpl(e, r, f, fn_index_absent); /* a unique index holds none */
        tpl(e, r, f, fn_index_distinct);
    }
}

/* _Generic((key), user_key: user_get, toy_key: toy_get) */
static void header_generic(emitter *e, const char *macro, const char *args,
                           const char *on, const char *type_suffix,
                           const char *fn)
{
    const kg_schema *s = e->s;
    out(e, "#define %s_%s(%s) \\\n    _Generic((%s)", s->name, macro, args, on);
    for (size_t i = 0; i < s->nrecords; i++)
        out(e, ", \\\n        %s%s: %s_%s", s->records[i].name, type_suffix,
            s->records[i].name, fn);
    out(e, ")(%s)\n", args);
}

/* The kivis/exact.h check of an exact lookup's value, with the message a
 * refused call shows; NULL where C's own typing suffices (strings, structs
 * and keys by value). */
/* The checking macro of the lookup R_<family>_F (R_by_F, R_count_by_F),
 * whose arguments after the value are `rest`. */
static void out_exact_check(emitter *e, const kg_record *r, const kg_field *f,
                            const char *family, const char *rest)
{
    const kg_type *t = &f->type;
    const char *ct = elem_ctype(t);
    char msg[256];
    snprintf(msg, sizeof msg, "\"%s_%s_%s: the value must be ", r->name, family,
             f->name);
    out(e, "#define %s_%s_%s(db, value, %s) \\\n    %s_%s_%s(db, ", r->name,
        family, f->name, rest, r->name, family, f->name);
    if (t->array) {
        /* T and const T: for strings, char * and const char * */
        out(e, "KIVIS_EXACT_ARRAY_(value, %s, %u, %sa %s[%u]\"), %s)\n",
            t->kind == KG_STRING ? "char *" : ct, (unsigned)t->array, msg, ct,
            (unsigned)t->array, rest);
        return;
    }
    switch (t->kind) {
    case KG_U8: case KG_U16: case KG_U32: case KG_U64:
        out(e, "KIVIS_EXACT_UINT_(value, sizeof(%s), %sa %s, a narrower unsigned "
               "integer or an int\"), %s)\n", ct, msg, ct, rest);
        break;
    case KG_I8: case KG_I16: case KG_I32: case KG_I64:
        out(e, "KIVIS_EXACT_SINT_(value, sizeof(%s), %san %s, a narrower integer "
               "or an int\"), %s)\n", ct, msg, ct, rest);
        break;
    case KG_BOOL:
        out(e, "KIVIS_EXACT_BOOL_(value, %sa bool\"), %s)\n", msg, rest);
        break;
    case KG_F32: case KG_F64:
        out(e, "KIVIS_EXACT_FLOAT_(value, sizeof(%s), %sa %s%s or an int\"), "
               "%s)\n", ct, msg, ct, t->kind == KG_F64 ? ", a float" : "", rest);
        break;
    case KG_ENUM:
        out(e, "KIVIS_EXACT_ENUM_(value, %sa %s\"), %s)\n", msg, ct, rest);
        break;
    default:
        break;
    }
}

static int has_exact_check(const kg_type *t)
{
    return t->array || (t->kind != KG_STRING && t->kind != KG_CHARS &&
                        t->kind != KG_BYTES && t->kind != KG_STRUCT &&
                        t->kind != KG_KEY);
}

/* After every function is defined: each exact lookup whose argument C
 * would convert silently becomes a macro that checks its type. */
static void header_exact_checks(emitter *e)
{
    const kg_schema *s = e->s;
    int any = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i];
        for (size_t j = 0; j < r->nfields; j++) {
            const kg_field *f = &r->fields[j];
            if (!(f->attrs & (KG_ATTR_INDEX | KG_ATTR_UNIQUE)) ||
                !has_exact_check(&f->type))
                continue;
            if (!any++)
                out(e, "#ifndef __cplusplus\n"
                       "/* Lookup values of exactly the field's type (kivis/exact.h): "
                       "what C\n * would convert with a loss does not compile. */\n");
            out_exact_check(e, r, f, "by", "flags, cur");
            out_exact_check(e, r, f, "count_by", "n");
        }
    }
    if (any)
        out(e, "#endif\n\n");
}

static void header_generics(emitter *e)
{
    out(e, "#ifndef __cplusplus\n"
           "/* Pick the table from the key's (or record's) type. */\n");
    header_generic(e, "get", "db, key, out", "key", "_key", "get");
    header_generic(e, "remove", "db, key", "key", "_key", "remove");
    header_generic(e, "clear", "db, rec", "rec", " *", "clear");
    out(e, "#endif\n\n");
}

static void emit_header(emitter *e)
{
    const kg_schema *s = e->s;
    out_banner(e);
    out(e, "#ifndef ");
    out_upper(e, s->name);
    out(e, "_KIVIS_H\n#define ");
    out_upper(e, s->name);
    out(e, "_KIVIS_H\n\n#include <kivis.h>\n#include <kivis/exact.h>\n\n"
           "#include <stdbool.h>\n"
           "#include <stddef.h>\n#include <stdint.h>\n\n"
           "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    for (size_t i = 0; i < s->nenums; i++)
        header_enum(e, &s->enums[i]);
    for (size_t i = 0; i < e->norder; i++)
        header_node(e, e->order[i]);
    for (size_t i = 0; i < s->nrecords; i++)
        header_struct(e, s->records[i].name, "", s, 0, &s->records[i]);
    for (size_t i = 0; i < s->nrecords; i++)
        if (s->records[i].migrates_from)
            header_migration(e, &s->records[i]);
    header_constants(e);
    tpl(e, NULL, NULL, handle_fns);
    tpl(e, NULL, NULL, scan_helper);
    for (size_t i = 0; i < s->nrecords; i++)
        header_functions(e, &s->records[i]);
    if (s->nrecords)
        header_generics(e);
    header_exact_checks(e);
    out(e, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

/* ---- the source: descriptors ---------------------------------------- */

static void source_enum(emitter *e, const kg_enum *en)
{
    out(e, "static const char *const %s_names_[] = {", en->name);
    for (size_t i = 0; i < en->count; i++)
        out(e, "%s\"%s\"", i ? ", " : "", stored(e, en->names[i]));
    out(e, "};\nstatic const int32_t %s_values_[] = {", en->name);
    for (size_t i = 0; i < en->count; i++)
        out(e, "%s%s", i ? ", " : "", en->names[i]);
    out(e, "};\nstatic const kivis_enum_desc %s_desc_ = {\"%s\", %u, "
           "%s_names_, %s_values_};\n\n",
        en->name, stored(e, en->name), (unsigned)en->count, en->name, en->name);
}

/* {"age", KIVIS_U32, 0, offsetof(user, age), sizeof(uint32_t), NULL, NULL, 0}
 * -- the owner struct's name is name + suffix ("user" "_key"). */
static void source_field(emitter *e, const char *name, const char *suffix,
                         const kg_field *f, int in_record)
{
    const kg_type *t = &f->type;
    out(e, "    {\"%s\", %s, %u, offsetof(%s%s, %s), ", f->name,
        kivis_kind(t->kind), (unsigned)t->array, name, suffix, f->name);
    if (t->kind == KG_CHARS)
        out(e, "%u, ", (unsigned)t->chars);
    else
        out(e, "sizeof(%s), ", elem_ctype(t));
    if (t->kind == KG_STRUCT || t->kind == KG_KEY)
        out(e, "&%s_desc_, NULL, ", t->name);
    else if (t->kind == KG_ENUM)
        out(e, "NULL, &%s_desc_, ", t->name);
    else
        out(e, "NULL, NULL, ");
    unsigned a = in_record ? f->attrs : 0;
    if (a & KG_ATTR_KEY)
        out(e, "KIVIS_FIELD_KEY},\n");
    else
        out(e, "%s},\n", a & KG_ATTR_OPTIONAL ? "KIVIS_FIELD_OPTIONAL" : "0");
}

/* The runtime finds a presence flag right after the member before it
 * (kivis/schema.h): the compiler that lays the record out confirms it. */
static void source_presence_checks(emitter *e, const kg_record *r)
{
    for (size_t i = 0; i < r->nfields; i++) {
        const kg_field *f = &r->fields[i];
        if (!kg_has_presence_flag(f))
            continue;
        out(e, "_Static_assert(offsetof(%s, has_%s) == ", r->name, f->name);
        if (i)
            out(e, "offsetof(%s, %s) + sizeof(((%s *)0)->%s)", r->name,
                r->fields[i - 1].name, r->name, r->fields[i - 1].name);
        else
            out(e, "0");
        out(e, ",\n    \"%s.has_%s must follow the member before it\");\n",
            r->name, f->name);
    }
}

static void source_decoder_ref(emitter *e, const kg_record *r);
static void source_decoders(emitter *e);

/* The field array and struct desc of a struct, key struct or record. */
static void source_struct(emitter *e, const char *name, const char *suffix,
                          size_t node, const kg_record *r)
{
    size_t n = r ? r->nfields : node_nfields(e->s, node);
    if (n) {
        out(e, "static const kivis_field %s%s_fields_[] = {\n", name, suffix);
        for (size_t i = 0; i < n; i++)
            source_field(e, name, suffix,
                         r ? &r->fields[i] : node_field(e->s, node, i), r != NULL);
        out(e, "};\n");
        if (r)
            source_presence_checks(e, r);
    }
    out(e, "static const kivis_struct_desc %s%s_desc_ = {\"%s%s\", "
           "sizeof(%s%s), %u, ",
        name, suffix, stored(e, name), suffix, name, suffix, (unsigned)n);
    if (n)
        out(e, "%s%s_fields_, ", name, suffix);
    else
        out(e, "NULL, ");
    source_decoder_ref(e, r);
}

static void source_node(emitter *e, size_t node)
{
    const kg_schema *s = e->s;
    if (node < s->nstructs)
        source_struct(e, s->structs[node].name, "", node, NULL);
    else
        source_struct(e, s->records[node - s->nstructs].name, "_key", node,
                      NULL);
}

static void source_index(emitter *e, const kg_field *f, size_t pos)
{
    static const char *const actions[] = {
        "", " | KIVIS_INDEX_RESTRICT", " | KIVIS_INDEX_CASCADE",
        " | KIVIS_INDEX_NULLIFY"};
    out(e, "    {\"%s\", %u, %s%s%s},\n", f->name, (unsigned)pos,
        f->attrs & KG_ATTR_UNIQUE ? "KIVIS_INDEX_UNIQUE" : "0",
        actions[f->action], kg_is_indexed(f) ? "" : " | KIVIS_INDEX_HIDDEN");
}

/* Indexes, the key map and the derive adapter a table desc points at. */
static void source_table_parts(emitter *e, const kg_record *r)
{
    if (kg_index_count(r)) {
        out(e, "static const kivis_index_desc %s_indexes_[] = {\n", r->name);
        for (size_t i = 0, pos; i < kg_index_count(r); i++) {
            const kg_field *f = kg_index_field(r, i, &pos);
            source_index(e, f, pos);
        }
        out(e, "};\n\n");
    }
    if (r->key_kind == KG_KEY_FIELDS) {
        size_t pos, n = kg_key_nfields(r);
        out(e, "static const uint32_t %s_key_map_[] = {", r->name);
        for (size_t i = 0; i < n; i++) {
            kg_key_field(r, i, &pos);
            out(e, "%s%u", i ? ", " : "", (unsigned)pos);
        }
        out(e, "};\n\n");
    }
    if (r->key_kind == KG_KEY_DERIVED)
        tpl(e, r, NULL,
            "/* Adapts the user's typed $R_derive_key to the runtime. */\n"
            "static int $R_derive_(const void *r, void *k)\n"
            "{\n"
            "    *($R_key *)k = $R_derive_key((const $R *)r);\n"
            "    return KIVIS_OK;\n"
            "}\n\n");
}

/* One declared change, by the names the store knows (a dropped record's
 * name is one already: it was never prefixed). */
static void source_change(void *ctx, enum kg_change_kind kind, const kg_record *r,
                          const char *table, const char *field, const char *was)
{
    emitter *e = ctx;
    out(e, "    {%s, \"%s\", ",
        kind == KG_CHANGE_RENAME ? "KIVIS_EVOLVE_RENAME" : "KIVIS_EVOLVE_DROP",
        r ? stored(e, table) : table);
    out(e, field ? "\"%s\", " : "%sNULL, ", field ? field : "");
    out(e, was ? "\"%s\"},\n" : "%sNULL},\n", was ? was : "");
}

/* The renames and drops the schema declares ([[was]], [[dropped]]):
 * <schema>_changes_, when there are any.  @return how many. */
static size_t source_changes(emitter *e, const kg_schema *s)
{
    size_t n = kg_each_change(s, NULL, NULL);
    if (!n)
        return 0;
    out(e, "static const kivis_schema_change %s_changes_[] = {\n", s->name);
    kg_each_change(s, source_change, e);
    out(e, "};\n\n");
    return n;
}

/* The typed migrations (kivis-gen --previous): for each, the old record's
 * descriptor, its table as the store has it, and the adapter from the
 * runtime's untyped call to the user's R_migrate; then
 * <schema>_migrations_, when there are any.  @return how many. */
static size_t source_migrations(emitter *e, const kg_schema *s)
{
    static const char *const kinds[] = {"0", "KIVIS_KEY_AUTO",
                                        "KIVIS_KEY_FIELDS", "KIVIS_KEY_DERIVED"};
    size_t n = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i], *old = r->migrates_from;
        if (!old)
            continue;
        n++;
        source_struct(e, old->name, "", 0, old);
        out(e, "static const kivis_table_desc %s_table_ = {\"%s\", &%s_desc_, "
               "&%s_key_desc_, %s, NULL, NULL, 0, NULL};\n\n",
            old->name, old->stored, old->name, r->name, kinds[r->key_kind]);
        tpl(e, r, NULL,
            "/* Adapts the user's typed $R_migrate to the runtime. */\n"
            "static int $R_migrate_(const void *old, void *out, void *ctx)\n"
            "{\n");
        out(e, "    return %s_migrate((const %s *)old, (%s *)out, ctx);\n}\n\n",
            r->name, old->name, r->name);
    }
    if (!n)
        return 0;
    out(e, "static const kivis_migration %s_migrations_[] = {\n", s->name);
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i];
        if (!r->migrates_from)
            continue;
        out(e, "    {&%s_table_, ", r->migrates_from->name);
        out_table(e, r);
        out(e, ", %s_migrate_},\n", r->name);
    }
    out(e, "};\n\n");
    return n;
}

static void source_table(emitter *e, const kg_record *r)
{
    static const char *const kinds[] = {"0", "KIVIS_KEY_AUTO",
                                        "KIVIS_KEY_FIELDS", "KIVIS_KEY_DERIVED"};
    out(e, "    {\"%s\", &%s_desc_, &%s_key_desc_, %s, ", stored(e, r->name),
        r->name, r->name, kinds[r->key_kind]);
    if (r->key_kind == KG_KEY_FIELDS)
        out(e, "%s_key_map_, NULL, ", r->name);
    else if (r->key_kind == KG_KEY_DERIVED)
        out(e, "NULL, %s_derive_, ", r->name);
    else
        out(e, "NULL, NULL, ");
    size_t n = kg_index_count(r);
    if (n)
        out(e, "%u, %s_indexes_},\n", (unsigned)n, r->name);
    else
        out(e, "0, NULL},\n");
}

static void emit_source(emitter *e)
{
    const kg_schema *s = e->s;
    out_banner(e);
    out(e, "#include \"%s.kivis.h\"\n\n#include <stddef.h>\n#include <string.h>\n\n",
        s->name);
    source_decoders(e);
    for (size_t i = 0; i < s->nenums; i++)
        source_enum(e, &s->enums[i]);
    for (size_t i = 0; i < e->norder; i++)
        source_node(e, e->order[i]);
    for (size_t i = 0; i < s->nrecords; i++) {
        source_struct(e, s->records[i].name, "", 0, &s->records[i]);
        source_table_parts(e, &s->records[i]);
    }
    if (s->nrecords) {
        out(e, "static const kivis_table_desc %s_tables_[] = {\n", s->name);
        for (size_t i = 0; i < s->nrecords; i++)
            source_table(e, &s->records[i]);
        out(e, "};\n\n");
    }
    size_t nchanges = source_changes(e, s);
    size_t nmigrations = source_migrations(e, s);
    out(e, "const kivis_schema_desc %s_schema = {\"%s\", %u, %s%s, %u, %s%s, "
           "%u, %s%s};\n",
        s->name, stored(e, s->name), (unsigned)s->nrecords,
        s->nrecords ? s->name : "NULL",
        s->nrecords ? "_tables_" : "", (unsigned)nchanges,
        nchanges ? s->name : "NULL", nchanges ? "_changes_" : "",
        (unsigned)nmigrations, nmigrations ? s->name : "NULL",
        nmigrations ? "_migrations_" : "");
}

/* ---- the source: value decoders -------------------------------------
 * One decoder per record (kivis_struct_desc.decode), specialised to its
 * fields: the steps of kivis/decode.h in the descriptor walk's order, into
 * the typed members.  It must agree with the walk (src/codec/value.c) on
 * every input, malformed ones included: fuzz_gen_decode checks that. */

/* The smallest and largest value of an integer kind, as C spells them. */
static const char *int_limit(kg_kind k, int max)
{
    static const char *const lim[][2] = {
        [KG_U16] = {"0", "UINT16_MAX"},  [KG_U32] = {"0", "UINT32_MAX"},
        [KG_U64] = {"0", "UINT64_MAX"},  [KG_I16] = {"INT16_MIN", "INT16_MAX"},
        [KG_I32] = {"INT32_MIN", "INT32_MAX"},
        [KG_I64] = {"INT64_MIN", "INT64_MAX"}};
    return lim[k][max];
}

/* The decoder of a struct or key node: "point_dec_". */
static const char *node_name(const kg_schema *s, size_t node)
{
    if (node < s->nstructs)
        return s->structs[node].name;
    return s->records[node - s->nstructs].name;
}

/* Statements that decode one element into the member o->NAME, or
 * o->NAME[j] when idx is "[j]", returning from the decoder when it fails. */
static void dec_elem(emitter *e, const kg_type *t, const char *name,
                     const char *idx, int keep_empty, const char *ind)
{
    switch (t->kind) {
    case KG_U8: case KG_I8:
        out(e, "%sconst uint8_t *c;\n%sif (kivis_dec_take(r, 1, &c))\n"
               "%s    return KIVIS_ECORRUPT;\n%smemcpy(&o->%s%s, c, 1);\n",
            ind, ind, ind, ind, name, idx);
        break;
    case KG_BOOL:
        out(e, "%sif (kivis_dec_bool(r, &o->%s%s))\n%s    return KIVIS_ECORRUPT;\n",
            ind, name, idx, ind);
        break;
    case KG_U16: case KG_U32: case KG_U64:
        out(e, "%suint64_t u;\n%sif (kivis_dec_uint(r, %s, &u))\n"
               "%s    return KIVIS_ECORRUPT;\n%so->%s%s = (%s)u;\n",
            ind, ind, int_limit(t->kind, 1), ind, ind, name, idx, elem_ctype(t));
        break;
    case KG_I16: case KG_I32: case KG_I64:
        out(e, "%sint64_t v;\n%sif (kivis_dec_int(r, %s, %s, &v))\n"
               "%s    return KIVIS_ECORRUPT;\n%so->%s%s = (%s)v;\n",
            ind, ind, int_limit(t->kind, 0), int_limit(t->kind, 1), ind, ind,
            name, idx, elem_ctype(t));
        break;
    case KG_F32: case KG_F64:
        out(e, "%suint64_t u;\n%sif (kivis_dec_le(r, %d, &u))\n"
               "%s    return KIVIS_ECORRUPT;\n",
            ind, ind, t->kind == KG_F32 ? 4 : 8, ind);
        if (t->kind == KG_F32)
            out(e, "%suint32_t bits = (uint32_t)u;\n%smemcpy(&o->%s%s, &bits, 4);\n",
                ind, ind, name, idx);
        else
            out(e, "%smemcpy(&o->%s%s, &u, 8);\n", ind, name, idx);
        break;
    case KG_ENUM:
        out(e, "%sint64_t v;\n%sif (kivis_dec_int(r, INT64_MIN, INT64_MAX, &v) ||\n"
               "%s    !%s_declared_(v))\n%s    return KIVIS_ECORRUPT;\n"
               "%so->%s%s = (%s)v;\n",
            ind, ind, ind, t->name, ind, ind, name, idx, t->name);
        break;
    case KG_STRING:
        out(e, "%sint rc = kivis_dec_string(r, &o->%s%s, a);\n", ind, name, idx);
        break;
    case KG_CHARS:
        out(e, "%sint rc = kivis_dec_chars(r, o->%s%s, %u);\n", ind, name, idx,
            (unsigned)t->chars);
        break;
    case KG_BYTES:
        out(e, "%sint rc = kivis_dec_bytes(r, &o->%s%s, %s, a);\n", ind, name,
            idx, keep_empty ? "true" : "false");
        break;
    case KG_STRUCT: case KG_KEY:
        out(e, "%sint rc = %s_dec_(r, &o->%s%s, a);\n", ind, t->name, name, idx);
        break;
    }
    if (t->kind >= KG_STRING)
        out(e, "%sif (rc)\n%s    return rc;\n", ind, ind);
}

/* A whole field: its tag when optional, then every element. */
static void dec_field(emitter *e, const kg_field *f, int optional)
{
    const kg_type *t = &f->type;
    const char *ind = optional ? "            " : "    ";
    if (optional)
        out(e, "    {\n        bool present;\n"
               "        if (kivis_dec_tag(r, &present))\n"
               "            return KIVIS_ECORRUPT;\n"
               "        if (present) {\n");
    if (optional && kg_has_presence_flag(f))
        out(e, "            o->has_%s = true;\n", f->name);
    if (t->array)
        out(e, "%sfor (size_t j = 0; j < %u; j++) {\n", ind, (unsigned)t->array);
    else
        out(e, "%s{\n", ind);
    dec_elem(e, t, f->name, t->array ? "[j]" : "",
             optional && !t->array && t->kind == KG_BYTES,
             optional ? "                " : "        ");
    out(e, "%s}\n", ind);
    if (optional)
        out(e, "        }\n    }\n");
}

/* Whether v is a declared value of the enum: what the walk checks. */
static void dec_enum(emitter *e, const kg_enum *en)
{
    out(e, "static inline int %s_declared_(int64_t v)\n{\n    return ", en->name);
    for (size_t i = 0; i < en->count; i++)
        out(e, "%sv == %s", i ? " || " : "", en->names[i]);
    out(e, "%s;\n}\n\n", en->count ? "" : "(void)v, 0");
}

/* A struct or key node's decoder: every field, none optional. */
static void dec_node(emitter *e, size_t node)
{
    const char *name = node_name(e->s, node);
    const char *suffix = node < e->s->nstructs ? "" : "_key";
    size_t n = node_nfields(e->s, node);
    out(e, "static inline int %s%s_dec_(kivis_reader *r, %s%s *o,\n"
           "    const kivis_allocator *a)\n{\n    (void)r, (void)o, (void)a;\n",
        name, suffix, name, suffix);
    for (size_t i = 0; i < n; i++)
        dec_field(e, node_field(e->s, node, i), 0);
    out(e, "    return KIVIS_OK;\n}\n\n");
}

/* The record's decoder: its first nfields fields (the others stay zero). */
static void dec_record(emitter *e, const kg_record *r)
{
    out(e, "static int %s_decode_(kivis_reader *r, void *rec, uint32_t nfields,\n"
           "    const kivis_allocator *a)\n{\n"
           "    %s *o = rec;\n    (void)r, (void)o, (void)nfields, (void)a;\n",
        r->name, r->name);
    for (size_t i = 0; i < r->nfields; i++) {
        out(e, "    if (nfields == %u)\n        return KIVIS_OK;\n", (unsigned)i);
        dec_field(e, &r->fields[i], (r->fields[i].attrs & KG_ATTR_OPTIONAL) != 0);
    }
    out(e, "    return KIVIS_OK;\n}\n\n");
}

/* The end of a struct desc: its decoder, a record's only. */
static void source_decoder_ref(emitter *e, const kg_record *r)
{
    if (r)
        out(e, "%s_decode_};\n\n", r->name);
    else
        out(e, "NULL};\n\n");
}

/* Whether a value of type t holds the struct or key `node`, or the enum
 * `en` (node (size_t)-1).  The checker rejects cycles. */
static int dec_holds(const kg_schema *s, const kg_type *t, size_t node,
                     const kg_enum *en)
{
    if (en && t->kind == KG_ENUM && t->enm == en)
        return 1;
    size_t n = type_node(s, t);
    if (n >= node_count(s))
        return 0;
    if (n == node)
        return 1;
    for (size_t i = 0, nf = node_nfields(s, n); i < nf; i++)
        if (dec_holds(s, &node_field(s, n, i)->type, node, en))
            return 1;
    return 0;
}

/* Whether some record's decoder calls that of node or en: only those are
 * emitted (clang warns of an unused static function). */
static int dec_used(const kg_schema *s, size_t node, const kg_enum *en)
{
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i], *old = r->migrates_from;
        for (size_t j = 0; j < r->nfields; j++)
            if (dec_holds(s, &r->fields[j].type, node, en))
                return 1;
        for (size_t j = 0; old && j < old->nfields; j++)
            if (dec_holds(s, &old->fields[j].type, node, en))
                return 1;
    }
    return 0;
}

static void source_decoders(emitter *e)
{
    const kg_schema *s = e->s;
    for (size_t i = 0; i < s->nenums; i++)
        if (dec_used(s, (size_t)-1, &s->enums[i]))
            dec_enum(e, &s->enums[i]);
    for (size_t i = 0; i < e->norder; i++)
        if (dec_used(s, e->order[i], NULL))
            dec_node(e, e->order[i]);
    for (size_t i = 0; i < s->nrecords; i++) {
        dec_record(e, &s->records[i]);
        if (s->records[i].migrates_from)
            dec_record(e, s->records[i].migrates_from);
    }
}

/* ---- files ---------------------------------------------------------- */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "<dir>/<schema><ext><tail>", malloc'd. */
static char *out_path(const char *dir, const char *schema, const char *ext,
                      const char *tail)
{
    size_t n = strlen(dir) + strlen(schema) + strlen(ext) + strlen(tail) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s%s", dir, schema, ext, tail);
    return p;
}

static void report(FILE *err, const char *what, const char *path)
{
    int saved = errno;
    if (err)
        fprintf(err, "kivis-gen: %s %s: %s\n", what, path, strerror(saved));
    errno = saved;
}

/* Write one file through a temporary name, renamed into place on success. */
static int write_file(emitter *e, const char *dir, const char *ext,
                      void (*emit)(emitter *), FILE *err)
{
    int rc = -1;
    char *path = out_path(dir, e->s->name, ext, "");
    char *tmp = out_path(dir, e->s->name, ext, ".tmp");
    if (!path || !tmp) {
        report(err, "cannot write", e->s->name);
        goto done;
    }
    e->out = fopen(tmp, "w");
    if (!e->out) {
        report(err, "cannot create", tmp);
        goto done;
    }
    emit(e);
    int bad = ferror(e->out);
    if (fclose(e->out) != 0 || bad) {
        if (bad && !errno)
            errno = EIO;
        report(err, "cannot write", tmp);
        remove(tmp);
    } else if (rename(tmp, path) != 0) {
        report(err, "cannot rename to", path);
        remove(tmp);
    } else {
        rc = 0;
    }
    e->out = NULL;
done:
    free(path);
    free(tmp);
    return rc;
}

int kg_emit(const kg_schema *s, const char *dir, void *err)
{
    emitter e;
    memset(&e, 0, sizeof e);
    e.s = s;
    e.source = base_name(s->loc.file ? s->loc.file : "?");
    size_t n = node_count(s);
    e.order = malloc((n ? n : 1) * sizeof *e.order);
    e.mark = calloc(n ? n : 1, 1);
    int rc = -1;
    if (!e.order || !e.mark) {
        report((FILE *)err, "out of memory for", s->name);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        visit(&e, i);
    rc = write_file(&e, dir, ".kivis.h", emit_header, (FILE *)err);
    if (rc == 0)
        rc = write_file(&e, dir, ".kivis.c", emit_source, (FILE *)err);
done:
    free(e.order);
    free(e.mark);
    return rc;
}
