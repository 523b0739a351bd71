/*
 * test_layered.c - the layered storage's own promises: read-through with
 * exact per-tier counts, fills, LRU eviction under a byte bound, the
 * negative cache, write-through, failures of the authority and of cache
 * tiers, mirrors, kivis_layered_invalidate and what a cached handle sees
 * after a writer that bypassed it.  (That a stack behaves as one storage is
 * the conformance suite's job: test_conformance layered, layered3, ...)
 *
 * The tests keep borrowed pointers to the tiers to look inside them and, in
 * the consistency test, to write to the authority as another process
 * would; kivis/layered.h forbids that to applications.
 */
#include "testutil.h"

#include <kivis/faulty.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(s) kivis_slice_make((s), sizeof(s) - 1)
#define MAX_TIERS 3

static const kivis_slice NONE = {NULL, 0};

enum kind { MEM, FAULTY_MEM, LMDB };

typedef struct spec {
    enum kind kind;
    size_t max_bytes;
    unsigned flags;
} spec;

typedef struct fixture {
    kt_alloc tier_alloc[MAX_TIERS]; /* each tier's backend */
    kt_alloc wrap_alloc[MAX_TIERS]; /* faulty wrappers */
    kt_alloc alloc;                 /* the layered storage's own */
    kivis_storage *tier[MAX_TIERS]; /* borrowed: the stack owns them */
    kivis_storage *inner[MAX_TIERS]; /* under a faulty wrapper, else NULL */
    kivis_storage *st;
    size_t n;
    char dir[256]; /* of the LMDB tier, if any */
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    for (int i = 0; i < MAX_TIERS; i++) {
        kt_alloc_init(&fx->tier_alloc[i]);
        kt_alloc_init(&fx->wrap_alloc[i]);
    }
    kt_alloc_init(&fx->alloc);
    *state = fx;
    return 0;
}

static void expect_balanced(const kt_alloc *a)
{
    assert_int_equal(a->live_blocks, 0);
    assert_int_equal(a->live_bytes, 0);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    kivis_storage_close(fx->st);
    for (int i = 0; i < MAX_TIERS; i++) {
        expect_balanced(&fx->tier_alloc[i]);
        expect_balanced(&fx->wrap_alloc[i]);
    }
    expect_balanced(&fx->alloc);
    if (fx->dir[0])
        kt_rmdir(fx->dir);
    free(fx);
    return 0;
}

static kivis_storage *open_tier(fixture *fx, size_t i, enum kind kind)
{
    kivis_memory_options mo = {.allocator = &fx->tier_alloc[i].iface};
    kivis_lmdb_options lo = {&fx->tier_alloc[i].iface, 0, 0, 0};
    kivis_storage *st = NULL;
    if (kind == LMDB) {
        assert_int_equal(fx->dir[0], '\0'); /* one LMDB tier per stack */
        kt_tempdir(fx->dir, sizeof fx->dir);
        assert_int_equal(kivis_lmdb_open(fx->dir, &lo, &st), KIVIS_OK);
        return st;
    }
    assert_int_equal(kivis_memory_open(&mo, &st), KIVIS_OK);
    if (kind == MEM)
        return st;
    fx->inner[i] = st;
    kivis_storage *f = NULL;
    assert_int_equal(kivis_faulty_open(st, &fx->wrap_alloc[i].iface, &f), KIVIS_OK);
    return f;
}

/* Open the stack; `seed` (a NULL-terminated key, value, ... list) is
 * committed to the authority before, so that nothing is cached yet. */
static void open_stack_admitting(fixture *fx, const spec *sp, size_t n,
                                 size_t negative_max, size_t admit_window,
                                 const char *const *seed)
{
    kivis_layered_tier tiers[MAX_TIERS];
    assert_true(n <= MAX_TIERS);
    fx->n = n;
    for (size_t i = 0; i < n; i++) {
        fx->tier[i] = open_tier(fx, i, sp[i].kind);
        tiers[i] = (kivis_layered_tier){fx->tier[i], sp[i].max_bytes, sp[i].flags};
    }
    if (seed) {
        kivis_storage_txn *t = NULL;
        assert_int_equal(kivis_storage_begin(fx->tier[n - 1], 0, &t), KIVIS_OK);
        for (; *seed; seed += 2)
            assert_int_equal(kivis_txn_put(t, kivis_slice_make(seed[0], strlen(seed[0])),
                                           kivis_slice_make(seed[1], strlen(seed[1]))),
                             KIVIS_OK);
        assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    }
    kivis_layered_options opts = {&fx->alloc.iface, negative_max, admit_window, 0};
    assert_int_equal(kivis_layered_open(tiers, n, &opts, &fx->st), KIVIS_OK);
}

static void open_stack(fixture *fx, const spec *sp, size_t n,
                       size_t negative_max, const char *const *seed)
{
    open_stack_admitting(fx, sp, n, negative_max, 0, seed);
}

/* ---- reading and writing by string ------------------------------------- */

static kivis_slice str(const char *s)
{
    return kivis_slice_make(s, strlen(s));
}

static kivis_storage_txn *begin(kivis_storage *st, unsigned flags)
{
    kivis_storage_txn *t = NULL;
    assert_int_equal(kivis_storage_begin(st, flags, &t), KIVIS_OK);
    return t;
}

/* The value of key in t as a string ("" when missing), in buf. */
static const char *get_in(kivis_storage_txn *t, const char *key, char buf[64])
{
    kivis_slice v;
    int rc = kivis_txn_get(t, str(key), &v);
    assert_true(rc == KIVIS_OK || rc == KIVIS_NOTFOUND);
    assert_true(v.len < 64);
    memcpy(buf, rc == KIVIS_OK ? v.data : "", v.len);
    buf[v.len] = '\0';
    return buf;
}

