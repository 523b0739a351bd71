/* Writes stores with kivis at b878dd0: users 1..5 with auto ids, then
 * removes 5 (the highest) and 3. */
#include <kivis.h>
#include <kivis/lmdb.h>
#include <kivis/sqlite.h>
#include <stdio.h>
#include <stdlib.h>
#include "pets_schema.h"

static void ck(int rc, const char *what)
{
    if (rc) { fprintf(stderr, "%s: %s\n", what, kivis_strerror(rc)); exit(1); }
}

static void fill(kivis_storage *st)
{
    kivis_db *db;
    ck(kivis_open(st, &pets_schema, NULL, &db), "open");
    char *names[] = {"ann", "bob", "cat", "dan", "eve"};
    for (int i = 0; i < 5; i++) {
        user u = {names[i], "x@example.org", 20u + (uint32_t)i};
        user_key k;
        ck(kivis_put(db, PETS_USER, &u, &k), "put");
        printf("put %s -> %llu\n", names[i], (unsigned long long)k.id);
    }
    user_key k5 = {5}, k3 = {3};
    ck(kivis_remove(db, PETS_USER, &k5), "remove 5");
    ck(kivis_remove(db, PETS_USER, &k3), "remove 3");
    kivis_close(db);
    kivis_storage_close(st);
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    kivis_storage *st;
    ck(kivis_sqlite_open(argv[1], NULL, &st), "sqlite");
    fill(st);
    ck(kivis_lmdb_open(argv[2], NULL, &st), "lmdb");
    fill(st);
    return 0;
}
