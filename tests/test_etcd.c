/*
 * test_etcd.c - the etcd backend on a real three-member cluster (a private
 * one, tests/support/etcdcluster.h): what the conformance suite cannot
 * see.  Concurrent writers (ECONFLICT, two processes incrementing one
 * counter through the record engine), a scanned range that another client
 * writes into, a commit over the cluster's op limit, members dying (the
 * client moves on), an unreachable cluster and its return, a commit whose
 * reply is lost, the change feed, and what prefetch and discard cost in
 * requests (kivis__etcd_requests) and keep of the conflict checks.
 */
#include "etcdcluster.h"
#include "petsutil.h"
#include "testutil.h"

#include "storage/etcdhook.h"

#include <kivis/etcd.h>
#include <kivis/layered.h>
#include <kivis/memory.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S(s) kivis_slice_make((s), sizeof(s) - 1)

static kivis_storage *open_at(const char *endpoints, const char *prefix, int timeout_ms)
{
    kivis_etcd_options o = {.prefix = prefix, .timeout_ms = timeout_ms};
    kivis_storage *st = NULL;
    int rc = kivis_etcd_open(endpoints, &o, &st);
    if (rc != KIVIS_OK)
        fail_msg("open %s: %s: %s", prefix, kivis_errname(rc), kivis_etcd_errmsg());
    return st;
}

/* A store under `prefix` on the test cluster, emptied first. */
static kivis_storage *fresh(const char *prefix)
{
    kt_etcd_wipe(prefix);
    return open_at(kt_etcd_start(), prefix, 0);
}

static void put_one(kivis_storage *st, kivis_slice k, kivis_slice v)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, k, v), KIVIS_OK);
    int rc = kivis_txn_commit(t, KIVIS_SYNC);
    if (rc != KIVIS_OK)
        fail_msg("commit: %s: %s", kivis_errname(rc), kivis_etcd_errmsg());
}

/* Two writers read the same key and write it: the second commit conflicts
 * and leaves nothing of itself. */
static void test_conflict_is_econflict(void **state)
{
    (void)state;
    kivis_storage *a = fresh("t-conflict/"), *b = open_at(kt_etcd_start(), "t-conflict/", 0);
    kt_conflicting_writers(a, b);
    kivis_storage_close(a);
    kivis_storage_close(b);
}

/* A writer scans a range; another client inserts into it, or deletes a
 * key of it, before the writer commits: both are conflicts (a phantom and
 * a vanished row), while a write outside the range is not. */
static void scan_then(kivis_storage *a, kivis_storage *b, kivis_slice other_key,
                      bool del, int want)
{
    kivis_storage_txn *t, *tb;
    kivis_storage_cursor *c;
    kivis_slice k, v;
    assert_int_equal(kivis_storage_begin(a, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor(t, S("r"), S("s"), &c), KIVIS_OK);
    int n = 0;
    for (int rc = kivis_cursor_get(c, KIVIS_FIRST, &k, &v); rc == KIVIS_OK;
         rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v))
        n++;
    kivis_cursor_close(c);
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    assert_int_equal(kivis_txn_put(t, S("count"), kivis_slice_make(count, strlen(count))),
                     KIVIS_OK);
    assert_int_equal(kivis_storage_begin(b, 0, &tb), KIVIS_OK);
    if (del)
        assert_int_equal(kivis_txn_del(tb, other_key), KIVIS_OK);
    else
        assert_int_equal(kivis_txn_put(tb, other_key, S("x")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(tb, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), want);
}

static void test_scanned_range_conflicts(void **state)
{
    (void)state;
    kivis_storage *a = fresh("t-range/"), *b = open_at(kt_etcd_start(), "t-range/", 0);
    put_one(a, S("r1"), S("1"));
    put_one(a, S("r3"), S("3"));
    scan_then(a, b, S("r2"), false, KIVIS_ECONFLICT); /* a phantom */
    scan_then(a, b, S("r1"), true, KIVIS_ECONFLICT);  /* a key gone */
    scan_then(a, b, S("z"), false, KIVIS_OK);         /* elsewhere */
    char buf[8];
    assert_int_equal(kt_get_once(a, S("count"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "2"); /* r2 and r3 */
    kivis_storage_close(a);
    kivis_storage_close(b);
}

/* One commit with more writes than the cluster's --max-txn-ops (1024):
 * KIVIS_EINVAL naming the limit, and not one of its writes applied. */
static void test_commit_over_op_limit(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-limit/");
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    char k[16];
    for (int i = 0; i < 1100; i++) {
        snprintf(k, sizeof k, "k%04d", i);
        assert_int_equal(kivis_txn_put(t, kivis_slice_make(k, 5), S("v")), KIVIS_OK);
    }
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EINVAL);
    assert_non_null(strstr(kivis_etcd_errmsg(), "--max-txn-ops"));
    assert_int_equal(kt_count(st), 0);
    /* A value over --max-request-bytes (1.5 MiB): the same, naming it. */
    size_t big = 2u << 20;
    char *v = calloc(1, big);
    assert_non_null(v);
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("big"), kivis_slice_make(v, big)), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("small"), S("v")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EINVAL);
    assert_non_null(strstr(kivis_etcd_errmsg(), "--max-request-bytes"));
    free(v);
    assert_int_equal(kt_count(st), 0);
    kivis_storage_close(st);
}