/* key's value read in a fresh read-only transaction of st. */
static const char *get(kivis_storage *st, const char *key)
{
    static char buf[64];
    kivis_storage_txn *t = begin(st, KIVIS_TXN_RDONLY);
    get_in(t, key, buf);
    kivis_txn_abort(t);
    return buf;
}

static void put_in(kivis_storage_txn *t, const char *key, const char *value)
{
    assert_int_equal(kivis_txn_put(t, str(key), str(value)), KIVIS_OK);
}

static void commit(kivis_storage_txn *t)
{
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

static void put1(kivis_storage *st, const char *key, const char *value)
{
    kivis_storage_txn *t = begin(st, 0);
    put_in(t, key, value);
    commit(t);
}

static void expect_dump(kivis_storage *st, const char *want)
{
    char *d = kt_dump(st);
    assert_string_equal(d, want);
    free(d);
}

static kivis_layered_tier_stats stats(fixture *fx, size_t i)
{
    kivis_layered_tier_stats s;
    assert_int_equal(kivis_layered_stats(fx->st, i, &s), KIVIS_OK);
    return s;
}

static kivis_layered_negative_stats neg_stats(fixture *fx)
{
    kivis_layered_negative_stats s;
    assert_int_equal(kivis_layered_negative_stats_get(fx->st, &s), KIVIS_OK);
    return s;
}

/* reads, hits, misses and fills of tier i, exactly. */
#define EXPECT_READS(fx, i, r, h, m, f)                                      \
    do {                                                                     \
        kivis_layered_tier_stats s_ = stats((fx), (i));                      \
        assert_int_equal(s_.reads, (r));                                     \
        assert_int_equal(s_.hits, (h));                                      \
        assert_int_equal(s_.misses, (m));                                    \
        assert_int_equal(s_.fills, (f));                                     \
    } while (0)

/* ---- opening ------------------------------------------------------------ */

static void test_open_rejects_bad_stacks(void **state)
{
    fixture *fx = *state;
    kivis_storage *a = open_tier(fx, 0, MEM), *b = open_tier(fx, 1, MEM);
    kivis_storage *out = a;
    kivis_layered_tier bad[][2] = {
        {{a, 0, 0}, {a, 0, 0}},                   /* the same storage twice */
        {{a, 0, 0}, {NULL, 0, 0}},                /* no storage */
        {{a, 0, 0}, {b, 100, 0}},                 /* bounded authority */
        {{a, 0, 0}, {b, 0, KIVIS_TIER_MIRROR}},   /* flagged authority */
        {{a, 100, KIVIS_TIER_MIRROR}, {b, 0, 0}}, /* bounded mirror */
        {{a, 0, 0x80}, {b, 0, 0}},                /* unknown flag */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kivis_layered_open(bad[i], 2, NULL, &out), KIVIS_EINVAL);
        assert_null(out);
    }
    assert_int_equal(kivis_layered_open(bad[0], 0, NULL, &out), KIVIS_EINVAL);
    assert_int_equal(kivis_layered_open(bad[0], 2, NULL, NULL), KIVIS_EINVAL);

    /* Out of memory at every step of open: the tiers stay the caller's. */
    kivis_layered_tier good[2] = {{a, 64, 0}, {b, 0, 0}};
    kivis_layered_options opts = {&fx->alloc.iface, 8, 0, 0};
    int rc = KIVIS_ENOMEM;
    for (unsigned long n = 1; rc == KIVIS_ENOMEM; n++) {
        kt_alloc_fail_at(&fx->alloc, n);
        rc = kivis_layered_open(good, 2, &opts, &out);
        if (rc == KIVIS_ENOMEM) {
            assert_null(out);
            expect_balanced(&fx->alloc);
        }
    }
    kt_alloc_fail_at(&fx->alloc, 0);
    assert_int_equal(rc, KIVIS_OK);
    assert_string_equal(out->methods->name, "layered");
    kivis_storage_close(out); /* closes a and b */
}

static void test_max_key_is_the_smallest(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {LMDB, 0, 0}};
    open_stack(fx, sp, 2, 0, NULL);
    size_t lmdb = kivis_storage_max_key(fx->tier[1]);
    assert_true(lmdb < KIVIS_MEMORY_MAX_KEY);
    assert_int_equal(kivis_storage_max_key(fx->st), lmdb);
}

/* ---- read-through ------------------------------------------------------- */

static const char *const abc[] = {"a", "va", "b", "vb", "c", "vc", NULL};

static void test_read_through_counts_and_fills(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 3, 0, abc);

    assert_string_equal(get(fx->st, "a"), "va"); /* down to the authority */
    EXPECT_READS(fx, 0, 1, 0, 1, 1);
    EXPECT_READS(fx, 1, 1, 0, 1, 1);
    EXPECT_READS(fx, 2, 1, 1, 0, 0);
    expect_dump(fx->tier[0], "61=7661\n"); /* filled on the way back */
    expect_dump(fx->tier[1], "61=7661\n");

    assert_string_equal(get(fx->st, "a"), "va"); /* tier 0 answers */
    EXPECT_READS(fx, 0, 2, 1, 1, 1);
    EXPECT_READS(fx, 1, 1, 0, 1, 1);
    EXPECT_READS(fx, 2, 1, 1, 0, 0);

    /* A hit in the middle fills only the tier above it. */
    kivis_storage_txn *t = begin(fx->tier[0], 0);
    assert_int_equal(kivis_txn_del(t, S("a")), KIVIS_OK);
    commit(t);
    assert_string_equal(get(fx->st, "a"), "va");
    EXPECT_READS(fx, 0, 3, 1, 2, 2);
    EXPECT_READS(fx, 1, 2, 1, 1, 1);
    EXPECT_READS(fx, 2, 1, 1, 0, 0);

    /* A key missing everywhere reaches every tier and fills nothing. */
    assert_string_equal(get(fx->st, "zz"), "");
    EXPECT_READS(fx, 0, 4, 1, 3, 2);
    EXPECT_READS(fx, 1, 3, 1, 2, 1);
    EXPECT_READS(fx, 2, 2, 1, 1, 0);
}

