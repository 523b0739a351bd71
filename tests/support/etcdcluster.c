/*
 * etcdcluster.c - a private three-member etcd cluster for one test program
 * (see etcdcluster.h).
 */
#include "etcdcluster.h"
#include "watchdog.h"

#include <curl/curl.h>
#include <jansson.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ETCD_BIN "/usr/bin/etcd"
#define START_SECONDS 30

static struct {
    char dir[256]; /* the temporary directory: member data, logs, pid files */
    int client[KT_ETCD_MEMBERS], peer[KT_ETCD_MEMBERS];
    pid_t pid[KT_ETCD_MEMBERS];
    char cluster[512]; /* --initial-cluster */
    char endpoints[256];
    char max_txn_ops[16]; /* "" for 1024 */
    kt_watchdog watchdog; /* kills the members named by the pid files */
} ec = {.watchdog = {.guard = -1}};

static void die(const char *what)
{
    fprintf(stderr, "etcdcluster: %s\n", what);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 15 '%s'/*.log >&2 2>/dev/null", ec.dir);
    if (ec.dir[0] && system(cmd) != 0)
        fprintf(stderr, "etcdcluster: no log\n");
    exit(1);
}

static int free_port(void)
{
    int port = kt_free_port();
    if (port < 0)
        die("no free port on 127.0.0.1");
    return port;
}

static void make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    snprintf(ec.dir, sizeof ec.dir, "%s/kivis-etcd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(ec.dir))
        die("cannot create a temporary directory");
}

/* The watchdog (watchdog.h) kills the members named by the pid files and
 * removes the directory. */
static void start_watchdog(void)
{
    static const char script[] =
        "cat >/dev/null; for f in \"$1\"/*.pid; do [ -f \"$f\" ] && "
        "kill -9 \"$(cat \"$f\")\" 2>/dev/null; done; sleep 0.2; rm -rf \"$1\"";
    const char *args[] = {ec.dir, NULL};
    if (kt_watchdog_start(&ec.watchdog, script, args) != 0)
        die("cannot start the watchdog");
}

static void stop_at_exit(void)
{
    if (getpid() == ec.watchdog.owner)
        for (int i = 0; i < KT_ETCD_MEMBERS; i++)
            if (ec.pid[i] > 0)
                waitpid(ec.pid[i], NULL, WNOHANG);
    kt_watchdog_stop(&ec.watchdog);
}

static void write_pid_file(int i)
{
    char path[300];
    snprintf(path, sizeof path, "%s/n%d.pid", ec.dir, i);
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write a pid file");
    fprintf(f, "%d\n", (int)ec.pid[i]);
    fclose(f);
}

static void spawn(int i)
{
    char name[8], data[300], log[300], client[64], peer[64];
    snprintf(name, sizeof name, "n%d", i);
    snprintf(data, sizeof data, "%s/n%d", ec.dir, i);
    snprintf(log, sizeof log, "%s/n%d.log", ec.dir, i);
    snprintf(client, sizeof client, "http://127.0.0.1:%d", ec.client[i]);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", ec.peer[i]);
    const char *argv[] = {
        ETCD_BIN, "--name", name, "--data-dir", data,
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", ec.cluster, "--initial-cluster-state", "new",
        "--initial-cluster-token", "kivis-test",
        "--max-txn-ops", ec.max_txn_ops[0] ? ec.max_txn_ops : "1024",
        "--heartbeat-interval", "50", "--election-timeout", "500",
        "--logger", "zap", "--log-level", "warn", NULL};
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed");
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    ec.pid[i] = pid;
    write_pid_file(i);
}

typedef struct reply {
    char buf[65536];
    size_t len;
} reply;

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t add = size * n;
    if (r->len + add >= sizeof r->buf)
        return 0;
    memcpy(r->buf + r->len, data, add);
    r->len += add;
    r->buf[r->len] = '\0';
    return add;
}

/* POST body to member i's path; the parsed reply when HTTP 200, else NULL. */
static json_t *post(int i, const char *path, const char *body)
{
    static reply r;
    char url[128];
    snprintf(url, sizeof url, "%s%s", kt_etcd_endpoint(i), path);
    CURL *c = curl_easy_init();
    if (!c)
        die("curl_easy_init failed");
    r.len = 0;
    r.buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long http = 0;
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(c);
    return cc == CURLE_OK && http == 200 ? json_loads(r.buf, 0, NULL) : NULL;
}

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Whether member i answers a linearizable read (so the cluster has a
 * leader and i is in it). */
static int answers(int i)
{
    json_t *r = post(i, "/v3/kv/range", "{\"key\":\"AA==\"}");
    json_decref(r);
    return r != NULL;
}

static void wait_until_answers(int i)
{
    for (int tries = 0; tries < START_SECONDS * 20; tries++) {
        if (answers(i))
            return;
        if (waitpid(ec.pid[i], NULL, WNOHANG) == ec.pid[i])
            die("an etcd member exited while starting");
        nap(50);
    }
    die("an etcd member did not answer in time");
}

