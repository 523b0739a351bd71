/*
 * tools/notation.c - the value notation of the kivis tool: what `dump`
 * prints and what `get` and `find` parse back.
 *
 *   numbers      31, -7, 2.5, inf, nan
 *   bool         true, false
 *   enums        TOY_MOUSE (or the number, when not a declared name)
 *   strings      "Bob \"B\"\n"  with \" \\ \n \r \t \xNN
 *   bytes        x'dead0001'
 *   arrays       [1, 2, 3]
 *   structs      {x: 1, y: 2}, keys positionally {TOY_MOUSE, 2}
 *   foreign keys user_key{3}
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- printing ------------------------------------------------------------ */

bool cli_is_key_type(const kivis_schema_desc *schema, const char *name)
{
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 4, "_key"))
        return false;
    for (uint32_t i = 0; i < schema->ntables; i++)
        if (strlen(schema->tables[i].name) == n - 4 &&
            !strncmp(schema->tables[i].name, name, n - 4))
            return true;
    return false;
}

static void print_string(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(out, "\\x%02x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}

static void print_enum(FILE *out, const kivis_enum_desc *e, int32_t v)
{
    for (uint32_t i = 0; i < e->count; i++)
        if (e->values[i] == v) {
            fputs(e->names[i], out);
            return;
        }
    fprintf(out, "%" PRId32, v);
}

typedef union scalar {
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; int8_t i8;
    int16_t i16; int32_t i32; int64_t i64; float f32; double f64;
    bool b; char *s; kivis_bytes bytes;
} scalar;

/* One element of field f at p. */
static void print_element(FILE *out, const kivis_schema_desc *schema,
                          const kivis_field *f, const char *p)
{
    scalar v;
    if (f->kind != KIVIS_CHARS && f->kind != KIVIS_STRUCT)
        memcpy(&v, p, f->size);
    switch (f->kind) {
    case KIVIS_U8: fprintf(out, "%" PRIu8, v.u8); break;
    case KIVIS_U16: fprintf(out, "%" PRIu16, v.u16); break;
    case KIVIS_U32: fprintf(out, "%" PRIu32, v.u32); break;
    case KIVIS_U64: fprintf(out, "%" PRIu64, v.u64); break;
    case KIVIS_I8: fprintf(out, "%" PRId8, v.i8); break;
    case KIVIS_I16: fprintf(out, "%" PRId16, v.i16); break;
    case KIVIS_I32: fprintf(out, "%" PRId32, v.i32); break;
    case KIVIS_I64: fprintf(out, "%" PRId64, v.i64); break;
    case KIVIS_BOOL: fputs(v.b ? "true" : "false", out); break;
    case KIVIS_F32: fprintf(out, "%.9g", (double)v.f32); break;
    case KIVIS_F64: fprintf(out, "%.17g", v.f64); break;
    case KIVIS_ENUM: print_enum(out, f->enm, v.i32); break;
    case KIVIS_STRING: print_string(out, v.s ? v.s : "", v.s ? strlen(v.s) : 0); break;
    case KIVIS_CHARS: print_string(out, p, strnlen(p, f->size)); break;
    case KIVIS_BYTES:
        fputs("x'", out);
        for (size_t i = 0; i < v.bytes.len; i++)
            fprintf(out, "%02x", v.bytes.data[i]);
        fputc('\'', out);
        break;
    case KIVIS_STRUCT: {
        bool fk = cli_is_key_type(schema, f->type->name);
        if (fk)
            fputs(f->type->name, out);
        cli_print_struct(out, schema, f->type, p, fk);
        break;
    }
    default: fputs("?", out);
    }
}

void cli_print_field(FILE *out, const kivis_schema_desc *schema, const kivis_field *f,
                     const void *base)
{
    const char *p = (const char *)base + f->offset;
    if (!f->count) {
        print_element(out, schema, f, p);
        return;
    }
    fputc('[', out);
    for (uint32_t i = 0; i < f->count; i++) {
        fputs(i ? ", " : "", out);
        print_element(out, schema, f, p + i * f->size);
    }
    fputc(']', out);
}

void cli_print_struct(FILE *out, const kivis_schema_desc *schema,
                      const kivis_struct_desc *sd, const void *p, bool positional)
{
    fputc('{', out);
    for (uint32_t i = 0; i < sd->nfields; i++) {
        fputs(i ? ", " : "", out);
        if (!positional)
            fprintf(out, "%s: ", sd->fields[i].name);
        if (kivis_field_present(sd, i, p))
            cli_print_field(out, schema, &sd->fields[i], p);
        else
            fputs("null", out); /* an absent [[optional]] field */
    }
    fputc('}', out);
}

void cli_print_record(FILE *out, const kivis_schema_desc *schema,
                      const kivis_table_desc *td, const void *key, const void *rec)
{
    fprintf(out, "%s ", td->name);
    cli_print_struct(out, schema, td->key, key, true);
    fputs(" => ", out);
    cli_print_struct(out, schema, td->record, rec, false);
    fputc('\n', out);
}

/* ---- freeing ------------------------------------------------------------- */

static void free_element(const kivis_field *f, char *p)
{
    scalar v;
    switch (f->kind) {
    case KIVIS_STRING:
        memcpy(&v.s, p, sizeof v.s);
        free(v.s);
        v.s = NULL;
        memcpy(p, &v.s, sizeof v.s);
        break;
    case KIVIS_BYTES:
        memcpy(&v.bytes, p, sizeof v.bytes);
        free(v.bytes.data);
        v.bytes.data = NULL;
        v.bytes.len = 0;
        memcpy(p, &v.bytes, sizeof v.bytes);
        break;
    case KIVIS_STRUCT: cli_free_struct(f->type, p); break;
    default: break;
    }
}

void cli_free_field(const kivis_field *f, void *base)
{
    char *p = (char *)base + f->offset;
    for (uint32_t i = 0; i < (f->count ? f->count : 1); i++)
        free_element(f, p + i * f->size);
}

void cli_free_struct(const kivis_struct_desc *sd, void *p)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        cli_free_field(&sd->fields[i], p);
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct parser {
    const kivis_schema_desc *schema;
    const char *p;
    char *err;
    size_t errlen;
    bool failed;
} parser;

static int perr(parser *ps, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int perr(parser *ps, const char *fmt, ...)
{
    if (!ps->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
        ps->failed = true;
    }
    return -1;
}

static void skip_space(parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static bool accept(parser *ps, char c)
{
    skip_space(ps);
    if (*ps->p != c)
        return false;
    ps->p++;
    return true;
}

static bool is_ident_char(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (!first && c >= '0' && c <= '9');
}

/* An identifier at the cursor, copied to buf; false (cursor kept) if none. */
static bool ident(parser *ps, char *buf, size_t n)
{
    skip_space(ps);
    size_t len = 0;
    while (is_ident_char(ps->p[len], len == 0))
        len++;
    if (!len || len >= n)
        return false;
    memcpy(buf, ps->p, len);
    buf[len] = '\0';
    ps->p += len;
    return true;
}

/* What stands at the cursor, for messages. */
static const char *here(const parser *ps)
{
    return *ps->p ? ps->p : "the end";
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A quoted string with dump's escapes, into a malloc'd buffer; *len its
 * length (it may hold NUL bytes through \x00). */
static char *quoted(parser *ps, size_t *len)
{
    skip_space(ps);
    if (*ps->p != '"')
        return perr(ps, "expected a quoted string at '%s'", here(ps)), NULL;
    const char *s = ++ps->p;
    char *out = malloc(strlen(s) + 1);
    size_t n = 0;
    while (out && *s && *s != '"') {
        char c = *s++;
        if (c == '\\') {
            char e = *s;
            s += e != '\0';
            int hi, lo;
            if (e == 'n' || e == 'r' || e == 't' || e == '"' || e == '\\')
                c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            else if (e == 'x' && (hi = hex_digit(s[0])) >= 0 && (lo = hex_digit(s[1])) >= 0)
                c = (char)(hi << 4 | lo), s += 2;
            else
                return free(out), perr(ps, "bad escape '\\%c' in a string", e ? e : ' '),
                       NULL;
        }
        out[n++] = c;
    }
    if (!out)
        return perr(ps, "out of memory"), NULL;
    if (*s != '"')
        return free(out), perr(ps, "a string lacks its closing quote"), NULL;
    ps->p = s + 1;
    out[n] = '\0';
    *len = n;
    return out;
}

static int parse_bytes(parser *ps, kivis_bytes *b)
{
    skip_space(ps);
    if (ps->p[0] != 'x' || ps->p[1] != '\'')
        return perr(ps, "expected bytes as x'hex' at '%s'", here(ps));
    const char *s = ps->p + 2, *end = strchr(s, '\'');
    size_t digits = end ? (size_t)(end - s) : 0;
    if (!end || digits % 2)
        return perr(ps, "x'...' needs an even number of hex digits and a closing quote");
    uint8_t *data = malloc(digits / 2 + 1);
    if (!data)
        return perr(ps, "out of memory");
    for (size_t i = 0; i < digits / 2; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return free(data), perr(ps, "'%.*s' is not hex", (int)digits, s);
        data[i] = (uint8_t)(hi << 4 | lo);
    }
    b->data = data;
    b->len = digits / 2;
    ps->p = end + 1;
    return 0;
}

/* The end of a number: a separator, a closing bracket or the end. */
static bool at_value_end(parser *ps)
{
    skip_space(ps);
    return !*ps->p || *ps->p == ',' || *ps->p == '}' || *ps->p == ']';
}

static int parse_int(parser *ps, const kivis_field *f, int64_t lo, uint64_t hi,
                     void *out, size_t size)
{
    skip_space(ps);
    char *end;
    errno = 0;
    bool neg = *ps->p == '-';
    uint64_t u = 0;
    int64_t i = 0;
    if (neg)
        i = strtoll(ps->p, &end, 0);
    else
        u = strtoull(ps->p, &end, 0);
    if (end == ps->p)
        return perr(ps, "expected a number for %s at '%s'", f->name, here(ps));
    const char *start = ps->p;
    ps->p = end;
    if (!at_value_end(ps))
        return perr(ps, "'%s' is not a whole number (field %s)", start, f->name);
    if (errno == ERANGE || (neg && i < lo) || (!neg && u > hi))
        return perr(ps, "%.*s is out of range for %s", (int)(end - start), start, f->name);
    uint64_t bits = neg ? (uint64_t)i : u;
    /* Little or big endian alike: store through the type of that size. */
    uint8_t u8 = (uint8_t)bits;
    uint16_t u16 = (uint16_t)bits;
    uint32_t u32 = (uint32_t)bits;
    memcpy(out, size == 1 ? (void *)&u8 : size == 2 ? (void *)&u16
                : size == 4 ? (void *)&u32 : (void *)&bits, size);
    return 0;
}

static int parse_float(parser *ps, const kivis_field *f, void *out)
{
    skip_space(ps);
    char *end;
    double d = strtod(ps->p, &end);
    if (end == ps->p)
        return perr(ps, "expected a number for %s at '%s'", f->name, here(ps));
    ps->p = end;
    if (!at_value_end(ps))
        return perr(ps, "expected a number for %s", f->name);
    if (f->kind == KIVIS_F32) {
        float x = (float)d;
        memcpy(out, &x, sizeof x);
    } else {
        memcpy(out, &d, sizeof d);
    }
    return 0;
}

static int parse_enum(parser *ps, const kivis_field *f, void *out)
{
    char name[256];
    if (!ident(ps, name, sizeof name))
        return parse_int(ps, f, INT32_MIN, INT32_MAX, out, sizeof(int32_t));
    for (uint32_t i = 0; i < f->enm->count; i++)
        if (!strcmp(f->enm->names[i], name)) {
            memcpy(out, &f->enm->values[i], sizeof(int32_t));
            return 0;
        }
    return perr(ps, "'%s' is not a value of enum %s", name, f->enm->name);
}

static int parse_bool(parser *ps, const kivis_field *f, void *out)
{
    char word[8];
    bool v;
    if (ident(ps, word, sizeof word) && (!strcmp(word, "true") || !strcmp(word, "false")))
        v = word[0] == 't';
    else
        return perr(ps, "expected true or false for %s at '%s'", f->name, here(ps));
    memcpy(out, &v, sizeof v);
    return 0;
}

static int parse_struct_body(parser *ps, const kivis_struct_desc *sd, char *p,
                             bool braced);

static int parse_element(parser *ps, const kivis_field *f, char *p)
{
    switch (f->kind) {
    case KIVIS_U8: return parse_int(ps, f, 0, UINT8_MAX, p, 1);
    case KIVIS_U16: return parse_int(ps, f, 0, UINT16_MAX, p, 2);
    case KIVIS_U32: return parse_int(ps, f, 0, UINT32_MAX, p, 4);
    case KIVIS_U64: return parse_int(ps, f, 0, UINT64_MAX, p, 8);
    case KIVIS_I8: return parse_int(ps, f, INT8_MIN, INT8_MAX, p, 1);
    case KIVIS_I16: return parse_int(ps, f, INT16_MIN, INT16_MAX, p, 2);
    case KIVIS_I32: return parse_int(ps, f, INT32_MIN, INT32_MAX, p, 4);
    case KIVIS_I64: return parse_int(ps, f, INT64_MIN, INT64_MAX, p, 8);
    case KIVIS_BOOL: return parse_bool(ps, f, p);
    case KIVIS_F32:
    case KIVIS_F64: return parse_float(ps, f, p);
    case KIVIS_ENUM: return parse_enum(ps, f, p);
    case KIVIS_BYTES: {
        kivis_bytes b = {NULL, 0};
        int rc = parse_bytes(ps, &b);
        memcpy(p, &b, sizeof b);
        return rc;
    }
    case KIVIS_STRING:
    case KIVIS_CHARS: {
        size_t len;
        char *s = quoted(ps, &len);
        if (!s)
            return -1;
        if (f->kind == KIVIS_STRING) {
            memcpy(p, &s, sizeof s);
            return 0;
        }
        int rc = len < f->size ? 0 : perr(ps, "%s holds at most %zu bytes", f->name,
                                          f->size - 1);
        if (!rc)
            memcpy(p, s, len + 1);
        free(s);
        return rc;
    }
    case KIVIS_STRUCT: {
        char name[256];
        const char *save = ps->p;
        if (ident(ps, name, sizeof name) && strcmp(name, f->type->name))
            return perr(ps, "expected %s{...} for %s, found '%s'", f->type->name,
                        f->name, save);
        return parse_struct_body(ps, f->type, p, true);
    }
    default: return perr(ps, "field %s has a kind this tool cannot parse", f->name);
    }
}

static int parse_value(parser *ps, const kivis_field *f, char *base)
{
    char *p = base + f->offset;
    if (!f->count)
        return parse_element(ps, f, p);
    if (!accept(ps, '['))
        return perr(ps, "expected [ for the %" PRIu32 " elements of %s at '%s'",
                    f->count, f->name, here(ps));
    for (uint32_t i = 0; i < f->count; i++) {
        if (i && !accept(ps, ','))
            return perr(ps, "%s has %" PRIu32 " elements: expected ',' at '%s'",
                        f->name, f->count, here(ps));
        if (parse_element(ps, f, p + i * f->size))
            return -1;
    }
    return accept(ps, ']') ? 0
                           : perr(ps, "%s has %" PRIu32 " elements: expected ']' at '%s'",
                                  f->name, f->count, here(ps));
}

static const kivis_field *field_named(const kivis_struct_desc *sd, const char *name)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        if (!strcmp(sd->fields[i].name, name))
            return &sd->fields[i];
    return NULL;
}

/* The next item of a struct, named "field: value" or positional: which
 * field it is.  Cursor after the "field:" if named. */
static const kivis_field *next_field(parser *ps, const kivis_struct_desc *sd, uint32_t i)
{
    const char *save = ps->p;
    char name[256];
    if (ident(ps, name, sizeof name) && accept(ps, ':')) {
        const kivis_field *f = field_named(sd, name);
        if (!f)
            perr(ps, "%s has no field '%s'", sd->name, name);
        return f;
    }
    ps->p = save;
    if (i >= sd->nfields)
        perr(ps, "%s has %" PRIu32 " field%s: '%s' is one too many", sd->name,
             sd->nfields, sd->nfields == 1 ? "" : "s", here(ps));
    return i < sd->nfields ? &sd->fields[i] : NULL;
}

static int parse_struct_body(parser *ps, const kivis_struct_desc *sd, char *p, bool braced)
{
    if (braced && !accept(ps, '{'))
        return perr(ps, "expected { for %s at '%s'", sd->name, here(ps));
    uint32_t given = 0;
    for (uint32_t i = 0; !(braced ? accept(ps, '}') : (skip_space(ps), !*ps->p)); i++) {
        if (i && !accept(ps, ','))
            return perr(ps, "expected ',' or %s at '%s'", braced ? "'}'" : "the end",
                        here(ps));
        const kivis_field *f = next_field(ps, sd, i);
        if (!f || parse_value(ps, f, p))
            return -1;
        given++;
    }
    return given == sd->nfields
               ? 0
               : perr(ps, "%s has %" PRIu32 " field%s, %" PRIu32 " given", sd->name,
                      sd->nfields, sd->nfields == 1 ? "" : "s", given);
}

/* A lone string field given as plain text: no quoting needed. */
static bool takes_plain_text(const kivis_field *f, const char *text)
{
    return !f->count && (f->kind == KIVIS_STRING || f->kind == KIVIS_CHARS) &&
           text[0] != '"';
}

static int store_plain_text(parser *ps, const kivis_field *f, const char *text, char *base)
{
    char *p = base + f->offset;
    size_t len = strlen(text);
    if (f->kind == KIVIS_CHARS) {
        if (len >= f->size)
            return perr(ps, "%s holds at most %zu bytes", f->name, f->size - 1);
        memcpy(p, text, len + 1);
        return 0;
    }
    char *s = malloc(len + 1);
    if (!s)
        return perr(ps, "out of memory");
    memcpy(s, text, len + 1);
    memcpy(p, &s, sizeof s);
    return 0;
}

static int finish(parser *ps)
{
    skip_space(ps);
    return *ps->p ? perr(ps, "unexpected '%s' after the value", ps->p) : 0;
}

int cli_parse_field(const kivis_schema_desc *schema, const kivis_field *f,
                    const char *text, void *base, char *err, size_t errlen)
{
    parser ps = {schema, text, err, errlen, false};
    if (takes_plain_text(f, text))
        return store_plain_text(&ps, f, text, base);
    return parse_value(&ps, f, base) ? -1 : finish(&ps);
}

int cli_parse_struct(const kivis_schema_desc *schema, const kivis_struct_desc *sd,
                     const char *text, void *p, char *err, size_t errlen)
{
    parser ps = {schema, text, err, errlen, false};
    if (sd->nfields == 1 && takes_plain_text(&sd->fields[0], text))
        return store_plain_text(&ps, &sd->fields[0], text, p);
    skip_space(&ps);
    /* "{...}" or "user_key{...}" is the whole struct braced; anything
     * else is its fields without the braces. */
    const char *save = ps.p;
    char name[256];
    bool named = ident(&ps, name, sizeof name) && !strcmp(name, sd->name) &&
                 (skip_space(&ps), *ps.p == '{');
    if (!named)
        ps.p = save;
    bool braced = *ps.p == '{';
    if (braced && sd->nfields == 1 && sd->fields[0].kind == KIVIS_STRUCT && !named) {
        /* {..} may be the one field's own braces: try the outer first. */
        parser trial = ps;
        char probe[256];
        trial.err = probe;
        trial.errlen = sizeof probe;
        if (!parse_struct_body(&trial, sd, p, true) && !finish(&trial))
            return 0;
        cli_free_struct(sd, p);
        memset(p, 0, sd->size);
        braced = false;
    }
    return parse_struct_body(&ps, sd, p, braced) ? -1 : finish(&ps);
}
