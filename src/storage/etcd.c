/*
 * src/storage/etcd.c - the etcd backend (see kivis/etcd.h).
 *
 * Every request is a POST of a JSON body to etcd's v3 gateway (keys and
 * values in base64, 64-bit numbers as strings), made with the storage's one
 * libcurl easy handle, which keeps its connection alive between requests;
 * a mutex lets the storage's threads take turns on it.
 *
 * A transaction's reads are pinned to one revision and remembered in its
 * read set: each key read with the mod_revision seen (0: absent) and each
 * key interval a cursor page covered.  A read-only transaction uses them
 * as a cache, which a prefetch fills ahead with many keys in one txn of
 * range requests.  A write transaction is an overlay (kivis/overlay.h) over
 * such a reading transaction; the read set belongs to the writer, so that
 * the overlay's commit, which ends the reading transaction before it calls
 * apply, leaves it to apply, which turns it into the etcd txn's compares.
 */
#include <kivis/etcd.h>

#include <kivis/overlay.h>

#include "btree.h" /* the read set, kivis_bt_range, kivis__key_cmp */
#include "etcdhook.h"
#include "feedhub.h" /* kivis__feed_wait */
#include "paged.h"   /* the cursors */

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PREFIX "kivis/"
#define DEFAULT_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 1000 /* one member's connect, at most */
#define ATTEMPT_MIN_MS 1000 /* one member's request: a quarter of the
                               timeout, but at least this */
#define LEASE_TTL 30     /* seconds a commit marker lives at least... */
#define LEASE_RENEW 10   /* ...minus this: a new lease after so long */
#define FEED_SHIFT 24    /* a feed position: revision << 24 | event index */
#define READ_OPS_FIRST 1024 /* keys one prefetch request reads at first (the
                               scans' largest batch): fewer once the cluster
                               says --max-txn-ops is lower */
#define READ_BYTES_MAX (1 << 20) /* bytes of one prefetch request, at most
                                    about: under --max-request-bytes (1.5 MiB
                                    by default) */

/* gRPC status codes the gateway reports in {"code": ...} */
enum {
    GRPC_INVALID_ARGUMENT = 3, GRPC_DEADLINE = 4, GRPC_NOT_FOUND = 5,
    GRPC_EXHAUSTED = 8, GRPC_OUT_OF_RANGE = 11, GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16
};

/* ---- objects ------------------------------------------------------------ */

typedef struct etcd_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    pthread_mutex_t lock; /* guards everything below */
    CURL *curl;
    struct curl_slist *headers; /* Content-Type, Authorization */
    char **endpoints;
    size_t n_endpoints, current; /* the member requests go to */
    char *data;     /* prefix + "d": every key of the store starts with it */
    size_t data_len;
    char *marker;   /* prefix + "t" + this storage's id, then a counter */
    size_t marker_len;
    unsigned long long commits;
    char *ca_file, *cert_file, *key_file, *user, *password;
    int timeout_ms;
    size_t max_key;
    long long lease;       /* the markers' lease, 0: none yet */
    time_t lease_granted;  /* CLOCK_MONOTONIC seconds */
    atomic_size_t read_ops; /* range ops a prefetch request holds at most */
} etcd_storage;

/* What a transaction has read: its revision, each key with the
 * mod_revision seen, each interval a cursor page covered. */
typedef struct interval {
    unsigned char *key, *end; /* etcd keys, [key, end) */
    size_t key_len, end_len;
} interval;

typedef struct readset {
    long long rev;      /* 0 until the first read */
    kivis_btree *keys;  /* user key -> a read_entry * */
    interval *ranges;   /* only tracked for a write transaction */
    size_t n_ranges, cap_ranges;
    bool track;         /* a write transaction: keep what commit compares */
} readset;

typedef struct read_entry {
    long long mod; /* 0: the key was absent */
    bool got;      /* a get or a cursor returned it (not only a prefetch):
                      a write transaction's commit compares only these */
    size_t len;
    unsigned char data[];
} read_entry;

/* A reading transaction: read-only, or the base of a write one. */
typedef struct etcd_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    etcd_storage *s;
    readset own;
    readset *rs; /* &own, or the writer's */
} etcd_txn;

typedef struct etcd_writer {
    kivis_storage_txn txn; /* first: what the caller holds */
    etcd_storage *s;
    kivis_storage_txn *ov;
    readset rs;
    kivis_btree *blind; /* keys discarded (blind deletes), NULL: none */
} etcd_writer;

/* One key-value of a reply, decoded; key without the store's prefix. */
typedef struct kv {
    kivis_slice key, value;
    long long mod;
} kv;

typedef struct page {
    kv *kvs;
    size_t n;
    unsigned char *bytes; /* every key's and value's bytes */
    bool more;            /* the server has more past the page */
    long long rev;        /* the reply's header revision */
} page;

typedef struct etcd_cursor {
    kivis_paged pc; /* first: its first is what the caller holds */
    etcd_txn *t;
    page pg;        /* entries in key order going pc.dir */
} etcd_cursor;

static const kivis_slice no_slice = {NULL, 0};

atomic_int kivis__etcd_lose_replies;
atomic_ullong kivis__etcd_requests;

/* ---- errors ------------------------------------------------------------- */

static _Thread_local char errmsg_buf[512];
/* The last error of this thread's requests was etcd's "too many
 * operations in txn request" (a prefetch then asks for fewer keys). */
static _Thread_local bool over_op_limit;

const char *kivis_etcd_errmsg(void)
{
    return errmsg_buf;
}

static void keep_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg_buf, sizeof errmsg_buf, fmt, ap);
    va_end(ap);
}

/* ---- memory ------------------------------------------------------------- */

static void *s_malloc(const etcd_storage *s, size_t n)
{
    return s->alloc.malloc(s->alloc.ctx, n);
}

static void s_free(const etcd_storage *s, void *p)
{
    if (p)
        s->alloc.free(s->alloc.ctx, p);
}

static char *s_strdup(const etcd_storage *s, const char *str)
{
    if (!str)
        return NULL;
    size_t n = strlen(str) + 1;
    char *p = s_malloc(s, n);
    if (p)
        memcpy(p, str, n);
    return p;
}

/* ---- base64, as etcd's gateway carries bytes ---------------------------- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode the bytes of parts[0..n) one after another; out holds
 * 4 * ceil(total / 3) + 1.  @return the length written (NUL after it). */
static size_t b64_encode(const kivis_slice *parts, size_t n, char *out)
{
    unsigned long acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < parts[i].len; j++) {
            acc = (acc << 8) | ((const unsigned char *)parts[i].data)[j];
            bits += 8;
            while (bits >= 6) {
                bits -= 6;
                out[o++] = b64_chars[(acc >> bits) & 63];
            }
        }
    if (bits)
        out[o++] = b64_chars[(acc << (6 - bits)) & 63];
    while (o % 4)
        out[o++] = '=';
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_chars, c) : NULL;
    return p ? (int)(p - b64_chars) : -1;
}

/* Decode `in` into out (room for 3 * len / 4 bytes).  @return the bytes
 * written, or -1 for a character outside base64. */
