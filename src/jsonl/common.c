/*
 * src/jsonl/common.c - base64, freeing a decoded struct, the report, and
 * kivis_jsonl_open: a db over the stored schema whose derived-key tables
 * take their key from the line being imported.
 */
#include "jsonl_int.h"

#include <kivis/inspect.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- base64 ------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t kivis__b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void kivis__b64_encode(const uint8_t *data, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < n)
            v |= data[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64_digit(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* One group of four chars into up to three bytes; the padding only in the
 * last group, and the bits it drops zero (so every blob has one text). */
static int b64_group(const char *g, bool last, uint8_t *out, size_t *n)
{
    int d[4];
    int pad = last ? (g[3] == '=') + (g[2] == '=' && g[3] == '=') : 0;
    for (int i = 0; i < 4 - pad; i++)
        if ((d[i] = b64_digit(g[i])) < 0)
            return -1;
    for (int i = 4 - pad; i < 4; i++)
        d[i] = 0;
    uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 |
                 (uint32_t)d[3];
    if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
        return -1;
    uint8_t bytes[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    memcpy(out + *n, bytes, (size_t)(3 - pad));
    *n += (size_t)(3 - pad);
    return 0;
}

int kivis__b64_decode(const char *text, size_t len, kivis_bytes *out, bool *nomem)
{
    out->data = NULL;
    out->len = 0;
    if (len % 4)
        return -1;
    uint8_t *data = malloc(len / 4 * 3 + 1);
    if (!data)
        return *nomem = true, -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4)
        if (b64_group(text + i, i + 4 == len, data, &n))
            return free(data), -1;
    out->data = data;
    out->len = n;
    return 0;
}

/* ---- decoded structs ---------------------------------------------------- */

static void free_element(const kivis_field *f, char *p)
{
    kivis__jsonl_scalar v;
    if (f->kind == KIVIS_STRING) {
        memcpy(&v.s, p, sizeof v.s);
        free(v.s);
    } else if (f->kind == KIVIS_BYTES) {
        memcpy(&v.bytes, p, sizeof v.bytes);
        free(v.bytes.data);
    } else if (f->kind == KIVIS_STRUCT) {
        kivis__jsonl_free_struct(f->type, p);
    }
}

void kivis__jsonl_free_struct(const kivis_struct_desc *sd, void *p)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        for (uint32_t e = 0; e < (f->count ? f->count : 1); e++)
            free_element(f, (char *)p + f->offset + e * f->size);
    }
    memset(p, 0, sd->size);
}

/* ---- the report --------------------------------------------------------- */

const kivis_jsonl_options *kivis__jsonl_opts(const kivis_jsonl_options *opts)
{
    static const kivis_jsonl_options defaults;
    return opts ? opts : &defaults;
}

kivis_jsonl_report *kivis__jsonl_report(kivis_jsonl_report *report,
                                        kivis_jsonl_report *spare)
{
    kivis_jsonl_report *r = report ? report : spare;
    memset(r, 0, sizeof *r);
    return r;
}

void kivis__jsonl_fail(kivis_jsonl_report *r, const kivis_jsonl_options *o,
                       uint64_t line, const char *table, const char *field,
                       const char *message)
{
    if (r && !r->message[0]) {
        r->line = line;
        snprintf(r->table, sizeof r->table, "%s", table);
        snprintf(r->field, sizeof r->field, "%s", field);
        snprintf(r->message, sizeof r->message, "%s", message);
    }
    if (o && o->error) {
        kivis_jsonl_error e = {line, table, field, message};
        o->error(o->ctx, &e);
    }
}

/* ---- a db whose derived keys come from the line ------------------------- */

/* The derive_key of a KEY_DERIVED table is compiled code the store cannot
 * hold, so a loaded schema cannot compute one.  The importer sets the key
 * its line gives here, for the one kivis_insert that follows; the engine
 * then takes it as the derived key.  A thread's own, since a db is used by
 * one thread at a time but several may import at once. */
static _Thread_local const void *line_key;
static _Thread_local size_t line_key_size;

void kivis__jsonl_set_line_key(const void *key, size_t size)
{
    line_key = key;
    line_key_size = size;
}

static int derive_from_line(const void *record, void *key_out)
{
    (void)record;
    if (!line_key)
        return KIVIS_ENOTSUP;
    memcpy(key_out, line_key, line_key_size);
    return KIVIS_OK;
}

/* The copy of a loaded schema kivis_jsonl_open opens with; the schema
 * first, so kivis_db_schema(db) leads back to the whole. */
typedef struct jsonl_schema {
    kivis_schema_desc desc;
    kivis_schema_desc *loaded;
    const kivis_allocator *alloc;
    kivis_table_desc tables[];
} jsonl_schema;

int kivis_jsonl_open(kivis_storage *st, const kivis_options *opts, kivis_db **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    const kivis_allocator *alloc = opts && opts->allocator ? opts->allocator
                                                           : kivis_default_allocator();
    kivis_schema_desc *loaded = NULL;
    int rc = kivis_schema_load(st, alloc, &loaded);
    if (rc)
        return rc;
    jsonl_schema *js = alloc->malloc(alloc->ctx, sizeof *js + loaded->ntables *
                                                              sizeof js->tables[0]);
    if (!js) {
        kivis_schema_free(loaded, alloc);
        return KIVIS_ENOMEM;
    }
    js->desc = *loaded;
    js->desc.tables = js->tables;
    js->loaded = loaded;
    js->alloc = alloc;
    for (uint32_t t = 0; t < loaded->ntables; t++) {
        js->tables[t] = loaded->tables[t];
        if (js->tables[t].key_kind == KIVIS_KEY_DERIVED)
            js->tables[t].derive_key = derive_from_line;
    }
    rc = kivis_open(st, &js->desc, opts, out);
    if (rc) {
        kivis_schema_free(loaded, alloc);
        alloc->free(alloc->ctx, js);
    }
    return rc;
}

void kivis_jsonl_close(kivis_db *db)
{
    if (!db)
        return;
    jsonl_schema *js = (jsonl_schema *)(void *)kivis_db_schema(db);
    kivis_close(db);
    kivis_schema_free(js->loaded, js->alloc);
    js->alloc->free(js->alloc->ctx, js);
}
