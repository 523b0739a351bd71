/*
 * gen/parse.c - recursive-descent parser for the schema language
 * (grammar in docs/schema.md).
 *
 * The grammar has no nesting beyond struct { field } and attribute
 * argument lists, so recursion depth is bounded by the grammar itself,
 * whatever the input.  After a syntax error the parser reports once and
 * resynchronises: inside a struct at the next `;` or `}`, at the top level
 * after the declaration's closing `};`.  Names are resolved later, by
 * kg_check, so declarations may appear in any order.
 */
#include "front.h"

#include <stdlib.h>
#include <string.h>

enum {
    A_KEY, A_INDEX, A_UNIQUE, A_EMBEDDED, A_DERIVED, A_REFERENCES, A_OPTIONAL,
    A_WAS, A_DROPPED, A_COUNT
};

static const char *const attr_names[A_COUNT] = {"key", "index", "unique",
                                                "embedded", "derived_key",
                                                "references", "optional",
                                                "was", "dropped"};

/* The actions of [[references(...)]], at their kg_action. */
static const char *const action_names[] = {NULL, "restrict", "cascade", "nullify"};

typedef struct field_vec {
    kg_field *v;
    size_t n, cap;
} field_vec;

/* The attributes written before a declaration. */
/* Names listed in an attribute's parentheses. */
typedef struct name_vec {
    char **v;
    size_t n;
} name_vec;

typedef struct attrs {
    int seen[A_COUNT];
    kg_loc loc[A_COUNT];
    field_vec derived;
    kg_action action; /* of [[references(...)]] */
    name_vec was;     /* of [[was(old)]]: one name */
    name_vec dropped; /* of [[dropped(f, ...)]] */
} attrs;

typedef struct parser {
    kg_diag *d;
    kg_lexer lx;
    kg_token tok;
    kg_schema *s;
    size_t enums_cap, structs_cap, records_cap;
    int depth;      /* braces the current declaration has open */
    kg_loc prev_end; /* just after the previous token */
    kg_loc type_loc; /* of the type parse_type read last */
} parser;

/* ---- ownership ---------------------------------------------------------- */

static void free_fields(kg_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].name);
        free(f[i].type.name);
        free(f[i].was);
    }
    free(f);
}

static void free_enum(kg_enum *e)
{
    for (size_t i = 0; i < e->count; i++)
        free(e->names[i]);
    free(e->names);
    free(e->values);
    free(e->name);
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Free what an attribute list holds when nothing took it. */
static void free_attrs(attrs *a)
{
    free_fields(a->derived.v, a->derived.n);
    free_names(a->was.v, a->was.n);
    free_names(a->dropped.v, a->dropped.n);
}

void kg_schema_free(kg_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nenums; i++)
        free_enum(&s->enums[i]);
    for (size_t i = 0; i < s->nstructs; i++) {
        free(s->structs[i].name);
        free_fields(s->structs[i].fields, s->structs[i].nfields);
    }
    for (size_t i = 0; i < s->nrecords; i++) {
        free(s->records[i].name);
        free(s->records[i].was);
        free(s->records[i].stored);
        free_names(s->records[i].dropped, s->records[i].ndropped);
        free_fields(s->records[i].fields, s->records[i].nfields);
        free_fields(s->records[i].derived, s->records[i].nderived);
    }
    free_names(s->dropped, s->ndropped);
    free(s->enums);
    free(s->structs);
    free(s->records);
    free(s->name);
    free(s->prefix);
    kg_schema_free(s->previous);
    free(s);
}

/* Make room for one more element of `size` bytes in *arr. */
static int reserve(parser *p, void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *a = ncap <= SIZE_MAX / size ? realloc(*arr, ncap * size) : NULL;
    if (!a) {
        kg_oom(p->d);
        return -1;
    }
    *arr = a;
    *cap = ncap;
    return 0;
}

static int push_field(parser *p, field_vec *v, kg_field *f)
{
    if (reserve(p, (void **)&v->v, &v->cap, v->n, sizeof *v->v) < 0) {
        free(f->name);
        free(f->type.name);
        return -1;
    }
    v->v[v->n++] = *f;
    return 0;
}

