/* Cursor ranges over a B+tree (see btree.h): bounds, the last key, and the
 * bounded seek that both the memory backend's and the overlay's cursors
 * are built on. */
#include "btree.h"

#include <string.h>

int kivis__range_init(kivis_bt_range *r, const kivis_allocator *a,
                      kivis_slice lo, kivis_slice hi)
{
    memset(r, 0, sizeof *r);
    size_t hlen = hi.data ? hi.len : 0;
    unsigned char *p = a->malloc(a->ctx, lo.len + hlen + 1);
    if (!p)
        return KIVIS_ENOMEM;
    if (lo.len)
        memcpy(p, lo.data, lo.len);
    if (hlen)
        memcpy(p + lo.len, hi.data, hlen);
    r->lo = kivis_slice_make(p, lo.len);
    r->hi = kivis_slice_make(hi.data ? p + lo.len : NULL, hlen);
    return KIVIS_OK;
}

void kivis__range_free(kivis_bt_range *r, const kivis_allocator *a)
{
    a->free(a->ctx, r->last);
    a->free(a->ctx, (void *)r->lo.data);
    memset(r, 0, sizeof *r);
}

bool kivis__range_has(const kivis_bt_range *r, kivis_slice key)
{
    return kivis__key_cmp(key, r->lo) >= 0 &&
           (!r->hi.data || kivis__key_cmp(key, r->hi) < 0);
}

bool kivis__range_short_of_far(const kivis_bt_range *r, kivis_slice key,
                               int dir)
{
    if (dir > 0)
        return !r->hi.data || kivis__key_cmp(key, r->hi) < 0;
    return kivis__key_cmp(key, r->lo) >= 0;
}

int kivis__range_remember(kivis_bt_range *r, const kivis_allocator *a,
                          kivis_slice key)
{
    if (key.len > r->last_cap) {
        unsigned char *p = a->realloc(a->ctx, r->last, key.len);
        if (!p)
            return KIVIS_ENOMEM;
        r->last = p;
        r->last_cap = key.len;
    }
    memcpy(r->last, key.data, key.len);
    r->last_len = key.len;
    return KIVIS_OK;
}

kivis_slice kivis__range_last(const kivis_bt_range *r)
{
    return kivis_slice_make(r->last, r->last_len);
}

int kivis__check_key(kivis_slice key, size_t max_key)
{
    if (key.len == 0 || !key.data)
        return KIVIS_EINVAL;
    return key.len > max_key ? KIVIS_EKEYSIZE : KIVIS_OK;
}

int kivis__cursor_args(int op, kivis_slice *key, kivis_slice *value,
                       kivis_slice *target_buf, const kivis_slice **target)
{
    static const kivis_slice none = {NULL, 0};
    if (!key || op < KIVIS_FIRST || op > KIVIS_SEEK_LE)
        return KIVIS_EINVAL;
    bool seek = op == KIVIS_SEEK_GE || op == KIVIS_SEEK_LE;
    *target_buf = seek ? *key : none;
    if (!target_buf->data && target_buf->len)
        return KIVIS_EINVAL;
    *target = seek ? target_buf : NULL;
    *key = none;
    if (value)
        *value = none;
    return KIVIS_OK;
}

static int seek_forward(const kivis_btree *t, const kivis_bt_range *r,
                        const kivis_slice *target, kivis_bt_iter *it)
{
    kivis_slice from = target && kivis__key_cmp(*target, r->lo) > 0 ? *target : r->lo;
    return kivis__btree_seek_ge(t, from, it);
}

/* hi is exclusive: the last entry <= hi is skipped when it equals hi. */
static int seek_backward(const kivis_btree *t, const kivis_bt_range *r,
                         const kivis_slice *target, kivis_bt_iter *it)
{
    if (target && (!r->hi.data || kivis__key_cmp(*target, r->hi) < 0))
        return kivis__btree_seek_le(t, *target, it);
    if (!r->hi.data)
        return kivis__btree_last(t, it);
    int rc = kivis__btree_seek_le(t, r->hi, it);
    if (rc == KIVIS_OK && kivis__key_cmp(kivis__bt_iter_key(it), r->hi) == 0)
        rc = kivis__btree_prev(it);
    return rc;
}

int kivis__range_seek(const kivis_btree *t, const kivis_bt_range *r, int dir,
                      const kivis_slice *target, kivis_bt_iter *it)
{
    return dir > 0 ? seek_forward(t, r, target, it) : seek_backward(t, r, target, it);
}
