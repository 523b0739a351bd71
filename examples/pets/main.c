/*
 * The pets schema end to end on the API kivis-gen generates from
 * pets.kvs: auto-increment, composite and derived keys, index lookups
 * (exact, prefix, range), following a foreign key, a transaction, removal
 * with its index entries, reverse scans, counts and the distinct values
 * of an index; a foreign key that must name a record and whose removal
 * cascades ([[references(cascade)]]), and an optional field ([[optional]])
 * absent, present, and looked up by its absence.
 *
 *   example_pets                 LMDB in a fresh temporary directory,
 *                                removed at the end
 *   example_pets --lmdb DIR      LMDB in DIR, kept (kivis dump DIR reads it)
 *   example_pets --memory        the in-memory B+tree
 *   example_pets --postgres CONNINFO   a PostgreSQL server (table kivis_kv),
 *                                when built with the PostgreSQL backend
 *   example_pets --etcd ENDPOINTS     an etcd cluster (prefix "kivis/"),
 *                                when built with the etcd backend
 *
 * The session expects a new store: an empty directory, table or prefix.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "pets.kivis.h"

#include <kivis/lmdb.h>
#include <kivis/memory.h>
#ifdef KIVIS_WITH_POSTGRES
#include <kivis/postgres.h> /* optional backend */
#endif
#ifdef KIVIS_WITH_ETCD
#include <kivis/etcd.h> /* optional backend */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check(pets_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "pets: %s: %s (%s)\n", what, kivis_strerror(rc),
            pets_errmsg(db));
    exit(1);
}

/* A cursor ends with KIVIS_NOTFOUND; anything else is an error. */
static void check_end(pets_db *db, int rc, const char *what)
{
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, what);
}

/* The derived key pets.kvs asks for: FNV-1a of the blob's bytes. */
blob_key blob_derive_key(const blob *rec)
{
    blob_key k;
    k.hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < rec->data.len; i++)
        k.hash = (k.hash ^ rec->data.data[i]) * 0x100000001b3ull;
    return k;
}

static const char *toy_name(toy_kind k)
{
    return k == TOY_BALL ? "ball" : "mouse";
}

static user_key add_user(pets_db *db, const char *name, const char *email,
                         uint32_t age)
{
    user u = {(char *)name, (char *)email, age};
    user_key k;
    check(db, user_put(db, &u, &k), "user_put");
    printf("  user_put   %-6s -> user_key{%llu}\n", name,
           (unsigned long long)k.id);
    return k;
}

static void list_users(pets_db *db, unsigned flags, const char *title)
{
    user_cursor c;
    user_key k;
    user u;
    int rc;
    printf("%s\n", title);
    check(db, user_scan(db, NULL, NULL, flags, &c), "user_scan");
    while ((rc = user_next(&c, &k, &u)) == KIVIS_OK) {
        printf("  user %llu: %-6s %-18s age %u\n", (unsigned long long)k.id,
               u.name, u.email, u.age);
        user_clear(db, &u);
    }
    user_close(&c);
    check_end(db, rc, "user_next");
}

/* Print the keys a user cursor yields. */
static void print_user_keys(pets_db *db, user_cursor *c)
{
    user_key k;
    int n = 0, rc;
    while ((rc = user_next(c, &k, NULL)) == KIVIS_OK)
        printf("%s user_key{%llu}", n++ ? "," : "", (unsigned long long)k.id);
    printf("%s\n", n ? "" : " (none)");
    user_close(c);
    check_end(db, rc, "user_next");
}

static void users_named(pets_db *db, const char *name)
{
    user_cursor c;
    printf("user_by_name == \"%s\":", name);
    check(db, user_by_name(db, name, 0, &c), "user_by_name");
    print_user_keys(db, &c);
}

static void users_starting(pets_db *db, const char *prefix)
{
    user_cursor c;
    printf("user_by_name_prefix \"%s\":", prefix);
    check(db, user_by_name_prefix(db, prefix, strlen(prefix), 0, &c),
          "user_by_name_prefix");
    print_user_keys(db, &c);
}

static void users_between(pets_db *db, const char *lo, const char *hi)
{
    user_cursor c;
    printf("user_by_name_range [\"%s\", \"%s\"):", lo, hi);
    check(db, user_by_name_range(db, lo, hi, 0, &c), "user_by_name_range");
    print_user_keys(db, &c);
}

