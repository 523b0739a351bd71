/*
 * src/core/watch.c - typed watches over the storage's change feed: keep
 * the feed's changes under one table's record prefix and decode their keys.
 */
#include "engine.h"

#include <string.h>
#include <time.h>

struct kivis_watch {
    kivis_db *db;
    const kivis_table_desc *td;
    kivis_feed *feed;
    kivis_buf prefix; /* tableid | records slot */
};

int kivis_watch_open(kivis_db *db, uint32_t table, uint64_t after,
                     kivis_watch **out)
{
    if (out)
        *out = NULL;
    if (!db || !out || table >= db->schema->ntables)
        return KIVIS_EINVAL;
    kivis_watch *w = kivis__alloc(db, sizeof *w);
    if (!w)
        return KIVIS_ENOMEM;
    w->db = db;
    w->td = &db->schema->tables[table];
    kivis__buf_init(&w->prefix, &db->alloc);
    int rc = kivis__table_prefix(&w->prefix, &db->tables[table], KIVIS_SLOT_RECORDS);
    if (rc == KIVIS_OK)
        rc = kivis_feed_open(db->st, after, &w->feed);
    if (rc != KIVIS_OK) {
        kivis__buf_free(&w->prefix);
        kivis__free(db, w);
        return kivis__fail(db, rc, "%s: watch: %s", db->schema->tables[table].name,
                           rc == KIVIS_ENOTSUP ? "the storage has no change feed"
                                               : kivis_strerror(rc));
    }
    *out = w;
    return KIVIS_OK;
}

static bool is_record(const kivis_watch *w, kivis_slice key)
{
    return key.len > w->prefix.len &&
           memcmp(key.data, w->prefix.data, w->prefix.len) == 0;
}

/* Milliseconds left of timeout_ms since start (-1 stays -1). */
static int remaining(const struct timespec *start, int timeout_ms)
{
    if (timeout_ms <= 0)
        return timeout_ms;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long spent = (long long)(now.tv_sec - start->tv_sec) * 1000 +
                      (now.tv_nsec - start->tv_nsec) / 1000000;
    return spent >= timeout_ms ? 0 : (int)(timeout_ms - spent);
}

/* The record key after the table's prefix; zeroed when it does not decode
 * or leaves bytes over. */
static int decode_key(kivis_watch *w, kivis_slice key, void *key_out)
{
    kivis_slice pk = kivis_slice_make((const uint8_t *)key.data + w->prefix.len,
                                      key.len - w->prefix.len);
    return kivis__key_get_whole(pk, w->td->key, 0, key_out, &w->db->alloc);
}

int kivis_watch_next(kivis_watch *w, int timeout_ms, kivis_watch_event *ev,
                     void *key_out)
{
    if (!w || !ev)
        return KIVIS_EINVAL;
    if (key_out)
        memset(key_out, 0, w->td->key->size);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        kivis_change c;
        int rc = kivis_feed_next(w->feed, remaining(&start, timeout_ms), &c);
        if (rc != KIVIS_OK)
            return rc;
        if (c.kind != KIVIS_CHANGE_RESYNC && !is_record(w, c.key))
            continue; /* an index entry, another table, the schema */
        ev->kind = c.kind;
        ev->pos = c.pos;
        if (c.kind == KIVIS_CHANGE_RESYNC || !key_out)
            return KIVIS_OK;
        return decode_key(w, c.key, key_out);
    }
}

int kivis_watch_fd(const kivis_watch *w)
{
    return w ? kivis_feed_fd(w->feed) : -1;
}

void kivis_watch_close(kivis_watch *w)
{
    if (!w)
        return;
    kivis_feed_close(w->feed);
    kivis__buf_free(&w->prefix);
    kivis__free(w->db, w);
}