void kt_etcd_set_max_txn_ops(int n)
{
    snprintf(ec.max_txn_ops, sizeof ec.max_txn_ops, "%d", n);
}

const char *kt_etcd_start(void)
{
    if (ec.endpoints[0])
        return ec.endpoints;
    if (access(ETCD_BIN, X_OK) != 0)
        die("no " ETCD_BIN " (scripts/deps.sh installs the etcd-server package)");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    make_dir();
    start_watchdog();
    atexit(stop_at_exit);
    size_t at = 0, eat = 0;
    for (int i = 0; i < KT_ETCD_MEMBERS; i++) {
        ec.client[i] = free_port();
        ec.peer[i] = free_port();
        at += (size_t)snprintf(ec.cluster + at, sizeof ec.cluster - at,
                               "%sn%d=http://127.0.0.1:%d", i ? "," : "", i, ec.peer[i]);
        eat += (size_t)snprintf(ec.endpoints + eat, sizeof ec.endpoints - eat,
                                "%shttp://127.0.0.1:%d", i ? "," : "", ec.client[i]);
    }
    for (int i = 0; i < KT_ETCD_MEMBERS; i++)
        spawn(i);
    for (int i = 0; i < KT_ETCD_MEMBERS; i++)
        wait_until_answers(i);
    return ec.endpoints;
}

const char *kt_etcd_endpoint(int i)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%d", ec.client[i]);
    return buf;
}

void kt_etcd_kill(int i)
{
    if (ec.pid[i] <= 0)
        die("kt_etcd_kill: the member is not running");
    kill(ec.pid[i], SIGKILL);
    waitpid(ec.pid[i], NULL, 0);
    ec.pid[i] = 0;
}

void kt_etcd_freeze(int i)
{
    if (ec.pid[i] <= 0 || kill(ec.pid[i], SIGSTOP) != 0)
        die("kt_etcd_freeze: the member is not running");
}

void kt_etcd_thaw(int i)
{
    if (ec.pid[i] <= 0 || kill(ec.pid[i], SIGCONT) != 0)
        die("kt_etcd_thaw: the member is not running");
}

void kt_etcd_revive(int i)
{
    if (ec.pid[i] > 0)
        die("kt_etcd_revive: the member is running");
    spawn(i); /* its data directory makes it rejoin: the flags are ignored */
    wait_until_answers(i);
}

int kt_etcd_leader(void)
{
    for (int tries = 0; tries < START_SECONDS * 20; tries++) {
        for (int i = 0; i < KT_ETCD_MEMBERS; i++) {
            if (ec.pid[i] <= 0)
                continue;
            json_t *r = post(i, "/v3/maintenance/status", "{}");
            const char *me = json_string_value(
                json_object_get(json_object_get(r, "header"), "member_id"));
            const char *leader = json_string_value(json_object_get(r, "leader"));
            int is = me && leader && strcmp(me, leader) == 0;
            json_decref(r);
            if (is)
                return i;
        }
        nap(50);
    }
    die("no member is the leader");
    return -1;
}

static void b64(const char *in, char *out)
{
    static const char c[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned long acc = 0;
    int bits = 0;
    char *start = out;
    for (; *in; in++) {
        acc = (acc << 8) | (unsigned char)*in;
        for (bits += 8; bits >= 6; bits -= 6)
            *out++ = c[(acc >> (bits - 6)) & 63];
    }
    if (bits)
        *out++ = c[(acc << (6 - bits)) & 63];
    while ((out - start) % 4)
        *out++ = '=';
    *out = '\0';
}

/* Any member that answers. */
static json_t *post_any(const char *path, const char *body)
{
    for (int i = 0; i < KT_ETCD_MEMBERS; i++) {
        json_t *r = ec.pid[i] > 0 ? post(i, path, body) : NULL;
        if (r)
            return r;
    }
    die("no member answered");
    return NULL;
}

void kt_etcd_wipe(const char *prefix)
{
    char key[200], end[200], last[100], body[500];
    size_t n = strlen(prefix);
    if (!n || n >= sizeof last)
        die("kt_etcd_wipe: bad prefix");
    memcpy(last, prefix, n + 1);
    last[n - 1]++; /* the first key past every key under the prefix */
    b64(prefix, key);
    b64(last, end);
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"range_end\":\"%s\"}", key, end);
    json_decref(post_any("/v3/kv/deleterange", body));
}

long long kt_etcd_revision(void)
{
    json_t *r = post_any("/v3/kv/range", "{\"key\":\"AA==\"}");
    const char *rev = json_string_value(
        json_object_get(json_object_get(r, "header"), "revision"));
    long long v = rev ? strtoll(rev, NULL, 10) : 0;
    json_decref(r);
    return v;
}

void kt_etcd_compact(long long revision)
{
    char body[64];
    snprintf(body, sizeof body, "{\"revision\":\"%lld\",\"physical\":true}", revision);
    json_decref(post_any("/v3/kv/compaction", body));
}
