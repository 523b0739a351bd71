/*
 * src/storage/feedhub.c - the in-process change feed (see feedhub.h).
 */
#include "feedhub.h"

#include "btree.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* The ring keeps the last RING_CAP changes, fewer when their keys pass
 * RING_BYTES: a feed that falls further behind resumes with a resync. */
enum { RING_CAP = 16384 };
#define RING_BYTES ((size_t)8 << 20)

typedef struct entry {
    uint64_t pos;
    int kind;
    size_t len;
    unsigned char *key;
} entry;

typedef struct hub_feed hub_feed;

struct kivis__feedhub {
    kivis_allocator alloc;
    pthread_mutex_t lock; /* guards everything below */
    unsigned refs;        /* the storage's, and one per feed */
    bool recording;
    entry *ring;          /* RING_CAP entries once recording */
    size_t head, count;   /* oldest entry, entries held */
    size_t bytes;         /* key bytes held */
    uint64_t last;        /* position of the newest change */
    hub_feed *feeds;
};

struct hub_feed {
    kivis_feed feed; /* first: what the caller holds */
    kivis__feedhub *h;
    uint64_t at;     /* the last position returned */
    int efd;         /* eventfd, written when armed and a commit lands */
    bool armed;      /* the last next found nothing */
    unsigned char *key; /* the returned key's copy */
    size_t cap;
    hub_feed *prev, *next;
};

static void *h_malloc(const kivis__feedhub *h, size_t n)
{
    return h->alloc.malloc(h->alloc.ctx, n);
}

static void h_free(const kivis__feedhub *h, void *p)
{
    h->alloc.free(h->alloc.ctx, p);
}

/* ---- the hub ------------------------------------------------------------ */

static uint64_t clock_base(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1;
}

int kivis__feedhub_new(const kivis_allocator *alloc, kivis__feedhub **out)
{
    kivis__feedhub *h = alloc->malloc(alloc->ctx, sizeof *h);
    *out = h;
    if (!h)
        return KIVIS_ENOMEM;
    memset(h, 0, sizeof *h);
    h->alloc = *alloc;
    h->refs = 1;
    h->last = clock_base();
    pthread_mutex_init(&h->lock, NULL);
    return KIVIS_OK;
}

static void drop_oldest(kivis__feedhub *h)
{
    entry *e = &h->ring[h->head];
    h_free(h, e->key);
    h->bytes -= e->len;
    e->key = NULL;
    h->head = (h->head + 1) % RING_CAP;
    h->count--;
}

static void hub_free(kivis__feedhub *h)
{
    while (h->count)
        drop_oldest(h);
    h_free(h, h->ring);
    pthread_mutex_destroy(&h->lock);
    h_free(h, h);
}

size_t kivis__feedhub_bytes(kivis__feedhub *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = sizeof *h + h->bytes + (h->ring ? RING_CAP * sizeof *h->ring : 0);
    for (const hub_feed *f = h->feeds; f; f = f->next)
        n += sizeof *f + f->cap;
    pthread_mutex_unlock(&h->lock);
    return n;
}

/* Drop a reference under the lock; free the hub with the last one. */
static void unref_locked(kivis__feedhub *h)
{
    bool last = --h->refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        hub_free(h);
}

void kivis__feedhub_release(kivis__feedhub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    unref_locked(h);
}

bool kivis__feedhub_recording(kivis__feedhub *h)
{
    pthread_mutex_lock(&h->lock);
    bool on = h->recording;
    pthread_mutex_unlock(&h->lock);
    return on;
}

/* Append one entry, taking ownership of key (NULL for a resync). */
static void append(kivis__feedhub *h, int kind, unsigned char *key, size_t len)
{
    while (h->count && (h->count == RING_CAP || h->bytes + len > RING_BYTES))
        drop_oldest(h);
    entry *e = &h->ring[(h->head + h->count) % RING_CAP];
    *e = (entry){++h->last, kind, len, key};
    h->count++;
    h->bytes += len;
}

static void wake_feeds(kivis__feedhub *h)
{
    static const uint64_t one = 1;
    for (hub_feed *f = h->feeds; f; f = f->next)
        if (f->armed && write(f->efd, &one, sizeof one) == sizeof one)
            f->armed = false;
}

void kivis__feedhub_publish(kivis__feedhub *h, const kivis__change *c, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; h->recording && i < n; i++) {
        unsigned char *key = h_malloc(h, c[i].key.len);
        if (!key) {
            append(h, KIVIS_CHANGE_RESYNC, NULL, 0); /* the rest is lost */
            break;
        }
        memcpy(key, c[i].key.data, c[i].key.len);
        append(h, c[i].kind, key, c[i].key.len);
    }
    wake_feeds(h);
    pthread_mutex_unlock(&h->lock);
}

