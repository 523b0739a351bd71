/*
 * tests/test_btree.c - the B+tree (src/storage/btree.c) against a reference
 * model, and what is specific to the overlay and the memory backend
 * (the generic storage contract is tests/test_conformance.c's job).
 *
 * The reference model works over a "universe": every string of length 1..N
 * over a small alphabet that contains 0x00 and 0xff, generated in order by a
 * depth-first walk (a prefix before its extensions, children by byte), so
 * the expected order owes nothing to kivis__key_cmp.  A key is then its rank,
 * and the model is an array of present flags and values.  Small alphabets
 * make keys collide and prefix each other, and keys longer than 8 bytes
 * share their first 8 bytes, which a search hint taken at the start of the
 * key could not tell apart.  A universe may also put the same `lead` bytes
 * before every key, as kivis's table prefixes do: nodes then share prefixes
 * longer than the tree keeps inline (PREFIX_INLINE), or that shrink from
 * beyond it to within it.
 */
#include "testutil.h"

#include "storage/btree.h"
#include "storage/pointhash.h"

#include <kivis/memory.h>
#include <kivis/overlay.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXK 10 /* bytes after the lead */
#define MAXLEAD 20
#define MAXV 24

/* ---- the universe and the model --------------------------------------- */

typedef struct universe {
    size_t n;
    unsigned char (*key)[MAXLEAD + MAXK];
    unsigned char *len;
} universe;

static void universe_walk(universe *u, unsigned char *prefix, int len,
                          int maxlen, const unsigned char *alpha, int nalpha)
{
    for (int i = 0; i < nalpha; i++) {
        prefix[len] = alpha[i];
        memcpy(u->key[u->n], prefix, (size_t)len + 1);
        u->len[u->n++] = (unsigned char)(len + 1);
        if (len + 1 < maxlen)
            universe_walk(u, prefix, len + 1, maxlen, alpha, nalpha);
    }
}

/* Every string of 1..maxlen bytes over alpha, each after `lead` bytes of
 * 0x5a. */
static void universe_init_lead(universe *u, int lead, int maxlen,
                               const unsigned char *alpha, int nalpha)
{
    assert_true(lead <= MAXLEAD && maxlen <= MAXK);
    size_t total = 0, level = 1;
    for (int l = 1; l <= maxlen; l++)
        total += level *= (size_t)nalpha;
    u->key = calloc(total, sizeof *u->key);
    u->len = calloc(total, 1);
    assert_non_null(u->key);
    assert_non_null(u->len);
    u->n = 0;
    unsigned char prefix[MAXLEAD + MAXK];
    memset(prefix, 0x5a, (size_t)lead);
    universe_walk(u, prefix, lead, lead + maxlen, alpha, nalpha);
    assert_int_equal(u->n, total);
}
static void universe_init(universe *u, int maxlen, const unsigned char *alpha,
                          int nalpha)
{
    universe_init_lead(u, 0, maxlen, alpha, nalpha);
}

static void universe_free(universe *u)
{
    free(u->key);
    free(u->len);
}

static kivis_slice ukey(const universe *u, size_t rank)
{
    return kivis_slice_make(u->key[rank], u->len[rank]);
}

typedef struct model {
    const universe *u;
    bool *present;
    unsigned char (*val)[MAXV];
    unsigned char *vlen;
    size_t count;
} model;

static void model_init(model *m, const universe *u)
{
    m->u = u;
    m->present = calloc(u->n, sizeof *m->present);
    m->val = calloc(u->n, MAXV);
    m->vlen = calloc(u->n, 1);
    m->count = 0;
    assert_true(m->present && m->val && m->vlen);
}

static void model_free(model *m)
{
    free(m->present);
    free(m->val);
    free(m->vlen);
}

static void model_put(model *m, size_t r, kivis_slice v)
{
    m->count += !m->present[r];
    m->present[r] = true;
    if (v.len)
        memcpy(m->val[r], v.data, v.len);
    m->vlen[r] = (unsigned char)v.len;
}

static void model_del(model *m, size_t r)
{
    m->count -= m->present[r];
    m->present[r] = false;
}

static kivis_slice model_val(const model *m, size_t r)
{
    return kivis_slice_make(m->val[r], m->vlen[r]);
}

/* The first present rank from r going dir (+1/-1) inside [lo, hi); -1 if
 * none.  Ranks are ptrdiff_t so that "before 0" is expressible. */
static ptrdiff_t model_scan(const model *m, ptrdiff_t r, int dir, ptrdiff_t lo,
                            ptrdiff_t hi)
{
    for (; r >= lo && r < hi; r += dir)
        if (m->present[r])
            return r;
    return -1;
}

static void assert_slice_equal(kivis_slice a, kivis_slice b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.data, b.data, a.len);
}

static kivis_slice random_value(uint64_t *rng, unsigned char *buf)
{
    size_t len = kt_rand(rng) % (MAXV + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)kt_rand(rng);
    return kivis_slice_make(buf, len);
}

/* ---- B+tree helpers --------------------------------------------------- */

static void append(char **buf, size_t *len, size_t *cap, kivis_slice s,
                   char end)
{
    static const char hex[] = "0123456789abcdef";
    if (*len + 2 * s.len + 2 > *cap) {
        *cap = 2 * (*len + 2 * s.len + 2);
        *buf = realloc(*buf, *cap);
        assert_non_null(*buf);
    }
    for (size_t i = 0; i < s.len; i++) {
        unsigned char b = ((const unsigned char *)s.data)[i];
        (*buf)[(*len)++] = hex[b >> 4];
        (*buf)[(*len)++] = hex[b & 15];
    }
    (*buf)[(*len)++] = end;
    (*buf)[*len] = '\0';
}

/* Every entry as "key=value\n" in hex, walked both ways to catch a broken
 * back link.  Caller frees. */
static char *tree_dump(const kivis_btree *t)
{
    size_t len = 0, cap = 64, back = 0;
    char *buf = calloc(1, cap);
    assert_non_null(buf);
    kivis_bt_iter it;
    for (int rc = kivis__btree_first(t, &it); rc == KIVIS_OK;
         rc = kivis__btree_next(&it)) {
        append(&buf, &len, &cap, kivis__bt_iter_key(&it), '=');
        append(&buf, &len, &cap, kivis__bt_iter_value(&it), '\n');
    }
    for (int rc = kivis__btree_last(t, &it); rc == KIVIS_OK;
         rc = kivis__btree_prev(&it))
        back++;
    assert_int_equal(back, kivis__btree_count(t));
    return buf;
}

static void assert_iter_at(const kivis_bt_iter *it, const model *m, size_t r)
{
    assert_slice_equal(kivis__bt_iter_key(it), ukey(m->u, r));
    assert_slice_equal(kivis__bt_iter_value(it), model_val(m, r));
}

