#include "testutil.h"

#include <kivis/inspect.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Each block carries its size in front, so frees can be counted.  The
 * counts take a lock: a backend's own thread (etcd's watch) allocates
 * through the same hooks as the thread that runs the test. */
static pthread_mutex_t kt_alloc_lock = PTHREAD_MUTEX_INITIALIZER;

typedef union kt_hdr {
    size_t size;
    max_align_t align;
} kt_hdr;

static int kt_should_fail(kt_alloc *a)
{
    pthread_mutex_lock(&kt_alloc_lock);
    a->calls++;
    int fail = a->fail_at && a->calls == a->fail_at;
    a->failures += fail;
    pthread_mutex_unlock(&kt_alloc_lock);
    return fail;
}

static void kt_account(kt_alloc *a, long blocks, long long bytes)
{
    pthread_mutex_lock(&kt_alloc_lock);
    a->live_blocks += blocks;
    a->live_bytes += bytes;
    if (a->live_bytes > a->peak_bytes)
        a->peak_bytes = a->live_bytes;
    pthread_mutex_unlock(&kt_alloc_lock);
}

static void *kt_malloc(void *ctx, size_t n)
{
    kt_alloc *a = ctx;
    if (kt_should_fail(a))
        return NULL;
    kt_hdr *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->size = n;
    kt_account(a, 1, (long long)n);
    return h + 1;
}

static void kt_free(void *ctx, void *p)
{
    kt_alloc *a = ctx;
    if (!p)
        return;
    kt_hdr *h = (kt_hdr *)p - 1;
    kt_account(a, -1, -(long long)h->size);
    free(h);
}

static void *kt_realloc(void *ctx, void *p, size_t n)
{
    kt_alloc *a = ctx;
    if (!p)
        return kt_malloc(ctx, n);
    kt_hdr *h = (kt_hdr *)p - 1;
    size_t old = h->size;
    if (n > old && kt_should_fail(a))
        return NULL;
    kt_hdr *nh = realloc(h, sizeof *nh + n);
    if (!nh)
        return NULL;
    nh->size = n;
    kt_account(a, 0, (long long)n - (long long)old);
    return nh + 1;
}

void kt_alloc_init(kt_alloc *a)
{
    memset(a, 0, sizeof *a);
    a->iface.malloc = kt_malloc;
    a->iface.realloc = kt_realloc;
    a->iface.free = kt_free;
    a->iface.ctx = a;
}

void kt_alloc_fail_at(kt_alloc *a, unsigned long n)
{
    a->calls = 0;
    a->fail_at = n;
}

static void kt_append_hex(char **buf, size_t *len, size_t *cap, kivis_slice s)
{
    static const char hex[] = "0123456789abcdef";
    if (*len + 2 * s.len + 2 >= *cap) {
        *cap = (*cap + 2 * s.len + 2) * 2;
        *buf = realloc(*buf, *cap);
        assert_non_null(*buf);
    }
    const unsigned char *p = s.data;
    for (size_t i = 0; i < s.len; i++) {
        (*buf)[(*len)++] = hex[p[i] >> 4];
        (*buf)[(*len)++] = hex[p[i] & 15];
    }
    (*buf)[*len] = '\0';
}

static void kt_append_char(char **buf, size_t *len, size_t *cap, char c)
{
    kivis_slice none = {NULL, 0};
    kt_append_hex(buf, len, cap, none); /* ensures room */
    (*buf)[(*len)++] = c;
    (*buf)[*len] = '\0';
}

char *kt_dump(kivis_storage *st)
{
    kivis_storage_txn *txn = NULL;
    kivis_storage_cursor *cur = NULL;
    kivis_slice lo = {NULL, 0}, hi = {NULL, 0}, k, v;
    size_t len = 0, cap = 64;
    char *buf = calloc(1, cap);
    assert_non_null(buf);
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &txn), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor(txn, lo, hi, &cur), KIVIS_OK);
    int rc;
    while ((rc = kivis_cursor_get(cur, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        kt_append_hex(&buf, &len, &cap, k);
        kt_append_char(&buf, &len, &cap, '=');
        kt_append_hex(&buf, &len, &cap, v);
        kt_append_char(&buf, &len, &cap, '\n');
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_cursor_close(cur);
    kivis_txn_abort(txn);
    return buf;
}

size_t kt_count(kivis_storage *st)
{
    char *d = kt_dump(st);
    size_t n = 0;
    for (char *p = d; *p; p++)
        n += *p == '\n';
    free(d);
    return n;
}

int kt_get_once(kivis_storage *st, kivis_slice k, char *buf, size_t cap)
{
    kivis_storage_txn *t;
    kivis_slice v;
    int rc = kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t);
    if (rc != KIVIS_OK)
        return rc;
    rc = kivis_txn_get(t, k, &v);
    if (rc == KIVIS_OK) {
        assert_true(v.len < cap);
        memcpy(buf, v.data, v.len);
        buf[v.len] = '\0';
    }
    kivis_txn_abort(t);
    return rc;
}

#define KT_S(s) kivis_slice_make((s), sizeof(s) - 1)

void kt_conflicting_writers(kivis_storage *a, kivis_storage *b)
{
    kivis_storage_txn *ta, *tb;
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(a, 0, &ta), KIVIS_OK);
    assert_int_equal(kivis_txn_put(ta, KT_S("c"), KT_S("0")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(ta, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(a, 0, &ta), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(b, 0, &tb), KIVIS_OK);
    assert_int_equal(kivis_txn_get(ta, KT_S("c"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_get(tb, KT_S("c"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_put(ta, KT_S("c"), KT_S("a")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(tb, KT_S("c"), KT_S("b")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(tb, KT_S("other"), KT_S("b")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(ta, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(tb, KIVIS_SYNC), KIVIS_ECONFLICT);
    char buf[8];
    assert_int_equal(kt_get_once(a, KT_S("c"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "a");
    assert_int_equal(kt_get_once(a, KT_S("other"), buf, sizeof buf), KIVIS_NOTFOUND);
}

void kt_expect_answer(int rc, kivis_slice v, const char *want)
{
    if (!want) {
        assert_int_equal(rc, KIVIS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.data, want, v.len);
}

void kt_tempdir(char *buf, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/kivis-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(buf));
}

void kt_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

uint64_t kt_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void kt_check_clean(kivis_db *db)
{
    kivis_check_stats stats;
    memset(&stats, 0, sizeof stats);
    assert_int_equal(kivis_check(db, NULL, NULL, &stats), KIVIS_OK);
    assert_int_equal(stats.problems, 0);
    kivis_stats_free(db, &stats);
}

typedef struct killer {
    int fd;
    bool told;
} killer;

/* In the child: once half the records are rewritten, tell the parent and
 * wait for its SIGKILL. */
static void halfway(void *ctx, const kivis_progress *p)
{
    killer *k = ctx;
    if (k->told || p->phase != KIVIS_PROGRESS_REWRITE || p->done < p->total / 2 ||
        !p->total)
        return;
    k->told = true;
    if (write(k->fd, "h", 1) != 1)
        _exit(3);
    for (;;)
        pause();
}

void kt_kill_halfway(kt_child_fn child, void *arg)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        killer k = {fds[1], false};
        child(arg, halfway, &k);
        _exit(4); /* finished before the parent killed it */
    }
    close(fds[1]);
    char c;
    ssize_t got = read(fds[0], &c, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(got, 1); /* it was halfway */
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}