static long b64_decode(const char *in, size_t len, unsigned char *out)
{
    unsigned long acc = 0;
    int bits = 0;
    long o = 0;
    for (size_t i = 0; i < len && in[i] != '='; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

/* A JSON string of the base64 of parts[0..n) concatenated, or NULL. */
static json_t *j_bytes(const kivis_slice *parts, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += parts[i].len;
    char small[256];
    size_t need = (total + 2) / 3 * 4 + 1;
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf)
        return NULL;
    size_t len = b64_encode(parts, n, buf);
    json_t *j = json_stringn_nocheck(buf, len);
    if (buf != small)
        free(buf);
    return j;
}

static const kivis_slice zero_byte = {"", 1};

/* The etcd key of user key k (plus a 0 byte when after: the first key
 * past it). */
static json_t *j_key(const etcd_storage *s, kivis_slice k, bool after)
{
    kivis_slice parts[3] = {{s->data, s->data_len}, k, zero_byte};
    return j_bytes(parts, after ? 3 : 2);
}

/* The first etcd key past every key of the store: the prefix's "d" + 1. */
static json_t *j_data_end(const etcd_storage *s)
{
    char end[1] = {'e'};
    kivis_slice parts[2] = {{s->data, s->data_len - 1}, {end, 1}};
    return j_bytes(parts, 2);
}

static json_t *j_int(long long v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", v);
    return json_string(buf);
}

/* A 64-bit number the gateway sends as a string (or, from some versions,
 * a number); 0 when missing. */
static long long j_get_int(const json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    const char *str = json_string_value(v);
    return str ? strtoll(str, NULL, 10) : 0;
}

static int j_push(json_t *array, json_t *item)
{
    return item && json_array_append_new(array, item) == 0 ? KIVIS_OK : KIVIS_ENOMEM;
}

/* ---- requests ----------------------------------------------------------- */

typedef struct reply_buf {
    const etcd_storage *s;
    char *p;
    size_t len, cap;
    bool failed; /* out of memory */
} reply_buf;

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    reply_buf *b = ud;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *p = b->s->alloc.realloc(b->s->alloc.ctx, b->p, cap);
        if (!p) {
            b->failed = true;
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* TLS files of the options, for a handle of this storage. */
static void set_tls(const etcd_storage *s, CURL *c)
{
    if (s->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    if (s->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, s->cert_file);
    if (s->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, s->key_file);
}

/* A handle with what every request of the storage shares. */
static CURL *new_handle(const etcd_storage *s)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    set_tls(s, c);
    return c;
}

/* Outcome of one attempt at one member. */
enum attempt { SENT, TRY_NEXT, REAUTH };

/* POST body to path at the current member; *status the HTTP status. */
static CURLcode perform(etcd_storage *s, const char *path, const char *body,
                        long timeout_ms, reply_buf *b, long *status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->endpoints[s->current], path);
    CURL *c = s->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS);
    b->len = 0;
    CURLcode cc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return cc;
}

/* The status of an error reply {"error": ..., "code": n}; sets *attempt
 * when another member (or a new token) may do better. */
static int error_status(const etcd_storage *s, const json_t *r, long http,
                        enum attempt *attempt)
{
    long long code = j_get_int(r, "code");
    const char *msg = json_string_value(json_object_get(r, "error"));
    if (!msg)
        msg = json_string_value(json_object_get(r, "message"));
    keep_message("etcd: %s (code %lld, HTTP %ld)", msg ? msg : "no message", code, http);
    if (code == GRPC_UNAVAILABLE || code == GRPC_DEADLINE || (!msg && http >= 500)) {
        *attempt = TRY_NEXT;
        return KIVIS_EUNAVAILABLE;
    }
    if (code == GRPC_UNAUTHENTICATED && s->user) {
        *attempt = REAUTH;
        return KIVIS_EUNAVAILABLE;
    }
    if (!msg)
        return KIVIS_EIO;
    over_op_limit = strstr(msg, "too many operations") != NULL;
    if (over_op_limit) {
        keep_message("etcd: %s: the transaction needs more compares or writes than "
                     "the cluster's --max-txn-ops allows (128 by default)", msg);
        return KIVIS_EINVAL;
    }
    if (strstr(msg, "too large") || strstr(msg, "larger than max")) {
        keep_message("etcd: %s: the request is larger than the cluster's "
                     "--max-request-bytes allows (1.5 MiB by default)", msg);
        return KIVIS_EINVAL;
    }
    if (strstr(msg, "space exceeded"))
        return KIVIS_EFULL;
    if (code == GRPC_OUT_OF_RANGE && strstr(msg, "compacted"))
        return KIVIS_ECONFLICT;
    if (code == GRPC_NOT_FOUND && strstr(msg, "lease"))
        return KIVIS_NOTFOUND;
    return KIVIS_EIO;
}

static int authenticate(etcd_storage *s);

/* Whether the request is a commit's txn, whose replies the test hook
 * loses (a prefetch's txn has no compares; base64 and numbers never hold
 * the name). */
static bool is_commit(const char *path, const char *body)
{
    return strcmp(path, "/v3/kv/txn") == 0 && strstr(body, "\"compare\":") != NULL;
}

/* One attempt: KIVIS_OK with *reply, or an error with *attempt saying
 * whether to go on. */
static int attempt_once(etcd_storage *s, const char *path, const char *body,
                        long timeout_ms, json_t **reply, enum attempt *attempt)
{
    reply_buf b = {.s = s};
    long http = 0;
    *attempt = SENT;
    atomic_fetch_add(&kivis__etcd_requests, 1);
    CURLcode cc = perform(s, path, body, timeout_ms, &b, &http);
    int rc = KIVIS_OK;
    if (b.failed) {
        rc = KIVIS_ENOMEM;
    } else if (cc != CURLE_OK) {
        keep_message("etcd %s: %s", s->endpoints[s->current], curl_easy_strerror(cc));
        *attempt = TRY_NEXT;
        rc = KIVIS_EUNAVAILABLE;
    } else if (is_commit(path, body) && atomic_load(&kivis__etcd_lose_replies) > 0) {
        atomic_fetch_sub(&kivis__etcd_lose_replies, 1);
        keep_message("etcd %s: the reply was lost (test hook)", s->endpoints[s->current]);
        *attempt = TRY_NEXT;
        rc = KIVIS_EUNAVAILABLE;
    } else {
        json_error_t jerr;
        json_t *r = json_loadb(b.p ? b.p : "", b.len, 0, &jerr);
        if (!json_is_object(r)) {
            keep_message("etcd %s: HTTP %ld, a reply that is no JSON object: %s",
                         s->endpoints[s->current], http, jerr.text);
            *attempt = http >= 500 ? TRY_NEXT : SENT;
            rc = http >= 500 ? KIVIS_EUNAVAILABLE : KIVIS_EIO;
            json_decref(r);
        } else if (http != 200) {
            rc = error_status(s, r, http, attempt);
            json_decref(r);
        } else {
            *reply = r;
        }
    }
    s_free(s, b.p);
    return rc;
}

/* How long one member may take to answer one request: a quarter of the
 * request's time (at least ATTEMPT_MIN_MS), so that a member that accepts
 * the request and never answers (frozen, or a follower whose proposal went
 * to a leader that just died: it gives up only after its own request
 * timeout, about 5 s) leaves time to try the others.  A resend is safe: a
 * commit's marker makes a second application impossible. */
static long long attempt_cap(const etcd_storage *s)
{
    long long quarter = s->timeout_ms / 4;
    return quarter < ATTEMPT_MIN_MS ? ATTEMPT_MIN_MS : quarter;
}

/* POST body to path, moving from member to member until one answers or the
 * storage's timeout runs out.  Caller holds s->lock.  @return KIVIS_OK with
 * *reply (json_decref it), or an error. */
static int post_locked(etcd_storage *s, const char *path, json_t *body, json_t **reply)
{
    *reply = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return KIVIS_ENOMEM;
    long long deadline = now_ms() + s->timeout_ms;
    long long cap = attempt_cap(s);
    int rc = KIVIS_EUNAVAILABLE;
    bool reauthed = false;
    for (size_t tries = 0;; tries++) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        enum attempt next;
        rc = attempt_once(s, path, text, (long)(left < cap ? left : cap), reply, &next);
        if (next == REAUTH && !reauthed) {
            reauthed = true;
            if ((rc = authenticate(s)) == KIVIS_OK)
                continue;
        }
        if (next != TRY_NEXT)
            break;
        s->current = (s->current + 1) % s->n_endpoints;
        if ((tries + 1) % s->n_endpoints == 0) /* every member failed: an election? */
            sleep_ms(50);
    }
    free(text);
    return rc;
}