static void assert_tree_matches(const kivis_btree *t, const model *m)
{
    assert_true(kivis__btree_check(t));
    assert_int_equal(kivis__btree_count(t), m->count);
    kivis_bt_iter it;
    int rc = kivis__btree_first(t, &it);
    for (ptrdiff_t r = model_scan(m, 0, 1, 0, (ptrdiff_t)m->u->n); r >= 0;
         r = model_scan(m, r + 1, 1, 0, (ptrdiff_t)m->u->n)) {
        assert_int_equal(rc, KIVIS_OK);
        assert_iter_at(&it, m, (size_t)r);
        rc = kivis__btree_next(&it);
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
}

static kivis_btree *tree_new(kt_alloc *a)
{
    kivis_btree *t = NULL;
    assert_int_equal(kivis__btree_new(a ? &a->iface : NULL, &t), KIVIS_OK);
    return t;
}

/* ---- B+tree: differential --------------------------------------------- */

static void check_seek(const kivis_btree *t, const model *m, size_t r, int dir)
{
    kivis_bt_iter it;
    ptrdiff_t n = (ptrdiff_t)m->u->n;
    int rc = dir > 0 ? kivis__btree_seek_ge(t, ukey(m->u, r), &it)
                     : kivis__btree_seek_le(t, ukey(m->u, r), &it);
    ptrdiff_t want = model_scan(m, (ptrdiff_t)r, dir, 0, n);
    if (want < 0) {
        assert_int_equal(rc, KIVIS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_iter_at(&it, m, (size_t)want);
    /* walk a few steps on, turning around at random */
    uint64_t rng = r + 1;
    for (int i = 0; i < 12; i++) {
        int d = kt_rand(&rng) % 3 ? dir : -dir;
        rc = d > 0 ? kivis__btree_next(&it) : kivis__btree_prev(&it);
        ptrdiff_t next = model_scan(m, want + d, d, 0, n);
        if (next < 0) {
            assert_int_equal(rc, KIVIS_NOTFOUND);
            return;
        }
        assert_int_equal(rc, KIVIS_OK);
        assert_iter_at(&it, m, (size_t)next);
        want = next;
    }
}

/* A sorted batch of up to 64 distinct ranks, about a third deletes. */
static void random_batch(kivis_btree *t, model *m, uint64_t *rng)
{
    kivis_batch_op ops[64];
    unsigned char vals[64][MAXV];
    size_t ranks[64];
    size_t n = 1 + kt_rand(rng) % 64, start = kt_rand(rng) % m->u->n;
    size_t spread = 1 + kt_rand(rng) % 2000, k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = (start + i * spread + kt_rand(rng) % spread) % m->u->n;
        if (k == 0 || r > ranks[k - 1])
            ranks[k++] = r;
    }
    for (size_t i = 0; i < k; i++) {
        ops[i].key = ukey(m->u, ranks[i]);
        ops[i].del = kt_rand(rng) % 3 == 0;
        ops[i].value = ops[i].del ? kivis_slice_make(NULL, 0)
                                  : random_value(rng, vals[i]);
    }
    assert_int_equal(kivis__btree_apply(t, ops, k), KIVIS_OK);
    for (size_t i = 0; i < k; i++) {
        if (ops[i].del)
            model_del(m, ranks[i]);
        else
            model_put(m, ranks[i], ops[i].value);
    }
}

/* With `hashed`, the tree keeps a point hash from op 1000 on (enabled on
 * a tree that already holds keys), and every check covers it too. */
static void differential(uint64_t seed, size_t nops, int lead, bool hashed)
{
    static const unsigned char alpha[] = {0x00, 0x61, 0xff};
    universe u;
    model m;
    kt_alloc a;
    universe_init_lead(&u, lead, MAXK, alpha, 3);
    model_init(&m, &u);
    kt_alloc_init(&a);
    kivis_btree *t = tree_new(&a);
    uint64_t rng = seed;
    unsigned char vbuf[MAXV];
    for (size_t i = 1; i <= nops; i++) {
        /* grow for 60k ops, then shrink for 60k: splits and merges at
         * every level, down to an empty tree now and then */
        bool growing = (i / 60000) % 2 == 0;
        size_t r = kt_rand(&rng) % u.n;
        unsigned op = kt_rand(&rng) % 100;
        kivis_slice got;
        if (hashed && i == 1000)
            assert_int_equal(kivis__btree_hash_points(t), KIVIS_OK);
        if (op < (growing ? 55u : 20u)) {
            kivis_slice v = random_value(&rng, vbuf);
            assert_int_equal(kivis__btree_put(t, ukey(&u, r), v), KIVIS_OK);
            model_put(&m, r, v);
        } else if (op < 85) {
            /* deletes aim at present keys so that shrinking makes progress */
            ptrdiff_t p = model_scan(&m, (ptrdiff_t)r, 1, 0, (ptrdiff_t)u.n);
            size_t d = p >= 0 && op % 2 ? (size_t)p : r;
            int want = m.present[d] ? KIVIS_OK : KIVIS_NOTFOUND;
            assert_int_equal(kivis__btree_del(t, ukey(&u, d)), want);
            model_del(&m, d);
        } else if (op < 92) {
            int rc = kivis__btree_get(t, ukey(&u, r), &got);
            assert_int_equal(rc, m.present[r] ? KIVIS_OK : KIVIS_NOTFOUND);
            if (m.present[r])
                assert_slice_equal(got, model_val(&m, r));
        } else if (op < 98) {
            check_seek(t, &m, r, op % 2 ? 1 : -1);
        } else {
            random_batch(t, &m, &rng);
        }
        if (i % 5000 == 0)
            assert_true(kivis__btree_check(t));
        if (i % 30000 == 0)
            assert_tree_matches(t, &m);
        assert_int_equal(kivis__btree_bytes(t), a.live_bytes);
    }
    assert_tree_matches(t, &m);
    kivis__btree_free(t);
    assert_int_equal(a.live_blocks, 0);
    model_free(&m);
    universe_free(&u);
}

static void test_btree_differential_a(void **state)
{
    (void)state;
    differential(1, 300000, 0, false);
}

static void test_btree_differential_b(void **state)
{
    (void)state;
    differential(0xfeedbeef, 250000, 0, false);
}

/* Shared prefixes of 12 to 30 bytes: kept inline, read from a key, and
 * shrinking from one to the other. */
static void test_btree_differential_lead12(void **state)
{
    (void)state;
    differential(7, 150000, 12, false);
}

static void test_btree_differential_lead20(void **state)
{
    (void)state;
    differential(0xabad1dea, 150000, 20, false);
}

static void test_btree_differential_hashed(void **state)
{
    (void)state;
    differential(0x5eed, 250000, 0, true);
}

static void test_btree_differential_lead12_hashed(void **state)
{
    (void)state;
    differential(11, 150000, 12, true);
}

/* ---- B+tree: fixed cases ---------------------------------------------- */

static kivis_slice num_key(unsigned char *buf, uint32_t i)
{
    buf[0] = 'k';
    buf[1] = (unsigned char)(i >> 24);
    buf[2] = (unsigned char)(i >> 16);
    buf[3] = (unsigned char)(i >> 8);
    buf[4] = (unsigned char)i;
    return kivis_slice_make(buf, 5);
}

static void test_key_cmp(void **state)
{
    (void)state;
    struct {
        const char *a, *b;
        size_t la, lb;
        int sign;
    } cases[] = {
        {"", "", 0, 0, 0},        {"", "a", 0, 1, -1},
        {"a", "a\0", 1, 2, -1},   {"a\0", "a\x01", 2, 2, -1},
        {"ab", "b", 2, 1, -1},    {"\xff", "\x7f\xff", 1, 2, 1},
        {"abc", "abc", 3, 3, 0},  {"abcdefghi", "abcdefgh", 9, 8, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int c = kivis__key_cmp(kivis_slice_make(cases[i].a, cases[i].la),
                               kivis_slice_make(cases[i].b, cases[i].lb));
        assert_int_equal((c > 0) - (c < 0), cases[i].sign);
    }
    /* empty slices may carry a NULL pointer */
    assert_int_equal(kivis__key_cmp(kivis_slice_make(NULL, 0),
                                    kivis_slice_make(NULL, 0)), 0);
}

static void test_btree_iterate_both_ways(void **state)
{
    (void)state;
    kivis_btree *t = tree_new(NULL);
    unsigned char kb[5];
    const uint32_t n = 20000;
    /* insert in a scrambled order, every key once */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = (i * 7919u) % n;
        assert_int_equal(kivis__btree_put(t, num_key(kb, k), kivis_slice_make(&k, sizeof k)), KIVIS_OK);
    }
    assert_true(kivis__btree_check(t));
    kivis_bt_iter it;
    uint32_t i = 0;
    for (int rc = kivis__btree_first(t, &it); rc == KIVIS_OK; rc = kivis__btree_next(&it), i++)
        assert_slice_equal(kivis__bt_iter_key(&it), num_key(kb, i));
    assert_int_equal(i, n);
    for (int rc = kivis__btree_last(t, &it); rc == KIVIS_OK; rc = kivis__btree_prev(&it)) {
        uint32_t v;
        memcpy(&v, kivis__bt_iter_value(&it).data, sizeof v);
        assert_int_equal(v, --i);
    }
    assert_int_equal(i, 0);
    /* an iterator is refused once the tree changed */
    assert_int_equal(kivis__btree_first(t, &it), KIVIS_OK);
    assert_int_equal(kivis__btree_del(t, num_key(kb, 5)), KIVIS_OK);
    assert_int_equal(kivis__btree_next(&it), KIVIS_EINVAL);
    kivis__btree_clear(t);
    assert_int_equal(kivis__btree_count(t), 0);
    assert_int_equal(kivis__btree_first(t, &it), KIVIS_NOTFOUND);
    assert_true(kivis__btree_check(t));
    assert_int_equal(kivis__btree_put(t, num_key(kb, 1), kivis_slice_make(NULL, 0)), KIVIS_OK);
    assert_int_equal(kivis__btree_count(t), 1);
    kivis__btree_free(t);
}

static void expect_seek(const kivis_btree *t, int ge, kivis_slice key,
                        const char *want)
{
    kivis_bt_iter it;
    int rc = ge ? kivis__btree_seek_ge(t, key, &it) : kivis__btree_seek_le(t, key, &it);
    if (!want) {
        assert_int_equal(rc, KIVIS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_slice_equal(kivis__bt_iter_key(&it), kivis_slice_make(want, strlen(want)));
}

#define SL(s) kivis_slice_make(s, sizeof(s) - 1)

static void test_btree_seek_edges(void **state)
{
    (void)state;
    kivis_btree *t = tree_new(NULL);
    expect_seek(t, 1, SL("a"), NULL);
    expect_seek(t, 0, SL("a"), NULL);
    expect_seek(t, 1, kivis_slice_make(NULL, 0), NULL);
    const char *keys[] = {"b", "ba", "bab", "baba", "babababab", "bababababa", "c"};
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(kivis__btree_put(t, kivis_slice_make(keys[i], strlen(keys[i])), SL("v")), KIVIS_OK);
    expect_seek(t, 1, kivis_slice_make(NULL, 0), "b");  /* empty: before all */
    expect_seek(t, 0, kivis_slice_make(NULL, 0), NULL);
    expect_seek(t, 1, SL("a"), "b");
    expect_seek(t, 0, SL("a"), NULL);
    expect_seek(t, 1, SL("b\0"), "ba");                 /* between a key and its extension */
    expect_seek(t, 0, SL("b\0"), "b");
    expect_seek(t, 1, SL("bab"), "bab");                /* exact, both ways */
    expect_seek(t, 0, SL("bab"), "bab");
    expect_seek(t, 1, SL("babababa"), "babababab");     /* same 8-byte hint */
    expect_seek(t, 0, SL("bababababa\0"), "bababababa");
    expect_seek(t, 0, SL("babababab\xff"), "bababababa");
    expect_seek(t, 0, SL("bababababa\x01"), "bababababa");
    expect_seek(t, 1, SL("babababab\x01"), "bababababa");
    expect_seek(t, 1, SL("c\0"), NULL);
    expect_seek(t, 0, SL("\xff"), "c");
    kivis__btree_free(t);

    /* across leaf boundaries: keys 0, 2, 4, ...; probe every odd one */
    t = tree_new(NULL);
    unsigned char kb[5], pb[5];
    for (uint32_t i = 0; i < 10000; i += 2)
        assert_int_equal(kivis__btree_put(t, num_key(kb, i), SL("")), KIVIS_OK);
    for (uint32_t i = 1; i < 10000; i += 2) {
        kivis_bt_iter it;
        int rc = kivis__btree_seek_ge(t, num_key(pb, i), &it);
        if (i == 9999) {
            assert_int_equal(rc, KIVIS_NOTFOUND);
        } else {
            assert_int_equal(rc, KIVIS_OK);
            assert_slice_equal(kivis__bt_iter_key(&it), num_key(kb, i + 1));
        }
        assert_int_equal(kivis__btree_seek_le(t, num_key(pb, i), &it), KIVIS_OK);
        assert_slice_equal(kivis__bt_iter_key(&it), num_key(kb, i - 1));
    }
    kivis__btree_free(t);
}

static void test_btree_apply_rejects_bad_batches(void **state)
{
    (void)state;
    kivis_btree *t = tree_new(NULL);
    kivis_batch_op ops[2] = {{SL("b"), SL("1"), 0}, {SL("a"), SL("2"), 0}};
    assert_int_equal(kivis__btree_apply(t, ops, 2), KIVIS_EINVAL);
    ops[1].key = SL("b");
    assert_int_equal(kivis__btree_apply(t, ops, 2), KIVIS_EINVAL);
    assert_int_equal(kivis__btree_count(t), 0);
    assert_int_equal(kivis__btree_apply(t, ops, 0), KIVIS_OK);
    kivis__btree_free(t);
}

/* Lengths from 65535 bytes up take the entry's wide header. */
static void test_btree_long_keys_and_values(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_btree *t = tree_new(&a);
    static const size_t lens[][2] = {
        {65534, 65534}, {65535, 0}, {1, 65535}, {70000, 3}, {2, 300000},
    };
    unsigned char *buf = malloc(300001);
    assert_non_null(buf);
    for (size_t i = 0; i < 300001; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    for (size_t i = 0; i < 5; i++) {
        buf[0] = (unsigned char)i; /* distinct keys */
        kivis_slice k = kivis_slice_make(buf, lens[i][0]);
        kivis_slice v = kivis_slice_make(buf + 1, lens[i][1]);
        assert_int_equal(kivis__btree_put(t, k, v), KIVIS_OK);
        kivis_slice got;
        assert_int_equal(kivis__btree_get(t, k, &got), KIVIS_OK);
        assert_slice_equal(got, v);
    }
    assert_true(kivis__btree_check(t));
    assert_int_equal(kivis__btree_bytes(t), a.live_bytes);
    kivis_bt_iter it;
    size_t i = 0;
    for (int rc = kivis__btree_first(t, &it); rc == KIVIS_OK; rc = kivis__btree_next(&it), i++) {
        buf[0] = (unsigned char)i;
        assert_slice_equal(kivis__bt_iter_key(&it), kivis_slice_make(buf, lens[i][0]));
        assert_int_equal(kivis__bt_iter_value(&it).len, lens[i][1]);
    }
    assert_int_equal(i, 5);
    for (i = 0; i < 5; i++) {
        buf[0] = (unsigned char)i;
        assert_int_equal(kivis__btree_del(t, kivis_slice_make(buf, lens[i][0])), KIVIS_OK);
    }
    assert_int_equal(kivis__btree_bytes(t), a.live_bytes);
    kivis__btree_free(t);
    assert_int_equal(a.live_blocks, 0);
    free(buf);
}

/* ---- B+tree: out of memory -------------------------------------------- */

/* Drive `attempt` with the n-th allocation failing, n = 1, 2, ... until it
 * succeeds; after each failure the tree must be exactly as before, with
 * no block left behind.  Returns the number of failures seen. */
static unsigned long oom_loop(kt_alloc *a, kivis_btree *t,
                              int (*attempt)(kivis_btree *, void *), void *arg)
{
    char *before = tree_dump(t);
    long blocks = a->live_blocks;
    unsigned long n;
    for (n = 1;; n++) {
        kt_alloc_fail_at(a, n);
        int rc = attempt(t, arg);
        kt_alloc_fail_at(a, 0);
        if (rc == KIVIS_OK)
            break;
        assert_int_equal(rc, KIVIS_ENOMEM);
        assert_int_equal(a->live_blocks, blocks);
        assert_true(kivis__btree_check(t));
        char *now = tree_dump(t);
        assert_string_equal(now, before);
        free(now);
    }
    free(before);
    assert_true(kivis__btree_check(t));
    return n - 1;
}

typedef struct batch {
    kivis_batch_op *ops;
    size_t n;
} batch;

static int attempt_apply(kivis_btree *t, void *arg)
{
    batch *b = arg;
    return kivis__btree_apply(t, b->ops, b->n);
}

/* A batch over a tree of `base` keys k(4i): `fresh` new 7-byte keys packed
 * between k(4*mid) and the next key (a run of leaf splits that fills the
 * parent and splits it too), overwrites of every 97th key, and deletes of a
 * contiguous run of keys (merges and borrows at the leaf and inner level). */
typedef struct packed_batch {
    unsigned char (*keys)[7];
    kivis_batch_op *ops;
    size_t n;
} packed_batch;

static void packed_batch_make(packed_batch *b, uint32_t base, uint32_t fresh,
                              uint32_t mid, uint32_t del_from, uint32_t del_to)
{
    b->keys = calloc(base + fresh, 7);
    b->ops = calloc(base + fresh, sizeof *b->ops);
    assert_true(b->keys && b->ops);
    b->n = 0;
    for (uint32_t i = 0; i < base; i++) {
        bool del = i >= del_from && i < del_to;
        if (del || i % 97 == 0) {
            b->ops[b->n].key = num_key(b->keys[i], i * 4);
            b->ops[b->n].value = SL("rewritten");
            b->ops[b->n++].del = del;
        }
        for (uint32_t j = 0; i == mid && j < fresh; j++) {
            unsigned char *k = b->keys[base + j];
            num_key(k, i * 4 + 1);
            k[5] = (unsigned char)(j >> 8);
            k[6] = (unsigned char)j;
            b->ops[b->n].key = kivis_slice_make(k, 7);
            b->ops[b->n].value = SL("new");
            b->ops[b->n++].del = 0;
        }
    }
}

static void packed_batch_free(packed_batch *b)
{
    free(b->keys);
    free(b->ops);
}

static void load_ascending(kivis_btree *t, uint32_t n)
{
    unsigned char kb[5];
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(kivis__btree_put(t, num_key(kb, i * 4), SL("value")), KIVIS_OK);
}

static void test_btree_apply_oom_atomic(void **state)
{
    (void)state;
    enum { BASE = 6000, FRESH = 700 };
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_btree *t = tree_new(&a);
    load_ascending(t, BASE);
    packed_batch b;
    packed_batch_make(&b, BASE, FRESH, 2000, 3000, 4200);
    batch arg = {b.ops, b.n};
    unsigned long failures = oom_loop(&a, t, attempt_apply, &arg);
    /* every put's entry, the op array and at least a leaf and an inner node */
    assert_true(failures > FRESH + 3);
    assert_int_equal(kivis__btree_count(t), BASE + FRESH - 1200);
    kivis_slice v;
    assert_int_equal(kivis__btree_get(t, b.ops[0].key, &v), KIVIS_OK);
    assert_slice_equal(v, SL("rewritten"));
    assert_int_equal(kivis__btree_bytes(t), a.live_bytes);
    packed_batch_free(&b);
    kivis__btree_free(t);
    assert_int_equal(a.live_blocks, 0);
}

/* The bound on reserved nodes must cover a batch that splits the root
 * more than once, and a batch into an empty tree. */
static void test_btree_apply_large_batches(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_btree *t = tree_new(&a);
    packed_batch b;
    packed_batch_make(&b, 40000, 0, 0, 0, 0);
    for (size_t i = 0; i < b.n; i++)
        b.ops[i].del = 0;
    assert_int_equal(kivis__btree_apply(t, b.ops, b.n), KIVIS_OK);
    assert_true(kivis__btree_check(t));
    packed_batch_free(&b);
    packed_batch_make(&b, 40000, 60000, 100, 0, 0);
    assert_int_equal(kivis__btree_apply(t, b.ops, b.n), KIVIS_OK);
    assert_true(kivis__btree_check(t));
    for (size_t i = 0; i < b.n; i++)
        b.ops[i].del = 1;
    assert_int_equal(kivis__btree_apply(t, b.ops, b.n), KIVIS_OK);
    assert_true(kivis__btree_check(t));
    assert_int_equal(kivis__btree_count(t), 0);
    assert_int_equal(kivis__btree_bytes(t), a.live_bytes);
    packed_batch_free(&b);
    kivis__btree_free(t);
    assert_int_equal(a.live_blocks, 0);
}

/* One batch into an empty tree that makes so many leaves (6,000 keys: 187)
 * that the new root above them splits too, so a second new root goes above
 * that: every inner node of both levels must have been reserved (the bound
 * once counted the new roots but not the new root's own splits, and a
 * memory-backend commit of 3,000 indexed records asserted). */
static void test_btree_apply_grows_two_levels(void **state)
{
    (void)state;
    enum { N = 6000 };
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_btree *t = tree_new(&a);
    unsigned char(*keys)[5] = calloc(N, 5);
    kivis_batch_op *ops = calloc(N, sizeof *ops);
    assert_true(keys && ops);
    for (uint32_t i = 0; i < N; i++)
        ops[i] = (kivis_batch_op){num_key(keys[i], i), SL("v"), 0};
    assert_int_equal(kivis__btree_apply(t, ops, N), KIVIS_OK);
    assert_true(kivis__btree_check(t));
    assert_int_equal(kivis__btree_count(t), N);
    free(keys);
    free(ops);
    kivis__btree_free(t);
    assert_int_equal(a.live_blocks, 0);
}

typedef struct one_put {
    kivis_slice key, value;
} one_put;

static int attempt_put(kivis_btree *t, void *arg)
{
    one_put *p = arg;
    return kivis__btree_put(t, p->key, p->value);
}

static void put_and_del_oom(bool hashed)
{
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_btree *t = tree_new(&a);
    if (hashed)
        assert_int_equal(kivis__btree_hash_points(t), KIVIS_OK);
    unsigned char kb[5];
    unsigned long most = 0;
    /* ascending puts split the rightmost leaf, then its parent, then the
     * root, and adds a new root: up to three nodes besides the entry */
    for (uint32_t i = 0; i < 2400; i++) {
        one_put p = {num_key(kb, i), SL("v")};
        unsigned long f = oom_loop(&a, t, attempt_put, &p);
        most = f > most ? f : most;
    }
    /* with a point hash, a put that makes it grow may fail once more */
    if (hashed)
        assert_true(most == 4 || most == 5);
    else
        assert_int_equal(most, 4);
    /* an overwrite needs only its entry */
    one_put p = {num_key(kb, 7), SL("other")};
    assert_int_equal(oom_loop(&a, t, attempt_put, &p), 1);
    /* deletes never allocate, so an allocator that fails everything
     * cannot stop them, merges included */
    kt_alloc_fail_at(&a, 1);
    for (uint32_t i = 0; i < 2400; i += 1 + i % 3)
        assert_int_equal(kivis__btree_del(t, num_key(kb, i)), KIVIS_OK);
    assert_int_equal(a.calls, 0);
    kt_alloc_fail_at(&a, 0);
    assert_true(kivis__btree_check(t));
    kivis__btree_free(t);
    assert_int_equal(a.live_blocks, 0);
}

static void test_btree_put_and_del_oom(void **state)
{
    (void)state;
    put_and_del_oom(false);
    put_and_del_oom(true);
}

/* ---- point hash ------------------------------------------------------- */

/* Items are the addresses of a static array; hashes are chosen so that
 * runs collide on one home slot, wrap around the table's end and
 * interleave, and every order of removal must leave the rest findable
 * (the backward shift of linear probing). */
static void test_pointhash_collisions(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    static char items[12];
    /* home slots in a 16-slot table: three at 14 (wrapping to 0 and 1),
     * two at 15, two at 0, the rest scattered */
    const uint64_t hashes[12] = {14, 30, 46, 15, 31, 0, 16, 5, 21, 9, 3, 19};
    uint64_t rng = 42;
    for (int round = 0; round < 200; round++) {
        kivis_pointhash h;
        kivis__ph_init(&h, 0);
        assert_int_equal(kivis__ph_reserve(&h, &a.iface, 12), KIVIS_OK);
        assert_int_equal(h.cap, 16);
        int order[12];
        for (int i = 0; i < 12; i++)
            order[i] = i;
        for (int i = 11; i > 0; i--) { /* a random insert order */
            int j = (int)(kt_rand(&rng) % (uint64_t)(i + 1)), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        for (int i = 0; i < 12; i++)
            kivis__ph_insert(&h, hashes[order[i]], &items[order[i]]);
        bool gone[12] = {false};
        for (int k = 0; k < 12; k++) { /* remove in another random order */
            int victim;
            do
                victim = (int)(kt_rand(&rng) % 12);
            while (gone[victim]);
            kivis__ph_remove(&h, hashes[victim], &items[victim]);
            gone[victim] = true;
            for (int i = 0; i < 12; i++)
                assert_int_equal(kivis__ph_holds(&h, hashes[i], &items[i]), !gone[i]);
            assert_int_equal(h.count, (size_t)(11 - k));
        }
        /* replace keeps the slot and the hash */
        kivis__ph_insert(&h, 30, &items[0]);
        kivis__ph_insert(&h, 14, &items[1]);
        kivis__ph_replace(&h, 30, &items[0], &items[2]);
        assert_false(kivis__ph_holds(&h, 30, &items[0]));
        assert_true(kivis__ph_holds(&h, 30, &items[2]));
        assert_true(kivis__ph_holds(&h, 14, &items[1]));
        kivis__ph_free(&h, &a.iface);
    }
    assert_int_equal(a.live_blocks, 0);
}

/* Growing keeps every item; a failed grow keeps the old table whole. */
static void test_pointhash_reserve_oom(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    static char items[1000];
    kivis_pointhash h;
    kivis__ph_init(&h, 7);
    for (int i = 0; i < 1000; i++) {
        kivis_slice k = kivis_slice_make(&items[i], 1); /* any bytes */
        uint64_t hash = kivis__ph_hash(&h, k) ^ (uint64_t)i;
        kt_alloc_fail_at(&a, 1);
        int rc = kivis__ph_reserve(&h, &a.iface, h.count + 1);
        kt_alloc_fail_at(&a, 0);
        if (rc == KIVIS_ENOMEM) { /* only when it had to grow */
            assert_true(h.cap == 0 || h.count + 1 > h.cap / 4 * 3);
            assert_int_equal(kivis__ph_reserve(&h, &a.iface, h.count + 1), KIVIS_OK);
        }
        kivis__ph_insert(&h, hash, &items[i]);
    }
    assert_int_equal(h.cap, 2048);
    assert_int_equal(kivis__ph_bytes(&h), 2048 * sizeof(kivis_ph_slot));
    for (int i = 0; i < 1000; i++) {
        kivis_slice k = kivis_slice_make(&items[i], 1);
        assert_true(kivis__ph_holds(&h, kivis__ph_hash(&h, k) ^ (uint64_t)i, &items[i]));
    }
    kivis__ph_clear(&h);
    assert_int_equal(h.count, 0);
    assert_false(kivis__ph_holds(&h, 0, &items[0]));
    kivis__ph_free(&h, &a.iface);
    assert_int_equal(a.live_blocks, 0);
}

/* ---- memory backend and overlay --------------------------------------- */

static kivis_storage *mem_open(kt_alloc *a, size_t max_key)
{
    kivis_memory_options o = {.allocator = a ? &a->iface : NULL, .max_key_size = max_key};
    kivis_storage *st = NULL;
    assert_int_equal(kivis_memory_open(&o, &st), KIVIS_OK);
    return st;
}

static kivis_storage_txn *begin(kivis_storage *st, unsigned flags)
{
    kivis_storage_txn *t = NULL;
    assert_int_equal(kivis_storage_begin(st, flags, &t), KIVIS_OK);
    return t;
}

static kivis_storage_cursor *cursor(kivis_storage_txn *t, kivis_slice lo,
                                    kivis_slice hi)
{
    kivis_storage_cursor *c = NULL;
    assert_int_equal(kivis_txn_cursor(t, lo, hi, &c), KIVIS_OK);
    return c;
}

static const kivis_slice NONE = {NULL, 0};

/* "k07" style keys */
static kivis_slice kk(char *buf, int i)
{
    snprintf(buf, 8, "k%02d", i);
    return kivis_slice_make(buf, 3);
}

static void put_many(kivis_storage *st, int from, int to, int step)
{
    kivis_storage_txn *t = begin(st, 0);
    char kb[8];
    for (int i = from; i < to; i += step)
        assert_int_equal(kivis_txn_put(t, kk(kb, i), kk(kb, i)), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

/* Move c by op (key: the SEEK input, NULL for none) and expect `want`, or
 * KIVIS_NOTFOUND when want is NULL. */
static void expect_seek_key(kivis_storage_cursor *c, int op, const char *key,
                            const char *want)
{
    kivis_slice k = key ? kivis_slice_make(key, strlen(key)) : NONE, v;
    int rc = kivis_cursor_get(c, op, &k, &v);
    if (!want) {
        assert_int_equal(rc, KIVIS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_slice_equal(k, kivis_slice_make(want, strlen(want)));
}

static void expect_step(kivis_storage_cursor *c, int op, const char *want)
{
    expect_seek_key(c, op, NULL, want);
}

static void test_memory_methods_and_writer_lock(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_storage *st = mem_open(&a, 0);
    assert_int_equal(st->methods->version, KIVIS_STORAGE_VERSION);
    assert_string_equal(st->methods->name, "memory");
    assert_int_equal(kivis_storage_max_key(st), KIVIS_MEMORY_MAX_KEY);
    assert_int_equal(kivis_memory_bytes(st), a.live_bytes);

    kivis_storage_txn *w = begin(st, 0), *w2 = w, *r;
    assert_int_equal(kivis_storage_begin(st, 0, &w2), KIVIS_EBUSY);
    assert_null(w2);
    assert_int_equal(kivis_storage_begin(st, 0x80, &w2), KIVIS_EINVAL);
    r = begin(st, KIVIS_TXN_RDONLY); /* readers run beside the writer */
    assert_int_equal(kivis_txn_put(r, SL("a"), SL("1")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_del(r, SL("a")), KIVIS_EINVAL);
    kivis_txn_abort(r);
    kivis_txn_abort(w); /* abort releases the writer lock */
    w = begin(st, 0);
    assert_int_equal(kivis_txn_put(w, SL("a"), SL("1")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);
    w = begin(st, 0); /* so does commit */
    assert_int_equal(kivis_txn_commit(w, KIVIS_NOSYNC), KIVIS_OK);
    /* a commit that fails releases it too */
    w = begin(st, 0);
    assert_int_equal(kivis_txn_put(w, SL("b"), SL("2")), KIVIS_OK);
    kt_alloc_fail_at(&a, 1);
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_ENOMEM);
    kt_alloc_fail_at(&a, 0);
    w = begin(st, 0);
    kivis_txn_abort(w);
    assert_int_equal(kivis_memory_bytes(st), a.live_bytes);
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);

    st = mem_open(NULL, 8);
    assert_int_equal(kivis_storage_max_key(st), 8);
    w = begin(st, 0);
    assert_int_equal(kivis_txn_put(w, SL("12345678"), SL("")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, SL("123456789"), SL("")), KIVIS_EKEYSIZE);
    assert_int_equal(kivis_txn_del(w, SL("123456789")), KIVIS_EKEYSIZE);
    assert_int_equal(kivis_txn_put(w, NONE, SL("")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kt_count(st), 1);
    kivis_storage_close(st);
}

/* A read-only cursor reads the latest commit at each step, and steps on
 * from its last key even when a commit removed it in between. */
static void test_memory_read_cursor_after_commit(void **state)
{
    (void)state;
    kivis_storage *st = mem_open(NULL, 0);
    put_many(st, 0, 100, 2); /* k00 k02 ... k98 */
    char lo[8], hi[8], kb[8];
    kivis_storage_txn *r = begin(st, KIVIS_TXN_RDONLY);
    kivis_storage_cursor *all = cursor(r, NONE, NONE);
    kivis_storage_cursor *part = cursor(r, kk(lo, 10), kk(hi, 20));
    expect_step(all, KIVIS_NEXT, "k00");
    expect_step(all, KIVIS_NEXT, "k02");
    expect_step(part, KIVIS_SEEK_GE, "k10"); /* empty input key: the start */
    expect_seek_key(part, KIVIS_SEEK_GE, "k11", "k12");

    kivis_storage_txn *w = begin(st, 0);
    assert_int_equal(kivis_txn_del(w, kk(kb, 2)), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 4)), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 3), SL("3")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 12)), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 13), SL("13")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 14)), KIVIS_OK);
    /* uncommitted writes stay invisible */
    expect_step(all, KIVIS_NEXT, "k04");
    expect_step(all, KIVIS_PREV, "k02");
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);

    kivis_slice v;
    assert_int_equal(kivis_txn_get(r, kk(kb, 3), &v), KIVIS_OK);
    expect_step(all, KIVIS_NEXT, "k03");  /* k02 is gone: first key > k02 */
    expect_step(all, KIVIS_NEXT, "k06");
    expect_step(part, KIVIS_NEXT, "k13");
    expect_step(part, KIVIS_NEXT, "k16");

    w = begin(st, 0);
    assert_int_equal(kivis_txn_put(w, kk(kb, 19), SL("")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 25), SL("")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 6)), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);
    expect_step(part, KIVIS_NEXT, "k18");
    expect_step(part, KIVIS_NEXT, "k19");
    expect_step(part, KIVIS_NEXT, NULL);  /* k25 is past hi */
    expect_step(part, KIVIS_NEXT, NULL);
    expect_step(all, KIVIS_PREV, "k03");  /* k06 is gone: last key < k06 */

    /* a commit that empties the store */
    w = begin(st, 0);
    kivis_storage_cursor *wc = cursor(w, NONE, NONE);
    kivis_slice k, val;
    while (kivis_cursor_get(wc, KIVIS_NEXT, &k, &val) == KIVIS_OK)
        assert_int_equal(kivis_txn_del(w, k), KIVIS_OK);
    kivis_cursor_close(wc);
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);
    expect_step(all, KIVIS_NEXT, NULL);
    expect_step(part, KIVIS_LAST, NULL);
    kivis_cursor_close(all);
    kivis_cursor_close(part);
    kivis_txn_abort(r);
    kivis_storage_close(st);
}

