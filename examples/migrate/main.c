/*
 * Typed migration: a store written with people_v1.kvs (person.name one
 * char[64], balance int64_t) opened with people_v2.kvs (name split into
 * first and last, balance narrowed to int32_t).  No declaration covers
 * either change, so the build runs kivis-gen --previous people_v1.kvs
 * people_v2.kvs, and person_migrate below converts each stored person
 * inside people_open's one write transaction.  A balance out of int32_t's
 * range makes it fail: the open is refused, the store left as v1 wrote
 * it; once that record is fixed the migration goes through.  Runs on the
 * memory backend and prints what it does.
 */
#include "people.kivis.h"    /* v2, with person_old and person_migrate */
#include "v1_people.kivis.h" /* v1, generated with --prefix v1_ */

#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What person_migrate counts, through kivis_options.migrate_ctx. */
typedef struct migrate_stats {
    unsigned people;
} migrate_stats;

/* Copy n bytes of text and a NUL into out (size bytes); KIVIS_ERANGE when
 * they do not fit. */
static int copy_part(char *out, size_t size, const char *text, size_t n)
{
    if (n >= size)
        return KIVIS_ERANGE;
    memcpy(out, text, n);
    out[n] = '\0';
    return KIVIS_OK;
}

/* "Ada Lovelace" -> first "Ada", last "Lovelace"; a name without a space
 * is a last name alone.  A balance that int32_t cannot hold is refused:
 * the whole open fails and names this record. */
int person_migrate(const person_old *old, person *out, void *ctx)
{
    migrate_stats *stats = ctx;
    if (old->balance < INT32_MIN || old->balance > INT32_MAX)
        return KIVIS_ERANGE;
    const char *space = strchr(old->name, ' ');
    const char *last = space ? space + 1 : old->name;
    int rc = copy_part(out->first, sizeof out->first, old->name,
                       space ? (size_t)(space - old->name) : 0);
    if (!rc)
        rc = copy_part(out->last, sizeof out->last, last, strlen(last));
    if (rc)
        return rc;
    out->id = old->id; /* the key stays: kivis_open checks it */
    out->balance = (int32_t)old->balance;
    out->role = old->role;
    stats->people++;
    return KIVIS_OK;
}

static void check(int rc, const char *what, const char *detail)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "migrate: %s: %s (%s)\n", what, kivis_strerror(rc), detail);
    exit(1);
}

static void write_v1(kivis_storage *st)
{
    static const struct {
        const char *name;
        int64_t balance;
        v1_role role;
    } people[] = {{"Ada Lovelace", 120000, V1_ADMIN},
                  {"Alan Turing", -2500, V1_MEMBER},
                  {"Grace Hopper", 5000000000, V1_MEMBER},
                  {"Hypatia", 42, V1_GUEST}};
    v1_people_db *db;
    check(v1_people_open(st, NULL, &db), "v1_people_open", "");
    check(v1_people_begin(db), "begin", v1_people_errmsg(db));
    for (uint32_t i = 0; i < sizeof people / sizeof people[0]; i++) {
        v1_person p = {i + 1, "", people[i].balance, people[i].role};
        snprintf(p.name, sizeof p.name, "%s", people[i].name);
        check(v1_person_put(db, &p, NULL), "v1_person_put", v1_people_errmsg(db));
        v1_note n = {{i + 1}, "first note"};
        check(v1_note_put(db, &n, NULL), "v1_note_put", v1_people_errmsg(db));
        printf("  v1 person %u: %-13s balance %lld\n", i + 1, people[i].name,
               (long long)people[i].balance);
    }
    check(v1_people_commit(db), "commit", v1_people_errmsg(db));
    v1_people_close(db);
}

/* Grace's balance, capped to what v2 can hold, with the v1 API. */
static void fix_v1(kivis_storage *st)
{
    v1_people_db *db;
    v1_person p;
    check(v1_people_open(st, NULL, &db), "v1_people_open", "");
    check(v1_person_get(db, (v1_person_key){3}, &p), "v1_person_get",
          v1_people_errmsg(db));
    p.balance = INT32_MAX;
    check(v1_person_put(db, &p, NULL), "v1_person_put", v1_people_errmsg(db));
    v1_person_clear(db, &p);
    v1_people_close(db);
    printf("  v1 person 3: balance capped to %d\n", INT32_MAX);
}

static void progress(void *ctx, const kivis_progress *p)
{
    (void)ctx;
    printf("  %s %s: %llu of %llu\n",
           p->phase == KIVIS_PROGRESS_REWRITE ? "migrating" : "indexing", p->table,
           (unsigned long long)p->done, (unsigned long long)p->total);
}

/* Open with v2: the migration runs, or the open fails and says why. */
static int open_v2(kivis_storage *st, people_db **db, migrate_stats *stats)
{
    char msg[256] = "";
    kivis_options o = {.errbuf = msg, .errbuf_size = sizeof msg,
                       .progress = progress, .migrate_ctx = stats};
    int rc = people_open(st, &o, db);
    if (rc)
        printf("  people_open -> %s: %s\n", kivis_errname(rc), msg);
    return rc;
}

static void list_v2(people_db *db)
{
    person_cursor cur;
    person p;
    check(person_by_last_range(db, NULL, NULL, 0, &cur), "person_by_last_range",
          people_errmsg(db));
    while (person_next(&cur, NULL, &p) == KIVIS_OK) {
        uint64_t notes = 0;
        check(note_count_by_who(db, (person_key){p.id}, &notes),
              "note_count_by_who", people_errmsg(db));
        printf("  v2 person %u: last %-9s first %-6s balance %d, %llu note\n",
               p.id, p.last, p.first, p.balance, (unsigned long long)notes);
    }
    person_close(&cur);
}

int main(void)
{
    kivis_storage *st;
    check(kivis_memory_open(NULL, &st), "kivis_memory_open", "");
    printf("written with people_v1.kvs:\n");
    write_v1(st);

    printf("opened with people_v2.kvs:\n");
    migrate_stats stats = {0};
    people_db *db = NULL;
    if (open_v2(st, &db, &stats) != KIVIS_ERANGE) {
        fprintf(stderr, "migrate: Grace's balance should not fit int32_t\n");
        return 1;
    }
    printf("the store is still v1's; fixed with the v1 API:\n");
    fix_v1(st);

    printf("opened with people_v2.kvs again:\n");
    stats.people = 0;
    check(open_v2(st, &db, &stats), "people_open", "see above");
    printf("  %u people migrated; by last name:\n", stats.people);
    list_v2(db);
    people_close(db);
    check(kivis_storage_close(st), "kivis_storage_close", "");
    printf("done\n");
    return 0;
}