static int post(etcd_storage *s, const char *path, json_t *body, json_t **reply)
{
    pthread_mutex_lock(&s->lock);
    int rc = post_locked(s, path, body, reply);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* A token for the user of the options, put in the requests' headers. */
static int authenticate(etcd_storage *s)
{
    json_t *body = json_pack("{s:s,s:s}", "name", s->user, "password",
                             s->password ? s->password : "");
    if (!body)
        return KIVIS_ENOMEM;
    struct curl_slist *plain = curl_slist_append(NULL, "Content-Type: application/json");
    curl_slist_free_all(s->headers);
    s->headers = plain;
    json_t *r = NULL;
    char *saved_user = s->user;
    s->user = NULL; /* no REAUTH loop while asking */
    int rc = plain ? post_locked(s, "/v3/auth/authenticate", body, &r) : KIVIS_ENOMEM;
    s->user = saved_user;
    json_decref(body);
    const char *token = json_string_value(json_object_get(r, "token"));
    if (rc == KIVIS_OK && !token) {
        keep_message("etcd: /v3/auth/authenticate answered no token");
        rc = KIVIS_EINVAL;
    }
    if (rc == KIVIS_OK) {
        size_t n = strlen(token) + 32;
        char *h = s_malloc(s, n);
        if (!h) {
            rc = KIVIS_ENOMEM;
        } else {
            snprintf(h, n, "Authorization: %s", token);
            struct curl_slist *l = curl_slist_append(s->headers, h);
            s_free(s, h);
            if (l)
                s->headers = l;
            else
                rc = KIVIS_ENOMEM;
        }
    }
    json_decref(r);
    return rc;
}

/* ---- reading: range requests -------------------------------------------- */

static void page_free(const etcd_storage *s, page *p)
{
    s_free(s, p->kvs);
    s_free(s, p->bytes);
    memset(p, 0, sizeof *p);
}

/* Decode the kvs of a range reply into *p (keys stripped of the store's
 * prefix).  KIVIS_OK, KIVIS_ENOMEM, KIVIS_ECORRUPT. */
static int page_decode(const etcd_storage *s, const json_t *r, page *p)
{
    memset(p, 0, sizeof *p);
    const json_t *kvs = json_object_get(r, "kvs");
    size_t n = json_array_size(kvs), bytes = 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(kvs, i);
        bytes += json_string_length(json_object_get(e, "key")) +
                 json_string_length(json_object_get(e, "value"));
    }
    p->more = json_is_true(json_object_get(r, "more"));
    p->rev = j_get_int(json_object_get(r, "header"), "revision");
    p->kvs = n ? s_malloc(s, n * sizeof *p->kvs) : NULL;
    p->bytes = s_malloc(s, bytes);
    if ((n && !p->kvs) || !p->bytes) {
        page_free(s, p);
        return KIVIS_ENOMEM;
    }
    unsigned char *at = p->bytes;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(kvs, i);
        const json_t *k = json_object_get(e, "key"), *v = json_object_get(e, "value");
        long kl = b64_decode(json_string_value(k) ? json_string_value(k) : "",
                             json_string_length(k), at);
        if (kl < (long)s->data_len || memcmp(at, s->data, s->data_len) != 0) {
            page_free(s, p);
            keep_message("etcd: a reply holds a key outside the store's prefix");
            return KIVIS_ECORRUPT;
        }
        p->kvs[i].key = kivis_slice_make(at + s->data_len, (size_t)kl - s->data_len);
        at += kl;
        long vl = b64_decode(json_string_value(v) ? json_string_value(v) : "",
                             json_string_length(v), at);
        if (vl < 0) {
            page_free(s, p);
            keep_message("etcd: a reply holds a value that is no base64");
            return KIVIS_ECORRUPT;
        }
        p->kvs[i].value = kivis_slice_make(at, (size_t)vl);
        at += vl;
        p->kvs[i].mod = j_get_int(e, "mod_revision");
    }
    p->n = n;
    return KIVIS_OK;
}

/* A range request over [key, end) at the read set's revision (taking the
 * cluster's when it has none yet), limit keys at most, descending when
 * dir < 0.  end NULL: key alone. */
static int range(etcd_storage *s, readset *rs, json_t *key, json_t *end, long limit,
                 int dir, page *out)
{
    json_t *body = json_object(), *r = NULL;
    memset(out, 0, sizeof *out);
    int rc = body && key ? KIVIS_OK : KIVIS_ENOMEM;
    if (rc == KIVIS_OK) {
        json_object_set(body, "key", key);
        if (end)
            rc = json_object_set(body, "range_end", end) ? KIVIS_ENOMEM : KIVIS_OK;
        if (limit)
            json_object_set_new(body, "limit", json_integer(limit));
        if (rs->rev)
            json_object_set_new(body, "revision", j_int(rs->rev));
        if (dir < 0) {
            json_object_set_new(body, "sort_order", json_string("DESCEND"));
            json_object_set_new(body, "sort_target", json_string("KEY"));
        }
    }
    if (rc == KIVIS_OK)
        rc = post(s, "/v3/kv/range", body, &r);
    if (rc == KIVIS_OK)
        rc = page_decode(s, r, out);
    if (rc == KIVIS_OK && !rs->rev)
        rs->rev = out->rev;
    json_decref(r);
    json_decref(body);
    json_decref(key);
    json_decref(end);
    return rc;
}

/* ---- the read set ------------------------------------------------------- */

static void readset_free(const etcd_storage *s, readset *rs)
{
    if (rs->keys) {
        kivis_bt_iter it;
        for (int rc = kivis__btree_first(rs->keys, &it); rc == KIVIS_OK;
             rc = kivis__btree_next(&it)) {
            read_entry *e;
            memcpy(&e, kivis__bt_iter_value(&it).data, sizeof e);
            s_free(s, e);
        }
        kivis__btree_free(rs->keys);
    }
    for (size_t i = 0; i < rs->n_ranges; i++) {
        s_free(s, rs->ranges[i].key);
        s_free(s, rs->ranges[i].end);
    }
    s_free(s, rs->ranges);
    memset(rs, 0, sizeof *rs);
}

static read_entry *readset_find(const readset *rs, kivis_slice key)
{
    kivis_slice v;
    read_entry *e = NULL;
    if (rs->keys && kivis__btree_get(rs->keys, key, &v) == KIVIS_OK)
        memcpy(&e, v.data, sizeof e);
    return e;
}

/* Remember what `key` holds at the read revision (value NULL: absent);
 * got: a get or a cursor returns it (false: a prefetch read it ahead). */
static int readset_add(const etcd_storage *s, readset *rs, kivis_slice key,
                       const kivis_slice *value, long long mod, bool got)
{
    read_entry *e = readset_find(rs, key);
    if (e) { /* one revision: it cannot have changed */
        e->got = e->got || got;
        return KIVIS_OK;
    }
    if (!rs->keys && kivis__btree_new(&s->alloc, &rs->keys) != KIVIS_OK)
        return KIVIS_ENOMEM;
    size_t len = value ? value->len : 0;
    e = s_malloc(s, sizeof *e + len);
    if (!e)
        return KIVIS_ENOMEM;
    e->mod = value ? mod : 0;
    e->got = got;
    e->len = len;
    if (len)
        memcpy(e->data, value->data, len);
    if (kivis__btree_put(rs->keys, key, kivis_slice_make(&e, sizeof e)) != KIVIS_OK) {
        s_free(s, e);
        return KIVIS_ENOMEM;
    }
    return KIVIS_OK;
}

static unsigned char *copy_bytes(const etcd_storage *s, const kivis_slice *parts,
                                 size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += parts[i].len;
    unsigned char *p = s_malloc(s, total ? total : 1);
    if (!p)
        return NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len)
            memcpy(p + *len, parts[i].data, parts[i].len);
        *len += parts[i].len;
    }
    return p;
}

/* Remember that the user keys in [from, to) were read (to NULL: up to
 * the store's end; the *_after flags add a 0 byte: just past the key). */
static int readset_cover(const etcd_storage *s, readset *rs, kivis_slice from,
                         bool from_after, const kivis_slice *to, bool to_after)
{
    if (rs->n_ranges == rs->cap_ranges) {
        size_t cap = rs->cap_ranges ? rs->cap_ranges * 2 : 4;
        interval *r = s->alloc.realloc(s->alloc.ctx, rs->ranges, cap * sizeof *r);
        if (!r)
            return KIVIS_ENOMEM;
        rs->ranges = r;
        rs->cap_ranges = cap;
    }
    interval *iv = &rs->ranges[rs->n_ranges];
    const kivis_slice data = {s->data, s->data_len};
    kivis_slice a[3] = {data, from, zero_byte};
    char e = 'e';
    kivis_slice b[3] = {data, to ? *to : no_slice, zero_byte};
    if (!to) {
        b[0].len--;
        b[1] = kivis_slice_make(&e, 1);
    }
    iv->key = copy_bytes(s, a, from_after ? 3 : 2, &iv->key_len);
    iv->end = copy_bytes(s, b, to && to_after ? 3 : 2, &iv->end_len);
    if (!iv->key || !iv->end) {
        s_free(s, iv->key);
        s_free(s, iv->end);
        return KIVIS_ENOMEM;
    }
    rs->n_ranges++;
    return KIVIS_OK;
}

/* ---- reading transactions ----------------------------------------------- */

static etcd_txn *txn_of(kivis_storage_txn *t)
{
    return (etcd_txn *)t;
}

/* A get's answer from what the transaction read, which the get now has
 * read too. */
static int entry_value(read_entry *e, kivis_slice *value)
{
    e->got = true;
    if (!e->mod)
        return KIVIS_NOTFOUND;
    *value = kivis_slice_make(e->data, e->len);
    return KIVIS_OK;
}