void kivis__feedhub_lost(kivis__feedhub *h)
{
    pthread_mutex_lock(&h->lock);
    if (h->recording) {
        append(h, KIVIS_CHANGE_RESYNC, NULL, 0);
        wake_feeds(h);
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---- feeds -------------------------------------------------------------- */

/* The change after f->at, under the hub's lock. */
static int take(hub_feed *f, kivis_change *out)
{
    kivis__feedhub *h = f->h;
    uint64_t horizon = h->last - h->count; /* every position up to it is gone */
    if (f->at < horizon || f->at > h->last) {
        f->at = horizon;
        *out = (kivis_change){horizon, KIVIS_CHANGE_RESYNC, {NULL, 0}};
        return KIVIS_OK;
    }
    if (f->at == h->last)
        return KIVIS_NOTFOUND;
    const entry *e = &h->ring[(h->head + (f->at - horizon)) % RING_CAP];
    if (e->len > f->cap) {
        unsigned char *p = h->alloc.realloc(h->alloc.ctx, f->key, e->len);
        if (!p)
            return KIVIS_ENOMEM;
        f->key = p;
        f->cap = e->len;
    }
    if (e->len)
        memcpy(f->key, e->key, e->len);
    f->at = e->pos;
    *out = (kivis_change){e->pos, e->kind, {f->key, e->len}};
    return KIVIS_OK;
}

static void drain_fd(int fd)
{
    uint64_t n;
    while (read(fd, &n, sizeof n) == sizeof n)
        ;
}

int kivis__feed_wait(int fd, const struct timespec *start, int timeout_ms)
{
    int wait = timeout_ms;
    if (timeout_ms > 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long spent = (long long)(now.tv_sec - start->tv_sec) * 1000 +
                          (now.tv_nsec - start->tv_nsec) / 1000000;
        if (spent >= timeout_ms)
            return 0;
        wait = (int)(timeout_ms - spent);
    }
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, wait);
    if (rc < 0)
        return errno == EINTR ? 1 : -1;
    return rc;
}

static int hf_next(kivis_feed *feed, int timeout_ms, kivis_change *out)
{
    hub_feed *f = (hub_feed *)feed;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        drain_fd(f->efd); /* before looking: a later commit writes it again */
        pthread_mutex_lock(&f->h->lock);
        int rc = take(f, out);
        f->armed = rc == KIVIS_NOTFOUND;
        pthread_mutex_unlock(&f->h->lock);
        if (rc != KIVIS_NOTFOUND || timeout_ms == 0)
            return rc;
        int ready = kivis__feed_wait(f->efd, &start, timeout_ms);
        if (ready <= 0)
            return ready == 0 ? KIVIS_NOTFOUND : KIVIS_EIO;
    }
}

static int hf_fd(kivis_feed *feed)
{
    return ((hub_feed *)feed)->efd;
}

static void hf_close(kivis_feed *feed)
{
    hub_feed *f = (hub_feed *)feed;
    kivis__feedhub *h = f->h;
    pthread_mutex_lock(&h->lock);
    if (f->prev)
        f->prev->next = f->next;
    else
        h->feeds = f->next;
    if (f->next)
        f->next->prev = f->prev;
    close(f->efd);
    h_free(h, f->key);
    h_free(h, f);
    unref_locked(h);
}

static const kivis_feed_methods hub_feed_methods = {hf_next, hf_fd, hf_close};

/* The ring, made when the first feed opens. */
static int start_recording(kivis__feedhub *h)
{
    if (h->recording)
        return KIVIS_OK;
    h->ring = h_malloc(h, RING_CAP * sizeof *h->ring);
    if (!h->ring)
        return KIVIS_ENOMEM;
    h->recording = true;
    return KIVIS_OK;
}

int kivis__feedhub_open(kivis__feedhub *h, uint64_t after, kivis_feed **out)
{
    *out = NULL;
    hub_feed *f = h_malloc(h, sizeof *f);
    if (!f)
        return KIVIS_ENOMEM;
    memset(f, 0, sizeof *f);
    f->feed.methods = &hub_feed_methods;
    f->feed.flags = 0; /* commits through this storage object only */
    f->h = h;
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (f->efd < 0) {
        h_free(h, f);
        return errno == ENOMEM ? KIVIS_ENOMEM : KIVIS_EIO;
    }
    pthread_mutex_lock(&h->lock);
    int rc = start_recording(h);
    if (rc == KIVIS_OK) {
        f->at = after == KIVIS_FEED_NOW ? h->last : after;
        f->next = h->feeds;
        if (f->next)
            f->next->prev = f;
        h->feeds = f;
        h->refs++;
    }
    pthread_mutex_unlock(&h->lock);
    if (rc != KIVIS_OK) {
        close(f->efd);
        h_free(h, f);
        return rc;
    }
    *out = &f->feed;
    return KIVIS_OK;
}