/* ---- counters through the record engine --------------------------------- */

#define INCREMENTS 40

/* A child's storage: the store under prefix arg, NULL when it fails. */
static kivis_storage *open_prefix(void *arg)
{
    kivis_etcd_options o = {.prefix = arg};
    kivis_storage *st = NULL;
    return kivis_etcd_open(kt_etcd_start(), &o, &st) == KIVIS_OK ? st : NULL;
}

static user_key new_counter(kivis_storage *st)
{
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    user_key k = kt_put_user(db, "counter", 0);
    kivis_close(db);
    return k;
}

static uint32_t counter_value(kivis_storage *st, user_key k)
{
    kivis_db *db;
    user u;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    uint32_t v = u.age;
    kivis_record_clear(db, PETS_USER, &u);
    assert_int_equal(kt_users_named(db, "counter"), 1);
    kivis_close(db);
    return v;
}

/* Two processes increment one counter: not one increment is lost. */
static void test_two_process_counter(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-counter/");
    user_key k = new_counter(st);
    kivis_storage_close(st);
    kt_increments_in_processes(open_prefix, "t-counter/", k, 2, INCREMENTS);
    st = open_at(kt_etcd_start(), "t-counter/", 0);
    assert_int_equal(counter_value(st, k), 2 * INCREMENTS);
    kivis_storage_close(st);
}

/* ---- the network -------------------------------------------------------- */

/* The leader dies in the middle of a run of increments, then a follower:
 * the client moves on to the members left (a majority each time it
 * writes) and loses nothing.  Both come back for the next tests. */
static void test_members_killed_mid_run(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-kill/");
    user_key k = new_counter(st);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(kt_increments(db, k, 5), KIVIS_OK);
    int leader = kt_etcd_leader();
    kt_etcd_kill(leader);
    assert_int_equal(kt_increments(db, k, 5), KIVIS_OK);
    kt_etcd_revive(leader);
    int follower = (kt_etcd_leader() + 1) % KT_ETCD_MEMBERS;
    kt_etcd_kill(follower);
    assert_int_equal(kt_increments(db, k, 5), KIVIS_OK);
    kt_etcd_revive(follower);
    kivis_close(db);
    assert_int_equal(counter_value(st, k), 15);
    kivis_storage_close(st);
}

/* Two members of three killed: no quorum, so a commit fails cleanly
 * (KIVIS_EUNAVAILABLE, the caller told that its outcome is unknown) and
 * no later than the storage's timeout; once the members are back every
 * commit reported before is there, and the one that failed is there whole
 * or not at all (a leader without its quorum may still commit what it was
 * sent once the others return). */
static void test_quorum_lost_and_back(void **state)
{
    (void)state;
    kt_etcd_wipe("t-quorum/");
    kivis_storage *st = open_at(kt_etcd_start(), "t-quorum/", 1500);
    char key[8], buf[16];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        put_one(st, kivis_slice_make(key, strlen(key)), S("v"));
    }
    int first = kt_etcd_leader(), second = (first + 1) % KT_ETCD_MEMBERS;
    kt_etcd_kill(first);
    kt_etcd_kill(second);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("q1"), S("v")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("q2"), S("v")), KIVIS_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EUNAVAILABLE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 10);
    assert_true(strlen(kivis_etcd_errmsg()) > 0);
    kt_etcd_revive(first);
    kt_etcd_revive(second);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(kt_get_once(st, kivis_slice_make(key, strlen(key)), buf, sizeof buf),
                         KIVIS_OK);
    }
    int q1 = kt_get_once(st, S("q1"), buf, sizeof buf);
    int q2 = kt_get_once(st, S("q2"), buf, sizeof buf);
    assert_true(q1 == KIVIS_OK || q1 == KIVIS_NOTFOUND);
    assert_int_equal(q1, q2);
    put_one(st, S("after"), S("v"));
    kivis_storage_close(st);
    kt_etcd_wipe("t-quorum/");
}

/* A store whose only endpoint is down: KIVIS_EUNAVAILABLE (at open too),
 * and the same storage works again once the member is back. */