/* Walk a cursor one way and list "key=value," */
static char *walk(kivis_storage_cursor *c, int dir)
{
    static char buf[4096];
    size_t len = 0;
    kivis_slice k, v;
    int first = dir > 0 ? KIVIS_FIRST : KIVIS_LAST;
    int next = dir > 0 ? KIVIS_NEXT : KIVIS_PREV;
    int rc;
    for (rc = kivis_cursor_get(c, first, &k, &v); rc == KIVIS_OK;
         rc = kivis_cursor_get(c, next, &k, &v))
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%.*s=%.*s,",
                                (int)k.len, (const char *)k.data, (int)v.len,
                                (const char *)v.data);
    assert_int_equal(rc, KIVIS_NOTFOUND);
    buf[len] = '\0';
    return buf;
}

static void test_overlay_merge_with_tombstones(void **state)
{
    (void)state;
    kivis_storage *st = mem_open(NULL, 0);
    put_many(st, 0, 24, 2); /* k00=k00 ... k22=k22 */
    char kb[8], lo[8], hi[8];
    kivis_storage_txn *w = begin(st, 0);
    assert_int_equal(kivis_txn_del(w, kk(kb, 0)), KIVIS_OK);   /* first */
    assert_int_equal(kivis_txn_del(w, kk(kb, 6)), KIVIS_OK);   /* a run */
    assert_int_equal(kivis_txn_del(w, kk(kb, 8)), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 10)), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 22)), KIVIS_OK);  /* last */
    assert_int_equal(kivis_txn_del(w, kk(kb, 8)), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_put(w, kk(kb, 7), SL("n")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 12), SL("W")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 23), SL("n")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 1), SL("x")), KIVIS_OK); /* put, */
    assert_int_equal(kivis_txn_del(w, kk(kb, 1)), KIVIS_OK);          /* then gone */
    kivis_slice v;
    assert_int_equal(kivis_txn_get(w, kk(kb, 1), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_get(w, kk(kb, 6), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_get(w, kk(kb, 12), &v), KIVIS_OK);
    assert_slice_equal(v, SL("W"));

    const char *all = "k02=k02,k04=k04,k07=n,k12=W,k14=k14,k16=k16,k18=k18,"
                      "k20=k20,k23=n,";
    kivis_storage_cursor *c = cursor(w, NONE, NONE);
    assert_string_equal(walk(c, 1), all);
    /* backwards: the same entries in reverse */
    assert_string_equal(walk(c, -1), "k23=n,k20=k20,k18=k18,k16=k16,k14=k14,"
                                     "k12=W,k07=n,k04=k04,k02=k02,");
    expect_seek_key(c, KIVIS_SEEK_GE, "k06", "k07");
    expect_seek_key(c, KIVIS_SEEK_GE, "k08", "k12");
    expect_seek_key(c, KIVIS_SEEK_LE, "k10", "k07");
    expect_seek_key(c, KIVIS_SEEK_LE, "k06", "k04");
    expect_seek_key(c, KIVIS_SEEK_LE, "k01", NULL);
    expect_seek_key(c, KIVIS_SEEK_GE, "k22", "k23");
    kivis_cursor_close(c);

    /* a range whose bounds sit on tombstones and on written keys */
    c = cursor(w, kk(lo, 6), kk(hi, 12));
    assert_string_equal(walk(c, 1), "k07=n,");
    assert_string_equal(walk(c, -1), "k07=n,");
    kivis_cursor_close(c);
    c = cursor(w, kk(lo, 7), kk(hi, 23));
    assert_string_equal(walk(c, -1), "k20=k20,k18=k18,k16=k16,k14=k14,k12=W,k07=n,");
    /* writes while iterating: delete the current key and the next one */
    expect_step(c, KIVIS_FIRST, "k07");
    expect_step(c, KIVIS_NEXT, "k12");
    assert_int_equal(kivis_txn_del(w, kk(kb, 12)), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w, kk(kb, 14)), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, kk(kb, 13), SL("m")), KIVIS_OK);
    expect_step(c, KIVIS_NEXT, "k13");
    assert_int_equal(kivis_txn_del(w, kk(kb, 13)), KIVIS_OK);
    expect_step(c, KIVIS_PREV, "k07");
    expect_step(c, KIVIS_NEXT, "k16");
    kivis_cursor_close(c);
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);

    kivis_storage_txn *r = begin(st, KIVIS_TXN_RDONLY);
    c = cursor(r, NONE, NONE);
    assert_string_equal(walk(c, 1), "k02=k02,k04=k04,k07=n,k16=k16,k18=k18,"
                                    "k20=k20,k23=n,");
    kivis_cursor_close(c);
    kivis_txn_abort(r);
    kivis_storage_close(st);
}

