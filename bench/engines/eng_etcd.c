/*
 * bench/engines/eng_etcd.c - etcd: the private three-member cluster the
 * benchmark starts, raw requests to its v3 JSON gateway by hand (engine
 * "etcd", the reference of the etcd table) and the storage kivis runs over
 * (eng_kivis.c).
 *
 * The cluster is the tests' (tests/support/etcdcluster.c): three etcd
 * members on free ports of 127.0.0.1, their data in /dev/shm, killed and
 * removed when the program ends.  Its --max-txn-ops is raised to 8192 (the
 * tests' 1024 is below a write transaction of 1,000 records: a put of the
 * record and one of its index entry each, a compare for each record read
 * before a rename or a removal), the same cluster for both sides.  Each
 * store is a fresh key prefix named after its directory.
 *
 * Raw etcd, as an expert would write it over the same gateway with libcurl
 * and jansson, on one kept-alive connection to the first member (where the
 * kivis storage sends its requests too):
 *  - record k is key prefix "u" + k (8 bytes big-endian) whose value is the
 *    record's fields as a JSON object; the name index is one key per
 *    record, prefix "n" + name + NUL + k, empty, written in the same txn;
 *  - reads run BENCH_READ_BATCH to a snapshot: the first read of a batch
 *    takes the cluster's revision, the later ones ask for it (what kivis's
 *    read transactions do); one range request per get and per scan; a
 *    lookup by name is a range request over its index keys, then one txn
 *    of range requests fetching its records (one request, or a plain get
 *    for a single record);
 *  - a write transaction is one txn of all its puts and deletes; a rename
 *    or removal first gets each record (a request each: the old name gives
 *    the index key to delete) and its txn compares each record's
 *    mod_revision with the one read, so a concurrent change would make it
 *    fail instead of being overwritten (kivis's commits check as much).
 * etcd flushes its Raft log on a majority at every commit: every phase is
 * durable, there is no cheaper mode to choose.
 */
#include "bench.h"

#include <kivis/etcd.h>

#include "etcdcluster.h"
#include "storage/etcdhook.h" /* kivis__etcd_requests */

#include <curl/curl.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>

#define MAX_TXN_OPS 8192
#define KEY_MAX (64 + 1 + BENCH_NAME_MAX + 8) /* prefix, tag, name, NUL, id */

/* ---- the cluster -------------------------------------------------------- */

static const char *cluster(void)
{
    static bool configured;
    if (!configured) {
        kt_etcd_set_max_txn_ops(MAX_TXN_OPS);
        configured = true;
    }
    return kt_etcd_start();
}

/* The store's prefix: the directory's last part (engine and run) and "/". */
static void store_prefix(const char *dir, char *out, size_t cap)
{
    const char *base = strrchr(dir, '/');
    snprintf(out, cap, "%s/", base ? base + 1 : dir);
}

int bench_etcd_storage(const char *dir, kivis_storage **out)
{
    char prefix[64];
    store_prefix(dir, prefix, sizeof prefix);
    kivis_etcd_options o = {.prefix = prefix};
    const char *endpoints = cluster();
    int rc = kivis_etcd_open(endpoints, &o, out);
    if (rc != KIVIS_OK)
        bench_die("kivis-etcd", "open", kivis_etcd_errmsg());
    return rc;
}

unsigned long long bench_etcd_backend_trips(void *h)
{
    (void)h;
    return atomic_load(&kivis__etcd_requests);
}

/* ---- requests ----------------------------------------------------------- */

typedef struct etcd_handle {
    CURL *curl;
    struct curl_slist *headers;
    char base[64];        /* the first member's client URL */
    char prefix[64];
    size_t prefix_len;
    long long rev;        /* the read batch's revision, 0: not taken yet */
    char *reply;
    size_t len, cap;
    unsigned long long trips;
} etcd_handle;

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    etcd_handle *h = ud;
    size_t add = size * n;
    if (h->len + add + 1 > h->cap) {
        size_t cap = (h->len + add + 1) * 2;
        char *p = realloc(h->reply, cap);
        if (!p)
            return 0;
        h->reply = p;
        h->cap = cap;
    }
    memcpy(h->reply + h->len, data, add);
    h->len += add;
    h->reply[h->len] = '\0';
    return add;
}

/* POST body (consumed) to path: one round trip.  The reply; dies on any
 * error. */
