/*
 * tests/support/openers.h - a fresh store of each backend the record
 * engine's tests run on: memory, LMDB, SQLite, RocksDB (in the directory
 * given), a memory tier over LMDB (layered) and PostgreSQL (a table on the
 * program's private server, pgserver.h), and with KT_WITH_ETCD defined
 * before the include, an etcd cluster.  Apart from backends.h so that a
 * program on a schema other than pets can use them.
 *
 * Header-only: the test program that includes it must include
 * <kivis/layered.h>, <kivis/lmdb.h>, <kivis/memory.h>, <kivis/postgres.h>,
 * <kivis/rocksdb.h> and <kivis/sqlite.h> itself, which is how the build
 * sees which backends to link it with (tests/CMakeLists.txt).
 */
#ifndef KT_OPENERS_H
#define KT_OPENERS_H

#include "pgserver.h"

#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdio.h>

typedef int (*kt_open_fn)(const char *dir, kivis_storage **st);

static inline int kt_open_memory(const char *dir, kivis_storage **st)
{
    (void)dir;
    return kivis_memory_open(NULL, st);
}

static inline int kt_open_lmdb(const char *dir, kivis_storage **st)
{
    return kivis_lmdb_open(dir, NULL, st);
}

static inline int kt_open_sqlite(const char *dir, kivis_storage **st)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kv.sqlite", dir);
    return kivis_sqlite_open(path, NULL, st);
}

static inline int kt_open_rocksdb(const char *dir, kivis_storage **st)
{
    return kivis_rocksdb_open(dir, NULL, st);
}

/* A table of its own on the program's private server, emptied at every
 * open. */
static inline int kt_open_postgres(const char *dir, kivis_storage **st)
{
    (void)dir;
    kt_pg_exec("DROP TABLE IF EXISTS handles_kv");
    kivis_postgres_options opts = {NULL, NULL, "handles_kv", 0};
    return kivis_postgres_open(kt_pg_start(), &opts, st);
}

/* A 4 KiB memory cache over LMDB: reads and writes cross both tiers. */
static inline int kt_open_layered(const char *dir, kivis_storage **st)
{
    kivis_storage *mem, *disk;
    int rc = kivis_memory_open(NULL, &mem);
    if (rc)
        return rc;
    if ((rc = kivis_lmdb_open(dir, NULL, &disk))) {
        kivis_storage_close(mem);
        return rc;
    }
    kivis_layered_tier tiers[2] = {{mem, 4096, 0}, {disk, 0, 0}};
    rc = kivis_layered_open(tiers, 2, NULL, st);
    if (rc) {
        kivis_storage_close(mem);
        kivis_storage_close(disk);
    }
    return rc;
}

#ifdef KT_WITH_ETCD
#include "etcdcluster.h"

#include <kivis/etcd.h>

/* The keys under a prefix of their own on the program's private etcd
 * cluster (etcdcluster.h), wiped at every open.  A program that defines
 * KT_WITH_ETCD must include <kivis/etcd.h> itself (see above). */
static inline int kt_open_etcd(const char *dir, kivis_storage **st)
{
    (void)dir;
    const char *endpoints = kt_etcd_start();
    kt_etcd_wipe("kt/");
    kivis_etcd_options o = {.prefix = "kt/"};
    return kivis_etcd_open(endpoints, &o, st);
}
#endif

#endif