static void test_memory_open_oom(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_memory_options o = {.allocator = &a.iface};
    kivis_storage *st = NULL;
    unsigned long n = 1;
    for (;; n++) {
        kt_alloc_fail_at(&a, n);
        int rc = kivis_memory_open(&o, &st);
        kt_alloc_fail_at(&a, 0);
        if (rc == KIVIS_OK)
            break;
        assert_int_equal(rc, KIVIS_ENOMEM);
        assert_null(st);
        assert_int_equal(a.live_blocks, 0);
    }
    assert_true(n > 2);
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);
}

/* ---- overlay: randomized against the model ---------------------------- */

typedef struct mcursor {
    kivis_storage_cursor *c;
    ptrdiff_t lo, hi; /* rank range [lo, hi) */
    enum { M_UNPLACED, M_PLACED, M_ENDED } state;
    ptrdiff_t at;
} mcursor;

static ptrdiff_t model_cursor_move(const model *m, mcursor *mc, int op,
                                   ptrdiff_t seek)
{
    ptrdiff_t r;
    bool step = op == KIVIS_NEXT || op == KIVIS_PREV;
    int dir = op == KIVIS_FIRST || op == KIVIS_NEXT || op == KIVIS_SEEK_GE ? 1 : -1;
    if (step && mc->state == M_ENDED)
        return -1;
    if (step && mc->state == M_PLACED)
        r = mc->at + dir;
    else if (op == KIVIS_SEEK_GE)
        r = seek > mc->lo ? seek : mc->lo;
    else if (op == KIVIS_SEEK_LE)
        r = seek < mc->hi - 1 ? seek : mc->hi - 1;
    else
        r = dir > 0 ? mc->lo : mc->hi - 1;
    r = model_scan(m, r, dir, mc->lo, mc->hi);
    mc->state = r < 0 ? M_ENDED : M_PLACED;
    mc->at = r;
    return r;
}