static void test_unreachable_then_back(void **state)
{
    (void)state;
    kt_etcd_wipe("t-down/");
    char one[64];
    snprintf(one, sizeof one, "%s", kt_etcd_endpoint(1));
    kivis_storage *st = open_at(one, "t-down/", 500);
    put_one(st, S("k"), S("before"));
    kt_etcd_kill(1);
    char buf[16];
    assert_int_equal(kt_get_once(st, S("k"), buf, sizeof buf), KIVIS_EUNAVAILABLE);
    assert_true(strlen(kivis_etcd_errmsg()) > 0);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("k"), S("lost")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EUNAVAILABLE);
    kivis_storage *none = NULL;
    kivis_etcd_options o = {.prefix = "t-down/", .timeout_ms = 300};
    assert_int_equal(kivis_etcd_open(one, &o, &none), KIVIS_EUNAVAILABLE);
    assert_null(none);
    kt_etcd_revive(1);
    assert_int_equal(kt_get_once(st, S("k"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "before");
    put_one(st, S("k"), S("after"));
    assert_int_equal(kt_get_once(st, S("k"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "after");
    kivis_storage_close(st);
}

/* A member that answers nothing (frozen: connections accepted, no reply)
 * costs a request a quarter of its time, not all of it: the request then
 * goes to the next member.  The storage starts on a follower, so that the
 * others keep their leader. */
static void test_frozen_member_passed_over(void **state)
{
    (void)state;
    kt_etcd_wipe("t-frozen/");
    int f = (kt_etcd_leader() + 1) % KT_ETCD_MEMBERS;
    char endpoints[256];
    snprintf(endpoints, sizeof endpoints, "%s", kt_etcd_endpoint(f));
    for (int i = 1; i < KT_ETCD_MEMBERS; i++) {
        size_t at = strlen(endpoints);
        snprintf(endpoints + at, sizeof endpoints - at, ",%s",
                 kt_etcd_endpoint((f + i) % KT_ETCD_MEMBERS));
    }
    kivis_storage *st = open_at(endpoints, "t-frozen/", 4000);
    put_one(st, S("k"), S("1"));
    kt_etcd_freeze(f);
    kivis_storage_txn *t;
    char buf[8];
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("k"), S("2")), KIVIS_OK);
    int rc = kivis_txn_commit(t, KIVIS_SYNC);
    int rc_get = kt_get_once(st, S("k"), buf, sizeof buf);
    kt_etcd_thaw(f);
    if (rc != KIVIS_OK)
        fail_msg("commit with a frozen member: %s: %s", kivis_errname(rc),
                 kivis_etcd_errmsg());
    assert_int_equal(rc_get, KIVIS_OK);
    assert_string_equal(buf, "2");
    kivis_storage_close(st);
}

/* The reply to a commit is lost after the cluster applied it: the backend
 * sends it again to the next member, whose answer (the commit's marker is
 * there) says it was applied: KIVIS_OK, and applied once.  A read-modify-
 * write shows it: applying it twice would be two increments, and without
 * the marker the resend's compares would fail (KIVIS_ECONFLICT). */
static void test_lost_commit_reply(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-lost/");
    user_key k = new_counter(st);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    for (int i = 0; i < 3; i++) {
        atomic_store(&kivis__etcd_lose_replies, 1);
        assert_int_equal(kt_increment(db, k), KIVIS_OK);
        assert_int_equal(atomic_load(&kivis__etcd_lose_replies), 0);
    }
    /* A blind write (no compares but the marker's) too. */
    atomic_store(&kivis__etcd_lose_replies, 2);
    put_one(st, S("blind"), S("1"));
    assert_int_equal(atomic_load(&kivis__etcd_lose_replies), 0);
    kivis_close(db);
    assert_int_equal(counter_value(st, k), 3);
    char buf[8];
    assert_int_equal(kt_get_once(st, S("blind"), buf, sizeof buf), KIVIS_OK);
    kivis_storage_close(st);
}

/* ---- node kills: every outcome accounted for ---------------------------- */

#define NK_TXNS 300     /* write transactions in the run */
#define NK_LOSE_EVERY 10 /* one commit in so many has its reply dropped */
#define NK_RETRIES 20   /* ECONFLICT retries of one transaction at most */

/* How a transaction ended, as the caller learns it.  The backend reports
 * KIVIS_ECONFLICT only when the cluster answered that a compare failed and
 * the commit's marker is absent (nothing applied), and KIVIS_EUNAVAILABLE
 * when no member answered in time (outcome unknown); any other error is a
 * refusal before or by the server (nothing applied). */
enum nk_outcome { NK_COMMITTED, NK_UNKNOWN, NK_FAILED };

typedef struct nk_run {
    kivis_storage *st;
    atomic_int done;           /* transactions finished, for the killer */
    enum nk_outcome out[NK_TXNS];
    int retries, unknown, failed, lost_replies;
    int killed[2];             /* the members killed, in order */
    bool second_was_leader;
} nk_run;

/* Transaction i: read the counter, insert key "nk<i>" (value i) and write
 * the counter plus one, in one commit. */
static int nk_txn(kivis_storage *st, int i)
{
    kivis_storage_txn *t;
    kivis_slice v;
    char key[16], val[16], count[24] = "0";
    int rc = kivis_storage_begin(st, 0, &t);
    if (rc != KIVIS_OK)
        return rc;
    rc = kivis_txn_get(t, S("counter"), &v);
    if (rc == KIVIS_OK)
        snprintf(count, sizeof count, "%.*s", (int)v.len, (const char *)v.data);
    if (rc == KIVIS_OK || rc == KIVIS_NOTFOUND) {
        snprintf(key, sizeof key, "nk%03d", i);
        snprintf(val, sizeof val, "%d", i);
        rc = kivis_txn_put(t, kivis_slice_make(key, strlen(key)),
                           kivis_slice_make(val, strlen(val)));
    }
    if (rc == KIVIS_OK) {
        snprintf(count, sizeof count, "%ld", strtol(count, NULL, 10) + 1);
        rc = kivis_txn_put(t, S("counter"), kivis_slice_make(count, strlen(count)));
    }
    if (rc != KIVIS_OK) {
        kivis_txn_abort(t);
        return rc;
    }
    return kivis_txn_commit(t, KIVIS_SYNC);
}

/* Run transaction i to an outcome: ECONFLICT is retried (nothing was
 * applied), EUNAVAILABLE is not (it may have been: an application would
 * look before trying again). */
static void nk_one(nk_run *r, int i)
{
    if (i % NK_LOSE_EVERY == NK_LOSE_EVERY / 2) {
        atomic_store(&kivis__etcd_lose_replies, 1);
        r->lost_replies++;
    }
    int rc, tries = 0;
    while ((rc = nk_txn(r->st, i)) == KIVIS_ECONFLICT && ++tries < NK_RETRIES)
        r->retries++;
    atomic_store(&kivis__etcd_lose_replies, 0);
    if (rc == KIVIS_OK) {
        r->out[i] = NK_COMMITTED;
    } else if (rc == KIVIS_EUNAVAILABLE) {
        fprintf(stderr, "nk%03d: outcome unknown: %s\n", i, kivis_etcd_errmsg());
        r->out[i] = NK_UNKNOWN;
        r->unknown++;
    } else {
        fprintf(stderr, "nk%03d: %s: %s\n", i, kivis_errname(rc), kivis_etcd_errmsg());
        r->out[i] = NK_FAILED;
        r->failed++;
    }
}

static void nk_wait(nk_run *r, int done)
{
    while (atomic_load(&r->done) < done) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* The killer, beside the workload, so that members die with commits in
 * flight: the leader at a fifth of the run, back at half, then the leader
 * again (another member when the same one leads) at two thirds. */
static void *nk_killer(void *arg)
{
    nk_run *r = arg;
    nk_wait(r, NK_TXNS / 5);
    r->killed[0] = kt_etcd_leader();
    kt_etcd_kill(r->killed[0]);
    nk_wait(r, NK_TXNS / 2);
    kt_etcd_revive(r->killed[0]);
    nk_wait(r, NK_TXNS * 2 / 3);
    r->killed[1] = kt_etcd_leader();
    r->second_was_leader = r->killed[1] != r->killed[0];
    if (!r->second_was_leader)
        r->killed[1] = (r->killed[0] + 1) % KT_ETCD_MEMBERS;
    kt_etcd_kill(r->killed[1]);
    return NULL;
}

/* What the store holds after the run: found[i] for each key nk<i> with
 * the right value, and the counter. */
static long nk_read_back(kivis_storage *st, bool found[NK_TXNS])
{
    kivis_storage_txn *t;
    kivis_storage_cursor *c;
    kivis_slice k, v;
    char buf[16];
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor(t, S("nk"), S("nl"), &c), KIVIS_OK);
    for (int rc = kivis_cursor_get(c, KIVIS_FIRST, &k, &v); rc == KIVIS_OK;
         rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v)) {
        snprintf(buf, sizeof buf, "%.*s", (int)(k.len - 2), (const char *)k.data + 2);
        int i = atoi(buf);
        assert_true(i >= 0 && i < NK_TXNS);
        snprintf(buf, sizeof buf, "%d", i);
        assert_memory_equal(v.data, buf, v.len);
        found[i] = true;
    }
    kivis_cursor_close(c);
    long counter = 0;
    if (kivis_txn_get(t, S("counter"), &v) == KIVIS_OK) {
        snprintf(buf, sizeof buf, "%.*s", (int)v.len, (const char *)v.data);
        counter = strtol(buf, NULL, 10);
    }
    kivis_txn_abort(t);
    return counter;
}