/* With admit_window, a key fills the caches on its second miss only: a
 * sweep of keys read once leaves the cache as it was. */
static void test_admission_on_the_second_miss(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}, {MEM, 0, 0}};
    open_stack_admitting(fx, sp, 3, 0, 64, abc);

    assert_string_equal(get(fx->st, "a"), "va"); /* first miss: not admitted */
    EXPECT_READS(fx, 0, 1, 0, 1, 0);
    EXPECT_READS(fx, 1, 1, 0, 1, 0);
    assert_true(stats(fx, 0).unadmitted == 1 && stats(fx, 1).unadmitted == 1);
    expect_dump(fx->tier[0], "");
    assert_string_equal(get(fx->st, "a"), "va"); /* second miss: filled */
    EXPECT_READS(fx, 0, 2, 0, 2, 1);
    EXPECT_READS(fx, 1, 2, 0, 2, 1);
    expect_dump(fx->tier[0], "61=7661\n");
    assert_string_equal(get(fx->st, "a"), "va"); /* now a hit */
    EXPECT_READS(fx, 0, 3, 1, 2, 1);

    /* A window of 64 reads forgets: "b", then 80 other keys read once
     * from the authority, then "b" again is a first miss again. */
    kivis_storage_txn *t = begin(fx->tier[2], 0);
    char k[16];
    for (int i = 0; i < 80; i++) {
        snprintf(k, sizeof k, "other%d", i);
        put_in(t, k, "v");
    }
    commit(t);
    assert_string_equal(get(fx->st, "b"), "vb");
    for (int i = 0; i < 80; i++) {
        snprintf(k, sizeof k, "other%d", i);
        assert_string_equal(get(fx->st, k), "v");
    }
    uint64_t before = stats(fx, 0).unadmitted;
    assert_string_equal(get(fx->st, "b"), "vb");
    assert_true(stats(fx, 0).unadmitted == before + 1);
    assert_string_equal(get(fx->tier[0], "b"), "");
    /* Most of the keys read once stayed out (the filter's two bits can
     * collide, rarely). */
    assert_true(stats(fx, 0).fills <= 1 + 8);
}

/* Read key n times, each in a transaction of its own. */
static void read_times(fixture *fx, const char *key, int n)
{
    while (n-- > 0)
        assert_string_equal(get(fx->st, key), "v");
}

/*
 * With admit_window, a full bounded tier takes a key only if it was read
 * more often lately than the key it would evict (TinyLFU): a key read
 * twice, enough to pass the doorkeeper, does not displace residents read
 * three times, and one read four times does, evicting the oldest.
 */
static void test_admission_compares_with_the_victim(void **state)
{
    fixture *fx = *state;
    static const char *const keys[] = {"k0", "v", "k1", "v", "k2", "v", "k3", "v",
                                       "nw", "v", "ht", "v", NULL};
    static const spec sp[] = {{MEM, 4 * 3, 0}, {MEM, 0, 0}}; /* 4 entries of 3 */
    open_stack_admitting(fx, sp, 2, 0, 1000, keys);
    static const char *const resident[] = {"k0", "k1", "k2", "k3"};
    for (int i = 0; i < 4; i++)
        read_times(fx, resident[i], 3); /* filled at the second, then a hit */
    const char *full = "6b30=76\n6b31=76\n6b32=76\n6b33=76\n";
    expect_dump(fx->tier[0], full);
    assert_int_equal(stats(fx, 0).entries, 4);
    uint64_t turned_away = stats(fx, 0).unadmitted;

    read_times(fx, "nw", 2); /* the doorkeeper, then colder than k0 */
    expect_dump(fx->tier[0], full);
    assert_int_equal(stats(fx, 0).unadmitted, turned_away + 2);
    assert_int_equal(stats(fx, 0).evictions, 0);

    read_times(fx, "ht", 3); /* as hot as k0: a tie keeps k0 */
    expect_dump(fx->tier[0], full);
    read_times(fx, "ht", 1); /* hotter: k0, the oldest, goes */
    expect_dump(fx->tier[0], "6874=76\n6b31=76\n6b32=76\n6b33=76\n");
    assert_int_equal(stats(fx, 0).evictions, 1);
    assert_int_equal(stats(fx, 0).unadmitted, turned_away + 2 + 3);
    assert_string_equal(get(fx->st, "ht"), "v");
    EXPECT_READS(fx, 0, 4 * 3 + 2 + 4 + 1, 4 + 1, 4 * 2 + 2 + 4, 5);
}

/* Values served from a cache tier outlive the tier's own transaction. */
static void test_cached_values_stay_valid(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 0, abc);
    get(fx->st, "a");
    get(fx->st, "b");
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    kivis_slice va, vb, vc;
    assert_int_equal(kivis_txn_get(t, S("a"), &va), KIVIS_OK); /* cached */
    assert_int_equal(kivis_txn_get(t, S("c"), &vc), KIVIS_OK); /* fills */
    assert_int_equal(kivis_txn_get(t, S("b"), &vb), KIVIS_OK);
    put1(fx->st, "a", "changed"); /* rewrites tier 0 under the views */
    assert_memory_equal(va.data, "va", 2);
    assert_memory_equal(vb.data, "vb", 2);
    assert_memory_equal(vc.data, "vc", 2);
    kivis_txn_abort(t);
}