static void pets_with_toy(pets_db *db, toy_key t)
{
    pet_cursor c;
    pet p;
    int rc;
    printf("pets whose favourite toy is the %s of colour %u:\n",
           toy_name(t.kind), t.color);
    check(db, pet_by_favourite_toy(db, t, 0, &c), "pet_by_favourite_toy");
    while ((rc = pet_next(&c, NULL, &p)) == KIVIS_OK) {
        user owner;
        /* pets_get picks the user table from the user_key's type. */
        check(db, pets_get(db, p.owner, &owner), "follow pet.owner");
        printf("  %-5s owned by %s\n", p.name, owner.name);
        user_clear(db, &owner);
    }
    pet_close(&c);
    check_end(db, rc, "pet_next");
}

static void list_toys_reverse(pets_db *db)
{
    toy_cursor c;
    toy_key k;
    int rc;
    printf("toys, reverse key order:");
    check(db, toy_scan(db, NULL, NULL, KIVIS_REVERSE, &c), "toy_scan");
    while ((rc = toy_next(&c, &k, NULL)) == KIVIS_OK)
        printf(" {%s, %u}", toy_name(k.kind), k.color);
    printf("\n");
    toy_close(&c);
    check_end(db, rc, "toy_next");
}

static void add_toys(pets_db *db)
{
    toy toys[] = {{TOY_BALL, 1}, {TOY_BALL, 2}, {TOY_MOUSE, 1}};
    for (int i = 0; i < 3; i++) {
        toy_key k;
        check(db, toy_put(db, &toys[i], &k), "toy_put");
        printf("  toy_put %-5s %u -> toy_key{%s, %u}\n",
               toy_name(toys[i].kind), toys[i].color, toy_name(k.kind),
               k.color);
    }
}

/* A pet's chip number, or "none" when the optional field is absent. */
static const char *chip_text(const pet *p, char buf[24])
{
    if (!p->has_chip)
        return "none";
    snprintf(buf, 24, "%llu", (unsigned long long)p->chip);
    return buf;
}

/* Three pets in one transaction: rex has a chip, tom and fido have none
 * (has_chip false).  keys[] gets their keys. */
static void add_pets(pets_db *db, user_key alice, user_key bob, pet_key keys[3])
{
    pet pets[] = {{"rex", alice, {TOY_BALL, 2}, true, 250268500012345ull},
                  {"tom", bob, {TOY_MOUSE, 1}, false, 0},
                  {"fido", bob, {TOY_BALL, 2}, false, 0}};
    check(db, pets_begin(db), "begin");
    for (int i = 0; i < 3; i++) {
        char chip[24];
        check(db, pet_add(db, &pets[i], &keys[i]), "pet_add");
        printf("  pet_add    %-5s chip %-15s -> pet_key{%llu}\n", pets[i].name,
               chip_text(&pets[i], chip), (unsigned long long)keys[i].id);
    }
    check(db, pets_commit(db), "commit");
}

/* The owner must exist: a pet of a user that was never stored is refused
 * and nothing is written. */
static void add_stray(pets_db *db)
{
    pet stray = {"stray", {99}, {TOY_BALL, 1}, false, 0};
    int rc = pet_add(db, &stray, NULL);
    printf("  pet_add    stray of user_key{99}, who does not exist -> %s\n",
           kivis_errname(rc));
    if (rc != KIVIS_ECONSTRAINT)
        check(db, rc == KIVIS_OK ? KIVIS_EINVAL : rc, "pet_add stray");
}

static void list_pets(pets_db *db, const char *title)
{
    pet_cursor c;
    pet_key k;
    pet p;
    uint64_t n;
    int rc;
    check(db, pet_count(db, &n), "pet_count");
    printf("%s (pet_count -> %llu)\n", title, (unsigned long long)n);
    check(db, pet_scan(db, NULL, NULL, 0, &c), "pet_scan");
    while ((rc = pet_next(&c, &k, &p)) == KIVIS_OK) {
        char chip[24];
        printf("  pet %llu: %-5s owner user_key{%llu}, chip %s\n",
               (unsigned long long)k.id, p.name, (unsigned long long)p.owner.id,
               chip_text(&p, chip));
    }
    pet_close(&c);
    check_end(db, rc, "pet_next");
}

