/*
 * src/jsonl/write.c - kivis_export_jsonl: each record as one line of JSON,
 * members in schema order, numbers exact (kivis/jsonl.h gives the format).
 * The text is written here rather than through jansson's dump: jansson
 * prints every real with 17 digits, and a float needs its shortest
 * spelling to read back the same through a double and to stay readable.
 */
#include "jsonl_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct writer {
    kivis_db *db;
    const kivis_schema_desc *schema;
    FILE *out;
    const kivis_jsonl_options *opts;
    kivis_jsonl_report *report;
    bool nomem;
} writer;

static void put_string(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fputc('\\', out), fputc(c, out);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* The shortest %.*g of d that reads back (through strtod, and then a cast
 * for a float) to the same bits; ".0" added to a whole number, so that a
 * reader never takes a float for an integer (and -0.0 stays negative). */
static void put_real(FILE *out, double d, bool is_float)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        double back = strtod(buf, NULL);
        if (is_float ? (float)back == (float)d : back == d)
            break;
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".e"))
        fputs(".0", out);
}

/* NaN and the infinities, which JSON has no numbers for, as strings. */
static void put_nonfinite(FILE *out, double d, uint64_t bits, bool is_float)
{
    uint64_t quiet = 0;
    if (is_float) {
        float q = NAN;
        uint32_t qb;
        memcpy(&qb, &q, sizeof qb);
        quiet = qb;
    } else {
        double q = NAN;
        memcpy(&quiet, &q, sizeof quiet);
    }
    if (isinf(d))
        fputs(d > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
    else if (bits == quiet)
        fputs("\"NaN\"", out);
    else
        fprintf(out, is_float ? "\"NaN:0x%08" PRIx64 "\"" : "\"NaN:0x%016" PRIx64 "\"",
                bits);
}

static void put_f32(FILE *out, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isfinite(f))
        put_real(out, f, true);
    else
        put_nonfinite(out, f, bits, true);
}

static void put_f64(FILE *out, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    if (isfinite(d))
        put_real(out, d, false);
    else
        put_nonfinite(out, d, bits, false);
}

static void put_enum(FILE *out, const kivis_enum_desc *e, int32_t v)
{
    for (uint32_t i = 0; i < e->count; i++)
        if (e->values[i] == v) {
            put_string(out, e->names[i], strlen(e->names[i]));
            return;
        }
    fprintf(out, "%" PRId32, v); /* not declared: the import refuses it */
}

static void put_bytes(writer *w, const kivis_bytes *b)
{
    char *text = malloc(kivis__b64_len(b->len) + 1);
    if (!text) {
        w->nomem = true;
        return;
    }
    kivis__b64_encode(b->data, b->len, text);
    fputc('"', w->out);
    fputs(text, w->out);
    fputc('"', w->out);
    free(text);
}

static void put_struct(writer *w, const kivis_struct_desc *sd, const char *p);

static void put_element(writer *w, const kivis_field *f, const char *p)
{
    FILE *out = w->out;
    kivis__jsonl_scalar v;
    if (f->kind != KIVIS_CHARS && f->kind != KIVIS_STRUCT)
        memcpy(&v, p, f->size);
    switch (f->kind) {
    case KIVIS_U8: fprintf(out, "%" PRIu8, v.u8); break;
    case KIVIS_U16: fprintf(out, "%" PRIu16, v.u16); break;
    case KIVIS_U32: fprintf(out, "%" PRIu32, v.u32); break;
    case KIVIS_U64:
        /* jansson's integers are long long: beyond them, a string */
        fprintf(out, v.u64 > INT64_MAX ? "\"%" PRIu64 "\"" : "%" PRIu64, v.u64);
        break;
    case KIVIS_I8: fprintf(out, "%" PRId8, v.i8); break;
    case KIVIS_I16: fprintf(out, "%" PRId16, v.i16); break;
    case KIVIS_I32: fprintf(out, "%" PRId32, v.i32); break;
    case KIVIS_I64: fprintf(out, "%" PRId64, v.i64); break;
    case KIVIS_BOOL: fputs(v.b ? "true" : "false", out); break;
    case KIVIS_F32: put_f32(out, v.f32); break;
    case KIVIS_F64: put_f64(out, v.f64); break;
    case KIVIS_ENUM: put_enum(out, f->enm, v.i32); break;
    case KIVIS_STRING: put_string(out, v.s ? v.s : "", v.s ? strlen(v.s) : 0); break;
    case KIVIS_CHARS: put_string(out, p, strnlen(p, f->size)); break;
    case KIVIS_BYTES: put_bytes(w, &v.bytes); break;
    case KIVIS_STRUCT: put_struct(w, f->type, p); break;
    default: fputs("null", out); /* a kind this build does not know */
    }
}