/* ---- collecting a commit's changes -------------------------------------- */

int kivis__feed_classify(kivis__feedhub *h, const kivis_allocator *alloc,
                         const kivis_batch_op *ops, size_t n,
                         kivis__existed_fn existed, void *ctx,
                         kivis__change **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (n == 0 || !kivis__feedhub_recording(h))
        return KIVIS_OK;
    kivis__change *c = alloc->malloc(alloc->ctx, n * sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = existed(ctx, ops[i].key);
        if (rc != KIVIS_OK && rc != KIVIS_NOTFOUND) {
            alloc->free(alloc->ctx, c);
            return rc;
        }
        bool was = rc == KIVIS_OK;
        if (ops[i].del && !was)
            continue; /* deleting nothing changes nothing */
        c[m].key = ops[i].key;
        c[m++].kind = ops[i].del ? KIVIS_CHANGE_DELETE
                                 : was ? KIVIS_CHANGE_UPDATE : KIVIS_CHANGE_INSERT;
    }
    *out = c;
    *nout = m;
    return KIVIS_OK;
}

/* Flags of a key in a feedset. */
enum { EXISTED = 1, EXISTS = 2 };

void kivis__feedset_begin(kivis__feedset *fs, kivis__feedhub *h,
                          const kivis_allocator *alloc)
{
    memset(fs, 0, sizeof *fs);
    fs->alloc = alloc;
    fs->on = kivis__feedhub_recording(h);
}

int kivis__feedset_touch(kivis__feedset *fs, kivis_storage_txn *txn,
                         kivis_slice key)
{
    fs->wrote = true;
    if (!fs->on)
        return KIVIS_OK;
    kivis_slice v;
    if (!fs->keys && kivis__btree_new(fs->alloc, &fs->keys) != KIVIS_OK)
        return KIVIS_ENOMEM;
    if (kivis__btree_get(fs->keys, key, &v) == KIVIS_OK)
        return KIVIS_OK; /* its state before the transaction is known */
    int rc = kivis_txn_get(txn, key, &v);
    if (rc != KIVIS_OK && rc != KIVIS_NOTFOUND)
        return rc;
    unsigned char flags = rc == KIVIS_OK ? EXISTED : 0;
    return kivis__btree_put(fs->keys, key, kivis_slice_make(&flags, 1));
}

static int kind_of(unsigned flags)
{
    switch (flags & (EXISTED | EXISTS)) {
    case EXISTED | EXISTS:
        return KIVIS_CHANGE_UPDATE;
    case EXISTED:
        return KIVIS_CHANGE_DELETE;
    case EXISTS:
        return KIVIS_CHANGE_INSERT;
    default:
        return 0; /* put, then deleted again: nothing changed */
    }
}

/* The change of each touched key, from its state before and now; keys
 * point into the set, which no longer changes. */
static int settle_all(kivis__feedset *fs, kivis_storage_txn *txn)
{
    size_t n = kivis__btree_count(fs->keys);
    fs->changes = fs->alloc->malloc(fs->alloc->ctx, n * sizeof *fs->changes);
    if (!fs->changes)
        return KIVIS_ENOMEM;
    kivis_bt_iter it;
    for (int rc = kivis__btree_first(fs->keys, &it); rc == KIVIS_OK;
         rc = kivis__btree_next(&it)) {
        kivis_slice key = kivis__bt_iter_key(&it), v;
        unsigned flags = *(const unsigned char *)kivis__bt_iter_value(&it).data;
        int got = kivis_txn_get(txn, key, &v);
        if (got != KIVIS_OK && got != KIVIS_NOTFOUND)
            return got;
        int kind = kind_of(flags | (got == KIVIS_OK ? EXISTS : 0));
        if (kind)
            fs->changes[fs->nchanges++] = (kivis__change){key, kind};
    }
    return KIVIS_OK;
}

void kivis__feedset_settle(kivis__feedset *fs, kivis_storage_txn *txn)
{
    if (fs->on && fs->keys && settle_all(fs, txn) != KIVIS_OK)
        fs->lost = true;
}

void kivis__feedset_publish(kivis__feedset *fs, kivis__feedhub *h)
{
    if (!fs->wrote)
        return;
    if (!fs->on || fs->lost)
        kivis__feedhub_lost(h); /* a no-op while nobody records */
    else
        kivis__feedhub_publish(h, fs->changes, fs->nchanges);
}

void kivis__feedset_free(kivis__feedset *fs)
{
    if (fs->changes)
        fs->alloc->free(fs->alloc->ctx, fs->changes);
    kivis__btree_free(fs->keys);
    fs->changes = NULL;
    fs->keys = NULL;
}