static int et_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    etcd_txn *t = txn_of(txn);
    *value = no_slice;
    int rc = kivis__check_key(key, t->s->max_key);
    if (rc != KIVIS_OK)
        return rc;
    read_entry *e = readset_find(t->rs, key);
    if (e)
        return entry_value(e, value);
    page p;
    rc = range(t->s, t->rs, j_key(t->s, key, false), NULL, 0, 1, &p);
    if (rc != KIVIS_OK)
        return rc;
    rc = readset_add(t->s, t->rs, key, p.n ? &p.kvs[0].value : NULL,
                     p.n ? p.kvs[0].mod : 0, true);
    page_free(t->s, &p);
    e = rc == KIVIS_OK ? readset_find(t->rs, key) : NULL;
    return e ? entry_value(e, value) : rc;
}

/* One request of a prefetch: a txn of range ops, ops[i] reading keys[i]. */
typedef struct read_batch {
    json_t *ops;
    kivis_slice *keys;
    size_t n;
} read_batch;

/* The op reading `key` alone at the transaction's revision (with none
 * yet, at the txn's, which then becomes the transaction's). */
static json_t *range_op(const etcd_txn *t, kivis_slice key)
{
    json_t *k = j_key(t->s, key, false);
    json_t *req = k ? json_pack("{s:o}", "key", k) : NULL;
    if (req && t->rs->rev && json_object_set_new(req, "revision", j_int(t->rs->rev))) {
        json_decref(req);
        return NULL;
    }
    return req ? json_pack("{s:o}", "request_range", req) : NULL;
}

/* Bytes an op reading key k adds to the request, at most: k after the
 * store's prefix in base64, and the JSON around it. */
static size_t range_op_bytes(const etcd_storage *s, kivis_slice k)
{
    return (s->data_len + k.len + 2) / 3 * 4 + 64;
}

/* Fill b with the keys of keys[*at..n) a get would ask the cluster for
 * (keys the store can hold, not read yet), `limit` of them at most and
 * READ_BYTES_MAX bytes of request; *at moves past the keys looked at. */
static int batch_fill(const etcd_txn *t, const kivis_slice *keys, size_t n,
                      size_t *at, size_t limit, read_batch *b)
{
    size_t bytes = 0;
    for (; *at < n && b->n < limit && bytes < READ_BYTES_MAX; ++*at) {
        kivis_slice k = keys[*at];
        if (kivis__check_key(k, t->s->max_key) != KIVIS_OK || readset_find(t->rs, k))
            continue;
        int rc = j_push(b->ops, range_op(t, k));
        if (rc != KIVIS_OK)
            return rc;
        b->keys[b->n++] = k;
        bytes += range_op_bytes(t->s, k);
    }
    return KIVIS_OK;
}

/* Read the keys of b in one txn and remember what each holds (absent ones
 * too), as their gets would have, but not as got: a write transaction's
 * commit compares a prefetched key only once a get or a cursor returned
 * it, so that a hint never adds a conflict. */
static int batch_read(etcd_txn *t, const read_batch *b)
{
    json_t *body = json_pack("{s:O}", "success", b->ops), *r = NULL;
    if (!body)
        return KIVIS_ENOMEM;
    over_op_limit = false;
    int rc = post(t->s, "/v3/kv/txn", body, &r);
    json_decref(body);
    const json_t *resps = json_object_get(r, "responses");
    if (rc == KIVIS_OK && json_array_size(resps) != b->n) {
        keep_message("etcd: a txn of %zu reads answered %zu", b->n, json_array_size(resps));
        rc = KIVIS_EIO;
    }
    if (rc == KIVIS_OK && !t->rs->rev) /* a read-only txn's revision is its reads' */
        t->rs->rev = j_get_int(json_object_get(r, "header"), "revision");
    for (size_t i = 0; rc == KIVIS_OK && i < b->n; i++) {
        page p;
        const json_t *rr = json_object_get(json_array_get(resps, i), "response_range");
        rc = page_decode(t->s, rr, &p);
        if (rc == KIVIS_OK)
            rc = readset_add(t->s, t->rs, b->keys[i], p.n ? &p.kvs[0].value : NULL,
                             p.n ? p.kvs[0].mod : 0, false);
        page_free(t->s, &p);
    }
    json_decref(r);
    return rc;
}

/* Read every key a get would ask the cluster for in as few requests as
 * its --max-txn-ops allows, all at the transaction's revision (one
 * snapshot, however many requests): the gets that follow answer from the
 * read set.  A request holds READ_OPS_FIRST reads, halved for the storage
 * each time the cluster answers that this is too many. */
static int et_prefetch(kivis_storage_txn *txn, const kivis_slice *keys, size_t n)
{
    etcd_txn *t = txn_of(txn);
    etcd_storage *s = t->s;
    size_t room = n < READ_OPS_FIRST ? n : READ_OPS_FIRST;
    read_batch b = {json_array(), s_malloc(s, room * sizeof *b.keys), 0};
    int rc = b.ops && b.keys ? KIVIS_OK : KIVIS_ENOMEM;
    for (size_t at = 0; rc == KIVIS_OK && at < n;) {
        size_t from = at, limit = atomic_load(&s->read_ops);
        json_array_clear(b.ops);
        b.n = 0;
        rc = batch_fill(t, keys, n, &at, limit < room ? limit : room, &b);
        if (rc == KIVIS_OK && b.n)
            rc = batch_read(t, &b);
        if (rc == KIVIS_EINVAL && over_op_limit && limit > 1) {
            atomic_compare_exchange_strong(&s->read_ops, &limit, limit / 2);
            at = from;
            rc = KIVIS_OK;
        }
    }
    json_decref(b.ops);
    s_free(s, b.keys);
    return rc;
}

/* A reading transaction never writes: the write transaction's overlay
 * takes every put and del before they could reach one. */
static int et_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    (void)txn;
    (void)key;
    (void)value;
    return KIVIS_EINVAL;
}

static int et_del(kivis_storage_txn *txn, kivis_slice key)
{
    (void)txn;
    (void)key;
    return KIVIS_EINVAL;
}

static void et_abort(kivis_storage_txn *txn)
{
    etcd_txn *t = txn_of(txn);
    readset_free(t->s, &t->own);
    s_free(t->s, t);
}

static int et_commit(kivis_storage_txn *txn, int durability)
{
    (void)durability;
    et_abort(txn); /* nothing to apply */
    return KIVIS_OK;
}

static int et_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out);

/* discard stays del (KIVIS_EINVAL): a reading transaction never writes. */
static const kivis_txn_methods et_txn_methods = {
    et_get, et_put, et_del, et_cursor_open, et_commit, et_abort,
    NULL, et_prefetch,
    NULL, /* cursor_follow */
};

static int read_txn_new(etcd_storage *s, readset *rs, etcd_txn **out)
{
    etcd_txn *t = s_malloc(s, sizeof *t);
    if (!t)
        return KIVIS_ENOMEM;
    memset(t, 0, sizeof *t);
    t->txn.methods = &et_txn_methods;
    t->txn.storage = &s->st;
    t->txn.flags = KIVIS_TXN_RDONLY;
    t->s = s;
    t->rs = rs ? rs : &t->own;
    *out = t;
    return KIVIS_OK;
}

/* ---- cursors ------------------------------------------------------------ */

static etcd_cursor *cursor_of(kivis_storage_cursor *cur)
{
    return (etcd_cursor *)cur;
}

/* What a write transaction's page covered, for its commit's compares:
 * every key in it (their mod_revision), and the interval from where it
 * started to its last key, or to the range's end when it reached that.
 * `after` as for the fetch below. */
static int track_page(etcd_cursor *c, int dir, const kivis_slice *from, bool after,
                      const page *p)
{
    etcd_storage *s = c->t->s;
    readset *rs = c->t->rs;
    const kivis_bt_range *r = &c->pc.range;
    for (size_t i = 0; i < p->n; i++) {
        int rc = readset_add(s, rs, p->kvs[i].key, &p->kvs[i].value, p->kvs[i].mod,
                             true);
        if (rc != KIVIS_OK)
            return rc;
    }
    const kivis_slice *last = p->n ? &p->kvs[p->n - 1].key : NULL;
    if (dir > 0) {
        const kivis_slice *hi = r->hi.data ? &r->hi : NULL;
        return p->more ? readset_cover(s, rs, *from, after, last, true)
                       : readset_cover(s, rs, *from, after, hi, false);
    }
    kivis_slice lo = p->more ? *last : r->lo;
    return readset_cover(s, rs, lo, false, from, after);
}