/* ---- tokens ------------------------------------------------------------- */

static void next(parser *p)
{
    p->prev_end = p->tok.loc;
    p->prev_end.col += (int)p->tok.len;
    p->tok = kg_lex_next(&p->lx);
}

static int is(const parser *p, kg_tok_kind k)
{
    return p->tok.kind == k;
}

static int is_word(const parser *p, const char *w)
{
    return is(p, KG_TOK_IDENT) && p->tok.len == strlen(w) &&
           memcmp(p->tok.text, w, p->tok.len) == 0;
}

static int accept(parser *p, kg_tok_kind k)
{
    if (!is(p, k))
        return 0;
    if (k == KG_TOK_LBRACE)
        p->depth++;
    else if (k == KG_TOK_RBRACE && p->depth > 0)
        p->depth--;
    next(p);
    return 1;
}

static const char *kind_text(kg_tok_kind k)
{
    static const char *const text[] = {
        "end of file", "a name", "an integer", "';'", "','", "'{'",
        "'}'",         "'('",    "')'",        "'['", "']'", "'='",
        "'*'",         "'-'"};
    return text[k];
}

static int fail_at(parser *p, kg_loc loc, const char *expected,
                   const char *context)
{
    char found[48];
    kg_tok_describe(&p->tok, found, sizeof found);
    kg_error(p->d, loc, "expected %s%s%s, found %s", expected,
             *context ? " " : "", context, found);
    return -1;
}

/* Report "expected X <context>, found Y" at the current token. */
static int fail(parser *p, const char *expected, const char *context)
{
    return fail_at(p, p->tok.loc, expected, context);
}

/* A missing ';' is shown where it belongs: right after the last token. */
static int fail_semi(parser *p, const char *context)
{
    return fail_at(p, p->prev_end, "';'", context);
}

static int expect(parser *p, kg_tok_kind k, const char *context)
{
    return accept(p, k) ? 0 : fail(p, kind_text(k), context);
}

static char *take_name(parser *p)
{
    char *s = malloc(p->tok.len + 1);
    if (!s) {
        kg_oom(p->d);
        return NULL;
    }
    memcpy(s, p->tok.text, p->tok.len);
    s[p->tok.len] = '\0';
    next(p);
    return s;
}

/* ---- recovery ----------------------------------------------------------- */

/* Skip the rest of a broken field: through `;`, or up to the struct's `}`. */
static void sync_field(parser *p)
{
    while (!is(p, KG_TOK_EOF) && !is(p, KG_TOK_RBRACE)) {
        if (accept(p, KG_TOK_SEMI))
            return;
        next(p);
    }
}

/* Skip the rest of a broken declaration, through its closing `};`. */
static void sync_decl(parser *p)
{
    int skipped = 0;
    while (!is(p, KG_TOK_EOF)) {
        if (p->depth == 0 && skipped &&
            (is_word(p, "struct") || is_word(p, "enum")))
            return;
        if (p->depth == 0 && accept(p, KG_TOK_SEMI))
            return;
        if (is(p, KG_TOK_RBRACE) && p->depth <= 1) {
            p->depth = 0;
            next(p);
            accept(p, KG_TOK_SEMI);
            return;
        }
        if (!accept(p, KG_TOK_LBRACE) && !accept(p, KG_TOK_RBRACE))
            next(p);
        skipped = 1;
    }
}

/* Skip a parenthesised argument list the parser does not use. */
static void skip_parens(parser *p)
{
    size_t open = 0;
    do {
        if (is(p, KG_TOK_LPAREN))
            open++;
        else if (is(p, KG_TOK_RPAREN))
            open--;
        next(p);
    } while (open > 0 && !is(p, KG_TOK_EOF));
}

/* ---- types and declarators ---------------------------------------------- */

