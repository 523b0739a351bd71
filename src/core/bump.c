/* Decoding into a caller's buffer (kivis_get_into, kivis_scan_next_into):
 * the allocator that hands out its pieces. */
#include "engine.h"

static void *bump_malloc(void *ctx, size_t n)
{
    kivis_bump *b = ctx;
    b->want = n > SIZE_MAX - b->want ? SIZE_MAX : b->want + n;
    if (n > (size_t)(b->end - b->next))
        return NULL;
    void *p = b->next;
    b->next += n;
    return p;
}

/* Decoding never grows a piece. */
static void *bump_realloc(void *ctx, void *p, size_t n)
{
    return p ? NULL : bump_malloc(ctx, n);
}

/* Pieces go back with the buffer, all at once, when the caller drops it. */
static void bump_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p;
}

void kivis__bump_init(kivis_bump *b, void *buf, size_t size)
{
    b->iface.malloc = bump_malloc;
    b->iface.realloc = bump_realloc;
    b->iface.free = bump_free;
    b->iface.ctx = b;
    b->next = buf;
    b->end = b->next ? b->next + size : b->next;
    b->want = 0;
}

int kivis__bump_status(kivis_db *db, const kivis_bump *b, size_t size, int rc)
{
    if (rc != KIVIS_ENOMEM || b->want <= size)
        return rc;
    return kivis__fail(db, KIVIS_ETOOSMALL,
                       "buffer of %zu bytes too small: the record needs "
                       "at least %zu",
                       size, b->want);
}