/* The page going dir (paged.h).  As a range request: forward, the keys
 * from *from (past it when after) up to hi; back, the keys below *from
 * (up to and with it when after; from NULL: below the store's end) down
 * to lo. */
static int ec_fetch(kivis_paged *pc, int dir, const kivis_slice *from, bool inclusive,
                    long limit, size_t *n, bool *complete)
{
    etcd_cursor *c = (etcd_cursor *)pc;
    etcd_storage *s = c->t->s;
    bool after = dir > 0 ? !inclusive : inclusive;
    json_t *key, *end;
    if (dir > 0) {
        key = j_key(s, *from, after);
        end = pc->range.hi.data ? j_key(s, pc->range.hi, false) : j_data_end(s);
    } else {
        key = j_key(s, pc->range.lo, false);
        end = from ? j_key(s, *from, after) : j_data_end(s);
    }
    page p;
    int rc = range(s, c->t->rs, key, end, limit, dir, &p);
    if (rc == KIVIS_OK && c->t->rs->track)
        rc = track_page(c, dir, from, after, &p);
    if (rc != KIVIS_OK) {
        page_free(s, &p);
        return rc;
    }
    page_free(s, &c->pg);
    c->pg = p;
    *n = p.n;
    *complete = !p.more;
    return KIVIS_OK;
}

static void ec_entry(const kivis_paged *pc, size_t i, kivis_slice *key, kivis_slice *value)
{
    const etcd_cursor *c = (const etcd_cursor *)pc;
    *key = c->pg.kvs[i].key;
    if (value)
        *value = c->pg.kvs[i].value;
}

static const kivis_paged_source etcd_pages = {ec_fetch, ec_entry};

static int ec_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    return kivis__paged_get(&cursor_of(cur)->pc, op, key, value);
}

static void ec_close(kivis_storage_cursor *cur)
{
    etcd_cursor *c = cursor_of(cur);
    page_free(c->t->s, &c->pg);
    kivis__paged_free(&c->pc, &c->t->s->alloc);
}

static const kivis_cursor_methods et_cursor_methods = {ec_get, ec_close,
                                                      NULL /* page */};

static int et_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    etcd_txn *t = txn_of(txn);
    kivis_paged *p;
    int rc = kivis__paged_new(sizeof(etcd_cursor), &et_cursor_methods, &etcd_pages, &t->s->alloc, lo, hi, &p);
    if (rc == KIVIS_OK)
        ((etcd_cursor *)p)->t = t;
    *out = rc == KIVIS_OK ? &p->cur : NULL;
    return rc;
}

/* ---- write transactions ------------------------------------------------- */

static etcd_writer *writer_of(kivis_storage_txn *txn)
{
    return (etcd_writer *)txn;
}

/* The lease the commit markers are put with, granted again every
 * LEASE_RENEW seconds: a marker lives from LEASE_TTL - LEASE_RENEW to
 * LEASE_TTL seconds, longer than a commit's retries take (timeout_ms).
 * Caller holds s->lock. */
static int marker_lease(etcd_storage *s, bool renew)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (s->lease && !renew && ts.tv_sec - s->lease_granted < LEASE_RENEW)
        return KIVIS_OK;
    json_t *body = json_pack("{s:i}", "TTL", LEASE_TTL), *r = NULL;
    int rc = body ? post_locked(s, "/v3/lease/grant", body, &r) : KIVIS_ENOMEM;
    long long id = j_get_int(r, "ID");
    if (rc == KIVIS_OK && !id) {
        keep_message("etcd: /v3/lease/grant answered no lease ID");
        rc = KIVIS_EIO;
    }
    if (rc == KIVIS_OK) {
        s->lease = id;
        s->lease_granted = ts.tv_sec;
    }
    json_decref(r);
    json_decref(body);
    return rc;
}

static json_t *compare(json_t *key, const char *target, const char *result,
                       const char *field, long long v)
{
    return key ? json_pack("{s:o,s:s,s:s,s:o}", "key", key, "target", target,
                           "result", result, field, j_int(v))
               : NULL;
}

/* The compares of the read set: each key read still at the mod_revision
 * seen (or still absent), nothing in a scanned interval modified after the
 * read revision.  A key only prefetched was not read. */
static int read_compares(const etcd_storage *s, const readset *rs, json_t *cmp)
{
    int rc = KIVIS_OK;
    if (rs->keys) {
        kivis_bt_iter it;
        for (int more = kivis__btree_first(rs->keys, &it);
             more == KIVIS_OK && rc == KIVIS_OK; more = kivis__btree_next(&it)) {
            read_entry *e;
            memcpy(&e, kivis__bt_iter_value(&it).data, sizeof e);
            if (!e->got)
                continue;
            json_t *key = j_key(s, kivis__bt_iter_key(&it), false);
            rc = j_push(cmp, e->mod ? compare(key, "MOD", "EQUAL", "mod_revision", e->mod)
                                    : compare(key, "VERSION", "EQUAL", "version", 0));
        }
    }
    for (size_t i = 0; i < rs->n_ranges && rc == KIVIS_OK; i++) {
        const interval *iv = &rs->ranges[i];
        kivis_slice k = {iv->key, iv->key_len}, e = {iv->end, iv->end_len};
        json_t *c = compare(j_bytes(&k, 1), "MOD", "LESS", "mod_revision", rs->rev + 1);
        json_t *end = j_bytes(&e, 1);
        if (c && end && json_object_set_new(c, "range_end", end) == 0)
            rc = j_push(cmp, c);
        else {
            json_decref(c);
            json_decref(end);
            rc = KIVIS_ENOMEM;
        }
    }
    return rc;
}

/* Whether a get or a cursor of the transaction returned `key`. */
static bool was_read(const readset *rs, kivis_slice key)
{
    const read_entry *e = readset_find(rs, key);
    return e && e->got;
}

/* Whether write op needs the compare that its key is unchanged since
 * the read revision: a key written but not read, unless the
 * transaction read nothing (blind writes) or the write is a discard
 * (kivis_txn_discard: delete it whatever it holds). */
static bool write_compared(const readset *rs, const kivis_btree *blind,
                           const kivis_batch_op *op)
{
    kivis_slice v;
    if (!rs->rev || was_read(rs, op->key))
        return false;
    return !(op->del && blind && kivis__btree_get(blind, op->key, &v) == KIVIS_OK);
}

/* The writes, and the compares write_compared asks for. */
static int write_ops(const etcd_storage *s, const readset *rs, const kivis_btree *blind,
                     const kivis_batch_op *ops, size_t n, json_t *cmp, json_t *ok)
{
    int rc = KIVIS_OK;
    for (size_t i = 0; i < n && rc == KIVIS_OK; i++) {
        if (write_compared(rs, blind, &ops[i]))
            rc = j_push(cmp, compare(j_key(s, ops[i].key, false), "MOD", "LESS",
                                     "mod_revision", rs->rev + 1));
        json_t *key = j_key(s, ops[i].key, false);
        json_t *op = ops[i].del
            ? json_pack("{s:{s:o}}", "request_delete_range", "key", key)
            : json_pack("{s:{s:o,s:o}}", "request_put", "key", key, "value",
                        j_bytes(&ops[i].value, 1));
        if (rc == KIVIS_OK)
            rc = j_push(ok, op);
        else
            json_decref(op);
    }
    return rc;
}

/* The commit's marker: absent before, put with the marker lease; the
 * failure branch reads it back, so that a resend of a commit whose first
 * send was applied (its reply lost) learns that it was. */
static int marker_ops(const etcd_storage *s, json_t *body, json_t *cmp, json_t *ok)
{
    char id[24];
    snprintf(id, sizeof id, "%llx", s->commits);
    kivis_slice parts[2] = {{s->marker, s->marker_len}, {id, strlen(id)}};
    int rc = j_push(cmp, compare(j_bytes(parts, 2), "CREATE", "EQUAL",
                                 "create_revision", 0));
    if (rc == KIVIS_OK)
        rc = j_push(ok, json_pack("{s:{s:o,s:s,s:o}}", "request_put", "key",
                                  j_bytes(parts, 2), "value", "", "lease",
                                  j_int(s->lease)));
    json_t *fail = json_pack("[{s:{s:o}}]", "request_range", "key", j_bytes(parts, 2));
    if (rc == KIVIS_OK && (!fail || json_object_set_new(body, "failure", fail)))
        rc = KIVIS_ENOMEM;
    return rc;
}