static void mcursor_open(kivis_storage_txn *t, const universe *u, mcursor *mc,
                         uint64_t *rng)
{
    size_t a = kt_rand(rng) % u->n, b = kt_rand(rng) % u->n;
    bool open_lo = kt_rand(rng) % 3 == 0, open_hi = kt_rand(rng) % 3 == 0;
    mc->lo = open_lo ? 0 : (ptrdiff_t)(a < b ? a : b);
    mc->hi = open_hi ? (ptrdiff_t)u->n : (ptrdiff_t)(a < b ? b : a);
    mc->state = M_UNPLACED;
    mc->c = cursor(t, open_lo ? NONE : ukey(u, (size_t)mc->lo),
                   open_hi ? NONE : ukey(u, (size_t)mc->hi));
}

static void mcursor_step(const model *m, mcursor *mc, uint64_t *rng)
{
    int op = (int)(kt_rand(rng) % 6);
    size_t seek = kt_rand(rng) % m->u->n;
    kivis_slice k = ukey(m->u, seek), v;
    int rc = kivis_cursor_get(mc->c, op, &k, &v);
    ptrdiff_t want = model_cursor_move(m, mc, op, (ptrdiff_t)seek);
    if (want < 0) {
        assert_int_equal(rc, KIVIS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_slice_equal(k, ukey(m->u, (size_t)want));
    assert_slice_equal(v, model_val(m, (size_t)want));
}

static void assert_store_matches(kivis_storage *st, const model *m)
{
    kivis_storage_txn *r = begin(st, KIVIS_TXN_RDONLY);
    mcursor mc = {cursor(r, NONE, NONE), 0, (ptrdiff_t)m->u->n, M_UNPLACED, 0};
    for (;;) {
        kivis_slice k, v;
        int rc = kivis_cursor_get(mc.c, KIVIS_NEXT, &k, &v);
        ptrdiff_t want = model_cursor_move(m, &mc, KIVIS_NEXT, 0);
        if (want < 0) {
            assert_int_equal(rc, KIVIS_NOTFOUND);
            break;
        }
        assert_int_equal(rc, KIVIS_OK);
        assert_slice_equal(k, ukey(m->u, (size_t)want));
        assert_slice_equal(v, model_val(m, (size_t)want));
    }
    kivis_cursor_close(mc.c);
    kivis_txn_abort(r);
}

static void model_copy(model *dst, const model *src)
{
    size_t n = src->u->n;
    memcpy(dst->present, src->present, n * sizeof *dst->present);
    memcpy(dst->val, src->val, n * MAXV);
    memcpy(dst->vlen, src->vlen, n);
    dst->count = src->count;
}

static void one_random_txn(kivis_storage *st, model *committed, model *m,
                           uint64_t *rng)
{
    const universe *u = m->u;
    model_copy(m, committed);
    kivis_storage_txn *w = begin(st, 0);
    mcursor cur[2];
    for (int i = 0; i < 2; i++)
        mcursor_open(w, u, &cur[i], rng);
    unsigned char vb[MAXV];
    size_t ops = 1 + kt_rand(rng) % 150;
    for (size_t i = 0; i < ops; i++) {
        size_t r = kt_rand(rng) % u->n;
        unsigned op = kt_rand(rng) % 100;
        kivis_slice v;
        if (op < 25) {
            v = random_value(rng, vb);
            assert_int_equal(kivis_txn_put(w, ukey(u, r), v), KIVIS_OK);
            model_put(m, r, v);
        } else if (op < 40) {
            int want = m->present[r] ? KIVIS_OK : KIVIS_NOTFOUND;
            assert_int_equal(kivis_txn_del(w, ukey(u, r)), want);
            model_del(m, r);
        } else if (op < 48) {
            int rc = kivis_txn_get(w, ukey(u, r), &v);
            assert_int_equal(rc, m->present[r] ? KIVIS_OK : KIVIS_NOTFOUND);
            if (rc == KIVIS_OK)
                assert_slice_equal(v, model_val(m, r));
        } else {
            mcursor_step(m, &cur[op % 2], rng);
        }
    }
    for (int i = 0; i < 2; i++)
        kivis_cursor_close(cur[i].c);
    if (kt_rand(rng) % 5 == 0) {
        kivis_txn_abort(w);
    } else {
        assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);
        model_copy(committed, m);
    }
}

static void test_overlay_random(void **state)
{
    (void)state;
    static const unsigned char alpha[] = {0x00, 0x61, 0xff};
    universe u;
    model committed, m;
    universe_init(&u, 4, alpha, 3); /* 120 keys: dense, many collisions */
    model_init(&committed, &u);
    model_init(&m, &u);
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_storage *st = mem_open(&a, 0);
    uint64_t rng = 42;
    for (int i = 0; i < 3000; i++) {
        one_random_txn(st, &committed, &m, &rng);
        if (i % 100 == 0)
            assert_store_matches(st, &committed);
    }
    assert_store_matches(st, &committed);
    assert_int_equal(kivis_memory_bytes(st), a.live_bytes);
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);
    model_free(&m);
    model_free(&committed);
    universe_free(&u);
}

