/*
 * An application outside the kivis tree: it only sees the installed
 * headers, libraries and the code kivis-gen wrote for app.kvs.
 *
 * Built once per store: by default on the in-memory B+tree of libkivis
 * alone (no argument); with -DAPP_STORE_LMDB, _SQLITE or _ROCKSDB on that
 * backend's library, in the new store named by argv[1].
 */
#include "notes.kivis.h"

#include <kivis.h>

/* STORE_OPEN(path, &st) opens the store; APP_STORE_ARG: whether the
 * store takes a path (argv[1]). */
#if defined(APP_STORE_LMDB)
#include <kivis/lmdb.h>
#define STORE_OPEN(path, st) kivis_lmdb_open(path, NULL, st)
#define APP_STORE_ARG 1
#elif defined(APP_STORE_SQLITE)
#include <kivis/sqlite.h>
#define STORE_OPEN(path, st) kivis_sqlite_open(path, NULL, st)
#define APP_STORE_ARG 1
#elif defined(APP_STORE_ROCKSDB)
#include <kivis/rocksdb.h>
#define STORE_OPEN(path, st) kivis_rocksdb_open(path, NULL, st)
#define APP_STORE_ARG 1
#else
#include <kivis/memory.h>
#define STORE_OPEN(path, st) ((void)(path), kivis_memory_open(NULL, st))
#define APP_STORE_ARG 0
#endif

#include <stdio.h>
#include <string.h>

static int fail(notes_db *db, const char *what, int rc)
{
    fprintf(stderr, "app: %s: %s (%s)\n", what, kivis_strerror(rc), notes_errmsg(db));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 1 + APP_STORE_ARG) {
        fprintf(stderr, "usage: %s%s\n", argv[0], APP_STORE_ARG ? " STORE" : "");
        return 2;
    }
    const char *path = APP_STORE_ARG ? argv[1] : NULL;
    kivis_storage *st = NULL;
    notes_db *db = NULL;
    int rc = STORE_OPEN(path, &st);
    if (rc != KIVIS_OK)
        return fail(NULL, "opening the store", rc);
    rc = notes_open(st, NULL, &db);
    if (rc != KIVIS_OK) {
        kivis_storage_close(st);
        return fail(NULL, "kivis_open", rc);
    }

    char title[] = "hello";
    note rec = {0};
    rec.title = title;
    rec.stars = 5;
    note_key key;
    rc = note_put(db, &rec, &key);
    if (rc != KIVIS_OK)
        return fail(db, "note_put", rc);

    note out;
    rc = note_get(db, key, &out);
    if (rc != KIVIS_OK)
        return fail(db, "note_get", rc);
    int same = key.id == 1 && strcmp(out.title, "hello") == 0 && out.stars == 5;
    note_clear(db, &out);

    notes_close(db);
    kivis_storage_close(st);
    if (!same) {
        fprintf(stderr, "app: the record read back differs\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