static json_t *call(etcd_handle *h, const char *path, json_t *body)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", h->base, path);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        bench_die("etcd", path, "out of memory");
    h->len = 0;
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, text);
    CURLcode cc = curl_easy_perform(h->curl);
    long http = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &http);
    free(text);
    h->trips++;
    if (cc != CURLE_OK)
        bench_die("etcd", path, curl_easy_strerror(cc));
    if (http != 200)
        bench_die("etcd", path, h->len ? h->reply : "HTTP error");
    json_t *r = json_loadb(h->reply, h->len, 0, NULL);
    if (!r)
        bench_die("etcd", path, "a reply that is no JSON");
    return r;
}

static long long int_field(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10)
                             : (long long)json_integer_value(v);
}

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Bytes as a base64 JSON string, as the gateway carries them. */
static json_t *b64(const unsigned char *p, size_t n)
{
    char out[4 * (BENCH_VALUE_MAX + KEY_MAX) / 3 + 8], *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 |
                          (i + 1 < n ? (unsigned long)p[i + 1] << 8 : 0) |
                          (i + 2 < n ? p[i + 2] : 0);
        *o++ = b64_chars[v >> 18 & 63];
        *o++ = b64_chars[v >> 12 & 63];
        *o++ = i + 1 < n ? b64_chars[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    return json_stringn(out, (size_t)(o - out));
}

/* A base64 JSON string's bytes into out (room for cap).  Their count. */
static size_t unb64(const json_t *s, unsigned char *out, size_t cap)
{
    const char *p = json_string_value(s);
    size_t n = json_string_length(s), len = 0;
    unsigned long acc = 0;
    int bits = 0;
    for (size_t i = 0; p && i < n && p[i] != '='; i++) {
        const char *c = strchr(b64_chars, p[i]);
        if (!c || !*c)
            bench_die("etcd", "reply", "bad base64");
        acc = acc << 6 | (unsigned long)(c - b64_chars);
        if ((bits += 6) >= 8 && len < cap)
            out[len++] = (unsigned char)(acc >> (bits -= 8));
    }
    return len;
}

/* ---- keys and values ---------------------------------------------------- */

static size_t record_key(const etcd_handle *h, uint64_t id, unsigned char *out)
{
    memcpy(out, h->prefix, h->prefix_len);
    out[h->prefix_len] = 'u';
    bench_be64(id, out + h->prefix_len + 1);
    return h->prefix_len + 9;
}

/* The index key of (name, id); id 0 and `end`: the end of name's keys. */
static size_t index_key(const etcd_handle *h, const char *name, uint64_t id, bool end,
                        unsigned char *out)
{
    size_t nl = strlen(name), at = h->prefix_len;
    memcpy(out, h->prefix, at);
    out[at++] = 'n';
    memcpy(out + at, name, nl);
    at += nl;
    out[at++] = end ? 1 : 0;
    if (!end) {
        bench_be64(id, out + at);
        at += 8;
    }
    return at;
}

static json_t *record_value(const char *name, const char *email, uint32_t age)
{
    json_t *o = json_pack("{s:s,s:s,s:i}", "name", name, "email", email, "age",
                          (json_int_t)age);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        bench_die("etcd", "encode", "out of memory");
    json_t *v = b64((const unsigned char *)text, strlen(text));
    free(text);
    return v;
}

/* Decode a record's kv into row (strings copied out) and count it. */
static void take_record(const json_t *kv, bench_row *row, bench_result *r)
{
    unsigned char key[KEY_MAX], text[4 * BENCH_VALUE_MAX];
    size_t kl = unb64(json_object_get(kv, "key"), key, sizeof key);
    size_t vl = unb64(json_object_get(kv, "value"), text, sizeof text);
    json_t *o = json_loadb((const char *)text, vl, 0, NULL);
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *email = json_string_value(json_object_get(o, "email"));
    if (kl < 8 || !name || !email)
        bench_die("etcd", "record", "not a record");
    row->key = bench_get_be64(key + kl - 8);
    snprintf(row->name, sizeof row->name, "%s", name);
    snprintf(row->email, sizeof row->email, "%s", email);
    row->age = (uint32_t)json_integer_value(json_object_get(o, "age"));
    json_decref(o);
    bench_account(r, row->key, row->name, strlen(row->name), row->email,
                  strlen(row->email), row->age);
}

/* ---- reads -------------------------------------------------------------- */

/* A range request over [key, end) (end NULL: key alone) at the batch's
 * revision, taking it from the first reply. */
static json_t *range(etcd_handle *h, json_t *key, json_t *end, bool keys_only)
{
    json_t *body = json_pack("{s:o}", "key", key);
    if (end)
        json_object_set_new(body, "range_end", end);
    if (keys_only)
        json_object_set_new(body, "keys_only", json_true());
    if (h->rev)
        json_object_set_new(body, "revision", json_integer(h->rev));
    json_t *r = call(h, "/v3/kv/range", body);
    if (!h->rev)
        h->rev = int_field(json_object_get(r, "header"), "revision");
    return r;
}

/* Operation i of a read phase: a new snapshot every BENCH_READ_BATCH. */
static void read_batch(etcd_handle *h, size_t i)
{
    if (i % BENCH_READ_BATCH == 0)
        h->rev = 0;
}

static json_t *get_record(etcd_handle *h, uint64_t id)
{
    unsigned char k[KEY_MAX];
    return range(h, b64(k, record_key(h, id, k)), NULL, false);
}

static void take_records(const json_t *kvs, bench_result *r)
{
    size_t i;
    const json_t *kv;
    json_array_foreach(kvs, i, kv) {
        bench_row row;
        take_record(kv, &row, r);
    }
}

static void et_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    etcd_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        read_batch(h, i);
        json_t *reply = get_record(h, keys[i]);
        const json_t *kvs = json_object_get(reply, "kvs");
        if (json_array_size(kvs) != 1)
            bench_die("etcd", "get", "no such record");
        take_records(kvs, r);
        json_decref(reply);
    }
}