/* ---- memory: a write transaction out of memory at every allocation ---- */

/* The same writes every time: new keys, overwrites and deletes, many
 * enough to split and merge nodes at commit. */
static int write_txn(kivis_storage *st)
{
    kivis_storage_txn *w;
    int rc = kivis_storage_begin(st, 0, &w);
    char kb[16];
    for (int i = 0; rc == KIVIS_OK && i < 400; i++) {
        int n = snprintf(kb, sizeof kb, "key%05d", i * 7 % 1600);
        kivis_slice k = kivis_slice_make(kb, (size_t)n);
        if (i % 3 == 0) {
            rc = kivis_txn_del(w, k);
            rc = rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
        } else {
            rc = kivis_txn_put(w, k, SL("written by the transaction"));
        }
        if (rc == KIVIS_OK && i % 50 == 0) {
            kivis_storage_cursor *c = NULL;
            kivis_slice ck, cv;
            rc = kivis_txn_cursor(w, NONE, NONE, &c);
            if (rc == KIVIS_OK && kivis_cursor_get(c, KIVIS_LAST, &ck, &cv) == KIVIS_ENOMEM)
                rc = KIVIS_ENOMEM;
            kivis_cursor_close(c);
        }
    }
    if (rc != KIVIS_OK) {
        if (w)
            kivis_txn_abort(w);
        return rc;
    }
    return kivis_txn_commit(w, KIVIS_SYNC);
}