static const struct builtin {
    const char *name;
    kg_kind kind;
} builtins[] = {
    {"uint8_t", KG_U8}, {"uint16_t", KG_U16}, {"uint32_t", KG_U32},
    {"uint64_t", KG_U64}, {"int8_t", KG_I8}, {"int16_t", KG_I16},
    {"int32_t", KG_I32}, {"int64_t", KG_I64}, {"bool", KG_BOOL},
    {"float", KG_F32}, {"double", KG_F64}, {"kivis_bytes", KG_BYTES},
};

static kg_kind builtin_kind(const parser *p)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (is_word(p, builtins[i].name))
            return builtins[i].kind;
    return 0;
}

/*
 * type = "enum" NAME | "struct" NAME | "char" | builtin | NAME.
 * A bare NAME keeps kind 0 and `enum X` / `struct X` keep a NULL target:
 * kg_check resolves them once every declaration is known.
 */
static int parse_type(parser *p, kg_type *t, int *is_char)
{
    memset(t, 0, sizeof *t);
    *is_char = 0;
    p->type_loc = p->tok.loc;
    if (!is(p, KG_TOK_IDENT))
        return fail(p, "a type", "");
    if (is_word(p, "enum") || is_word(p, "struct")) {
        t->kind = is_word(p, "enum") ? KG_ENUM : KG_STRUCT;
        next(p);
        p->type_loc = p->tok.loc; /* messages point at the name */
        if (!is(p, KG_TOK_IDENT))
            return fail(p, t->kind == KG_ENUM ? "an enum name" : "a struct name",
                        "");
        return (t->name = take_name(p)) ? 0 : -1;
    }
    if (is_word(p, "char")) {
        *is_char = 1;
        t->kind = KG_STRING;
        next(p);
        return 0;
    }
    if ((t->kind = builtin_kind(p)) != 0) {
        next(p);
        return 0;
    }
    return (t->name = take_name(p)) ? 0 : -1;
}

/* "[N]": @return N, or 1 after reporting a size out of range. */
static int parse_length(parser *p, int is_char, uint32_t *out)
{
    next(p); /* [ */
    kg_token n = p->tok;
    if (expect(p, KG_TOK_INT, "as the array size") < 0 ||
        expect(p, KG_TOK_RBRACKET, "after the array size") < 0)
        return -1;
    *out = 1;
    if (n.bad)
        return 0;
    if (n.value > KG_MAX_ARRAY)
        kg_error(p->d, n.loc, "array size %llu is too large (at most %u)",
                 (unsigned long long)n.value, KG_MAX_ARRAY);
    else if (is_char && n.value < 2)
        kg_error(p->d, n.loc,
                 "char array size must be at least 2 (one character and "
                 "the terminating NUL)");
    else if (n.value == 0)
        kg_error(p->d, n.loc, "array size must be at least 1");
    else
        *out = (uint32_t)n.value;
    return 0;
}

/* Settle what `char` means from the declarator around it. */
static void settle_char(parser *p, kg_field *f, int star, uint32_t len)
{
    if (star) {
        f->type.kind = KG_STRING;
        f->type.array = len;
    } else if (len) {
        f->type.kind = KG_CHARS;
        f->type.chars = len;
    } else {
        kg_error(p->d, f->loc,
                 "char field '%s' needs a size: char %s[N] for an inline "
                 "string, or char *%s for an owned one",
                 f->name, f->name, f->name);
        f->type.kind = KG_STRING;
    }
}

static char *copy_name(parser *p, const char *s)
{
    if (!s)
        return NULL;
    char *c = malloc(strlen(s) + 1);
    if (!c)
        kg_oom(p->d);
    else
        strcpy(c, s);
    return c;
}