/* ---- eviction ----------------------------------------------------------- */

static void test_lru_eviction_under_a_byte_bound(void **state)
{
    fixture *fx = *state;
    static const char *const five[] = {"a", "12345678", "b", "12345678",
                                       "c", "12345678", "d", "12345678",
                                       "e", "12345678", "f", "longer than the whole bound",
                                       NULL};
    static const spec sp[] = {{MEM, 27, 0}, {MEM, 0, 0}}; /* 3 entries of 9 */
    open_stack(fx, sp, 2, 0, five);

    get(fx->st, "a");
    get(fx->st, "b");
    get(fx->st, "c");
    kivis_layered_tier_stats s = stats(fx, 0);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.bytes, 27);
    assert_int_equal(s.evictions, 0);

    get(fx->st, "a"); /* a is now the most recently used */
    get(fx->st, "d"); /* evicts b, the least recently used */
    expect_dump(fx->tier[0], "61=3132333435363738\n63=3132333435363738\n"
                             "64=3132333435363738\n");
    get(fx->st, "e"); /* evicts c */
    expect_dump(fx->tier[0], "61=3132333435363738\n64=3132333435363738\n"
                             "65=3132333435363738\n");
    s = stats(fx, 0);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.bytes, 27);

    get(fx->st, "f"); /* larger than the bound: served, not cached */
    get(fx->st, "f");
    EXPECT_READS(fx, 1, 7, 7, 0, 0);
    assert_int_equal(stats(fx, 0).evictions, 2);
    assert_int_equal(stats(fx, 0).fills, 5);
}

/* ---- the cost of a get -------------------------------------------------- */

#define HOT 64

/* Read keys k0..k63 in one read-only transaction of the stack, each found. */
static void read_hot(fixture *fx)
{
    char key[8], buf[64];
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    for (int i = 0; i < HOT; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_string_equal(get_in(t, key, buf), "value");
    }
    kivis_txn_abort(t);
}

/*
 * What a transaction costs does not grow with its gets beyond the tiers'
 * own work: a cache tier is read in one transaction of its own per layered
 * transaction (not one per get), a hit's copy lands in an arena the storage
 * keeps between transactions (no allocation per hit), and the fills of a
 * transaction are written in one tier transaction (not one per miss).
 * Counted as allocations, which every tier transaction and every copy made.
 */
static void test_gets_cost_per_transaction_not_per_get(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 100000, 0}, {MEM, 0, 0}};
    static char keys[HOT][8];
    const char *seed[2 * HOT + 1];
    for (int i = 0; i < HOT; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        seed[2 * i] = keys[i];
        seed[2 * i + 1] = "value";
    }
    seed[2 * HOT] = NULL;
    open_stack(fx, sp, 2, 0, seed);

    /* Misses: 64 fills into the memory tier, which allocates an entry in
     * its write transaction's overlay and one in its tree per fill; a
     * read and a write transaction per fill cost it about 10 a fill. */
    kt_alloc_fail_at(&fx->tier_alloc[0], 0);
    read_hot(fx);
    EXPECT_READS(fx, 0, HOT, 0, HOT, HOT);
    assert_true(fx->tier_alloc[0].calls <= 3 * HOT);

    /* Hits: no allocation per get anywhere. */
    read_hot(fx); /* the first transaction after the fills keeps a chunk */
    kt_alloc_fail_at(&fx->alloc, 0);
    kt_alloc_fail_at(&fx->tier_alloc[0], 0);
    read_hot(fx);
    EXPECT_READS(fx, 0, 3 * HOT, 2 * HOT, HOT, HOT);
    assert_true(fx->alloc.calls <= 2);        /* the transaction itself */
    assert_true(fx->tier_alloc[0].calls <= 1); /* the tier's read txn */
}

/* ---- the negative cache ------------------------------------------------- */

static void test_negative_cache(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 2, abc);

    assert_string_equal(get(fx->st, "x"), "");
    EXPECT_READS(fx, 1, 1, 0, 1, 0);
    assert_string_equal(get(fx->st, "x"), ""); /* no tier asked */
    EXPECT_READS(fx, 0, 1, 0, 1, 0);
    EXPECT_READS(fx, 1, 1, 0, 1, 0);
    kivis_layered_negative_stats n = neg_stats(fx);
    assert_int_equal(n.hits, 1);
    assert_int_equal(n.additions, 1);
    assert_int_equal(n.entries, 1);

    /* A put of the key forgets it, in a transaction that read it too. */
    kivis_storage_txn *t = begin(fx->st, 0);
    char buf[64];
    assert_string_equal(get_in(t, "x", buf), "");
    put_in(t, "x", "now here");
    assert_string_equal(get_in(t, "x", buf), "now here");
    commit(t);
    assert_int_equal(neg_stats(fx).invalidations, 1);
    assert_string_equal(get(fx->st, "x"), "now here");

    /* Bounded: the least recently used key is forgotten. */
    get(fx->st, "y");
    get(fx->st, "z");
    get(fx->st, "w");
    n = neg_stats(fx);
    assert_int_equal(n.entries, 2);
    assert_int_equal(n.evictions, 1);
    unsigned long before = stats(fx, 1).reads;
    get(fx->st, "y"); /* forgotten: reaches the authority again */
    assert_int_equal(stats(fx, 1).reads, before + 1);
}

/* ---- write-through ------------------------------------------------------ */

