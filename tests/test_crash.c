/*
 * Crash safety of the LMDB backend under the record engine.
 *
 * A child process runs durable (KIVIS_SYNC) transactions on the pets users
 * in a loop -- new users, overwrites that move the indexed name, removes,
 * and multi-record transactions -- and the parent SIGKILLs it at a random
 * moment, reopens the store and checks it, many times over one store.
 *
 * Every transaction has a sequence number stored in the data it writes
 * (user.age, user.email, and the indexed user.name derive from it).  The
 * child keeps a log beside the store: before committing it appends an
 * intent line "I <seq> <op><id>..." (W: user id now holds seq's data,
 * R: user id removed), after kivis_commit returns KIVIS_OK a line
 * "C <seq>", fsynced.  From the log the parent keeps a model of the user
 * table.  After each kill the store must equal the model exactly, or the
 * model plus the one transaction that was logged as intended but not as
 * committed (it may have committed just before the kill): all of it or
 * none of it.  The store must also be internally consistent (indexes match
 * records, checked through the public API and by kivis_check) and
 * auto-increment must continue after the highest id ever written (ids
 * of removed users are not issued again).
 *
 * KIVIS_CRASH_SEED fixes the seed (printed either way); KIVIS_CRASH_KILLS
 * the number of kills (default 100; KIVIS_TEST_SCALE=small: 15).
 */
#include "testutil.h"
#include "pets_schema.h"

#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define MAX_OPS 6 /* operations in one multi-record transaction, at most */
#define CHILD_LIFETIME_S 20 /* a child never killed gives up after this */

/* ---- what a transaction writes -------------------------------------- */

/* The indexed name a user gets from the transaction that writes it: it
 * changes with the sequence number, so overwrites move index entries, and
 * repeats across users, so one name has several entries. */
static void name_of(uint64_t id, uint32_t seq, char *buf, size_t n)
{
    snprintf(buf, n, "n%03u", (unsigned)((id * 31u + seq) % 512u));
}

static void email_of(uint32_t seq, char *buf, size_t n)
{
    snprintf(buf, n, "seq%" PRIu32 "@crash.test", seq);
}

/* ---- the model: user id -> sequence number of its last write ------------ */

typedef struct model {
    uint32_t *seq; /* seq[id], 0: no such user */
    size_t cap;
    uint64_t issued; /* the highest id ever written, removed or not */
} model;

static void model_set(model *m, uint64_t id, uint32_t seq)
{
    if (id >= m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap <= id)
            cap *= 2;
        uint32_t *p = realloc(m->seq, cap * sizeof *p);
        assert_non_null(p);
        memset(p + m->cap, 0, (cap - m->cap) * sizeof *p);
        m->seq = p;
        m->cap = cap;
    }
    m->seq[id] = seq;
    if (seq && id > m->issued)
        m->issued = id;
}

static uint32_t model_get(const model *m, uint64_t id)
{
    return id < m->cap ? m->seq[id] : 0;
}

static int model_equal(const model *a, const model *b)
{
    size_t n = a->cap > b->cap ? a->cap : b->cap;
    for (size_t id = 0; id < n; id++)
        if (model_get(a, id) != model_get(b, id))
            return 0;
    return 1;
}

static void model_copy(model *dst, const model *src)
{
    free(dst->seq);
    dst->seq = NULL;
    dst->cap = 0;
    dst->issued = src->issued;
    for (size_t id = 1; id < src->cap; id++)
        if (src->seq[id])
            model_set(dst, id, src->seq[id]);
}

/* Apply the operations of a log line ("W12 R5 ...") to m. */
static void model_apply(model *m, const char *ops, uint32_t seq)
{
    for (const char *p = ops; *p;) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            break;
        char op = *p++;
        char *end;
        uint64_t id = strtoull(p, &end, 10);
        assert_true(end != p && id > 0 && (op == 'W' || op == 'R'));
        model_set(m, id, op == 'W' ? seq : 0);
        p = end;
    }
}

/* ---- the child: transactions until killed -------------------------- */

typedef struct child {
    kivis_db *db;
    int log;
    uint64_t rng;
    uint32_t seq;
    uint64_t issued; /* the highest id issued so far (committed: the child
                        commits every transaction it begins) */
    char ops[MAX_OPS * 24 + 1]; /* this transaction's operations, log form */
    size_t ops_len;
} child;

typedef struct op {
    char kind;  /* 'W' or 'R' */
    int fresh;  /* W of a new user through kivis_put */
    uint64_t id;
} op;