/* NK_TXNS write transactions, each inserting its own key and incrementing
 * a counter, while the leader is killed, revived, then another member
 * killed, with one commit reply in NK_LOSE_EVERY dropped after the cluster
 * applied it.  Then everything is read back: nothing reported committed
 * is missing (lost), nothing is applied twice (the counter would exceed
 * the keys found), and no key is there whose transaction was reported
 * failed for sure.  The figures go to stdout in one line. */
static void test_node_kill_figures(void **state)
{
    (void)state;
    static nk_run r;
    memset(&r, 0, sizeof r);
    r.st = fresh("t-nodekill/");
    pthread_t killer;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pthread_create(&killer, NULL, nk_killer, &r), 0);
    for (int i = 0; i < NK_TXNS; i++) {
        nk_one(&r, i);
        atomic_fetch_add(&r.done, 1);
    }
    assert_int_equal(pthread_join(killer, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bool found[NK_TXNS] = {false};
    long counter = nk_read_back(r.st, found);
    kt_etcd_revive(r.killed[1]);
    kivis_storage_close(r.st);

    int committed = 0, present = 0, lost = 0, found_unknown = 0, found_failed = 0;
    for (int i = 0; i < NK_TXNS; i++) {
        committed += r.out[i] == NK_COMMITTED;
        present += found[i];
        lost += r.out[i] == NK_COMMITTED && !found[i];
        found_unknown += r.out[i] == NK_UNKNOWN && found[i];
        found_failed += r.out[i] == NK_FAILED && found[i];
    }
    long duplicated = counter > present ? counter - present : 0;
    printf("etcd node-kill: attempted %d, reported committed %d, found %d, lost %d, "
           "duplicated %ld (counter %ld); ECONFLICT retried %d, EUNAVAILABLE %d "
           "(found %d), other errors %d (found %d); replies dropped %d; killed n%d "
           "(leader), revived, killed n%d (%s); %.1f s\n",
           NK_TXNS, committed, present, lost, duplicated, counter, r.retries, r.unknown,
           found_unknown, r.failed, found_failed, r.lost_replies, r.killed[0],
           r.killed[1], r.second_was_leader ? "leader" : "follower",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    assert_int_equal(lost, 0);
    assert_int_equal(duplicated, 0);
    assert_int_equal(counter, present); /* no increment lost either */
    assert_int_equal(found_failed, 0);
    assert_int_equal(committed + r.unknown + r.failed, NK_TXNS);
}

/* ---- the change feed ---------------------------------------------------- */

static kivis_change next_change(kivis_feed *f)
{
    kivis_change c;
    int rc = kivis_feed_next(f, 5000, &c);
    if (rc != KIVIS_OK)
        fail_msg("feed: %s: %s", kivis_errname(rc), kivis_etcd_errmsg());
    return c;
}

static void expect_change(kivis_feed *f, int kind, const char *key, uint64_t *pos)
{
    kivis_change c = next_change(f);
    assert_int_equal(c.kind, kind);
    assert_int_equal(c.key.len, strlen(key));
    assert_memory_equal(c.key.data, key, c.key.len);
    assert_true(c.pos > *pos);
    *pos = c.pos;
}

/* Another client's commits reach a feed in commit order, each kind right,
 * the two keys of one commit one after the other; a feed opened after a
 * position resumes there. */
static void test_feed_follows_other_client(void **state)
{
    (void)state;
    kivis_storage *a = fresh("t-feed/"), *b = open_at(kt_etcd_start(), "t-feed/", 0);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(a, KIVIS_FEED_NOW, &f), KIVIS_OK);
    assert_int_equal(f->flags & KIVIS_FEED_SHARED, KIVIS_FEED_SHARED);
    assert_true(kivis_feed_fd(f) >= 0);
    kivis_change c;
    assert_int_equal(kivis_feed_next(f, 0, &c), KIVIS_NOTFOUND);
    put_one(b, S("x"), S("1"));
    put_one(b, S("x"), S("2"));
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(b, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, S("x")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("y"), S("1")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    uint64_t pos = 0, first;
    expect_change(f, KIVIS_CHANGE_INSERT, "x", &pos);
    first = pos;
    expect_change(f, KIVIS_CHANGE_UPDATE, "x", &pos);
    expect_change(f, KIVIS_CHANGE_DELETE, "x", &pos);
    expect_change(f, KIVIS_CHANGE_INSERT, "y", &pos);
    assert_int_equal(kivis_feed_next(f, 100, &c), KIVIS_NOTFOUND);
    kivis_feed_close(f);

    assert_int_equal(kivis_feed_open(a, first, &f), KIVIS_OK);
    pos = first;
    expect_change(f, KIVIS_CHANGE_UPDATE, "x", &pos);
    expect_change(f, KIVIS_CHANGE_DELETE, "x", &pos);
    kivis_feed_close(f);
    kivis_storage_close(a);
    kivis_storage_close(b);
}

/* An allocator that fails every allocation made off the test's thread
 * (the feed's watch thread) while armed, counting those it failed. */
typedef struct thread_failing {
    kivis_allocator iface;
    pthread_t main;
    atomic_bool armed;
    atomic_int failed;
} thread_failing;

static void *tf_malloc(void *ctx, size_t n)
{
    thread_failing *a = ctx;
    if (atomic_load(&a->armed) && !pthread_equal(pthread_self(), a->main)) {
        atomic_fetch_add(&a->failed, 1);
        return NULL;
    }
    return malloc(n);
}

static void *tf_realloc(void *ctx, void *p, size_t n)
{
    thread_failing *a = ctx;
    if (atomic_load(&a->armed) && !pthread_equal(pthread_self(), a->main)) {
        atomic_fetch_add(&a->failed, 1);
        return NULL;
    }
    return realloc(p, n);
}

static void tf_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* A change the watch thread could not queue (its memory ran out) is not
 * skipped: the watch starts again from that revision and the change
 * arrives once memory is back, in order, before the next one. */
static void test_feed_keeps_a_change_it_could_not_queue(void **state)
{
    (void)state;
    thread_failing tf = {{tf_malloc, tf_realloc, tf_free, NULL}, pthread_self(), false, 0};
    tf.iface.ctx = &tf;
    kt_etcd_wipe("t-feedoom/");
    kivis_etcd_options o = {.allocator = &tf.iface, .prefix = "t-feedoom/"};
    kivis_storage *a = NULL, *b = open_at(kt_etcd_start(), "t-feedoom/", 0);
    assert_int_equal(kivis_etcd_open(kt_etcd_start(), &o, &a), KIVIS_OK);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(a, KIVIS_FEED_NOW, &f), KIVIS_OK);
    uint64_t pos = 0;
    put_one(b, S("before"), S("1"));
    expect_change(f, KIVIS_CHANGE_INSERT, "before", &pos);
    atomic_store(&tf.armed, true);
    put_one(b, S("lost"), S("1"));
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 500 && atomic_load(&tf.failed) == 0; i++)
        nanosleep(&tick, NULL);
    assert_true(atomic_load(&tf.failed) > 0);
    atomic_store(&tf.armed, false);
    put_one(b, S("after"), S("1"));
    expect_change(f, KIVIS_CHANGE_INSERT, "lost", &pos);
    expect_change(f, KIVIS_CHANGE_INSERT, "after", &pos);
    kivis_feed_close(f);
    kivis_storage_close(a);
    kivis_storage_close(b);
    kt_etcd_wipe("t-feedoom/");
}