static void put_field(writer *w, const kivis_field *f, const char *base)
{
    const char *p = base + f->offset;
    if (!f->count) {
        put_element(w, f, p);
        return;
    }
    fputc('[', w->out);
    for (uint32_t i = 0; i < f->count; i++) {
        if (i)
            fputc(',', w->out);
        put_element(w, f, p + i * f->size);
    }
    fputc(']', w->out);
}

static void put_struct(writer *w, const kivis_struct_desc *sd, const char *p)
{
    fputc('{', w->out);
    for (uint32_t i = 0; i < sd->nfields; i++) {
        if (i)
            fputc(',', w->out);
        put_string(w->out, sd->fields[i].name, strlen(sd->fields[i].name));
        fputc(':', w->out);
        if (kivis_field_present(sd, i, p))
            put_field(w, &sd->fields[i], p);
        else
            fputs("null", w->out); /* an absent [[optional]] field */
    }
    fputc('}', w->out);
}

static void put_line(writer *w, const kivis_table_desc *td, const void *key,
                     const void *rec)
{
    fputs("{\"table\":", w->out);
    put_string(w->out, td->name, strlen(td->name));
    fputs(",\"key\":", w->out);
    put_struct(w, td->key, key);
    fputs(",\"record\":", w->out);
    put_struct(w, td->record, rec);
    fputs("}\n", w->out);
}

static int fail(writer *w, const char *table, int rc, const char *what)
{
    char msg[256];
    const char *detail = kivis_errmsg(w->db);
    snprintf(msg, sizeof msg, "%s: %s%s%s", what, kivis_strerror(rc),
             detail[0] ? ": " : "", detail);
    kivis__jsonl_fail(w->report, w->opts, 0, table, "", msg);
    return rc;
}

static int export_table(writer *w, uint32_t t)
{
    const kivis_table_desc *td = &w->schema->tables[t];
    void *key = calloc(1, td->key->size), *rec = calloc(1, td->record->size);
    kivis_query q;
    memset(&q, 0, sizeof q);
    q.table = t;
    q.index = -1;
    kivis_scan *scan = NULL;
    int rc = key && rec ? kivis_scan_open(w->db, &q, &scan) : KIVIS_ENOMEM;
    while (!rc && (rc = kivis_scan_next(scan, key, rec)) == KIVIS_OK) {
        put_line(w, td, key, rec);
        kivis_key_clear(w->db, t, key);
        kivis_record_clear(w->db, t, rec);
        if (w->nomem)
            rc = KIVIS_ENOMEM;
        else if (ferror(w->out))
            rc = KIVIS_EIO;
        else if (++w->report->records % 256 == 0 && w->opts->progress)
            w->opts->progress(w->opts->ctx, w->report->records, 0);
    }
    kivis_scan_close(scan);
    free(key);
    free(rec);
    if (rc == KIVIS_NOTFOUND)
        return KIVIS_OK;
    return fail(w, td->name, rc, rc == KIVIS_EIO ? "writing the output" : "reading");
}

/* The positions of the tables named, in the order given. */
static int resolve_tables(writer *w, const char *const *names, size_t n, uint32_t *pos)
{
    for (size_t i = 0; i < n; i++) {
        int t = names[i] ? kivis_table(w->db, names[i]) : -1;
        if (t < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "no table '%s' in schema %s",
                     names[i] ? names[i] : "(null)", w->schema->name);
            kivis__jsonl_fail(w->report, w->opts, 0, names[i] ? names[i] : "", "", msg);
            return KIVIS_NOTFOUND;
        }
        pos[i] = (uint32_t)t;
    }
    return KIVIS_OK;
}

int kivis_export_jsonl(kivis_db *db, const char *const *tables, size_t ntables,
                       FILE *out, const kivis_jsonl_options *opts,
                       kivis_jsonl_report *report)
{
    kivis_jsonl_report spare;
    kivis_jsonl_report *r = kivis__jsonl_report(report, &spare);
    if (!db || !out || (ntables && !tables))
        return KIVIS_EINVAL;
    writer w = {db, kivis_db_schema(db), out, kivis__jsonl_opts(opts), r, false};
    size_t n = ntables ? ntables : w.schema->ntables;
    uint32_t *pos = malloc((n ? n : 1) * sizeof *pos);
    if (!pos)
        return KIVIS_ENOMEM;
    int rc = ntables ? resolve_tables(&w, tables, n, pos) : KIVIS_OK;
    for (size_t i = 0; !ntables && i < n; i++)
        pos[i] = (uint32_t)i;
    if (!rc && (rc = kivis_begin_read(db)) != KIVIS_OK)
        fail(&w, "", rc, "beginning a read transaction");
    else if (!rc) {
        for (size_t i = 0; !rc && i < n; i++)
            rc = export_table(&w, pos[i]);
        kivis_abort(db);
    }
    free(pos);
    if (!rc && fflush(out) != 0)
        rc = fail(&w, "", KIVIS_EIO, "writing the output");
    if (!rc && w.opts->progress)
        w.opts->progress(w.opts->ctx, w.report->records, 0);
    return rc;
}