static _Noreturn void die(const char *what, int rc, kivis_db *db)
{
    fprintf(stderr, "crash child: %s: %s (%s)\n", what, kivis_strerror(rc),
            kivis_errmsg(db));
    _exit(2); /* not exit: no leak report on the parent's inherited heap */
}

static void log_write(child *c, const char *line, int sync)
{
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t n = write(c->log, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("log write", KIVIS_EIO, NULL);
        off += (size_t)n;
    }
    /* A killed process loses nothing it wrote to the page cache, so only
     * the commit record is fsynced, as a durable log would be. */
    if (sync && fsync(c->log) != 0)
        die("log fsync", KIVIS_EIO, NULL);
}

/* Highest user id visible to the handle (inside its transaction, if any). */
static uint64_t highest_user(kivis_db *db)
{
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0,
                     KIVIS_REVERSE};
    kivis_scan *s;
    user_key k = {0};
    int rc = kivis_scan_open(db, &q, &s);
    if (rc)
        die("scan_open", rc, db);
    rc = kivis_scan_next(s, &k, NULL);
    kivis_scan_close(s);
    if (rc != KIVIS_OK && rc != KIVIS_NOTFOUND)
        die("scan_next", rc, db);
    return rc == KIVIS_OK ? k.id : 0;
}

static int user_exists(kivis_db *db, uint64_t id)
{
    user_key k = {id};
    user u;
    int rc = kivis_get(db, PETS_USER, &k, &u);
    if (rc != KIVIS_OK && rc != KIVIS_NOTFOUND)
        die("get", rc, db);
    kivis_record_clear(db, PETS_USER, &u);
    return rc == KIVIS_OK;
}

/* Choose the next operation: a new user (the id auto-increment must give
 * is predicted, so it can be logged before the write), or an overwrite or
 * remove of an existing one.  The prediction is one past the highest id
 * ever issued, removed or not (docs/engine.md). */
static op plan(child *c)
{
    uint64_t hi = highest_user(c->db);
    unsigned r = (unsigned)(kt_rand(&c->rng) % 100);
    op o = {'W', 1, (hi > c->issued ? hi : c->issued) + 1};
    if (hi == 0 || r < 40)
        return o;
    uint64_t id = 1 + kt_rand(&c->rng) % hi;
    if (!user_exists(c->db, id))
        return o;
    o.kind = r < 70 ? 'W' : 'R';
    o.fresh = 0;
    o.id = id;
    return o;
}

static void execute(child *c, const op *o)
{
    char name[16], email[40];
    name_of(o->id, c->seq, name, sizeof name);
    email_of(c->seq, email, sizeof email);
    user u = {name, email, c->seq};
    user_key k = {o->id};
    int rc;
    if (o->kind == 'R') {
        rc = kivis_remove(c->db, PETS_USER, &k);
    } else if (o->fresh) {
        rc = kivis_put(c->db, PETS_USER, &u, &k);
        if (rc == KIVIS_OK && k.id != o->id) {
            fprintf(stderr, "crash child: auto-increment gave %" PRIu64
                    ", expected %" PRIu64 "\n", k.id, o->id);
            _exit(3);
        }
        c->issued = o->id;
    } else {
        rc = kivis_insert(c->db, PETS_USER, &k, &u);
    }
    if (rc)
        die(o->kind == 'R' ? "remove" : "put", rc, c->db);
}

static void note(child *c, const op *o)
{
    int n = snprintf(c->ops + c->ops_len, sizeof c->ops - c->ops_len, " %c%" PRIu64,
                     o->kind, o->id);
    c->ops_len += (size_t)n;
}

static void log_intent(child *c)
{
    char line[sizeof c->ops + 32];
    snprintf(line, sizeof line, "I %" PRIu32 "%s\n", c->seq, c->ops);
    log_write(c, line, 0);
}

static void log_commit(child *c)
{
    char line[32];
    snprintf(line, sizeof line, "C %" PRIu32 "\n", c->seq);
    log_write(c, line, 1);
}

/* One operation outside kivis_begin: it commits by itself. */
static void single(child *c)
{
    op o = plan(c);
    note(c, &o);
    log_intent(c);
    execute(c, &o);
}

/* Several operations in one transaction, each planned on what the
 * transaction has written so far. */
static void multi(child *c)
{
    int rc = kivis_begin(c->db);
    if (rc)
        die("begin", rc, c->db);
    int n = 2 + (int)(kt_rand(&c->rng) % (MAX_OPS - 1));
    for (int i = 0; i < n; i++) {
        op o = plan(c);
        execute(c, &o);
        note(c, &o);
    }
    log_intent(c);
    if ((rc = kivis_commit(c->db)) != KIVIS_OK)
        die("commit", rc, c->db);
}