/* Whether the failure branch of a commit found its marker. */
static bool marker_found(const json_t *r)
{
    const json_t *resp = json_array_get(json_object_get(r, "responses"), 0);
    const json_t *rr = json_object_get(resp, "response_range");
    return json_array_size(json_object_get(rr, "kvs")) > 0;
}

static int send_commit(etcd_storage *s, const readset *rs, const kivis_btree *blind,
                       const kivis_batch_op *ops, size_t n)
{
    json_t *cmp = json_array(), *ok = json_array(), *r = NULL;
    json_t *body = json_pack("{s:o,s:o}", "compare", cmp, "success", ok);
    int rc = body ? read_compares(s, rs, cmp) : KIVIS_ENOMEM;
    if (rc == KIVIS_OK)
        rc = write_ops(s, rs, blind, ops, n, cmp, ok);
    pthread_mutex_lock(&s->lock);
    s->commits++;
    if (rc == KIVIS_OK)
        rc = marker_lease(s, false);
    if (rc == KIVIS_OK)
        rc = marker_ops(s, body, cmp, ok);
    if (rc == KIVIS_OK)
        rc = post_locked(s, "/v3/kv/txn", body, &r);
    if (rc == KIVIS_NOTFOUND) { /* the lease expired: a new one */
        json_array_remove(ok, json_array_size(ok) - 1);
        json_array_remove(cmp, json_array_size(cmp) - 1);
        rc = marker_lease(s, true);
        if (rc == KIVIS_OK)
            rc = marker_ops(s, body, cmp, ok);
        if (rc == KIVIS_OK)
            rc = post_locked(s, "/v3/kv/txn", body, &r);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == KIVIS_NOTFOUND)
        rc = KIVIS_EIO;
    if (rc == KIVIS_OK && !json_is_true(json_object_get(r, "succeeded")) &&
        !marker_found(r)) {
        keep_message("etcd: a key the transaction read or wrote changed since its "
                     "read revision %lld", rs->rev);
        rc = KIVIS_ECONFLICT;
    }
    json_decref(r);
    json_decref(body);
    return rc;
}

static int apply(void *ctx, const kivis_batch_op *ops, size_t n, int durability)
{
    (void)durability; /* etcd's Raft log is always flushed */
    etcd_writer *w = ctx;
    return send_commit(w->s, &w->rs, w->blind, ops, n);
}

static int ew_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    return kivis_txn_get(writer_of(txn)->ov, key, value);
}

static int ew_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    return kivis_txn_put(writer_of(txn)->ov, key, value);
}

static int ew_del(kivis_storage_txn *txn, kivis_slice key)
{
    return kivis_txn_del(writer_of(txn)->ov, key);
}

/* A delete of an index entry need not cost a read: the overlay queues it
 * blind, and the key is remembered so that commit does not compare it
 * either (write_compared).  Not remembered for want of memory, it is
 * compared as any write: a check more, never one less. */
static int ew_discard(kivis_storage_txn *txn, kivis_slice key)
{
    etcd_writer *w = writer_of(txn);
    int rc = kivis_overlay_discard(w->ov, key);
    if (rc == KIVIS_OK && (w->blind || kivis__btree_new(&w->s->alloc, &w->blind) == KIVIS_OK))
        (void)kivis__btree_put(w->blind, key, no_slice);
    return rc;
}

/* The overlay hands the keys on to its reading transaction (et_prefetch),
 * whose read set is the writer's: what it fetches answers the overlay's
 * gets and, once they returned it, is compared at commit. */
static int ew_prefetch(kivis_storage_txn *txn, const kivis_slice *keys, size_t n)
{
    return kivis_txn_prefetch(writer_of(txn)->ov, keys, n);
}

static int ew_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    return kivis_txn_cursor(writer_of(txn)->ov, lo, hi, out);
}

static void writer_free(etcd_writer *w)
{
    kivis__btree_free(w->blind);
    readset_free(w->s, &w->rs);
    s_free(w->s, w);
}

static int ew_commit(kivis_storage_txn *txn, int durability)
{
    etcd_writer *w = writer_of(txn);
    int rc = kivis_txn_commit(w->ov, durability);
    writer_free(w);
    return rc;
}

static void ew_abort(kivis_storage_txn *txn)
{
    etcd_writer *w = writer_of(txn);
    kivis_txn_abort(w->ov);
    writer_free(w);
}

static const kivis_txn_methods ew_txn_methods = {
    ew_get, ew_put, ew_del, ew_cursor_open, ew_commit, ew_abort,
    ew_discard, ew_prefetch,
    NULL, /* cursor_follow */
};

static int writer_new(etcd_storage *s, kivis_storage_txn **out)
{
    etcd_writer *w = s_malloc(s, sizeof *w);
    if (!w)
        return KIVIS_ENOMEM;
    memset(w, 0, sizeof *w);
    w->txn.methods = &ew_txn_methods;
    w->txn.storage = &s->st;
    w->s = s;
    w->rs.track = true;
    etcd_txn *base;
    int rc = read_txn_new(s, &w->rs, &base);
    if (rc == KIVIS_OK)
        rc = kivis_overlay_begin(&s->st, &base->txn, apply, w, &s->alloc, &w->ov);
    if (rc != KIVIS_OK) {
        s_free(s, w);
        return rc;
    }
    *out = &w->txn;
    return KIVIS_OK;
}

/* ---- the storage -------------------------------------------------------- */

static etcd_storage *storage_of(kivis_storage *st)
{
    return (etcd_storage *)st;
}

static int es_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    etcd_storage *s = storage_of(st);
    *out = NULL;
    if (!(flags & KIVIS_TXN_RDONLY))
        return writer_new(s, out);
    etcd_txn *t;
    int rc = read_txn_new(s, NULL, &t);
    if (rc == KIVIS_OK)
        *out = &t->txn;
    return rc;
}

static size_t es_max_key(kivis_storage *st)
{
    return storage_of(st)->max_key;
}

static void storage_free(etcd_storage *s)
{
    if (s->curl)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    for (size_t i = 0; i < s->n_endpoints; i++)
        s_free(s, s->endpoints[i]);
    s_free(s, s->endpoints);
    s_free(s, s->data);
    s_free(s, s->marker);
    char *strings[] = {s->ca_file, s->cert_file, s->key_file, s->user, s->password};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        s_free(s, strings[i]);
    pthread_mutex_destroy(&s->lock);
    s_free(s, s);
}

static void es_close(kivis_storage *st)
{
    storage_free(storage_of(st));
}



/* ---- the change feed ------------------------------------------------------
 * A thread of the feed holds a watch (POST /v3/watch, a stream of JSON
 * lines) on the store's keys and queues each event as a change; a pipe
 * wakes the consumer.  The feed copies what it needs of the storage, so it
 * does not depend on it.  When the stream breaks the thread watches again
 * on the next member from the revision of the last change queued,
 * skipping what it queued already.  A position is the event's revision
 * << FEED_SHIFT | its index among the events of that revision. */

typedef struct feed_node {
    struct feed_node *next;
    kivis_change change; /* key points into key_bytes */
    unsigned char key_bytes[];
} feed_node;

typedef struct etcd_feed {
    kivis_feed feed; /* first: what the caller holds */
    etcd_storage *copy; /* endpoints, prefix, TLS, allocator; no handle */
    pthread_t thread;
    pthread_mutex_t lock; /* guards the queue, sock, stop, down */
    feed_node *head, *tail, *current;
    int pipe[2];
    curl_socket_t sock; /* the stream's socket, CURL_SOCKET_BAD when none */
    bool stop;
    bool down;          /* the last watch attempt failed */
    bool broken;        /* a change could not be queued (no memory, a line
                           that does not parse): the stream ends and the
                           next watch starts again from `start`, which
                           still names that change's revision */
    uint64_t last;      /* the position queued last */
    long long start;    /* the revision the next watch starts from */
    long long index_rev; /* the revision whose events idx counts */
    uint64_t idx;
    char *line;         /* the stream's unfinished line */
    size_t line_len, line_cap;
} etcd_feed;

