/* A cursor over pages of a server's entries (see paged.h). */
#include "paged.h"

#include <string.h>

#define PAGE_FIRST 16  /* entries in a seek's first page */
#define PAGE_GROWTH 8  /* each next page going the same way: 8 times */
#define PAGE_MAX 1024  /* entries in a page at most */

enum { UNPLACED, PLACED, ENDED };

int kivis__paged_new(size_t size, const kivis_cursor_methods *methods,
                     const kivis_paged_source *src, const kivis_allocator *a,
                     kivis_slice lo, kivis_slice hi, kivis_paged **out)
{
    *out = NULL;
    if (!lo.data && lo.len)
        return KIVIS_EINVAL;
    kivis_paged *p = a->malloc(a->ctx, size);
    if (!p)
        return KIVIS_ENOMEM;
    memset(p, 0, size);
    p->cur.methods = methods;
    p->src = src;
    p->state = UNPLACED;
    if (kivis__range_init(&p->range, a, lo, hi) != KIVIS_OK) {
        a->free(a->ctx, p);
        return KIVIS_ENOMEM;
    }
    *out = p;
    return KIVIS_OK;
}

void kivis__paged_free(kivis_paged *p, const kivis_allocator *a)
{
    kivis__range_free(&p->range, a);
    a->free(a->ctx, p);
}

/* Fetch the page from *from going dir; `more` when it continues the
 * page before in the same direction (it grows).  KIVIS_NOTFOUND for an
 * empty page. */
static int fetch(kivis_paged *p, int dir, const kivis_slice *from, bool inclusive,
                 bool more)
{
    long limit = !more ? PAGE_FIRST
                 : p->limit < PAGE_MAX / PAGE_GROWTH ? p->limit * PAGE_GROWTH
                 : PAGE_MAX;
    size_t n = 0;
    bool complete = false;
    int rc = p->src->fetch(p, dir, from, inclusive, limit, &n, &complete);
    if (rc != KIVIS_OK)
        return rc;
    p->limit = limit;
    p->dir = dir;
    p->n = n;
    p->at = 0;
    p->complete = complete;
    return n ? KIVIS_OK : KIVIS_NOTFOUND;
}

static kivis_slice current_key(const kivis_paged *p)
{
    kivis_slice k;
    p->src->entry(p, p->at, &k, NULL);
    return k;
}

/* First entry >= target (NULL: the range's start), below hi. */
static int seek_ge(kivis_paged *p, const kivis_slice *target)
{
    kivis_slice from = target && kivis__key_cmp(*target, p->range.lo) > 0
                           ? *target : p->range.lo;
    if (p->range.hi.data && kivis__key_cmp(from, p->range.hi) >= 0)
        return KIVIS_NOTFOUND;
    return fetch(p, 1, &from, true, false);
}

/* Last entry <= target (NULL: the range's end), at or above lo. */
static int seek_le(kivis_paged *p, const kivis_slice *target)
{
    const kivis_slice *hi = p->range.hi.data ? &p->range.hi : NULL;
    if (hi && kivis__key_cmp(*hi, p->range.lo) <= 0)
        return KIVIS_NOTFOUND;
    if (target && (!hi || kivis__key_cmp(*target, *hi) < 0)) {
        if (kivis__key_cmp(*target, p->range.lo) < 0)
            return KIVIS_NOTFOUND;
        return fetch(p, -1, target, true, false);
    }
    return fetch(p, -1, hi, false, false); /* hi is exclusive */
}

/* The neighbour of the current entry going dir: in the page when it has
 * one, else from the server, past the current key. */
static int step(kivis_paged *p, int dir)
{
    if (dir == p->dir && p->at + 1 < p->n) {
        p->at++;
        return KIVIS_OK;
    }
    if (dir != p->dir && p->at > 0) {
        p->at--;
        return KIVIS_OK;
    }
    if (dir == p->dir && p->complete)
        return KIVIS_NOTFOUND;
    kivis_slice from = current_key(p);
    return fetch(p, dir, &from, false, dir == p->dir);
}

static int move(kivis_paged *p, int op, const kivis_slice *target)
{
    int dir = kivis__op_dir(op);
    if (op == KIVIS_NEXT || op == KIVIS_PREV) {
        if (p->state == ENDED)
            return KIVIS_NOTFOUND;
        if (p->state == PLACED)
            return step(p, dir);
        target = NULL; /* never placed: FIRST or LAST */
    }
    return dir > 0 ? seek_ge(p, target) : seek_le(p, target);
}

int kivis__paged_get(kivis_paged *p, int op, kivis_slice *key, kivis_slice *value)
{
    kivis_slice buf;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (rc == KIVIS_OK)
        rc = move(p, op, target);
    if (rc == KIVIS_NOTFOUND)
        p->state = ENDED;
    if (rc != KIVIS_OK)
        return rc;
    p->state = PLACED;
    p->src->entry(p, p->at, key, value);
    return KIVIS_OK;
}