/* No tier but the authority may hold a value the authority lacks. */
static void expect_tiers_agree(fixture *fx, const char *key)
{
    char want[64];
    strcpy(want, get(fx->tier[fx->n - 1], key));
    for (size_t i = 0; i + 1 < fx->n; i++) {
        const char *got = get(fx->tier[i], key);
        if (*got && strcmp(got, want) != 0)
            fail_msg("tier %zu holds %s=%s, the authority %s", i, key, got, want);
    }
}

static void test_write_through(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 1000, 0}, {MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 3, 4, abc);
    get(fx->st, "a");
    get(fx->st, "c");
    get(fx->st, "n"); /* negative */

    kivis_storage_txn *t = begin(fx->st, 0);
    put_in(t, "a", "new a");
    put_in(t, "b", "new b");
    put_in(t, "n", "new n");
    assert_int_equal(kivis_txn_del(t, S("c")), KIVIS_OK);
    commit(t);

    /* The bounded tier dropped what it held; the unbounded one took all. */
    expect_dump(fx->tier[0], "");
    expect_dump(fx->tier[1], "61=6e65772061\n62=6e65772062\n6e=6e6577206e\n");
    assert_int_equal(stats(fx, 0).invalidations, 2);
    assert_int_equal(stats(fx, 1).updates, 3);
    assert_int_equal(stats(fx, 1).invalidations, 1);
    for (const char *k = "abcn"; *k; k++) {
        char key[2] = {*k, 0};
        expect_tiers_agree(fx, key);
    }
    assert_string_equal(get(fx->st, "a"), "new a");
    assert_string_equal(get(fx->st, "c"), "");
    assert_string_equal(get(fx->st, "n"), "new n");
    expect_dump(fx->tier[0], "61=6e65772061\n6e=6e6577206e\n");
}

/* Inside a write transaction its own writes win over every cache. */
static void test_own_writes_bypass_the_caches(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 4, abc);
    get(fx->st, "a");
    get(fx->st, "x");
    char buf[64];
    kivis_storage_txn *t = begin(fx->st, 0);
    put_in(t, "a", "mine");
    put_in(t, "x", "mine too");
    assert_int_equal(kivis_txn_del(t, S("b")), KIVIS_OK);
    assert_string_equal(get_in(t, "a", buf), "mine");
    assert_string_equal(get_in(t, "x", buf), "mine too");
    assert_string_equal(get_in(t, "b", buf), "");
    /* not written, yet read from the authority: a write transaction's
     * reads must be the authority's (no fill either) */
    assert_string_equal(get_in(t, "c", buf), "vc");
    kivis_txn_abort(t);
    expect_dump(fx->tier[0], "61=7661\n"); /* abort touched nothing */
    assert_string_equal(get(fx->st, "a"), "va");
    assert_string_equal(get(fx->st, "x"), "");
}

/* ---- failures of the authority ------------------------------------------ */

/* A transaction writing a=new, b=new and deleting c, with the n-th write of
 * the authority failing; a failed put ends it the way the record engine
 * does (abort), or, with keep_going, commits the writes that did work. */
static bool write_with_fault(fixture *fx, unsigned long n, bool keep_going)
{
    static const char *const keys[] = {"a", "b", "c"};
    kivis_storage *auth = fx->tier[fx->n - 1];
    kivis_faulty_fail(auth, KIVIS_FAULT_WRITE, n, KIVIS_EIO);
    kivis_storage_txn *t = begin(fx->st, 0);
    bool failed = false;
    for (int i = 0; i < 3; i++) {
        kivis_slice k = str(keys[i]);
        int rc = i < 2 ? kivis_txn_put(t, k, S("new")) : kivis_txn_del(t, k);
        failed |= rc != KIVIS_OK;
        if (rc != KIVIS_OK && !keep_going) {
            assert_int_equal(rc, KIVIS_EIO);
            kivis_txn_abort(t);
            return true;
        }
    }
    int rc = kivis_txn_commit(t, KIVIS_SYNC);
    kivis_faulty_fail(auth, KIVIS_FAULT_WRITE, 0, 0);
    return failed || rc != KIVIS_OK;
}

static void check_after_fault(fixture *fx, unsigned long n, bool keep_going)
{
    static const char *const keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        expect_tiers_agree(fx, keys[i]);
        char want[64];
        strcpy(want, get(fx->tier[fx->n - 1], keys[i]));
        assert_string_equal(get(fx->st, keys[i]), want);
        /* Only a write that reached the authority may show anywhere. */
        bool landed = keep_going ? (unsigned long)i + 1 != n : false;
        if (!landed)
            assert_string_equal(want, i == 0 ? "va" : i == 1 ? "vb" : "vc");
    }
}

static void run_authority_faults(fixture *fx, bool keep_going)
{
    static const spec sp[] = {{MEM, 1000, 0}, {MEM, 0, 0}, {FAULTY_MEM, 0, 0}};
    open_stack(fx, sp, 3, 4, abc);
    unsigned long n;
    for (n = 1;; n++) {
        for (const char *k = "abc"; *k; k++) { /* cache everything first */
            char key[2] = {*k, 0};
            get(fx->st, key);
        }
        if (!write_with_fault(fx, n, keep_going))
            break;
        check_after_fault(fx, n, keep_going);
        if (keep_going) { /* put the old values back for the next round */
            kivis_storage_txn *t = begin(fx->st, 0);
            put_in(t, "a", "va");
            put_in(t, "b", "vb");
            put_in(t, "c", "vc");
            commit(t);
        }
    }
    assert_int_equal(n, 5); /* put, put, del, commit: each failed once */
    assert_string_equal(get(fx->st, "a"), "new");
    assert_string_equal(get(fx->st, "c"), "");
    expect_tiers_agree(fx, "a");
    expect_tiers_agree(fx, "c");
}

