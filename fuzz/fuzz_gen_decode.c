/*
 * Differential: decode arbitrary bytes as a value of a record of
 * tests/gen/alltypes.kvs (every field type) or tests/gen/opt.kvs (every
 * optional field) with its generated decoder and with the descriptor walk;
 * both must return the same status, and on success equal records (presence
 * included), also into a caller's buffer of a fuzzed size, where both must
 * ask for the same bytes (tests/gen/decode_diff.c).
 *
 * Byte 0: the record (bits 0-2, of five) and whether a header comes from
 * the input (bit 3 set) or is made up (format byte, version 0, byte 1 as
 * the field count), so that most inputs reach the fields; byte 1: the
 * buffer size and, made-up header, the field count.
 */
#include "alltypes.kivis.h"
#include "opt.kivis.h"
#include "decode_diff.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 4096

static const kivis_struct_desc *record_of(uint8_t pick)
{
    switch (pick % 5) {
    case 4:
        return opt_schema.tables[OPT_PERSON].record;
    default:
        return alltypes_schema.tables[pick % 5].record;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t value[MAX_INPUT + 3];
    if (size < 2 || size > MAX_INPUT)
        return 0;
    const kivis_struct_desc *sd = record_of(data[0] & 7);
    size_t len = 0;
    if (!(data[0] & 8)) {
        value[len++] = 0x01; /* KIVIS_VALUE_FORMAT */
        value[len++] = 0x00;
        value[len++] = (uint8_t)(data[1] % (sd->nfields + 1));
    }
    memcpy(value + len, data + 2, size - 2);
    len += size - 2;
    int into_rc;
    if (decode_diff(sd, value, len, data[1], &into_rc) == DECODE_DIFF_MISMATCH)
        abort();
    return 0;
}
