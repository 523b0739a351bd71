/*
 * src/core/keyset.h - a set of byte keys with one flag each (keyset.c).
 * Keys are copied in; the set owns its memory, taken from the allocator
 * given at init, which must outlive it.
 */
#ifndef KIVIS_KEYSET_H
#define KIVIS_KEYSET_H

#include "codec/codec.h"

#include <stdbool.h>

typedef struct kivis_keyslot kivis_keyslot;

typedef struct kivis_keyset {
    const kivis_allocator *alloc;
    kivis_buf bytes;       /* the keys, back to back */
    kivis_keyslot *slots;  /* nslots, a power of two, at most 3/4 full */
    size_t nslots, count;
} kivis_keyset;

/* An empty set; allocates nothing until the first add. */
void kivis__keyset_init(kivis_keyset *ks, const kivis_allocator *a);
/* Free everything; the set is empty and usable again. */
void kivis__keyset_free(kivis_keyset *ks);
/* Whether key (non-empty) is in the set; if so *flag receives its flag. */
bool kivis__keyset_find(const kivis_keyset *ks, kivis_slice key, bool *flag);
/* Add key with flag, or set the flag of a key already there.
 * @return KIVIS_OK; KIVIS_ENOMEM (the set is unchanged). */
int kivis__keyset_add(kivis_keyset *ks, kivis_slice key, bool flag);

#endif