static void test_authority_fails_at_every_write(void **state)
{
    run_authority_faults(*state, false);
}

static void test_authority_fails_then_commit_the_rest(void **state)
{
    run_authority_faults(*state, true);
}

/* ---- failures of cache tiers -------------------------------------------- */

static void test_cache_tier_update_fails(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{FAULTY_MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 0, abc);
    get(fx->st, "a");

    /* The tier's update fails: the key is dropped from it instead. */
    kivis_faulty_fail(fx->tier[0], KIVIS_FAULT_WRITE, 1, KIVIS_EIO);
    put1(fx->st, "a", "new");
    expect_dump(fx->tier[0], "");
    kivis_layered_tier_stats s = stats(fx, 0);
    assert_int_equal(s.errors, 1);
    assert_true(s.usable);
    assert_string_equal(get(fx->st, "a"), "new");
    expect_dump(fx->tier[0], "61=6e6577\n");

    /* The drop fails too (its commit): the tier is taken out of service,
     * though it still holds the old value. */
    kt_alloc_fail_at(&fx->tier_alloc[0], 1); /* the update's transaction */
    kivis_faulty_fail(fx->tier[0], KIVIS_FAULT_WRITE, 2, KIVIS_EIO);
    put1(fx->st, "a", "newer");
    kt_alloc_fail_at(&fx->tier_alloc[0], 0);
    expect_dump(fx->tier[0], "61=6e6577\n");
    s = stats(fx, 0);
    assert_false(s.usable);
    assert_string_equal(get(fx->st, "a"), "newer");
    assert_string_equal(get(fx->st, "b"), "vb");
    assert_int_equal(stats(fx, 0).reads, s.reads); /* never asked again */
    assert_int_equal(stats(fx, 0).fills, s.fills);

    /* invalidate empties it and puts it back in service. */
    assert_int_equal(kivis_layered_invalidate(fx->st), KIVIS_OK);
    expect_dump(fx->tier[0], "");
    assert_true(stats(fx, 0).usable);
    assert_string_equal(get(fx->st, "a"), "newer");
    expect_dump(fx->tier[0], "61=6e65776572\n");
}

static void test_failed_fill_is_dropped(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{FAULTY_MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 0, abc);
    kivis_faulty_fail(fx->tier[0], KIVIS_FAULT_WRITE, 1, KIVIS_EIO);
    assert_string_equal(get(fx->st, "a"), "va");
    expect_dump(fx->tier[0], "");
    assert_int_equal(stats(fx, 0).errors, 1);
    assert_int_equal(stats(fx, 0).fills, 0);
    /* A failing read of a cache tier is skipped, not reported. */
    kivis_faulty_fail(fx->tier[0], KIVIS_FAULT_READ, 1, KIVIS_EIO);
    assert_string_equal(get(fx->st, "b"), "vb");
    assert_int_equal(stats(fx, 0).errors, 2);
    assert_int_equal(stats(fx, 1).hits, 2);
}

/* ---- mirrors ------------------------------------------------------------ */

static size_t count_scan(kivis_storage_txn *t)
{
    kivis_storage_cursor *c = NULL;
    kivis_slice k, v;
    size_t n = 0;
    assert_int_equal(kivis_txn_cursor(t, NONE, NONE, &c), KIVIS_OK);
    while (kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK)
        n++;
    kivis_cursor_close(c);
    return n;
}

static void test_mirror_answers_scans_and_misses(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{FAULTY_MEM, 0, KIVIS_TIER_MIRROR}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 0, abc);
    assert_int_equal(kivis_layered_invalidate(fx->st), KIVIS_OK); /* copy in */
    expect_dump(fx->tier[0], "61=7661\n62=7662\n63=7663\n");

    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_int_equal(count_scan(t), 3);
    kivis_txn_abort(t);
    assert_int_equal(stats(fx, 0).scans, 1);
    assert_int_equal(stats(fx, 1).scans, 0);
    assert_string_equal(get(fx->st, "zz"), ""); /* final at the mirror */
    assert_string_equal(get(fx->st, "a"), "va");
    assert_int_equal(stats(fx, 1).reads, 0);

    t = begin(fx->st, 0); /* a writer scans the authority: its own writes */
    put_in(t, "d", "vd");
    assert_int_equal(count_scan(t), 4);
    commit(t);
    assert_int_equal(stats(fx, 1).scans, 1);
    expect_dump(fx->tier[0], "61=7661\n62=7662\n63=7663\n64=7664\n");

    /* A mirror that misses an update is out of service until copied. */
    kivis_faulty_fail(fx->tier[0], KIVIS_FAULT_WRITE, 1, KIVIS_EIO);
    put1(fx->st, "e", "ve");
    assert_false(stats(fx, 0).usable);
    assert_string_equal(get(fx->st, "e"), "ve");
    t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_int_equal(count_scan(t), 5);
    kivis_txn_abort(t);
    assert_int_equal(stats(fx, 1).scans, 2);
    assert_int_equal(kivis_layered_invalidate(fx->st), KIVIS_OK);
    assert_true(stats(fx, 0).usable);
    expect_dump(fx->tier[0], "61=7661\n62=7662\n63=7663\n64=7664\n65=7665\n");
}

/* ---- coherence ---------------------------------------------------------- */

/* A reader whose authority snapshot predates a commit must not put its
 * older values into a cache the commit updated (LMDB reads snapshots). */
