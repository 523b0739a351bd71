/*
 * The pets session of DESIGN.md, end to end on the in-memory B+tree:
 * auto-increment, composite and derived keys, index lookups, following a
 * foreign key, a transaction, removal with its index entries, reverse scans.
 * Until kivis-gen exists the descriptor is written by hand (pets_schema.c).
 */
#include "pets_schema.h"

#include <kivis.h>
#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(kivis_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "demo: %s: %s (%s)\n", what, kivis_strerror(rc),
            kivis_errmsg(db));
    exit(1);
}

static const char *toy_name(enum toy_kind k)
{
    return k == TOY_BALL ? "ball" : "mouse";
}

static user_key add_user(kivis_db *db, const char *name, const char *email,
                         uint32_t age)
{
    user u = {(char *)name, (char *)email, age};
    user_key k;
    check(db, kivis_put(db, PETS_USER, &u, &k), "put user");
    printf("  user_put   %-6s -> user_key{%llu}\n", name, (unsigned long long)k.id);
    return k;
}

static void list_users(kivis_db *db, uint32_t flags, const char *title)
{
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, flags};
    kivis_scan *s;
    check(db, kivis_scan_open(db, &q, &s), "scan users");
    printf("%s\n", title);
    user_key k;
    user u;
    int rc;
    while ((rc = kivis_scan_next(s, &k, &u)) == KIVIS_OK) {
        printf("  user %llu: %-6s %-18s age %u\n", (unsigned long long)k.id,
               u.name, u.email, u.age);
        kivis_record_clear(db, PETS_USER, &u);
    }
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, "scan users");
    kivis_scan_close(s);
}

static void users_named(kivis_db *db, uint32_t mode, const char *name)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, mode, &name, NULL, name,
                     strlen(name), 0};
    kivis_scan *s;
    check(db, kivis_scan_open(db, &q, &s), "index lookup");
    printf("user_by_name %s \"%s\":", mode == KIVIS_Q_EQ ? "==" : "prefix", name);
    user_key k;
    int n = 0;
    while (kivis_scan_next(s, &k, NULL) == KIVIS_OK)
        printf("%s user_key{%llu}", n++ ? "," : "", (unsigned long long)k.id);
    printf("%s\n", n ? "" : " (none)");
    kivis_scan_close(s);
}

static void pets_with_toy(kivis_db *db, toy_key t)
{
    kivis_query q = {PETS_PET, PET_BY_FAVOURITE_TOY, KIVIS_Q_EQ, &t, NULL, NULL, 0, 0};
    kivis_scan *s;
    check(db, kivis_scan_open(db, &q, &s), "pet index");
    printf("pets whose favourite toy is the %s of colour %u:\n",
           toy_name(t.kind), t.color);
    pet p;
    while (kivis_scan_next(s, NULL, &p) == KIVIS_OK) {
        user owner;
        check(db, kivis_get(db, PETS_USER, &p.owner, &owner), "follow pet.owner");
        printf("  %-5s owned by %s\n", p.name, owner.name);
        kivis_record_clear(db, PETS_USER, &owner);
    }
    kivis_scan_close(s);
}

int main(void)
{
    kivis_storage *st;
    kivis_db *db;
    check(NULL, kivis_memory_open(NULL, &st), "memory_open");
    check(NULL, kivis_open(st, &pets_schema, NULL, &db), "open");
    printf("opened schema \"%s\" on the %s backend\n\n", pets_schema.name,
           st->methods->name);

    printf("auto-increment keys:\n");
    user_key alice = add_user(db, "alice", "alice@example.org", 34);
    user_key bob = add_user(db, "bob", "bob@example.org", 27);
    add_user(db, "alina", "alina@example.org", 19);

    printf("\ncomposite keys (toy_key = kind, colour):\n");
    toy toys[] = {{TOY_BALL, 1}, {TOY_BALL, 2}, {TOY_MOUSE, 1}};
    for (int i = 0; i < 3; i++) {
        toy_key k;
        check(db, kivis_put(db, PETS_TOY, &toys[i], &k), "put toy");
        printf("  toy_insert %-5s %u -> toy_key{%s, %u}\n", toy_name(toys[i].kind),
               toys[i].color, toy_name(k.kind), k.color);
    }

    printf("\nforeign keys (pet.owner is a user_key), in one transaction:\n");
    check(db, kivis_begin(db), "begin");
    pet pets[] = {{"rex", alice, {TOY_BALL, 2}},
                  {"tom", bob, {TOY_MOUSE, 1}},
                  {"fido", bob, {TOY_BALL, 2}}};
    for (int i = 0; i < 3; i++) {
        pet_key k;
        check(db, kivis_put(db, PETS_PET, &pets[i], &k), "put pet");
        printf("  pet_put    %-5s -> pet_key{%llu}\n", pets[i].name,
               (unsigned long long)k.id);
    }
    check(db, kivis_commit(db), "commit");

    printf("\nderived key (content hash):\n");
    uint8_t photo[] = {0x89, 'P', 'N', 'G', 0, 1, 2, 3};
    blob b = {{photo, sizeof photo}};
    blob_key bk;
    check(db, kivis_put(db, PETS_BLOB, &b, &bk), "put blob");
    printf("  blob of %zu bytes -> blob_key{%016llx}\n", sizeof photo,
           (unsigned long long)bk.hash);

    printf("\n");
    list_users(db, 0, "all users:");
    users_named(db, KIVIS_Q_EQ, "bob");
    users_named(db, KIVIS_Q_PREFIX, "ali");
    pets_with_toy(db, (toy_key){TOY_BALL, 2});

    printf("\nbob is renamed to robert (his index entry moves with him)\n");
    user robert = {"robert", "bob@example.org", 28};
    check(db, kivis_insert(db, PETS_USER, &bob, &robert), "rename");
    users_named(db, KIVIS_Q_EQ, "bob");
    users_named(db, KIVIS_Q_EQ, "robert");

    printf("\nalice is removed (with her index entry)\n");
    check(db, kivis_remove(db, PETS_USER, &alice), "remove");
    users_named(db, KIVIS_Q_PREFIX, "ali");
    list_users(db, KIVIS_REVERSE, "all users, reverse:");

    kivis_close(db);
    kivis_storage_close(st);
    printf("\ndone\n");
    return 0;
}