/* declarator = ["*"] NAME ["[" INT "]"] */
static int parse_declarator(parser *p, const kg_type *base, int is_char,
                            unsigned flags, field_vec *v)
{
    kg_field f = {0};
    kg_loc star_loc = p->tok.loc;
    int star = accept(p, KG_TOK_STAR);
    uint32_t len = 0;
    if (!is(p, KG_TOK_IDENT))
        return fail(p, "a field name", "");
    f.loc = p->tok.loc;
    f.type = *base;
    f.attrs = flags;
    if (!(f.name = take_name(p)) ||
        (base->name && !(f.type.name = copy_name(p, base->name))))
        goto fail;
    if (f.type.name)
        kg_mark_loc(p->d, f.type.name, p->type_loc);
    if (is(p, KG_TOK_LBRACKET) && parse_length(p, is_char, &len) < 0)
        goto fail;
    if (is(p, KG_TOK_LBRACKET)) {
        kg_error(p->d, p->tok.loc,
                 "multi-dimensional arrays are not supported");
        goto fail;
    }
    if (is_char) {
        settle_char(p, &f, star, len);
    } else {
        if (star)
            kg_error(p->d, star_loc,
                     "pointer field '%s': only 'char *' (a string) is "
                     "supported", f.name);
        f.type.array = len;
    }
    return push_field(p, v, &f);
fail:
    free(f.name);
    free(f.type.name);
    return -1;
}

/* ---- attributes --------------------------------------------------------- */

static int attr_id(const parser *p)
{
    for (int i = 0; i < A_COUNT; i++)
        if (is_word(p, attr_names[i]))
            return i;
    return -1;
}

/* "(" field { "," field } ")": the fields of a derived key. */
static int parse_derived_fields(parser *p, field_vec *v)
{
    next(p); /* ( */
    if (is(p, KG_TOK_RPAREN)) {
        kg_error(p->d, p->tok.loc, "derived_key needs at least one field");
        next(p);
        return 0;
    }
    do {
        kg_type t;
        int is_char;
        if (is(p, KG_TOK_LBRACKET)) {
            kg_error(p->d, p->tok.loc,
                     "attributes are not allowed on derived_key fields");
            return -1;
        }
        int r = parse_type(p, &t, &is_char);
        if (r == 0)
            r = parse_declarator(p, &t, is_char, 0, v);
        free(t.name);
        if (r < 0)
            return -1;
    } while (accept(p, KG_TOK_COMMA));
    return expect(p, KG_TOK_RPAREN, "to close derived_key(");
}

/* "(" ACTION ")": the action of [[references(...)]]. */
static int parse_action(parser *p, attrs *a)
{
    next(p); /* ( */
    for (int i = KG_REF_RESTRICT; i <= KG_REF_NULLIFY; i++)
        if (is_word(p, action_names[i]))
            a->action = (kg_action)i;
    if (a->action) {
        next(p);
        return expect(p, KG_TOK_RPAREN, "to close references(");
    }
    /* The field is still sound: report, skip the argument, go on. */
    char found[48];
    kg_tok_describe(&p->tok, found, sizeof found);
    kg_error(p->d, p->tok.loc,
             "references takes restrict, cascade or nullify, not %s", found);
    while (!is(p, KG_TOK_RPAREN) && !is(p, KG_TOK_EOF) && !is(p, KG_TOK_RBRACKET))
        next(p);
    accept(p, KG_TOK_RPAREN);
    return 0;
}

/* "(" NAME { "," NAME } ")": the names of [[was(...)]], [[dropped(...)]];
 * was takes one. */
/* Append `name` (taken; NULL: take_name ran out of memory) to the n names
 * of *v, which grow by one: these lists hold a name or two. */
static int push_name(parser *p, char ***v, size_t *n, char *name)
{
    char **grown = name ? realloc(*v, (*n + 1) * sizeof **v) : NULL;
    if (!grown) {
        free(name);
        kg_oom(p->d);
        return -1;
    }
    *v = grown;
    (*v)[(*n)++] = name;
    return 0;
}

static int parse_names(parser *p, name_vec *v, int id)
{
    next(p); /* ( */
    do {
        if (!is(p, KG_TOK_IDENT))
            return fail(p, "a name", id == A_WAS ? "in was(...)" : "in dropped(...)");
        if (push_name(p, &v->v, &v->n, take_name(p)) < 0)
            return -1;
    } while (id == A_DROPPED && accept(p, KG_TOK_COMMA));
    return expect(p, KG_TOK_RPAREN, id == A_WAS ? "to close was(" : "to close dropped(");
}