static void test_old_snapshot_does_not_fill(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 1000, 0}, {LMDB, 0, 0}};
    open_stack(fx, sp, 2, 4, abc);
    kivis_storage_txn *r = begin(fx->st, KIVIS_TXN_RDONLY);
    put1(fx->st, "a", "new");
    put1(fx->st, "q", "new");
    char buf[64];
    assert_string_equal(get_in(r, "a", buf), "va"); /* its snapshot */
    assert_string_equal(get_in(r, "q", buf), "");
    kivis_txn_abort(r);
    expect_dump(fx->tier[0], "");
    assert_int_equal(neg_stats(fx).entries, 0);
    assert_string_equal(get(fx->st, "a"), "new");
    assert_string_equal(get(fx->st, "q"), "new");
}

/*
 * The consistency contract.  Another writer commits to the authority
 * behind the layered handle's back.  Until kivis_layered_invalidate the
 * handle serves what it had cached (a: old value; n: still missing), reads
 * what it had not cached from the authority (c: new), and scans the
 * authority (everything new); afterwards it sees everything new.
 */
static void test_outside_writer(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 4, abc);
    get(fx->st, "a");
    get(fx->st, "n");

    kivis_storage_txn *t = begin(fx->tier[1], 0); /* the other writer */
    put_in(t, "a", "outside");
    put_in(t, "c", "outside");
    put_in(t, "n", "outside");
    commit(t);

    assert_string_equal(get(fx->st, "a"), "va");
    assert_string_equal(get(fx->st, "n"), "");
    assert_string_equal(get(fx->st, "c"), "outside");
    expect_dump(fx->st, "61=6f757473696465\n62=7662\n63=6f757473696465\n"
                        "6e=6f757473696465\n");

    assert_int_equal(kivis_layered_invalidate(fx->st), KIVIS_OK);
    expect_dump(fx->tier[0], "");
    assert_int_equal(stats(fx, 0).invalidations, 2); /* a and c */
    assert_int_equal(neg_stats(fx).entries, 0);
    assert_string_equal(get(fx->st, "a"), "outside");
    assert_string_equal(get(fx->st, "n"), "outside");
}

/* ---- allocation failures ------------------------------------------------ */

/* Each allocation of the layered storage fails once in turn, during reads
 * that fill and a commit that writes through: the call fails cleanly or
 * works, and no tier ever holds a value the authority lacks. */
static void test_out_of_memory(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 1000, 0}, {MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 3, 4, abc);
    bool done = false;
    for (unsigned long n = 1; !done; n++) {
        char value[32];
        snprintf(value, sizeof value, "v%lu", n);
        unsigned long failures = fx->alloc.failures;
        kt_alloc_fail_at(&fx->alloc, n);
        kivis_storage_txn *t = NULL;
        int rc = kivis_storage_begin(fx->st, 0, &t);
        kivis_slice v;
        if (rc == KIVIS_OK)
            rc = kivis_txn_get(t, S("b"), &v);
        if (rc == KIVIS_OK)
            rc = kivis_txn_get(t, S("nope"), &v) == KIVIS_NOTFOUND ? KIVIS_OK : KIVIS_EIO;
        if (rc == KIVIS_OK)
            rc = kivis_txn_put(t, S("a"), str(value));
        if (rc == KIVIS_OK)
            rc = kivis_txn_put(t, S("zz"), str(value));
        if (rc == KIVIS_OK)
            rc = kivis_txn_commit(t, KIVIS_SYNC);
        else if (t)
            kivis_txn_abort(t);
        done = fx->alloc.failures == failures;
        kt_alloc_fail_at(&fx->alloc, 0);
        if (rc != KIVIS_OK && rc != KIVIS_ENOMEM)
            fail_msg("allocation %lu: %s", n, kivis_errname(rc));
        expect_tiers_agree(fx, "a");
        expect_tiers_agree(fx, "b");
        expect_tiers_agree(fx, "zz");
        assert_string_equal(get(fx->st, "zz"), get(fx->tier[2], "zz"));
        if (rc == KIVIS_OK)
            assert_string_equal(get(fx->st, "a"), value);
    }
}

static void test_stats_arguments(void **state)
{
    fixture *fx = *state;
    static const spec sp[] = {{MEM, 0, 0}, {MEM, 0, 0}};
    open_stack(fx, sp, 2, 0, NULL);
    kivis_layered_tier_stats s;
    kivis_layered_negative_stats n;
    assert_int_equal(kivis_layered_stats(fx->st, 2, &s), KIVIS_EINVAL);
    assert_int_equal(kivis_layered_stats(fx->tier[0], 0, &s), KIVIS_EINVAL);
    assert_int_equal(kivis_layered_negative_stats_get(fx->tier[0], &n), KIVIS_EINVAL);
    assert_int_equal(kivis_layered_invalidate(fx->tier[0]), KIVIS_EINVAL);
    assert_int_equal(kivis_layered_stats(fx->st, 1, &s), KIVIS_OK);
    assert_true(s.usable);
    assert_int_equal(kivis_layered_negative_stats_get(fx->st, &n), KIVIS_OK);
    assert_int_equal(n.entries, 0);
}

/* ---- a tier written against interface version 4 ------------------------ */

/* A backend compiled against version 4 of kivis/storage.h: its cursor
 * table ends after close, with no page member.  The shim forwards to a
 * memory store through tables of exactly that shape. */
typedef struct v4_cursor_methods {
    int (*get)(kivis_storage_cursor *cur, int op, kivis_slice *key, kivis_slice *value);
    void (*close)(kivis_storage_cursor *cur);
} v4_cursor_methods;

typedef struct v4_cursor {
    const v4_cursor_methods *methods;
    kivis_storage_cursor *in;
} v4_cursor;

typedef struct v4_txn {
    kivis_storage_txn base;
    kivis_storage_txn *in;
} v4_txn;

typedef struct v4_storage {
    kivis_storage base;
    kivis_storage *in;
} v4_storage;

