/*
 * src/jsonl/read.c - kivis_import_jsonl: each line parsed by jansson,
 * checked field by field against the schema into a record and its key,
 * then written with kivis_insert, a write transaction per batch of lines.
 */
#include "jsonl_int.h"

#include <jansson.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_BATCH = 1000 };

/* Where a line's decoding is: its number, table and the path of the field
 * (dotted, with [i] for array elements), and its first error. */
typedef struct line_ctx {
    uint64_t line;
    const char *table;
    char path[128];
    char message[256];
    bool nomem;
} line_ctx;

static int bad(line_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int bad(line_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Extend the path by ".name" or "[i]"; returns the old length to restore. */
static size_t path_push(line_ctx *c, const char *name, long index)
{
    size_t len = strlen(c->path);
    if (name)
        snprintf(c->path + len, sizeof c->path - len, "%s%s", len ? "." : "", name);
    else
        snprintf(c->path + len, sizeof c->path - len, "[%ld]", index);
    return len;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* ---- numbers ------------------------------------------------------------ */

/* A uint64_t: an integer, or the decimal string export writes above
 * INT64_MAX (any value may be written so). */
static int read_u64(line_ctx *c, const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t n = strspn(s, "0123456789");
    if (!n || s[n] || n > 20 || (n > 1 && s[0] == '0'))
        return bad(c, "expected a non-negative integer (or its decimal digits as a "
                      "string), found %s", type_name(v));
    errno = 0;
    unsigned long long u = strtoull(s, NULL, 10);
    if (errno == ERANGE || u > UINT64_MAX)
        return bad(c, "%s is out of range for uint64_t", s);
    *out = u;
    return 0;
}

static int read_int(line_ctx *c, const json_t *v, int64_t lo, int64_t hi,
                    const char *type, int64_t *out)
{
    if (!json_is_integer(v))
        return bad(c, "expected an integer (%s), found %s", type, type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return bad(c, "%lld is out of range for %s", (long long)i, type);
    *out = i;
    return 0;
}

/* The strings export writes for what JSON numbers cannot hold. */
static int read_nonfinite(line_ctx *c, const char *s, bool is_float, double *d,
                          uint64_t *bits, bool *raw)
{
    *raw = false;
    if (!strcmp(s, "Infinity") || !strcmp(s, "-Infinity")) {
        *d = s[0] == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (!strcmp(s, "NaN")) {
        *d = NAN;
        return 0;
    }
    size_t digits = is_float ? 8 : 16;
    if (!strncmp(s, "NaN:0x", 6) && strlen(s + 6) == digits &&
        strspn(s + 6, "0123456789abcdef") == digits) {
        *bits = strtoull(s + 6, NULL, 16);
        uint32_t exp = is_float ? (uint32_t)(*bits >> 23 & 0xff) : (uint32_t)(*bits >> 52 & 0x7ff);
        uint64_t frac = is_float ? *bits & 0x7fffff : *bits & 0xfffffffffffffull;
        if (exp == (is_float ? 0xffu : 0x7ffu) && frac) {
            *raw = true;
            return 0;
        }
    }
    return bad(c, "expected a number, \"Infinity\", \"-Infinity\", \"NaN\" or "
                  "\"NaN:0x<%zu hex digits>\", found \"%s\"", digits, s);
}

static int read_float(line_ctx *c, const json_t *v, bool is_float, char *p)
{
    double d = 0;
    uint64_t bits = 0;
    bool raw = false;
    if (json_is_number(v))
        d = json_number_value(v);
    else if (!json_is_string(v))
        return bad(c, "expected a number, found %s", type_name(v));
    else if (read_nonfinite(c, json_string_value(v), is_float, &d, &bits, &raw))
        return -1;
    if (raw && is_float) {
        uint32_t b32 = (uint32_t)bits;
        memcpy(p, &b32, sizeof b32);
    } else if (raw) {
        memcpy(p, &bits, sizeof bits);
    } else if (is_float) {
        /* What rounds past FLT_MAX: from the midpoint to the next power */
        if (isfinite(d) && fabs(d) >= 0x1.ffffffp+127)
            return bad(c, "%g is out of range for float", d);
        float f = (float)d;
        memcpy(p, &f, sizeof f);
    } else {
        memcpy(p, &d, sizeof d);
    }
    return 0;
}

/* Store the low `size` bytes' worth of an integer through its own type. */
static void store_int(char *p, size_t size, uint64_t bits)
{
    uint8_t u8 = (uint8_t)bits;
    uint16_t u16 = (uint16_t)bits;
    uint32_t u32 = (uint32_t)bits;
    memcpy(p, size == 1 ? (void *)&u8 : size == 2 ? (void *)&u16
              : size == 4 ? (void *)&u32 : (void *)&bits, size);
}

static int read_integer_kind(line_ctx *c, const kivis_field *f, const json_t *v, char *p)
{
    static const struct { int64_t lo, hi; const char *name; } range[] = {
        [KIVIS_U8] = {0, UINT8_MAX, "uint8_t"},
        [KIVIS_U16] = {0, UINT16_MAX, "uint16_t"},
        [KIVIS_U32] = {0, UINT32_MAX, "uint32_t"},
        [KIVIS_I8] = {INT8_MIN, INT8_MAX, "int8_t"},
        [KIVIS_I16] = {INT16_MIN, INT16_MAX, "int16_t"},
        [KIVIS_I32] = {INT32_MIN, INT32_MAX, "int32_t"},
        [KIVIS_I64] = {INT64_MIN, INT64_MAX, "int64_t"},
    };
    uint64_t u = 0;
    int64_t i = 0;
    if (f->kind == KIVIS_U64) {
        if (read_u64(c, v, &u))
            return -1;
    } else if (read_int(c, v, range[f->kind].lo, range[f->kind].hi,
                        range[f->kind].name, &i)) {
        return -1;
    } else {
        u = (uint64_t)i;
    }
    store_int(p, f->size, u);
    return 0;
}

/* ---- other scalars ------------------------------------------------------ */

static int read_enum(line_ctx *c, const kivis_enum_desc *e, const json_t *v, char *p)
{
    if (!json_is_string(v))
        return bad(c, "expected a name of enum %s, found %s", e->name, type_name(v));
    for (uint32_t i = 0; i < e->count; i++)
        if (!strcmp(e->names[i], json_string_value(v))) {
            memcpy(p, &e->values[i], sizeof(int32_t));
            return 0;
        }
    return bad(c, "\"%s\" is not a value of enum %s", json_string_value(v), e->name);
}

/* jansson has checked the UTF-8 and, without JSON_ALLOW_NUL, refused
 * "\u0000", so a string is one C string. */
static int read_string(line_ctx *c, const kivis_field *f, const json_t *v, char *p)
{
    if (!json_is_string(v))
        return bad(c, "expected a string, found %s", type_name(v));
    size_t n = json_string_length(v);
    if (f->kind == KIVIS_CHARS) {
        if (n >= f->size)
            return bad(c, "a string of %zu bytes does not fit char[%zu] (at most %zu)",
                       n, f->size, f->size - 1);
        memcpy(p, json_string_value(v), n + 1);
        return 0;
    }
    char *s = malloc(n + 1);
    if (!s)
        return c->nomem = true, bad(c, "out of memory");
    memcpy(s, json_string_value(v), n + 1);
    memcpy(p, &s, sizeof s);
    return 0;
}

static int read_bytes(line_ctx *c, const json_t *v, char *p)
{
    if (!json_is_string(v))
        return bad(c, "expected bytes as a base64 string, found %s", type_name(v));
    kivis_bytes b;
    if (kivis__b64_decode(json_string_value(v), json_string_length(v), &b, &c->nomem))
        return bad(c, c->nomem ? "out of memory" : "not canonical base64 (RFC 4648, "
                                                   "padded)");
    memcpy(p, &b, sizeof b);
    return 0;
}

/* ---- structs and arrays ------------------------------------------------- */

static int read_struct(line_ctx *c, const kivis_struct_desc *sd, const json_t *obj,
                       char *p);

static int read_element(line_ctx *c, const kivis_field *f, const json_t *v, char *p)
{
    switch (f->kind) {
    case KIVIS_U8: case KIVIS_U16: case KIVIS_U32: case KIVIS_U64:
    case KIVIS_I8: case KIVIS_I16: case KIVIS_I32: case KIVIS_I64:
        return read_integer_kind(c, f, v, p);
    case KIVIS_BOOL: {
        if (!json_is_boolean(v))
            return bad(c, "expected true or false, found %s", type_name(v));
        bool b = json_is_true(v);
        memcpy(p, &b, sizeof b);
        return 0;
    }
    case KIVIS_F32: return read_float(c, v, true, p);
    case KIVIS_F64: return read_float(c, v, false, p);
    case KIVIS_ENUM: return read_enum(c, f->enm, v, p);
    case KIVIS_STRING:
    case KIVIS_CHARS: return read_string(c, f, v, p);
    case KIVIS_BYTES: return read_bytes(c, v, p);
    case KIVIS_STRUCT: return read_struct(c, f->type, v, p);
    default: return bad(c, "the field has a kind this build cannot read");
    }
}

static int read_field(line_ctx *c, const kivis_field *f, const json_t *v, char *base)
{
    char *p = base + f->offset;
    if (!f->count)
        return read_element(c, f, v, p);
    if (!json_is_array(v) || json_array_size(v) != f->count)
        return json_is_array(v)
                   ? bad(c, "expected %" PRIu32 " elements, found %zu", f->count,
                         json_array_size(v))
                   : bad(c, "expected an array of %" PRIu32 " elements, found %s",
                         f->count, type_name(v));
    for (uint32_t i = 0; i < f->count; i++) {
        size_t len = path_push(c, NULL, (long)i);
        if (read_element(c, f, json_array_get(v, i), p + i * f->size))
            return -1;
        c->path[len] = '\0';
    }
    return 0;
}

static int read_struct(line_ctx *c, const kivis_struct_desc *sd, const json_t *obj,
                       char *p)
{
    if (!json_is_object(obj))
        return bad(c, "expected an object (%s), found %s", sd->name, type_name(obj));
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        size_t len = path_push(c, f->name, 0);
        const json_t *v = json_object_get(obj, f->name);
        if (!v)
            return bad(c, "missing (every field of %s must be given)", sd->name);
        if (json_is_null(v) && (f->flags & KIVIS_FIELD_OPTIONAL)) {
            c->path[len] = '\0';
            continue; /* absent: the zeroed field says so */
        }
        if (read_field(c, f, v, p))
            return -1;
        size_t flag = kivis_presence_offset(sd, i);
        if (flag != SIZE_MAX)
            p[flag] = 1; /* the bool has_F */
        c->path[len] = '\0';
    }
    if (json_object_size(obj) == sd->nfields)
        return 0;
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)obj, name, v) {
        uint32_t i = 0;
        while (i < sd->nfields && strcmp(sd->fields[i].name, name))
            i++;
        if (i == sd->nfields) {
            path_push(c, name, 0);
            return bad(c, "%s has no such field", sd->name);
        }
    }
    return bad(c, "%s: unexpected members", sd->name); /* not reached */
}

/* ---- one line ----------------------------------------------------------- */

/* A line decoded: its table, key and record (owned). */
typedef struct decoded {
    int table;
    void *key, *rec;
    size_t key_size, rec_size;
} decoded;

static void decoded_clear(const kivis_schema_desc *schema, decoded *d)
{
    if (d->table >= 0) {
        const kivis_table_desc *td = &schema->tables[d->table];
        kivis__jsonl_free_struct(td->key, d->key);
        kivis__jsonl_free_struct(td->record, d->rec);
    }
    d->table = -1;
}

/* Room for table t's key and record, zeroed. */
static int decoded_fit(decoded *d, const kivis_table_desc *td)
{
    if (d->key_size < td->key->size) {
        void *k = realloc(d->key, td->key->size);
        if (!k)
            return -1;
        d->key = k, d->key_size = td->key->size;
    }
    if (d->rec_size < td->record->size) {
        void *r = realloc(d->rec, td->record->size);
        if (!r)
            return -1;
        d->rec = r, d->rec_size = td->record->size;
    }
    memset(d->key, 0, td->key->size);
    memset(d->rec, 0, td->record->size);
    return 0;
}

static int decode_object(line_ctx *c, kivis_db *db, const json_t *root, decoded *d)
{
    const kivis_schema_desc *schema = kivis_db_schema(db);
    if (!json_is_object(root))
        return bad(c, "expected an object {\"table\", \"key\", \"record\"}, found %s",
                   type_name(root));
    const json_t *table = json_object_get(root, "table");
    if (!json_is_string(table))
        return bad(c, table ? "\"table\" is not a string" : "no \"table\" member");
    int t = kivis_table(db, json_string_value(table));
    if (t < 0)
        return bad(c, "no table \"%s\" in schema %s", json_string_value(table),
                   schema->name);
    const kivis_table_desc *td = &schema->tables[t];
    c->table = td->name;
    const json_t *key = json_object_get(root, "key"), *rec = json_object_get(root, "record");
    if (!key || !rec)
        return bad(c, "no \"%s\" member", key ? "record" : "key");
    if (json_object_size(root) != 3)
        return bad(c, "a line has \"table\", \"key\" and \"record\", nothing else");
    if (decoded_fit(d, td))
        return c->nomem = true, bad(c, "out of memory");
    d->table = t;
    size_t len = path_push(c, "key", 0);
    if (read_struct(c, td->key, key, d->key))
        return -1;
    c->path[len] = '\0';
    /* Record fields are named as they are, without a "record." prefix. */
    return read_struct(c, td->record, rec, d->rec);
}

static int decode_line(line_ctx *c, kivis_db *db, const char *text, size_t len,
                       decoded *d)
{
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return bad(c, "not JSON: %s (column %d)", err.text, err.column);
    int rc = decode_object(c, db, root, d);
    json_decref(root);
    return rc;
}

/* ---- batches ------------------------------------------------------------ */

typedef struct importer {
    kivis_db *db;
    FILE *in;
    const kivis_jsonl_options *opts;
    kivis_jsonl_report *report;
    size_t batch;
    uint64_t bytes;
    uint64_t pending; /* records written in the open batch */
    bool open;        /* a write transaction is open */
    decoded d;
} importer;

static void report_line(importer *im, const line_ctx *c)
{
    im->report->rejected++;
    kivis__jsonl_fail(im->report, im->opts, c->line, c->table ? c->table : "", c->path,
                      c->message);
}

/* Errors the engine finds before it writes leave the transaction usable
 * (kivis.h), so with skip_bad the line alone is left out. */
static bool leaves_txn_usable(int rc)
{
    return rc == KIVIS_ECONSTRAINT || rc == KIVIS_EINVAL || rc == KIVIS_EUTF8 ||
           rc == KIVIS_ERANGE || rc == KIVIS_EKEYSIZE || rc == KIVIS_ENOTSUP;
}

static int write_decoded(importer *im, line_ctx *c)
{
    const kivis_table_desc *td = &kivis_db_schema(im->db)->tables[im->d.table];
    kivis__jsonl_set_line_key(im->d.key, td->key->size);
    int rc = kivis_insert(im->db, (uint32_t)im->d.table, im->d.key, im->d.rec);
    kivis__jsonl_set_line_key(NULL, 0);
    if (rc)
        bad(c, "%s: %s", kivis_strerror(rc), kivis_errmsg(im->db));
    return rc;
}

static int commit_batch(importer *im)
{
    if (!im->open)
        return KIVIS_OK;
    im->open = false;
    int rc = kivis_commit(im->db);
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "committing a batch: %s: %s", kivis_strerror(rc),
                 kivis_errmsg(im->db));
        kivis__jsonl_fail(im->report, im->opts, 0, "", "", msg);
        return rc;
    }
    im->report->records += im->pending;
    im->pending = 0;
    if (im->opts->progress)
        im->opts->progress(im->opts->ctx, im->report->records, im->bytes);
    return KIVIS_OK;
}