/* The index of an optional field also holds its absent values. */
static void pets_without_chip(pets_db *db)
{
    pet_cursor c;
    pet p;
    uint64_t n;
    int rc;
    check(db, pet_count_by_chip_absent(db, &n), "pet_count_by_chip_absent");
    printf("pet_by_chip_absent (pet_count_by_chip_absent -> %llu):",
           (unsigned long long)n);
    check(db, pet_by_chip_absent(db, 0, &c), "pet_by_chip_absent");
    while ((rc = pet_next(&c, NULL, &p)) == KIVIS_OK)
        printf(" %s", p.name);
    printf("\n");
    pet_close(&c);
    check_end(db, rc, "pet_next");
}

/* An update that makes the optional field present: tom gets a chip, and
 * his chip index entry moves from the absent ones to his number. */
static void give_chip(pets_db *db, pet_key k, uint64_t number)
{
    pet p;
    uint64_t n;
    check(db, pet_get(db, k, &p), "pet_get");
    p.has_chip = true;
    p.chip = number;
    check(db, pet_update(db, k, &p), "pet_update");
    check(db, pet_count_by_chip(db, number, &n), "pet_count_by_chip");
    printf("pet_update %s: chip %llu (pet_count_by_chip -> %llu)\n", p.name,
           (unsigned long long)number, (unsigned long long)n);
}

static void add_blob(pets_db *db)
{
    uint8_t photo[] = {0x89, 'P', 'N', 'G', 0, 1, 2, 3};
    blob b;
    blob_key k;
    b.data.data = photo;
    b.data.len = sizeof photo;
    check(db, blob_put(db, &b, &k), "blob_put");
    printf("  blob_put %zu bytes -> blob_key{%016llx}\n", sizeof photo,
           (unsigned long long)k.hash);
    blob again;
    check(db, pets_get(db, k, &again), "pets_get blob");
    printf("  pets_get(blob_key) -> %zu bytes back\n", again.data.len);
    blob_clear(db, &again);
}

/* Counts read keys and index entries only: no record is decoded. */
static void count_users(pets_db *db, user_key alice)
{
    uint64_t all, ali;
    check(db, user_count(db, &all), "user_count");
    check(db, user_count_by_name_prefix(db, "ali", 3, &ali),
          "user_count_by_name_prefix");
    printf("user_count -> %llu, user_count_by_name_prefix \"ali\" -> %llu, "
           "user_exists(alice) -> %s\n",
           (unsigned long long)all, (unsigned long long)ali,
           kivis_errname(user_exists(db, alice)));
}

/* Pets per favourite toy: each toy once, with its count, from the index. */
static void pets_per_toy(pets_db *db)
{
    pet_distinct_favourite_toy_cursor c;
    toy_key t;
    uint64_t n;
    int rc;
    printf("pets per favourite toy:");
    check(db, pet_distinct_favourite_toy(db, 0, &c), "pet_distinct_favourite_toy");
    while ((rc = pet_distinct_favourite_toy_next(&c, &t, &n)) == KIVIS_OK)
        printf(" %s %u: %llu;", toy_name(t.kind), t.color, (unsigned long long)n);
    printf("\n");
    pet_distinct_favourite_toy_close(&c);
    check_end(db, rc, "pet_distinct_favourite_toy_next");
}

/* The temporary LMDB directory, removed at exit (check() exits too). */
static char temp_dir[4096];

static void remove_temp_dir(void)
{
    /* An LMDB environment is these two files; nothing else goes there. */
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[sizeof temp_dir + 16];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", temp_dir, files[i]);
        unlink(path);
    }
    rmdir(temp_dir);
}

static void make_temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/kivis-pets-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(temp_dir)) {
        perror("pets: mkdtemp");
        exit(1);
    }
    atexit(remove_temp_dir);
}

/* A server's store (--postgres CONNINFO, --etcd ENDPOINTS) when this
 * build has its backend; NULL when the option is not one of them. */
static kivis_storage *open_server_store(const char *option, const char *where)
{
    kivis_storage *st = NULL;
#ifdef KIVIS_WITH_POSTGRES
    if (!strcmp(option, "--postgres")) {
        int rc = kivis_postgres_open(where, NULL, &st);
        if (rc != KIVIS_OK) {
            fprintf(stderr, "pets: postgres_open: %s (%s)\n", kivis_strerror(rc),
                    kivis_postgres_errmsg());
            exit(1);
        }
        printf("store: PostgreSQL, table kivis_kv\n");
    }
#endif
#ifdef KIVIS_WITH_ETCD
    if (!strcmp(option, "--etcd")) {
        int rc = kivis_etcd_open(where, NULL, &st);
        if (rc != KIVIS_OK) {
            fprintf(stderr, "pets: etcd_open: %s (%s)\n", kivis_strerror(rc),
                    kivis_etcd_errmsg());
            exit(1);
        }
        printf("store: etcd, prefix kivis/\n");
    }
#endif
    (void)option, (void)where;
    return st;
}