static void load_even(kivis_storage *st)
{
    kivis_storage_txn *w = begin(st, 0);
    char kb[16];
    for (int i = 0; i < 1600; i += 2) {
        int n = snprintf(kb, sizeof kb, "key%05d", i);
        assert_int_equal(kivis_txn_put(w, kivis_slice_make(kb, (size_t)n), SL("loaded")), KIVIS_OK);
    }
    assert_int_equal(kivis_txn_commit(w, KIVIS_SYNC), KIVIS_OK);
}

static void test_memory_write_txn_oom(void **state)
{
    (void)state;
    kivis_storage *ref = mem_open(NULL, 0);
    load_even(ref);
    assert_int_equal(write_txn(ref), KIVIS_OK);
    char *want = kt_dump(ref);
    kivis_storage_close(ref);

    kt_alloc a;
    kt_alloc_init(&a);
    kivis_storage *st = mem_open(&a, 0);
    load_even(st);
    char *before = kt_dump(st);
    long blocks = a.live_blocks;
    unsigned long n;
    for (n = 1;; n++) {
        kt_alloc_fail_at(&a, n);
        int rc = write_txn(st);
        kt_alloc_fail_at(&a, 0);
        if (rc == KIVIS_OK)
            break;
        assert_int_equal(rc, KIVIS_ENOMEM);
        assert_int_equal(a.live_blocks, blocks);
        char *now = kt_dump(st);
        assert_string_equal(now, before);
        free(now);
    }
    assert_true(n > 400);
    char *got = kt_dump(st);
    assert_string_equal(got, want);
    assert_int_equal(kivis_memory_bytes(st), a.live_bytes);
    free(got);
    free(before);
    free(want);
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_cmp),
        cmocka_unit_test(test_btree_iterate_both_ways),
        cmocka_unit_test(test_btree_seek_edges),
        cmocka_unit_test(test_btree_apply_rejects_bad_batches),
        cmocka_unit_test(test_btree_long_keys_and_values),
        cmocka_unit_test(test_btree_put_and_del_oom),
        cmocka_unit_test(test_btree_apply_oom_atomic),
        cmocka_unit_test(test_btree_apply_large_batches),
        cmocka_unit_test(test_btree_apply_grows_two_levels),
        cmocka_unit_test(test_btree_differential_a),
        cmocka_unit_test(test_btree_differential_b),
        cmocka_unit_test(test_btree_differential_lead12),
        cmocka_unit_test(test_btree_differential_lead20),
        cmocka_unit_test(test_btree_differential_hashed),
        cmocka_unit_test(test_btree_differential_lead12_hashed),
        cmocka_unit_test(test_pointhash_collisions),
        cmocka_unit_test(test_pointhash_reserve_oom),
        cmocka_unit_test(test_memory_methods_and_writer_lock),
        cmocka_unit_test(test_memory_open_oom),
        cmocka_unit_test(test_memory_read_cursor_after_commit),
        cmocka_unit_test(test_overlay_merge_with_tombstones),
        cmocka_unit_test(test_overlay_random),
        cmocka_unit_test(test_memory_write_txn_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