static void feed_push(etcd_feed *f, uint64_t pos, int kind, kivis_slice key)
{
    if (pos <= f->last || f->broken)
        return; /* queued before the stream broke, or after a loss */
    feed_node *n = s_malloc(f->copy, sizeof *n + key.len + 1);
    if (!n) {
        f->broken = true; /* a later change must not pass this one */
        return;
    }
    n->next = NULL;
    if (key.len)
        memcpy(n->key_bytes, key.data, key.len);
    n->change.pos = pos;
    n->change.kind = kind;
    n->change.key = kivis_slice_make(n->key_bytes, key.len);
    pthread_mutex_lock(&f->lock);
    if (f->tail)
        f->tail->next = n;
    else
        f->head = n;
    f->tail = n;
    pthread_mutex_unlock(&f->lock);
    f->last = pos;
    f->start = (long long)(pos >> FEED_SHIFT);
    ssize_t w = write(f->pipe[1], "", 1); /* full pipe: already readable */
    (void)w;
}

static void feed_event(etcd_feed *f, const json_t *ev)
{
    const json_t *kv = json_object_get(ev, "kv");
    long long rev = j_get_int(kv, "mod_revision");
    if (rev != f->index_rev) {
        f->index_rev = rev;
        f->idx = 0;
    }
    uint64_t pos = (uint64_t)rev << FEED_SHIFT | ++f->idx;
    const char *type = json_string_value(json_object_get(ev, "type"));
    int kind = type && strcmp(type, "DELETE") == 0 ? KIVIS_CHANGE_DELETE
               : j_get_int(kv, "version") == 1     ? KIVIS_CHANGE_INSERT
                                                   : KIVIS_CHANGE_UPDATE;
    const json_t *k = json_object_get(kv, "key");
    size_t len = json_string_length(k);
    unsigned char small[512], *buf = len < sizeof small ? small : malloc(len);
    long kl = buf ? b64_decode(json_string_value(k), len, buf) : -1;
    if (!buf)
        f->broken = true;
    const etcd_storage *s = f->copy;
    if (kl >= (long)s->data_len && memcmp(buf, s->data, s->data_len) == 0)
        feed_push(f, pos, kind,
                  kivis_slice_make(buf + s->data_len, (size_t)kl - s->data_len));
    if (buf != small)
        free(buf);
}

/* One line of the stream: {"result": {...}}.  @return false when it
 * cancels the watch (the stream must end: a new watch follows). */
static bool feed_line(etcd_feed *f, const char *text, size_t len)
{
    json_t *msg = json_loadb(text, len, 0, NULL);
    if (!msg) {
        f->broken = true; /* it may have carried changes */
        return false;
    }
    const json_t *r = json_object_get(msg, "result");
    long long compacted = j_get_int(r, "compact_revision");
    if (json_is_true(json_object_get(r, "created"))) {
        pthread_mutex_lock(&f->lock);
        f->down = false;
        pthread_mutex_unlock(&f->lock);
    }
    if (compacted && f->start < compacted) {
        /* the changes from start to compacted - 1 are gone */
        feed_push(f, ((uint64_t)compacted << FEED_SHIFT) - 1, KIVIS_CHANGE_RESYNC, no_slice);
        if (!f->broken)
            f->start = compacted;
    }
    const json_t *events = json_object_get(r, "events");
    for (size_t i = 0; i < json_array_size(events); i++)
        feed_event(f, json_array_get(events, i));
    bool canceled = json_is_true(json_object_get(r, "canceled"));
    json_decref(msg);
    return !canceled && !f->broken;
}

static size_t feed_collect(char *data, size_t size, size_t n, void *ud)
{
    etcd_feed *f = ud;
    size_t add = size * n;
    if (f->line_len + add > f->line_cap) {
        size_t cap = f->line_cap ? f->line_cap : 4096;
        while (cap < f->line_len + add)
            cap *= 2;
        char *p = f->copy->alloc.realloc(f->copy->alloc.ctx, f->line, cap);
        if (!p)
            return 0;
        f->line = p;
        f->line_cap = cap;
    }
    memcpy(f->line + f->line_len, data, add);
    f->line_len += add;
    char *nl;
    while ((nl = memchr(f->line, '\n', f->line_len))) {
        size_t used = (size_t)(nl - f->line) + 1;
        bool go_on = feed_line(f, f->line, used - 1);
        memmove(f->line, f->line + used, f->line_len - used);
        f->line_len -= used;
        if (!go_on)
            return 0; /* ends the transfer */
    }
    return add;
}

static int feed_sockopt(void *ud, curl_socket_t sock, curlsocktype purpose)
{
    (void)purpose;
    etcd_feed *f = ud;
    pthread_mutex_lock(&f->lock);
    bool stop = f->stop;
    if (!stop)
        f->sock = sock;
    pthread_mutex_unlock(&f->lock);
    return stop ? CURL_SOCKOPT_ERROR : CURL_SOCKOPT_OK;
}

static int feed_closesocket(void *ud, curl_socket_t sock)
{
    etcd_feed *f = ud;
    pthread_mutex_lock(&f->lock);
    if (f->sock == sock)
        f->sock = CURL_SOCKET_BAD;
    pthread_mutex_unlock(&f->lock);
    return close(sock);
}

static int feed_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    etcd_feed *f = ud;
    pthread_mutex_lock(&f->lock);
    bool stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

/* Watch from f->start on the current member until the stream ends. */
static void feed_watch(etcd_feed *f, CURL *c)
{
    etcd_storage *s = f->copy;
    json_t *body = json_pack("{s:{s:o,s:o,s:o}}", "create_request", "key",
                             j_key(s, no_slice, false), "range_end", j_data_end(s),
                             "start_revision", j_int(f->start));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return;
    char url[512];
    snprintf(url, sizeof url, "%s/v3/watch", s->endpoints[s->current]);
    f->line_len = 0;
    f->index_rev = 0;
    f->broken = false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_perform(c);
    free(text);
}

