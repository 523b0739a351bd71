/*
 * Import arbitrary bytes as JSON Lines into an alltypes store (every field
 * kind and key strategy).  Byte 0 picks the options: batch size 1-4 (bits
 * 0-1), skip_bad (bit 2), a db over the stored schema, whose derived keys
 * come from the lines (bit 3), instead of the compiled one.  Whatever the
 * input, the import must leave a consistent store (kivis_check), commit
 * whole batches only when it stops, and what it stored must export, import
 * into a new store and export again to the same text.
 */
#define _POSIX_C_SOURCE 200809L /* fmemopen, open_memstream */

#include "alltypes.kivis.h"

#include <kivis/inspect.h>
#include <kivis/jsonl.h>
#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kivis_db *open_db(kivis_storage **st, int loaded)
{
    kivis_db *db = NULL;
    if (kivis_memory_open(NULL, st) || kivis_open(*st, &alltypes_schema, NULL, &db))
        abort();
    if (!loaded)
        return db;
    kivis_close(db); /* the schema is stored now */
    if (kivis_jsonl_open(*st, NULL, &db))
        abort();
    return db;
}

static void close_db(kivis_db *db, kivis_storage *st, int loaded)
{
    if (loaded)
        kivis_jsonl_close(db);
    else
        kivis_close(db);
    kivis_storage_close(st);
}

static char *export_text(kivis_db *db, size_t *len)
{
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    if (!out || kivis_export_jsonl(db, NULL, 0, out, NULL, NULL) || fclose(out))
        abort();
    return text;
}

/* What was stored exports, imports elsewhere, and exports the same. */
static void check_round_trip(kivis_db *db, int loaded)
{
    size_t len, len2;
    char *a = export_text(db, &len);
    kivis_storage *st2;
    kivis_db *db2 = open_db(&st2, loaded);
    FILE *in = fmemopen(a, len ? len : 1, "r");
    kivis_jsonl_report r;
    if (!in || (len && kivis_import_jsonl(db2, in, NULL, &r)))
        abort();
    fclose(in);
    char *b = export_text(db2, &len2);
    if (len != len2 || memcmp(a, b, len))
        abort();
    free(a);
    free(b);
    close_db(db2, st2, loaded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    kivis_jsonl_options o;
    memset(&o, 0, sizeof o);
    o.batch = 1 + (data[0] & 3);
    o.skip_bad = data[0] & 4;
    int loaded = (data[0] & 8) != 0;
    kivis_storage *st;
    kivis_db *db = open_db(&st, loaded);
    FILE *in = fmemopen((void *)(data + 1), size - 1, "r");
    if (!in)
        abort();
    kivis_jsonl_report r;
    int rc = kivis_import_jsonl(db, in, &o, &r);
    fclose(in);
    if (rc > 0 || (rc && !r.message[0]) || (r.rejected && !r.line))
        abort();
    if (rc && !o.skip_bad && r.records % o.batch) /* only whole batches */
        abort();
    if (rc == KIVIS_OK && !o.skip_bad && r.rejected)
        abort();
    if (kivis_check(db, NULL, NULL, NULL) != KIVIS_OK)
        abort();
    check_round_trip(db, loaded);
    close_db(db, st, loaded);
    return 0;
}