/* Resuming from a position the cluster has compacted away starts with a
 * KIVIS_CHANGE_RESYNC, then the changes kept (the compaction keeps the
 * revision it is made at: a's update). */
static void test_feed_resync_after_compaction(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-compact/");
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);
    put_one(st, S("a"), S("1"));
    uint64_t pos = 0;
    expect_change(f, KIVIS_CHANGE_INSERT, "a", &pos);
    kivis_feed_close(f);
    put_one(st, S("a"), S("2"));
    kt_etcd_compact(kt_etcd_revision());
    put_one(st, S("b"), S("1"));
    assert_int_equal(kivis_feed_open(st, pos, &f), KIVIS_OK);
    kivis_change c = next_change(f);
    assert_int_equal(c.kind, KIVIS_CHANGE_RESYNC);
    assert_int_equal(c.key.len, 0);
    assert_true(c.pos > pos);
    pos = c.pos;
    expect_change(f, KIVIS_CHANGE_UPDATE, "a", &pos);
    expect_change(f, KIVIS_CHANGE_INSERT, "b", &pos);
    kivis_feed_close(f);
    kivis_storage_close(st);
}

/* A memory cache over etcd (kivis/layered.h) learns of another client's
 * write through the feed. */
static void test_layered_cache_sees_other_client(void **state)
{
    (void)state;
    kivis_storage *mem, *authority = fresh("t-layered/"), *cache;
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    kivis_layered_tier tiers[2] = {{mem, 1u << 20, 0}, {authority, 0, 0}};
    kivis_layered_options lo = {.negative_max = 1024};
    assert_int_equal(kivis_layered_open(tiers, 2, &lo, &cache), KIVIS_OK);
    kivis_storage *other = open_at(kt_etcd_start(), "t-layered/", 0);
    kivis_layered_feed_stats fs;
    assert_int_equal(kivis_layered_feed_stats_get(cache, &fs), KIVIS_OK);
    assert_int_equal(fs.following, 1);
    put_one(cache, S("k"), S("v1"));
    char buf[16];
    assert_int_equal(kt_get_once(cache, S("k"), buf, sizeof buf), KIVIS_OK);
    assert_int_equal(kt_get_once(cache, S("k"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "v1");
    put_one(other, S("k"), S("v2"));
    for (int i = 0; i < 2000 && strcmp(buf, "v2") != 0; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        assert_int_equal(kt_get_once(cache, S("k"), buf, sizeof buf), KIVIS_OK);
    }
    assert_string_equal(buf, "v2");
    assert_int_equal(kivis_storage_close(cache), KIVIS_OK);
    kivis_storage_close(other);
}

/* ---- prefetch and discard (storage interface version 3) ---------------- */

#define PF_KEYS 1100 /* more than one prefetch request holds (1024) */

static unsigned long long requests(void)
{
    return atomic_load(&kivis__etcd_requests);
}

static kivis_slice pf_key(char buf[16], int i)
{
    return kivis_slice_make(buf, (size_t)snprintf(buf, 16, "pf%04d", i));
}

/* The value of *v and status rc, as one string ("NOTFOUND" when absent). */
static void describe(int rc, kivis_slice v, char out[32])
{
    if (rc == KIVIS_OK)
        snprintf(out, 32, "%.*s", (int)v.len, (const char *)v.data);
    else
        snprintf(out, 32, "%s", kivis_errname(rc));
}

/* One read-only prefetch of 1,100 keys (one in three stored) is two
 * requests, ceil(1100 / 1024); the gets after it cost none and answer as
 * a transaction without the prefetch does, present and absent keys. */
static void test_prefetch_is_one_request_a_batch(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-prefetch/");
    kivis_storage_txn *t;
    char k[16], v[16];
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    for (int i = 0; i < PF_KEYS; i += 3)
        assert_int_equal(kivis_txn_put(t, pf_key(k, i),
                                       kivis_slice_make(v, (size_t)snprintf(v, sizeof v, "v%d", i))),
                         KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    static char names[PF_KEYS][16];
    kivis_slice keys[PF_KEYS];
    for (int i = 0; i < PF_KEYS; i++)
        keys[i] = pf_key(names[i], i);

    kivis_storage_txn *pre, *plain;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &pre), KIVIS_OK);
    assert_true(kivis_txn_prefetches(pre));
    unsigned long long before = requests();
    assert_int_equal(kivis_txn_prefetch(pre, keys, PF_KEYS), KIVIS_OK);
    assert_int_equal(requests() - before, 2);
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &plain), KIVIS_OK);
    before = requests();
    for (int i = 0; i < PF_KEYS; i++) {
        kivis_slice a, b;
        char got[32], want[32];
        describe(kivis_txn_get(pre, keys[i], &a), a, got);
        assert_int_equal(requests(), before); /* answered from the prefetch */
        describe(kivis_txn_get(plain, keys[i], &b), b, want);
        before = requests();
        assert_string_equal(got, want);
    }
    /* Keys read already are not asked for again. */
    assert_int_equal(kivis_txn_prefetch(pre, keys, 100), KIVIS_OK);
    assert_int_equal(requests(), before);
    kivis_txn_abort(plain);
    kivis_txn_abort(pre);
    kivis_storage_close(st);
}