static int parse_attr_args(parser *p, attrs *a, int id, int dup)
{
    if ((id == A_WAS || id == A_DROPPED) && !dup)
        return parse_names(p, id == A_WAS ? &a->was : &a->dropped, id);
    if (id == A_REFERENCES && !dup)
        return parse_action(p, a);
    if (id == A_WAS || id == A_DROPPED) { /* a duplicate, reported */
        skip_parens(p);
        return 0;
    }
    if (id == A_DERIVED && !dup)
        return parse_derived_fields(p, &a->derived);
    if (id == A_DERIVED) {
        field_vec ignored = {0};
        int r = parse_derived_fields(p, &ignored);
        free_fields(ignored.v, ignored.n);
        return r;
    }
    if (id >= 0)
        kg_error(p->d, p->tok.loc, "attribute '%s' takes no arguments",
                 attr_names[id]);
    skip_parens(p);
    return 0;
}

static int parse_attr(parser *p, attrs *a)
{
    kg_loc loc = p->tok.loc;
    int id = attr_id(p);
    int dup = id >= 0 && a->seen[id];
    if (!is(p, KG_TOK_IDENT))
        return fail(p, "an attribute name", "");
    if (id < 0)
        kg_error(p->d, loc, "unknown attribute '%.*s'",
                 (int)(p->tok.len > 40 ? 40 : p->tok.len), p->tok.text);
    else if (dup)
        kg_error(p->d, loc, "duplicate attribute '%s'", attr_names[id]);
    next(p);
    if (is(p, KG_TOK_LPAREN)) {
        if (parse_attr_args(p, a, id, dup) < 0)
            return -1;
    } else if (id == A_DERIVED) {
        kg_error(p->d, loc,
                 "derived_key needs the key's fields: "
                 "[[derived_key(T name, ...)]]");
    } else if (id == A_REFERENCES) {
        kg_error(p->d, loc,
                 "references needs an action: [[references(restrict)]], "
                 "[[references(cascade)]] or [[references(nullify)]]");
    } else if (id == A_WAS) {
        kg_error(p->d, loc, "was needs the old name: [[was(old_name)]]");
    }
    if (id >= 0 && !dup) {
        a->seen[id] = 1;
        a->loc[id] = loc;
    }
    return 0;
}

/* attribute_spec = "[[" attribute { "," attribute } "]]" */
static int parse_attr_spec(parser *p, attrs *a)
{
    next(p);
    if (!is(p, KG_TOK_LBRACKET))
        return fail(p, "'[[' to start an attribute list", "");
    next(p);
    do {
        if (parse_attr(p, a) < 0)
            return -1;
    } while (accept(p, KG_TOK_COMMA));
    if (expect(p, KG_TOK_RBRACKET, "to close the attribute list") < 0 ||
        expect(p, KG_TOK_RBRACKET, "to close the attribute list") < 0)
        return -1;
    return 0;
}

static int parse_attrs(parser *p, attrs *a)
{
    while (is(p, KG_TOK_LBRACKET))
        if (parse_attr_spec(p, a) < 0)
            return -1;
    return 0;
}

/* Report every attribute in `a` from first to last that `allowed` lacks. */
static void reject_attrs(parser *p, const attrs *a, unsigned allowed,
                         const char *where)
{
    for (int i = 0; i < A_COUNT; i++)
        if (a->seen[i] && !(allowed & (1u << i)))
            kg_error(p->d, a->loc[i], "attribute '%s' cannot be used %s",
                     attr_names[i], where);
}

/* ---- fields, structs, enums --------------------------------------------- */