static void abort_batch(importer *im)
{
    if (im->open)
        kivis_abort(im->db);
    im->open = false;
    im->pending = 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* One line: decode it, write it in the open batch.  @return KIVIS_OK (also
 * for a line left out with skip_bad), or the error that ends the import. */
static int import_line(importer *im, const char *text, size_t len)
{
    line_ctx c;
    memset(&c, 0, sizeof c);
    c.line = im->report->lines;
    if (blank(text, len))
        return KIVIS_OK;
    int rc = decode_line(&c, im->db, text, len, &im->d) ? KIVIS_EINVAL : KIVIS_OK;
    if (rc && c.nomem)
        rc = KIVIS_ENOMEM;
    if (!rc && !im->open && (rc = kivis_begin(im->db)) != KIVIS_OK) {
        bad(&c, "beginning a batch: %s", kivis_strerror(rc));
        decoded_clear(kivis_db_schema(im->db), &im->d);
        kivis__jsonl_fail(im->report, im->opts, c.line, "", "", c.message);
        return rc; /* not the line's fault: never skipped */
    }
    im->open = im->open || !rc;
    if (!rc && (rc = write_decoded(im, &c)) == KIVIS_OK)
        im->pending++;
    decoded_clear(kivis_db_schema(im->db), &im->d);
    if (!rc)
        return im->pending >= im->batch ? commit_batch(im) : KIVIS_OK;
    report_line(im, &c);
    bool skip = im->opts->skip_bad && rc != KIVIS_ENOMEM && leaves_txn_usable(rc);
    return skip ? KIVIS_OK : rc;
}

int kivis_import_jsonl(kivis_db *db, FILE *in, const kivis_jsonl_options *opts,
                       kivis_jsonl_report *report)
{
    kivis_jsonl_report spare;
    importer im;
    memset(&im, 0, sizeof im);
    im.report = kivis__jsonl_report(report, &spare);
    im.opts = kivis__jsonl_opts(opts);
    if (!db || !in)
        return KIVIS_EINVAL;
    im.db = db;
    im.in = in;
    im.batch = im.opts->batch ? im.opts->batch : DEFAULT_BATCH;
    im.d.table = -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = KIVIS_OK;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        im.report->lines++;
        im.bytes += (uint64_t)n;
        rc = import_line(&im, line, (size_t)n);
    }
    if (!rc && ferror(in)) {
        rc = KIVIS_EIO;
        kivis__jsonl_fail(im.report, im.opts, 0, "", "", "reading the input failed");
    }
    if (!rc)
        rc = commit_batch(&im);
    abort_batch(&im);
    free(line);
    free(im.d.key);
    free(im.d.rec);
    return rc;
}