/* A write transaction prefetches a key, another client changes it, the
 * transaction gets it (the value of its snapshot) and writes elsewhere:
 * its commit conflicts, as after a plain get.  Likewise for a key the
 * prefetch found absent that the other client creates.  A key prefetched
 * and never got adds no conflict: the hint changes nothing. */
static void prefetch_then(kivis_storage *a, kivis_storage *b, kivis_slice key,
                          bool get, const char *want_value, int want)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(a, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_prefetch(t, &key, 1), KIVIS_OK);
    put_one(b, key, S("changed"));
    if (get) {
        kivis_slice v;
        char got[32];
        unsigned long long before = requests();
        describe(kivis_txn_get(t, key, &v), v, got);
        assert_int_equal(requests(), before);
        assert_string_equal(got, want_value);
    }
    assert_int_equal(kivis_txn_put(t, S("elsewhere"), S("w")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), want);
}

static void test_prefetched_key_changed_conflicts(void **state)
{
    (void)state;
    kivis_storage *a = fresh("t-pfconflict/"), *b = open_at(kt_etcd_start(), "t-pfconflict/", 0);
    put_one(a, S("x"), S("old"));
    prefetch_then(a, b, S("x"), true, "old", KIVIS_ECONFLICT);
    prefetch_then(a, b, S("absent"), true, "KIVIS_NOTFOUND", KIVIS_ECONFLICT);
    prefetch_then(a, b, S("x"), false, NULL, KIVIS_OK);
    char buf[16];
    assert_int_equal(kt_get_once(a, S("elsewhere"), buf, sizeof buf), KIVIS_OK);
    kivis_storage_close(a);
    kivis_storage_close(b);
}