/* field = { attribute_spec } type declarator { "," declarator } ";" */
static int parse_field(parser *p, field_vec *v, int embedded)
{
    attrs a = {0};
    kg_type t = {0};
    int is_char, r = parse_attrs(p, &a);
    const unsigned field_attrs =
        1u << A_KEY | 1u << A_INDEX | 1u << A_UNIQUE | 1u << A_REFERENCES |
        1u << A_OPTIONAL | 1u << A_WAS;
    size_t first = v->n;
    if (r == 0) {
        reject_attrs(p, &a, embedded ? 0 : field_attrs,
                     embedded ? "in an [[embedded]] struct (it has no table)"
                              : "on a field");
        r = parse_type(p, &t, &is_char);
    }
    unsigned flags = (a.seen[A_KEY] ? KG_ATTR_KEY : 0) |
                     (a.seen[A_INDEX] ? KG_ATTR_INDEX : 0) |
                     (a.seen[A_UNIQUE] ? KG_ATTR_UNIQUE | KG_ATTR_INDEX : 0) |
                     (a.seen[A_OPTIONAL] ? KG_ATTR_OPTIONAL : 0);
    if (embedded)
        flags = 0;
    while (r == 0) {
        r = parse_declarator(p, &t, is_char, flags, v);
        if (r < 0 || !accept(p, KG_TOK_COMMA))
            break;
    }
    for (size_t i = first; !embedded && i < v->n; i++) {
        v->v[i].action = a.action;
        v->v[i].action_loc = a.loc[A_REFERENCES];
    }
    if (a.was.n && v->n == first + 1 && !embedded) {
        v->v[first].was = a.was.v[0];
        a.was.n = 0;
    } else if (a.was.n && r == 0) {
        kg_error(p->d, a.loc[A_WAS], "[[was(...)]] names one field's old name: "
                 "declare the field alone");
    }
    free(t.name);
    free_attrs(&a);
    if (r == 0 && !accept(p, KG_TOK_SEMI)) {
        char ctx[80];
        snprintf(ctx, sizeof ctx, "after field '%.40s'", v->v[v->n - 1].name);
        r = fail_semi(p, ctx);
    }
    return r;
}

static int add_struct(parser *p, char *name, kg_loc loc, field_vec *v)
{
    kg_schema *s = p->s;
    if (reserve(p, (void **)&s->structs, &p->structs_cap, s->nstructs,
                sizeof *s->structs) < 0)
        return -1;
    s->structs[s->nstructs++] = (kg_struct){name, loc, v->n, v->v};
    return 0;
}

static int add_record(parser *p, char *name, kg_loc loc, field_vec *v,
                      attrs *a)
{
    kg_schema *s = p->s;
    if (reserve(p, (void **)&s->records, &p->records_cap, s->nrecords,
                sizeof *s->records) < 0)
        return -1;
    kg_record *r = &s->records[s->nrecords++];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->loc = loc;
    r->nfields = v->n;
    r->fields = v->v;
    r->key_kind = a->seen[A_DERIVED] ? KG_KEY_DERIVED : KG_KEY_AUTO;
    r->nderived = a->derived.n;
    r->derived = a->derived.v;
    a->derived = (field_vec){0};
    r->was = a->was.n ? a->was.v[0] : NULL;
    a->was.n = 0;
    r->ndropped = a->dropped.n;
    r->dropped = a->dropped.v;
    a->dropped = (name_vec){0};
    return 0;
}

/* `[[dropped]] struct NAME;`: a stored record to delete, NAME taken. */
static int add_dropped_record(parser *p, char *name)
{
    if (push_name(p, &p->s->dropped, &p->s->ndropped, name) < 0)
        return -1;
    if (!accept(p, KG_TOK_SEMI))
        fail_semi(p, "after the dropped record");
    return 0;
}

/* Close a declaration: "}" ";". A missing ';' is reported, not fatal. */
static int parse_closing(parser *p, const char *what, const char *name)
{
    char ctx[80];
    snprintf(ctx, sizeof ctx, "to close %s '%.40s'", what, name);
    if (expect(p, KG_TOK_RBRACE, ctx) < 0)
        return -1;
    snprintf(ctx, sizeof ctx, "after %s '%.40s'", what, name);
    if (!accept(p, KG_TOK_SEMI))
        fail_semi(p, ctx);
    return 0;
}

static void parse_struct_body(parser *p, field_vec *v, int embedded)
{
    while (!is(p, KG_TOK_RBRACE) && !is(p, KG_TOK_EOF) &&
           !kg_diag_full(p->d))
        if (parse_field(p, v, embedded) < 0)
            sync_field(p);
}

