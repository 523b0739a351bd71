/* A set of byte keys, each with one flag: open addressing with linear
 * probing over slots that point into one byte arena.  Scans in a write
 * transaction keep in one the keys written while they run (scan.c); it only
 * grows, and is freed with the scan. */
#include "keyset.h"
#include "storage/pointhash.h"

#include <string.h>

struct kivis_keyslot {
    uint64_t hash;
    size_t off;  /* of the key in the arena */
    size_t len;  /* 0: an empty slot (keys are never empty) */
    bool flag;
};

void kivis__keyset_init(kivis_keyset *ks, const kivis_allocator *a)
{
    memset(ks, 0, sizeof *ks);
    ks->alloc = a;
    kivis__buf_init(&ks->bytes, a);
}

void kivis__keyset_free(kivis_keyset *ks)
{
    if (ks->slots)
        ks->alloc->free(ks->alloc->ctx, ks->slots);
    kivis__buf_free(&ks->bytes);
    kivis__keyset_init(ks, ks->alloc);
}

static bool slot_holds(const kivis_keyset *ks, const kivis_keyslot *sl,
                       uint64_t hash, kivis_slice key)
{
    return sl->hash == hash && sl->len == key.len &&
           memcmp(ks->bytes.data + sl->off, key.data, key.len) == 0;
}

/* The slot holding key, or the empty one where it would go. */
static kivis_keyslot *probe(const kivis_keyset *ks, uint64_t hash, kivis_slice key)
{
    size_t mask = ks->nslots - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        kivis_keyslot *sl = &ks->slots[i];
        if (sl->len == 0 || slot_holds(ks, sl, hash, key))
            return sl;
    }
}

bool kivis__keyset_find(const kivis_keyset *ks, kivis_slice key, bool *flag)
{
    if (!ks->count)
        return false;
    const kivis_keyslot *sl = probe(ks, kivis__hash_bytes(0, key), key);
    if (sl->len == 0)
        return false;
    *flag = sl->flag;
    return true;
}

/* Double the table (at least 16 slots), re-placing every key. */
static int grow(kivis_keyset *ks)
{
    size_t n = ks->nslots ? ks->nslots * 2 : 16;
    kivis_keyslot *slots = ks->alloc->malloc(ks->alloc->ctx, n * sizeof *slots);
    if (!slots)
        return KIVIS_ENOMEM;
    memset(slots, 0, n * sizeof *slots);
    kivis_keyset old = *ks;
    ks->slots = slots;
    ks->nslots = n;
    for (size_t i = 0; i < old.nslots; i++) {
        const kivis_keyslot *sl = &old.slots[i];
        if (sl->len)
            *probe(ks, sl->hash, kivis_slice_make(ks->bytes.data + sl->off, sl->len)) = *sl;
    }
    if (old.slots)
        ks->alloc->free(ks->alloc->ctx, old.slots);
    return KIVIS_OK;
}

int kivis__keyset_add(kivis_keyset *ks, kivis_slice key, bool flag)
{
    if ((ks->count + 1) * 4 > ks->nslots * 3) {
        int rc = grow(ks);
        if (rc)
            return rc;
    }
    uint64_t hash = kivis__hash_bytes(0, key);
    kivis_keyslot *sl = probe(ks, hash, key);
    if (sl->len == 0) {
        size_t off = ks->bytes.len;
        int rc = kivis__buf_append(&ks->bytes, key.data, key.len);
        if (rc)
            return rc;
        sl->hash = hash;
        sl->off = off;
        sl->len = key.len;
        ks->count++;
    }
    sl->flag = flag;
    return KIVIS_OK;
}
