/* chunk's derived key for the code of tests/gen/alltypes.kvs, which the
 * user writes (docs/schema.md, derived_key): FNV-1a of the bytes, and
 * their length.  One definition for every program built on that schema:
 * test_gen_roundtrip, test_jsonl and fuzz_jsonl_import. */
#include "alltypes.kivis.h"

chunk_key chunk_derive_key(const chunk *rec)
{
    chunk_key k;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < rec->data.len; i++)
        h = (h ^ rec->data.data[i]) * 0x100000001b3ull;
    k.hash = h;
    k.len = (uint32_t)rec->data.len;
    return k;
}