static kivis_storage_txn *v4_in(kivis_storage_txn *t) { return ((v4_txn *)t)->in; }

static int v4c_get(kivis_storage_cursor *c, int op, kivis_slice *k, kivis_slice *v)
{
    return kivis_cursor_get(((v4_cursor *)c)->in, op, k, v);
}

static void v4c_close(kivis_storage_cursor *c)
{
    kivis_cursor_close(((v4_cursor *)c)->in);
    free(c);
}

static const v4_cursor_methods v4_cursor_table = {v4c_get, v4c_close};

static int v4t_get(kivis_storage_txn *t, kivis_slice k, kivis_slice *v)
{
    return kivis_txn_get(v4_in(t), k, v);
}

static int v4t_put(kivis_storage_txn *t, kivis_slice k, kivis_slice v)
{
    return kivis_txn_put(v4_in(t), k, v);
}

static int v4t_del(kivis_storage_txn *t, kivis_slice k)
{
    return kivis_txn_del(v4_in(t), k);
}

static int v4t_cursor(kivis_storage_txn *t, kivis_slice lo, kivis_slice hi,
                      kivis_storage_cursor **out)
{
    v4_cursor *c = malloc(sizeof *c);
    assert_non_null(c);
    c->methods = &v4_cursor_table;
    int rc = kivis_txn_cursor(v4_in(t), lo, hi, &c->in);
    if (rc != KIVIS_OK) {
        free(c);
        return rc;
    }
    *out = (kivis_storage_cursor *)c;
    return KIVIS_OK;
}

static int v4t_commit(kivis_storage_txn *t, int durability)
{
    int rc = kivis_txn_commit(v4_in(t), durability);
    free(t);
    return rc;
}

static void v4t_abort(kivis_storage_txn *t)
{
    kivis_txn_abort(v4_in(t));
    free(t);
}

static const kivis_txn_methods v4_txn_table = {
    v4t_get, v4t_put, v4t_del, v4t_cursor, v4t_commit, v4t_abort, NULL, NULL, NULL,
};

static void v4_close(kivis_storage *st)
{
    kivis_storage_close(((v4_storage *)st)->in);
    free(st);
}

static size_t v4_max_key(kivis_storage *st)
{
    return kivis_storage_max_key(((v4_storage *)st)->in);
}

static int v4_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    v4_txn *t = calloc(1, sizeof *t);
    assert_non_null(t);
    int rc = kivis_storage_begin(((v4_storage *)st)->in, flags, &t->in);
    if (rc != KIVIS_OK) {
        free(t);
        return rc;
    }
    t->base = (kivis_storage_txn){&v4_txn_table, st, flags};
    *out = &t->base;
    return KIVIS_OK;
}

static const kivis_storage_methods v4_table = {4, "v4", v4_close, v4_max_key, v4_begin, NULL};

static kivis_storage *v4_over_memory(void)
{
    v4_storage *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(kivis_memory_open(NULL, &s->in), KIVIS_OK);
    s->base.methods = &v4_table;
    return &s->base;
}

/* A stack whose authority is a version-4 backend: the cursors its
 * transactions hand out are that tier's own, whose table has no page
 * member, so they are read an entry a call (a version-5 stack would
 * read the member past the end of the table). */
static void test_tier_of_interface_version_4(void **state)
{
    (void)state;
    kivis_storage *mem, *st;
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    kivis_layered_tier tiers[2] = {{mem, 0, 0}, {v4_over_memory(), 0, 0}};
    assert_int_equal(kivis_layered_open(tiers, 2, NULL, &st), KIVIS_OK);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    for (const char *const *p = abc; *p; p += 2)
        assert_int_equal(kivis_txn_put(t, kivis_slice_make(p[0], strlen(p[0])),
                                       kivis_slice_make(p[1], strlen(p[1]))),
                         KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    kivis_storage_cursor *c;
    assert_int_equal(kivis_txn_cursor(t, NONE, NONE, &c), KIVIS_OK);
    assert_false(kivis_cursor_pages(t, c));
    kivis_cursor_entry run[8];
    size_t n, seen = 0;
    const uint64_t *stamp;
    int rc;
    while ((rc = kivis_cursor_page(t, c, KIVIS_NEXT, run, 8, &n, &stamp)) == KIVIS_OK) {
        assert_int_equal(n, 1);
        const char *want = abc[2 * seen];
        assert_int_equal(run[0].key.len, strlen(want));
        assert_memory_equal(run[0].key.data, want, run[0].key.len);
        seen++;
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    assert_int_equal(seen, 3);
    kivis_cursor_close(c);
    kivis_txn_abort(t);
    kivis_storage_close(st);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    static const struct CMUnitTest tests[] = {
        T(test_open_rejects_bad_stacks),
        T(test_max_key_is_the_smallest),
        T(test_read_through_counts_and_fills),
        T(test_admission_on_the_second_miss),
        T(test_admission_compares_with_the_victim),
        T(test_cached_values_stay_valid),
        T(test_lru_eviction_under_a_byte_bound),
        T(test_gets_cost_per_transaction_not_per_get),
        T(test_negative_cache),
        T(test_write_through),
        T(test_own_writes_bypass_the_caches),
        T(test_authority_fails_at_every_write),
        T(test_authority_fails_then_commit_the_rest),
        T(test_cache_tier_update_fails),
        T(test_failed_fill_is_dropped),
        T(test_mirror_answers_scans_and_misses),
        T(test_old_snapshot_does_not_fill),
        T(test_outside_writer),
        T(test_out_of_memory),
        T(test_stats_arguments),
        cmocka_unit_test(test_tier_of_interface_version_4),
    };
    return cmocka_run_group_tests_name("layered", tests, NULL, NULL);
}