/* The id the next put gets: put one, then abort. */
static uint64_t probe_next_id(kivis_db *db)
{
    user u = {(char *)"probe", (char *)"probe@crash.test", 1};
    user_key k;
    int rc = kivis_begin(db);
    if (!rc)
        rc = kivis_put(db, PETS_USER, &u, &k);
    kivis_abort(db);
    if (rc)
        die("probe", rc, db);
    return k.id;
}

static _Noreturn void child_run(const char *dir, const char *log,
                                uint64_t seed, uint32_t seq)
{
    child c = {NULL, -1, seed, seq, 0, "", 0};
    kivis_storage *st;
    kivis_options o = {NULL, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    int rc = kivis_lmdb_open(dir, NULL, &st);
    if (rc)
        die("lmdb_open", rc, NULL);
    if ((rc = kivis_open(st, &pets_schema, &o, &c.db)) != KIVIS_OK)
        die("open", rc, NULL);
    c.log = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (c.log < 0)
        die("log open", KIVIS_EIO, NULL);
    c.issued = probe_next_id(c.db) - 1; /* what the killed ones issued */
    time_t give_up = time(NULL) + CHILD_LIFETIME_S;
    while (time(NULL) < give_up) {
        c.ops_len = 0;
        c.ops[0] = '\0';
        if (kt_rand(&c.rng) % 100 < 25)
            multi(&c);
        else
            single(&c);
        log_commit(&c);
        c.seq++;
    }
    _exit(4); /* never killed: the parent reports it */
}

/* ---- the parent: checks after each kill ----------------------------- */

typedef struct run {
    char dir[256];
    char log[300];
    model m;        /* the user table as the committed log says */
    uint32_t next_seq;
    unsigned commits, pending_applied, pending_dropped;
} run;

/* Does the index lookup of `name` find user `id`? */
static int lookup_finds(kivis_db *db, const char *name, uint64_t id)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &name, NULL, NULL, 0, 0};
    kivis_scan *s;
    user_key k;
    int rc, found = 0;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    while ((rc = kivis_scan_next(s, &k, NULL)) == KIVIS_OK)
        found |= k.id == id;
    kivis_scan_close(s);
    assert_int_equal(rc, KIVIS_NOTFOUND);
    return found;
}

/* Walk the user table into `out`, checking each record's fields against
 * its sequence number and its index entry.  @return the record count. */
static size_t read_users(kivis_db *db, model *out)
{
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    user_key k;
    user u;
    size_t n = 0;
    int rc;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    while ((rc = kivis_scan_next(s, &k, &u)) == KIVIS_OK) {
        char name[16], email[40];
        name_of(k.id, u.age, name, sizeof name);
        email_of(u.age, email, sizeof email);
        assert_true(u.age > 0);
        assert_string_equal(u.name, name);
        assert_string_equal(u.email, email);
        assert_true(lookup_finds(db, u.name, k.id));
        model_set(out, k.id, u.age);
        kivis_record_clear(db, PETS_USER, &u);
        n++;
    }
    kivis_scan_close(s);
    assert_int_equal(rc, KIVIS_NOTFOUND);
    return n;
}

/* Every index entry, each with its record fetched (an entry without a
 * record is KIVIS_ECORRUPT).  @return the entry count. */
static size_t count_index(kivis_db *db)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    user u;
    size_t n = 0;
    int rc;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    while ((rc = kivis_scan_next(s, NULL, &u)) == KIVIS_OK) {
        kivis_record_clear(db, PETS_USER, &u);
        n++;
    }
    kivis_scan_close(s);
    assert_int_equal(rc, KIVIS_NOTFOUND);
    return n;
}

static void print_problem(void *ctx, const kivis_check_problem *p)
{
    (void)ctx;
    fprintf(stderr, "kivis_check: %s\n", p->message);
}

/* The library's own check agrees, and counts what the scans counted. */
static void check_library(kivis_db *db, size_t users)
{
    kivis_check_stats stats;
    memset(&stats, 0, sizeof stats);
    assert_int_equal(kivis_check(db, print_problem, NULL, &stats), KIVIS_OK);
    assert_int_equal(stats.problems, 0);
    assert_int_equal(stats.tables[PETS_USER].records, users);
    assert_int_equal(stats.tables[PETS_USER].index_entries, users);
    kivis_stats_free(db, &stats);
}

/* Auto-increment continues after the highest id ever issued. */
static void check_next_id(kivis_db *db, uint64_t highest)
{
    assert_int_equal(probe_next_id(db), highest + 1);
}