/* The records of index keys kvs, in one request: a get for one, else a
 * txn of range requests at the batch's revision. */
static void fetch_records(etcd_handle *h, const json_t *kvs, bench_result *r)
{
    size_t n = json_array_size(kvs), i;
    const json_t *kv;
    if (n == 0)
        return;
    json_t *ops = json_array();
    json_array_foreach(kvs, i, kv) {
        unsigned char k[KEY_MAX];
        size_t kl = unb64(json_object_get(kv, "key"), k, sizeof k);
        unsigned char rk[KEY_MAX];
        json_t *key = b64(rk, record_key(h, bench_get_be64(k + kl - 8), rk));
        if (n == 1) {
            json_decref(ops);
            json_t *reply = range(h, key, NULL, false);
            take_records(json_object_get(reply, "kvs"), r);
            json_decref(reply);
            return;
        }
        json_array_append_new(ops, json_pack("{s:{s:o,s:I}}", "request_range", "key",
                                             key, "revision", (json_int_t)h->rev));
    }
    json_t *reply = call(h, "/v3/kv/txn", json_pack("{s:o}", "success", ops));
    json_array_foreach(json_object_get(reply, "responses"), i, kv)
        take_records(json_object_get(json_object_get(kv, "response_range"), "kvs"), r);
    json_decref(reply);
}

static void et_by_name(void *hp, const char *const *names, size_t n, bench_result *r)
{
    etcd_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        unsigned char lo[KEY_MAX], hi[KEY_MAX];
        read_batch(h, i);
        json_t *reply = range(h, b64(lo, index_key(h, names[i], 0, false, lo) - 8),
                              b64(hi, index_key(h, names[i], 0, true, hi)), true);
        fetch_records(h, json_object_get(reply, "kvs"), r);
        json_decref(reply);
    }
}

static void et_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                    bench_result *r)
{
    etcd_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        unsigned char lo[KEY_MAX], hi[KEY_MAX];
        read_batch(h, i);
        json_t *reply = range(h, b64(lo, record_key(h, starts[i], lo)),
                              b64(hi, record_key(h, starts[i] + len, hi)), false);
        take_records(json_object_get(reply, "kvs"), r);
        json_decref(reply);
    }
}

/* ---- writes ------------------------------------------------------------- */

/* Send a txn of compares cmp and success ops ok (both consumed); dies when
 * it fails. */
static void commit(etcd_handle *h, json_t *cmp, json_t *ok)
{
    json_t *reply = call(h, "/v3/kv/txn", json_pack("{s:o,s:o}", "compare", cmp,
                                                    "success", ok));
    if (!json_is_true(json_object_get(reply, "succeeded")))
        bench_die("etcd", "txn", "a compare failed");
    json_decref(reply);
}

static json_t *put(json_t *key, json_t *value)
{
    return json_pack("{s:{s:o,s:o}}", "request_put", "key", key, "value", value);
}

static json_t *del(json_t *key)
{
    return json_pack("{s:{s:o}}", "request_delete_range", "key", key);
}

