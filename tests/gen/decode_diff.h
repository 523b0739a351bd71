/*
 * tests/gen/decode_diff.h - decode the same bytes with a record's generated
 * decoder (kivis_struct_desc.decode) and with the descriptor walk, and say
 * whether they agree: the same status, and on success the same schema
 * version and deep-equal records (presence included); on failure both
 * records zeroed.  With a caller's buffer (the bump allocator of
 * kivis_get_into) both must also have asked for the same bytes.  Shared by
 * test_gen_decode and fuzz_gen_decode.
 */
#ifndef KIVIS_TESTS_DECODE_DIFF_H
#define KIVIS_TESTS_DECODE_DIFF_H

#include <kivis/schema.h>

#include <stdbool.h>

/* Returned instead of a status when the two decoders disagree. */
#define DECODE_DIFF_MISMATCH 1000

/* The status both decoders returned for `in` (len bytes) decoded as a
 * value of sd, which has a generated decoder: once with the default
 * allocator, once into a buffer of buf_size bytes (that decode's status
 * goes to *into_rc).  DECODE_DIFF_MISMATCH when they disagree. */
int decode_diff(const kivis_struct_desc *sd, const uint8_t *in, size_t len,
                size_t buf_size, int *into_rc);

#endif /* KIVIS_TESTS_DECODE_DIFF_H */
