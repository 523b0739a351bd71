/*
 * src/storage/paged.h - a cursor over a key range whose entries live on a
 * server and come a page at a time (the PostgreSQL and etcd backends).
 * Internal.
 *
 * The cursor keeps its place in the page it has; a step past the page's
 * end asks the backend for the next page, and a step back past its start
 * for the page before.  The first page of a seek is small (PAGE_FIRST
 * entries): most cursors read a key or a few (the highest id, a unique
 * check, a short index range).  One that keeps going the same way gets
 * pages 8 times larger, 16, 128, then 1024 entries: a round trip costs as
 * much as sending some hundred entries, so a walk over 1,000 entries takes
 * 3 round trips instead of the 6 that doubling takes, and over-reads 8
 * times at worst what a cursor stopping early uses.
 *
 * A backend's cursor struct starts with a kivis_paged (whose first member
 * is the kivis_storage_cursor the caller holds) and holds its page of
 * entries itself; the kivis_paged_source it hands to kivis__paged_init
 * fetches pages and reads entries out of them.
 */
#ifndef KIVIS_PAGED_H
#define KIVIS_PAGED_H

#include "btree.h" /* kivis_bt_range */

#include <kivis/storage.h>

#include <stdbool.h>
#include <stddef.h>

typedef struct kivis_paged kivis_paged;

typedef struct kivis_paged_source {
    /** Replace the cursor's page by at most `limit` entries of the range
     *  going dir (+1 ascending, -1 descending) from *from: from itself
     *  included when `inclusive`, up to the range's far end going dir.
     *  from is NULL only going back from the range's end (no upper bound).
     *  Sets *n to the entries fetched (0: none) and *complete when none lie
     *  past them going dir.  On failure the old page stays.
     *  @return KIVIS_OK or the backend's error. */
    int (*fetch)(kivis_paged *p, int dir, const kivis_slice *from, bool inclusive,
                 long limit, size_t *n, bool *complete);
    /** Entry i of the page in the order it was fetched: its key, and its
     *  value when value is not NULL (both valid until the next fetch). */
    void (*entry)(const kivis_paged *p, size_t i, kivis_slice *key, kivis_slice *value);
} kivis_paged_source;

struct kivis_paged {
    kivis_storage_cursor cur; /* first: what the caller holds */
    const kivis_paged_source *src;
    kivis_bt_range range;     /* the bounds (range.last unused) */
    int state;                /* unplaced, placed or ended */
    int dir;                  /* the page's order: +1 ascending, -1 descending */
    size_t n, at;             /* entries in the page, the current one */
    bool complete;            /* nothing past the page going dir */
    long limit;               /* entries asked for by the last fetch */
};

/** A new cursor over [lo, hi) (hi.data NULL: no upper bound), unplaced:
 *  `size` bytes from `a` (the backend's struct, at least a kivis_paged),
 *  zeroed but for the kivis_paged, whose method table is `methods`.
 *  @return KIVIS_OK with *out; KIVIS_EINVAL (lo.data NULL with a length);
 *          KIVIS_ENOMEM.  *out = NULL on failure. */
int kivis__paged_new(size_t size, const kivis_cursor_methods *methods,
                     const kivis_paged_source *src, const kivis_allocator *a,
                     kivis_slice lo, kivis_slice hi, kivis_paged **out);

/** A cursor get (storage.h's contract): op FIRST, LAST, NEXT, PREV,
 *  SEEK_GE or SEEK_LE, fetching pages through the source as needed.
 *  @return KIVIS_OK with *key (and *value); KIVIS_NOTFOUND; KIVIS_EINVAL;
 *          the source's errors. */
int kivis__paged_get(kivis_paged *p, int op, kivis_slice *key, kivis_slice *value);

/** Free the cursor kivis__paged_new made (the backend frees its page
 *  first), with the same allocator. */
void kivis__paged_free(kivis_paged *p, const kivis_allocator *a);

#endif /* KIVIS_PAGED_H */