/* struct = { attribute_spec } "struct" NAME "{" { field } "}" ";" */
static int parse_struct(parser *p, attrs *a)
{
    int embedded = a->seen[A_EMBEDDED], lost = p->d->lost_decls;
    field_vec v = {0};
    next(p); /* struct */
    p->d->lost_decls = 1; /* until the struct is added */
    if (!is(p, KG_TOK_IDENT))
        return fail(p, "a struct name", "");
    kg_loc loc = p->tok.loc;
    char *name = take_name(p);
    if (name && a->seen[A_DROPPED] && !a->dropped.n && is(p, KG_TOK_SEMI)) {
        reject_attrs(p, a, 1u << A_DROPPED, "on a dropped record");
        p->d->lost_decls = lost;
        return add_dropped_record(p, name);
    }
    if (!name || expect(p, KG_TOK_LBRACE, "after the struct name") < 0) {
        free(name);
        return -1;
    }
    reject_attrs(p, a, 1u << A_EMBEDDED | 1u << A_DERIVED |
                           (embedded ? 0 : 1u << A_WAS | 1u << A_DROPPED),
                 embedded ? "on an [[embedded]] struct" : "on a struct");
    if (a->seen[A_DROPPED] && !a->dropped.n)
        kg_error(p->d, a->loc[A_DROPPED],
                 "[[dropped]] without names declares a dropped record: "
                 "[[dropped]] struct %s; (fields: [[dropped(f, ...)]])", name);
    if (embedded && a->seen[A_DERIVED])
        kg_error(p->d, a->loc[A_DERIVED],
                 "an [[embedded]] struct has no key: derived_key cannot be "
                 "used on it");
    parse_struct_body(p, &v, embedded);
    if (!p->d->oom && v.n == 0 && is(p, KG_TOK_RBRACE))
        kg_error(p->d, loc, "struct '%s' has no fields", name);
    int r = parse_closing(p, "struct", name);
    if ((embedded ? add_struct(p, name, loc, &v)
                  : add_record(p, name, loc, &v, a)) < 0) {
        free(name);
        free_fields(v.v, v.n);
        return -1;
    }
    p->d->lost_decls = lost;
    return r;
}

static int push_enumerator(parser *p, kg_enum *e, size_t *cap, char *name,
                           kg_loc loc, int64_t value)
{
    if (*cap == e->count) {
        size_t ncap = *cap ? *cap * 2 : 8;
        char **names = realloc(e->names, ncap * sizeof *names);
        if (names)
            e->names = names;
        int64_t *values = names ? realloc(e->values, ncap * sizeof *values)
                                : NULL;
        if (!values) {
            free(name);
            kg_oom(p->d);
            return -1;
        }
        e->values = values;
        *cap = ncap;
    }
    kg_mark_loc(p->d, name, loc);
    e->names[e->count] = name;
    e->values[e->count++] = value;
    return 0;
}

/* "=" ["-"] INT: report values outside int32_t, keeping 0 instead. */
static int parse_enum_value(parser *p, int64_t *value)
{
    kg_loc loc = p->tok.loc;
    int neg = accept(p, KG_TOK_MINUS);
    kg_token n = p->tok;
    if (expect(p, KG_TOK_INT, "as the enumerator's value") < 0)
        return -1;
    *value = 0;
    if (n.bad)
        return 0;
    if (n.value > (neg ? (uint64_t)INT32_MAX + 1 : (uint64_t)INT32_MAX))
        kg_error(p->d, neg ? loc : n.loc,
                 "enum value %s%llu is out of range for int32_t",
                 neg ? "-" : "", (unsigned long long)n.value);
    else
        *value = neg ? -(int64_t)n.value : (int64_t)n.value;
    return 0;
}

