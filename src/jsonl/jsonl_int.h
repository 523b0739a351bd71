/*
 * src/jsonl/jsonl_int.h - what the JSON Lines export (write.c) and import
 * (read.c) share: base64, the memory of a decoded struct, the report and
 * the key a derived-key table takes from the line (open.c).
 */
#ifndef KIVIS_JSONL_INT_H
#define KIVIS_JSONL_INT_H

#include <kivis/jsonl.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The C types of one element, read or written with memcpy (fields sit at
 * any offset the descriptor gives). */
typedef union kivis__jsonl_scalar {
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; int8_t i8;
    int16_t i16; int32_t i32; int64_t i64; float f32; double f64;
    bool b; char *s; kivis_bytes bytes;
} kivis__jsonl_scalar;

/* The base64 text of n bytes (RFC 4648, padded): 4 * ceil(n / 3) chars. */
size_t kivis__b64_len(size_t n);
/* Write it to out (kivis__b64_len(n) + 1 bytes, NUL-terminated). */
void kivis__b64_encode(const uint8_t *data, size_t n, char *out);
/* Decode `len` chars of padded base64 into a malloc'd buffer (never NULL
 * on success, even for no bytes).  @return 0, or -1 when the text is not
 * canonical base64 (or out of memory: *nomem set). */
int kivis__b64_decode(const char *text, size_t len, kivis_bytes *out, bool *nomem);

/* Free what the import malloc'd in the struct sd at p (strings, blobs). */
void kivis__jsonl_free_struct(const kivis_struct_desc *sd, void *p);

/* The options to use (opts, or the defaults) and the report to fill
 * (report, or *spare), zeroed. */
const kivis_jsonl_options *kivis__jsonl_opts(const kivis_jsonl_options *opts);
kivis_jsonl_report *kivis__jsonl_report(kivis_jsonl_report *report,
                                        kivis_jsonl_report *spare);

/* Keep a failure in the report (the first one) and tell opts->error. */
void kivis__jsonl_fail(kivis_jsonl_report *r, const kivis_jsonl_options *o,
                       uint64_t line, const char *table, const char *field,
                       const char *message);

/* The key the line being imported gives, for a derived-key table of a db
 * from kivis_jsonl_open (open.c); NULL outside kivis_import_jsonl. */
void kivis__jsonl_set_line_key(const void *key, size_t size);

#endif