/* Open the store and check it against the model; `pending` (may be NULL)
 * is the logged transaction whose commit is unknown. */
static void verify(run *r, const char *pending, uint32_t pending_seq)
{
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_lmdb_open(r->dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    model got = {NULL, 0, 0}, with = {NULL, 0, 0};
    size_t n = read_users(db, &got);
    assert_int_equal(count_index(db), n);
    check_library(db, n);
    if (!model_equal(&got, &r->m)) {
        if (!pending)
            fail_msg("store differs from the committed log");
        model_copy(&with, &r->m);
        model_apply(&with, pending, pending_seq);
        if (!model_equal(&got, &with))
            fail_msg("store matches neither the committed log nor it plus "
                     "transaction %" PRIu32 " (%s)", pending_seq, pending);
        model_copy(&r->m, &with);
        r->pending_applied++;
    } else if (pending) {
        r->pending_dropped++;
        /* A transaction that added a user and removed it again leaves the
         * records as they were, committed or not; only the next id says. */
        model_copy(&with, &r->m);
        model_apply(&with, pending, pending_seq);
        if (probe_next_id(db) == with.issued + 1)
            r->m.issued = with.issued;
    }
    check_next_id(db, r->m.issued);
    free(got.seq);
    free(with.seq);
    kivis_close(db);
    kivis_storage_close(st);
}

/* Read the child's log into the model.  The last intent without its commit
 * line, if any, is handed to verify as pending; an unterminated last line
 * was cut by the kill before its operation started, so it is ignored. */
static void replay(run *r)
{
    FILE *f = fopen(r->log, "r");
    char *line = NULL, pending[sizeof ((child *)0)->ops] = "";
    size_t cap = 0;
    uint32_t intent = 0, has_intent = 0;
    ssize_t len;
    while (f && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break;
        char *rest;
        uint32_t seq = (uint32_t)strtoul(line + 2, &rest, 10);
        assert_int_equal(seq, r->next_seq);
        if (line[0] == 'I') {
            snprintf(pending, sizeof pending, "%s", rest);
            intent = seq;
            has_intent = 1;
        } else {
            assert_true(line[0] == 'C' && has_intent && intent == seq);
            model_apply(&r->m, pending, seq);
            has_intent = 0;
            r->commits++;
            r->next_seq++;
        }
    }
    free(line);
    if (f)
        fclose(f);
    unlink(r->log);
    verify(r, has_intent ? pending : NULL, intent);
    if (has_intent)
        r->next_seq++; /* committed or not, its number is used */
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Start a child, let it work a few milliseconds, SIGKILL it. */
static void kill_one(run *r, uint64_t *rng)
{
    uint64_t seed = kt_rand(rng);
    unsigned ms = 5 + (unsigned)(kt_rand(rng) % 46);
    fflush(NULL); /* the child must not flush the parent's stdio again */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_run(r->dir, r->log, seed, r->next_seq);
    sleep_ms(ms);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child ended by itself (status %d) before the kill", status);
}

/* The run lives in setup/teardown so that a failed check still removes
 * the store. */
static int setup(void **state)
{
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->next_seq = 1;
    kt_tempdir(r->dir, sizeof r->dir);
    snprintf(r->log, sizeof r->log, "%s/crash.log", r->dir);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    run *r = *state;
    free(r->m.seq);
    kt_rmdir(r->dir);
    free(r);
    return 0;
}

static void test_sigkill_loses_no_commit(void **state)
{
    run *r = *state;
    const char *scale = getenv("KIVIS_TEST_SCALE");
    int small = scale && !strcmp(scale, "small");
    uint64_t seed = env_u64("KIVIS_CRASH_SEED", (uint64_t)time(NULL) ^
                                                    (uint64_t)getpid() << 32);
    unsigned kills = (unsigned)env_u64("KIVIS_CRASH_KILLS", small ? 15 : 100);
    printf("crash: seed %" PRIu64 " (KIVIS_CRASH_SEED), %u kills\n", seed, kills);
    uint64_t rng = seed;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    verify(r, NULL, 0); /* creates the store and its stored schema */
    for (unsigned i = 0; i < kills; i++) {
        kill_one(r, &rng);
        replay(r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t live = 0;
    for (size_t id = 1; id < r->m.cap; id++)
        live += r->m.seq[id] != 0;
    printf("crash: %u kills, %u logged commits verified, %u unlogged commits "
           "found whole, %u not committed; %zu users live; %.1f s\n",
           kills, r->commits, r->pending_applied, r->pending_dropped, live,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    assert_true(r->commits > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigkill_loses_no_commit, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