static int parse_enumerator(parser *p, kg_enum *e, size_t *cap)
{
    if (!is(p, KG_TOK_IDENT))
        return fail(p, "an enumerator name", "");
    kg_loc loc = p->tok.loc;
    char *name = take_name(p);
    int64_t value = e->count ? e->values[e->count - 1] + 1 : 0;
    if (!name)
        return -1;
    if (accept(p, KG_TOK_EQUALS)) {
        if (parse_enum_value(p, &value) < 0) {
            free(name);
            return -1;
        }
    } else if (value > INT32_MAX) {
        kg_error(p->d, loc, "value of '%s' (previous + 1) is out of range "
                 "for int32_t", name);
        value = 0;
    }
    return push_enumerator(p, e, cap, name, loc, value);
}

static int parse_enum_body(parser *p, kg_enum *e)
{
    size_t cap = 0;
    if (is(p, KG_TOK_RBRACE))
        kg_error(p->d, e->loc, "enum '%s' has no enumerators", e->name);
    while (!is(p, KG_TOK_RBRACE)) {
        if (parse_enumerator(p, e, &cap) < 0)
            return -1;
        if (!accept(p, KG_TOK_COMMA))
            break;
    }
    return parse_closing(p, "enum", e->name);
}

/* enum = "enum" NAME "{" enumerator { "," enumerator } [","] "}" ";" */
static int parse_enum(parser *p)
{
    kg_enum e = {0};
    next(p); /* enum */
    if (!is(p, KG_TOK_IDENT)) {
        p->d->lost_decls = 1;
        return fail(p, "an enum name", "");
    }
    e.loc = p->tok.loc;
    if (!(e.name = take_name(p)) ||
        expect(p, KG_TOK_LBRACE, "after the enum name") < 0) {
        p->d->lost_decls = 1;
        free_enum(&e);
        return -1;
    }
    /* Keep an enum whose body is broken: its name is still declared. */
    int r = parse_enum_body(p, &e);
    if (reserve(p, (void **)&p->s->enums, &p->enums_cap, p->s->nenums,
                sizeof *p->s->enums) < 0) {
        free_enum(&e);
        return -1;
    }
    p->s->enums[p->s->nenums++] = e;
    return r;
}

/* ---- the file ----------------------------------------------------------- */

/* "schema" NAME ";" */
static int parse_schema_line(parser *p)
{
    if (!is_word(p, "schema")) {
        kg_error(p->d, p->tok.loc,
                 "expected 'schema NAME;' as the first declaration");
        return 0;
    }
    next(p);
    if (!is(p, KG_TOK_IDENT))
        return fail(p, "the schema's name", "after 'schema'");
    p->s->loc = p->tok.loc;
    if (!(p->s->name = take_name(p)))
        return -1;
    if (!accept(p, KG_TOK_SEMI))
        fail_semi(p, "after the schema name");
    return 0;
}

static int parse_decl(parser *p)
{
    attrs a = {0};
    int r = parse_attrs(p, &a);
    if (r < 0) {
        p->d->lost_decls = 1; /* the declaration after it is lost */
    } else if (is_word(p, "struct")) {
        r = parse_struct(p, &a);
    } else if (is_word(p, "enum")) {
        reject_attrs(p, &a, 0, "on an enum");
        r = parse_enum(p);
    } else if (is_word(p, "schema")) {
        kg_error(p->d, p->tok.loc,
                 "'schema' must appear once, as the first declaration");
        r = -1;
    } else {
        r = fail(p, "a struct or enum declaration", "");
    }
    free_attrs(&a);
    return r;
}

kg_schema *kg_parse(kg_diag *d)
{
    parser p = {0};
    p.d = d;
    kg_lex_init(&p.lx, d);
    if (!(p.s = calloc(1, sizeof *p.s))) {
        kg_oom(d);
        return NULL;
    }
    next(&p);
    if (parse_schema_line(&p) < 0)
        sync_decl(&p);
    while (!is(&p, KG_TOK_EOF) && !kg_diag_full(d)) {
        if (parse_decl(&p) < 0)
            sync_decl(&p);
        p.depth = 0;
    }
    if (d->oom) {
        kg_schema_free(p.s);
        return NULL;
    }
    return p.s;
}