static void *feed_thread(void *arg)
{
    etcd_feed *f = arg;
    CURL *c = new_handle(f->copy);
    if (!c)
        return NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, feed_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, feed_sockopt);
    curl_easy_setopt(c, CURLOPT_SOCKOPTDATA, f);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, feed_closesocket);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, f);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, feed_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    for (;;) {
        pthread_mutex_lock(&f->lock);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            break;
        feed_watch(f, c);
        pthread_mutex_lock(&f->lock);
        f->down = true;
        stop = f->stop;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            break;
        f->copy->current = (f->copy->current + 1) % f->copy->n_endpoints;
        sleep_ms(100);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int ef_next(kivis_feed *feed, int timeout_ms, kivis_change *out)
{
    etcd_feed *f = (etcd_feed *)feed;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    s_free(f->copy, f->current);
    f->current = NULL;
    for (;;) {
        char drain[64];
        while (read(f->pipe[0], drain, sizeof drain) > 0)
            ;
        pthread_mutex_lock(&f->lock);
        feed_node *n = f->head;
        if (n && !(f->head = n->next))
            f->tail = NULL;
        bool down = f->down;
        pthread_mutex_unlock(&f->lock);
        if (n) {
            f->current = n;
            *out = n->change;
            return KIVIS_OK;
        }
        if (timeout_ms == 0)
            return down ? KIVIS_EUNAVAILABLE : KIVIS_NOTFOUND;
        int ready = kivis__feed_wait(f->pipe[0], &start, timeout_ms);
        if (ready <= 0)
            return ready < 0 ? KIVIS_EIO : down ? KIVIS_EUNAVAILABLE : KIVIS_NOTFOUND;
    }
}

static int ef_fd(kivis_feed *feed)
{
    return ((etcd_feed *)feed)->pipe[0];
}

static void ef_close(kivis_feed *feed)
{
    etcd_feed *f = (etcd_feed *)feed;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    if (f->sock != CURL_SOCKET_BAD)
        shutdown(f->sock, SHUT_RDWR); /* wakes the thread out of its read */
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    etcd_storage *s = f->copy;
    s_free(s, f->current);
    for (feed_node *n = f->head, *next; n; n = next) {
        next = n->next;
        s_free(s, n);
    }
    s_free(s, f->line);
    close(f->pipe[0]);
    close(f->pipe[1]);
    pthread_mutex_destroy(&f->lock);
    s_free(s, f);
    storage_free(s);
}

static const kivis_feed_methods ef_feed_methods = {ef_next, ef_fd, ef_close};

/* What the feed's thread needs of the storage: a storage of its own with
 * no connection (storage_free frees it). */
static int copy_storage(const etcd_storage *s, etcd_storage **out)
{
    etcd_storage *c = s_malloc(s, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->alloc = s->alloc;
    pthread_mutex_init(&c->lock, NULL);
    c->endpoints = s_malloc(s, s->n_endpoints * sizeof *c->endpoints);
    int rc = c->endpoints ? KIVIS_OK : KIVIS_ENOMEM;
    for (size_t i = 0; i < s->n_endpoints && rc == KIVIS_OK; i++, c->n_endpoints++)
        if (!(c->endpoints[i] = s_strdup(s, s->endpoints[i])))
            rc = KIVIS_ENOMEM;
    c->current = s->current;
    c->data_len = s->data_len;
    const char *const from[] = {s->data, s->ca_file, s->cert_file, s->key_file};
    char **to[] = {&c->data, &c->ca_file, &c->cert_file, &c->key_file};
    for (size_t i = 0; i < sizeof to / sizeof to[0] && rc == KIVIS_OK; i++)
        if (from[i] && !(*to[i] = s_strdup(s, from[i])))
            rc = KIVIS_ENOMEM;
    if (rc != KIVIS_OK) {
        storage_free(c);
        return rc;
    }
    *out = c;
    return KIVIS_OK;
}

/* KIVIS_FEED_NOW watches from the revision after the cluster's current
 * one, asked here, so that every commit after the open is fed. */
static int es_feed_open(kivis_storage *st, uint64_t after, kivis_feed **out)
{
    etcd_storage *s = storage_of(st);
    long long start = (long long)(after >> FEED_SHIFT);
    if (after == KIVIS_FEED_NOW) {
        readset rs = {0};
        page p;
        int rc = range(s, &rs, j_key(s, no_slice, false), NULL, 1, 1, &p);
        if (rc != KIVIS_OK)
            return rc;
        page_free(s, &p);
        start = rs.rev + 1;
    }
    etcd_feed *f = s_malloc(s, sizeof *f);
    if (!f)
        return KIVIS_ENOMEM;
    memset(f, 0, sizeof *f);
    f->feed.methods = &ef_feed_methods;
    f->feed.flags = KIVIS_FEED_SHARED;
    f->sock = CURL_SOCKET_BAD;
    f->start = start ? start : 1;
    f->last = after;
    int rc = copy_storage(s, &f->copy);
    if (rc != KIVIS_OK) {
        s_free(s, f);
        return rc;
    }
    pthread_mutex_init(&f->lock, NULL);
    if (pipe(f->pipe) != 0) {
        rc = KIVIS_EIO;
    } else {
        for (int i = 0; i < 2; i++)
            fcntl(f->pipe[i], F_SETFL, O_NONBLOCK), fcntl(f->pipe[i], F_SETFD, FD_CLOEXEC);
        if (pthread_create(&f->thread, NULL, feed_thread, f) != 0) {
            close(f->pipe[0]);
            close(f->pipe[1]);
            rc = KIVIS_ENOMEM;
        }
    }
    if (rc != KIVIS_OK) {
        pthread_mutex_destroy(&f->lock);
        storage_free(f->copy);
        s_free(s, f);
        return rc;
    }
    *out = &f->feed;
    return KIVIS_OK;
}

static const kivis_storage_methods es_storage_methods = {
    KIVIS_STORAGE_VERSION, "etcd", es_close, es_max_key, es_begin, es_feed_open,
};

/* Split the comma-separated list into s->endpoints, without trailing
 * slashes.  KIVIS_EINVAL for an empty one or one that is no http(s) URL. */
static int parse_endpoints(etcd_storage *s, const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    s->endpoints = s_malloc(s, n * sizeof *s->endpoints);
    if (!s->endpoints)
        return KIVIS_ENOMEM;
    for (const char *p = list;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (p[len - 1] == '/' || p[len - 1] == ' '))
            len--;
        while (len && *p == ' ')
            p++, len--;
        if (!len || len > 400 || (strncmp(p, "http://", 7) != 0 &&
                                  strncmp(p, "https://", 8) != 0)) {
            keep_message("etcd: endpoint '%.*s' is no http:// or https:// URL",
                         (int)(len > 400 ? 400 : len), p);
            return KIVIS_EINVAL;
        }
        char *e = s_malloc(s, len + 1);
        if (!e)
            return KIVIS_ENOMEM;
        memcpy(e, p, len);
        e[len] = '\0';
        s->endpoints[s->n_endpoints++] = e;
        if (!end)
            return KIVIS_OK;
        p = end;
    }
}

/* prefix + tag, as a new string. */
static char *prefixed(const etcd_storage *s, const char *prefix, const char *tag)
{
    size_t n = strlen(prefix) + strlen(tag) + 1;
    char *p = s_malloc(s, n);
    if (p)
        snprintf(p, n, "%s%s", prefix, tag);
    return p;
}

/* The markers' names: prefix + "t" + 16 random bytes in hex + "/". */
static int name_markers(etcd_storage *s, const char *prefix)
{
    unsigned char id[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, id, sizeof id) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof id) {
        keep_message("etcd: cannot read /dev/urandom for the commit markers' id");
        return KIVIS_EIO;
    }
    char tag[2 + 2 * sizeof id + 1];
    tag[0] = 't';
    for (size_t i = 0; i < sizeof id; i++)
        snprintf(tag + 1 + 2 * i, 3, "%02x", id[i]);
    strcat(tag, "/");
    s->marker = prefixed(s, prefix, tag);
    if (!s->marker)
        return KIVIS_ENOMEM;
    s->marker_len = strlen(s->marker);
    return KIVIS_OK;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int copy_options(etcd_storage *s, const kivis_etcd_options *o)
{
    const char *const from[] = {o->ca_file, o->cert_file, o->key_file, o->user,
                                o->password};
    char **to[] = {&s->ca_file, &s->cert_file, &s->key_file, &s->user, &s->password};
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++)
        if (from[i] && !(*to[i] = s_strdup(s, from[i])))
            return KIVIS_ENOMEM;
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    return KIVIS_OK;
}

/* Connect: a token when auth is on, then a range read of one key, which
 * any member with a leader answers. */
static int first_contact(etcd_storage *s)
{
    int rc = KIVIS_OK;
    if (s->user) {
        pthread_mutex_lock(&s->lock);
        rc = authenticate(s);
        pthread_mutex_unlock(&s->lock);
        if (rc == KIVIS_ECONFLICT || rc == KIVIS_EIO)
            rc = KIVIS_EINVAL; /* a refused login */
    }
    readset rs = {0};
    page p;
    if (rc == KIVIS_OK)
        rc = range(s, &rs, j_key(s, kivis_slice_make("", 0), false), NULL, 1, 1, &p);
    if (rc == KIVIS_OK)
        page_free(s, &p);
    return rc;
}

int kivis_etcd_open(const char *endpoints, const kivis_etcd_options *opts,
                    kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    keep_message("");
    static const kivis_etcd_options none = {0};
    if (!opts)
        opts = &none;
    size_t max_key = opts->max_key_size ? opts->max_key_size : KIVIS_ETCD_MAX_KEY;
    if (!endpoints || !*endpoints || max_key > KIVIS_ETCD_MAX_KEY)
        return KIVIS_EINVAL;
    pthread_once(&curl_once, curl_init);
    const kivis_allocator *a = opts->allocator ? opts->allocator
                                               : kivis_default_allocator();
    etcd_storage *s = a->malloc(a->ctx, sizeof *s);
    if (!s)
        return KIVIS_ENOMEM;
    memset(s, 0, sizeof *s);
    s->st.methods = &es_storage_methods;
    s->alloc = *a;
    s->max_key = max_key;
    atomic_init(&s->read_ops, READ_OPS_FIRST);
    pthread_mutex_init(&s->lock, NULL);
    const char *prefix = opts->prefix ? opts->prefix : DEFAULT_PREFIX;
    int rc = parse_endpoints(s, endpoints);
    if (rc == KIVIS_OK)
        rc = copy_options(s, opts);
    if (rc == KIVIS_OK)
        rc = (s->data = prefixed(s, prefix, "d")) ? KIVIS_OK : KIVIS_ENOMEM;
    if (rc == KIVIS_OK) {
        s->data_len = strlen(s->data);
        rc = name_markers(s, prefix);
    }
    if (rc == KIVIS_OK) {
        s->curl = new_handle(s);
        s->headers = curl_slist_append(NULL, "Content-Type: application/json");
        rc = s->curl && s->headers ? KIVIS_OK : KIVIS_ENOMEM;
    }
    if (rc == KIVIS_OK)
        rc = first_contact(s);
    if (rc != KIVIS_OK) {
        storage_free(s);
        return rc;
    }
    *out = &s->st;
    return KIVIS_OK;
}