static void et_load(void *hp, const bench_user *u, size_t first, size_t n,
                    size_t txn_size, bench_result *r)
{
    etcd_handle *h = hp;
    n += first;
    for (size_t i = first; i < n; i += txn_size) {
        json_t *ok = json_array();
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            unsigned char k[KEY_MAX];
            json_array_append_new(ok, put(b64(k, record_key(h, j + 1, k)),
                                          record_value(u[j].name, u[j].email,
                                                       u[j].age)));
            json_array_append_new(ok, put(b64(k, index_key(h, u[j].name, j + 1, false, k)),
                                          json_string("")));
            r->rows++;
            r->sum += j + 1;
        }
        commit(h, json_array(), ok);
    }
}

/* Read record id for a write: its fields into row, and the compare that
 * it is unchanged at commit. */
static json_t *read_for_write(etcd_handle *h, uint64_t id, bench_row *row)
{
    h->rev = 0; /* the latest: a write transaction reads what is there now */
    json_t *reply = get_record(h, id);
    const json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0);
    if (!kv)
        bench_die("etcd", "write", "no such record");
    bench_result ignored = {0, 0};
    take_record(kv, row, &ignored);
    unsigned char k[KEY_MAX];
    json_t *cmp = json_pack("{s:o,s:s,s:s,s:I}", "key", b64(k, record_key(h, id, k)),
                            "target", "MOD", "result", "EQUAL", "mod_revision",
                            (json_int_t)int_field(kv, "mod_revision"));
    json_decref(reply);
    h->rev = 0;
    return cmp;
}

/* Renames (names) or removals (names NULL), txn_size to a txn. */
static void write_txns(etcd_handle *h, const uint64_t *keys, const char *const *names,
                       size_t n, size_t txn_size, bench_result *r)
{
    for (size_t i = 0; i < n; i += txn_size) {
        json_t *cmp = json_array(), *ok = json_array();
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            bench_row row;
            unsigned char k[KEY_MAX];
            json_array_append_new(cmp, read_for_write(h, keys[j], &row));
            json_array_append_new(ok, del(b64(k, index_key(h, row.name, keys[j], false, k))));
            if (names) {
                json_array_append_new(ok, put(b64(k, record_key(h, keys[j], k)),
                                              record_value(names[j], row.email, row.age)));
                json_array_append_new(ok, put(b64(k, index_key(h, names[j], keys[j],
                                                               false, k)),
                                              json_string("")));
            } else {
                json_array_append_new(ok, del(b64(k, record_key(h, keys[j], k))));
            }
            r->rows++;
            r->sum += keys[j];
        }
        commit(h, cmp, ok);
    }
}

static void et_rename(void *hp, const uint64_t *keys, const char *const *names, size_t n,
                      size_t txn_size, bench_result *r)
{
    write_txns(hp, keys, names, n, txn_size, r);
}

static void et_remove(void *hp, const uint64_t *keys, size_t n, size_t txn_size,
                      bench_result *r)
{
    write_txns(hp, keys, NULL, n, txn_size, r);
}

/* ---- the engine --------------------------------------------------------- */

static void *et_open(const void *arg, const char *dir, size_t n, bool durable)
{
    (void)arg;
    (void)n;
    (void)durable; /* always: the Raft log is flushed at every commit */
    etcd_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("etcd", "open", "out of memory");
    const char *endpoints = cluster();
    size_t first = strcspn(endpoints, ",");
    snprintf(h->base, sizeof h->base, "%.*s", (int)first, endpoints);
    store_prefix(dir, h->prefix, sizeof h->prefix);
    h->prefix_len = strlen(h->prefix);
    h->curl = curl_easy_init();
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h->curl || !h->headers)
        bench_die("etcd", "open", "libcurl failed");
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, 30000L);
    return h;
}

static void et_close(void *hp)
{
    etcd_handle *h = hp;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h->reply);
    free(h);
}

static const char *et_version(void)
{
    static char v[64];
    snprintf(v, sizeof v, "libcurl %s, jansson %s",
             curl_version_info(CURLVERSION_NOW)->version, JANSSON_VERSION);
    return v;
}

static unsigned long long et_trips(void *hp)
{
    return ((etcd_handle *)hp)->trips;
}

const bench_engine bench_etcd = {
    "etcd", NULL, true, false, et_version, et_open, et_close,
    et_load, et_get, et_by_name, et_scan, et_rename, et_remove, et_trips,
};