/* Open the store the command line asks for:
 * [--memory | --lmdb DIR | --postgres CONNINFO | --etcd ENDPOINTS]. */
static kivis_storage *open_store(int argc, char **argv)
{
    kivis_storage *st;
    if (argc == 2 && !strcmp(argv[1], "--memory")) {
        check(NULL, kivis_memory_open(NULL, &st), "memory_open");
        printf("store: in memory\n");
        return st;
    }
    if (argc == 3 && (st = open_server_store(argv[1], argv[2])))
        return st;
    const char *dir;
    if (argc == 3 && !strcmp(argv[1], "--lmdb")) {
        dir = argv[2];
        printf("store: LMDB in %s (kept)\n", dir);
    } else if (argc == 1) {
        make_temp_dir();
        dir = temp_dir;
        printf("store: LMDB in %s (temporary, removed at the end)\n", dir);
    } else {
        fprintf(stderr, "usage: %s [--memory | --lmdb DIR | --postgres CONNINFO"
                        " | --etcd ENDPOINTS]\n", argv[0]);
        exit(2);
    }
    check(NULL, kivis_lmdb_open(dir, NULL, &st), "lmdb_open");
    return st;
}

/* The session's keys and output assume a new store: --lmdb DIR of an
 * earlier run would hold its users and pets, and new ids after theirs. */
static int holds_users(pets_db *db)
{
    user_cursor c;
    int rc;
    check(db, user_scan(db, NULL, NULL, 0, &c), "user_scan");
    rc = user_next(&c, NULL, NULL);
    user_close(&c);
    check_end(db, rc, "user_next");
    return rc == KIVIS_OK;
}

int main(int argc, char **argv)
{
    pets_db *db;
    kivis_storage *st = open_store(argc, argv);
    check(NULL, pets_open(st, NULL, &db), "open");
    if (holds_users(db)) {
        fprintf(stderr, "pets: the store already holds users; give a new or "
                        "empty one (directory, table or prefix)\n");
        pets_close(db);
        kivis_storage_close(st);
        return 1;
    }
    printf("opened schema \"%s\" on the %s backend\n\n", pets_schema.name,
           st->methods->name);

    printf("auto-increment keys:\n");
    user_key alice = add_user(db, "alice", "alice@example.org", 34);
    user_key bob = add_user(db, "bob", "bob@example.org", 27);
    add_user(db, "alina", "alina@example.org", 19);

    printf("\ncomposite keys (toy_key = kind, colour):\n");
    add_toys(db);
    printf("\nforeign keys (pet.owner is a user_key), in one transaction;\n"
           "chip is optional:\n");
    pet_key pets[3];
    add_pets(db, alice, bob, pets);
    add_stray(db);
    printf("\nderived key (content hash):\n");
    add_blob(db);

    printf("\n");
    list_users(db, 0, "all users:");
    users_named(db, "bob");
    users_starting(db, "ali");
    users_between(db, "alina", "bz");
    toy_key ball2 = {TOY_BALL, 2};
    pets_with_toy(db, ball2);
    list_toys_reverse(db);
    count_users(db, alice);
    pets_per_toy(db);

    printf("\nthe optional chip: tom and fido have none, then tom gets one\n");
    list_pets(db, "all pets:");
    pets_without_chip(db);
    give_chip(db, pets[1], 250268500067890ull);
    pets_without_chip(db);

    printf("\nbob is renamed to robert (his index entry moves with him)\n");
    user robert = {(char *)"robert", (char *)"bob@example.org", 28};
    check(db, user_update(db, bob, &robert), "user_update");
    users_named(db, "bob");
    users_named(db, "robert");

    printf("\nalice is removed (with her index entry); the cascade removes her "
           "pet rex\n");
    check(db, user_remove(db, alice), "user_remove");
    list_pets(db, "all pets:");
    users_starting(db, "ali");
    user gone;
    printf("user_get(alice) -> %s\n",
           kivis_errname(user_get(db, alice, &gone)));
    count_users(db, alice);
    list_users(db, KIVIS_REVERSE, "all users, reverse:");

    pets_close(db);
    kivis_storage_close(st);
    printf("\ndone\n");
    return 0;
}