/* discard costs no request: the delete goes with the commit, and nothing
 * of the key is compared (another client's write to it after the
 * transaction's snapshot is no conflict: discard deletes whatever is
 * there), while a key the transaction got still is. */
static void test_discard_is_blind(void **state)
{
    (void)state;
    kivis_storage *a = fresh("t-discard/"), *b = open_at(kt_etcd_start(), "t-discard/", 0);
    put_one(a, S("d"), S("1"));
    put_one(a, S("r"), S("1"));
    kivis_storage_txn *t;
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(a, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, S("r"), &v), KIVIS_OK); /* a snapshot */
    unsigned long long before = requests();
    assert_int_equal(kivis_txn_discard(t, S("d")), KIVIS_OK);
    assert_int_equal(kivis_txn_discard(t, S("never-there")), KIVIS_OK);
    assert_int_equal(requests(), before);
    assert_int_equal(kivis_txn_get(t, S("d"), &v), KIVIS_NOTFOUND);
    assert_int_equal(requests(), before);
    put_one(b, S("d"), S("2"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    char buf[16];
    assert_int_equal(kt_get_once(a, S("d"), buf, sizeof buf), KIVIS_NOTFOUND);
    assert_int_equal(kt_get_once(a, S("r"), buf, sizeof buf), KIVIS_OK);
    /* Got, then discarded: the get's compare stays. */
    put_one(a, S("d"), S("3"));
    assert_int_equal(kivis_storage_begin(a, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, S("d"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_discard(t, S("d")), KIVIS_OK);
    put_one(b, S("d"), S("4"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_ECONFLICT);
    assert_int_equal(kt_get_once(a, S("d"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "4");
    kivis_storage_close(a);
    kivis_storage_close(b);
}

#define SAME_NAME 20

/* 20 users named "same" (and others around them); their keys in keys. */
static kivis_db *same_named(kivis_storage *st, user_key keys[SAME_NAME])
{
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    kt_put_user(db, "before", 1);
    for (int i = 0; i < SAME_NAME; i++)
        keys[i] = kt_put_user(db, "same", (uint32_t)i);
    kt_put_user(db, "after", 1);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    return db;
}

/* An index lookup of 20 records in a read-only transaction: the entries
 * (two cursor pages: 16, then the rest) and a prefetch of each page's
 * records, where it used to be one request a record. */
static void test_index_lookup_prefetches_records(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-lookup/");
    user_key keys[SAME_NAME];
    kivis_db *db = same_named(st, keys);
    unsigned long long before = requests();
    assert_int_equal(kt_users_named(db, "same"), SAME_NAME);
    unsigned long long used = requests() - before;
    assert_int_equal(used, 4);
    kivis_close(db);
    kivis_storage_close(st);
}

/* A rename of 20 records that names them first (kivis_prefetch): one
 * request for the records, none for their gets, their old index entries'
 * deletes or their writes (kivis_update: an insert would read the table's
 * id counter), and the commit. */
static void test_prefetched_rename_batch(void **state)
{
    (void)state;
    kivis_storage *st = fresh("t-rename/");
    user_key keys[SAME_NAME];
    kivis_db *db = same_named(st, keys);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    unsigned long long before = requests();
    assert_int_equal(kivis_prefetch(db, PETS_USER, keys, SAME_NAME), KIVIS_OK);
    for (int i = 0; i < SAME_NAME; i++) {
        user u;
        assert_int_equal(kivis_get(db, PETS_USER, &keys[i], &u), KIVIS_OK);
        assert_int_equal(u.age, (uint32_t)i);
        user renamed = u;
        renamed.name = "renamed";
        assert_int_equal(kivis_update(db, PETS_USER, &keys[i], &renamed), KIVIS_OK);
        kivis_record_clear(db, PETS_USER, &u);
    }
    assert_int_equal(requests() - before, 1);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    /* the commit's txn, and a new lease for its marker if 10 s passed */
    assert_in_range(requests() - before, 2, 3);
    assert_int_equal(kt_users_named(db, "renamed"), SAME_NAME);
    assert_int_equal(kt_users_named(db, "same"), 0);
    assert_int_equal(kt_users_named(db, "before"), 1);
    kivis_close(db);
    kivis_storage_close(st);
}

int main(void)
{
    kt_etcd_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conflict_is_econflict),
        cmocka_unit_test(test_scanned_range_conflicts),
        cmocka_unit_test(test_commit_over_op_limit),
        cmocka_unit_test(test_two_process_counter),
        cmocka_unit_test(test_members_killed_mid_run),
        cmocka_unit_test(test_quorum_lost_and_back),
        cmocka_unit_test(test_unreachable_then_back),
        cmocka_unit_test(test_frozen_member_passed_over),
        cmocka_unit_test(test_lost_commit_reply),
        cmocka_unit_test(test_node_kill_figures),
        cmocka_unit_test(test_feed_follows_other_client),
        cmocka_unit_test(test_feed_keeps_a_change_it_could_not_queue),
        cmocka_unit_test(test_feed_resync_after_compaction),
        cmocka_unit_test(test_layered_cache_sees_other_client),
        cmocka_unit_test(test_prefetch_is_one_request_a_batch),
        cmocka_unit_test(test_prefetched_key_changed_conflicts),
        cmocka_unit_test(test_discard_is_blind),
        cmocka_unit_test(test_index_lookup_prefetches_records),
        cmocka_unit_test(test_prefetched_rename_batch),
    };
    return cmocka_run_group_tests_name("etcd", tests, NULL, NULL);
}
