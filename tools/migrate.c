/*
 * tools/migrate.c - `kivis migrate STORE SCHEMA.kvs`: the store opened
 * with the schema of a .kvs file, so that kivis_open applies the declared
 * changes in its one write transaction (docs/schema.md, "Evolving a
 * schema").  The tool adds no migration of its own: it only builds the
 * descriptor (kvsload.c), draws the engine's progress reports, and tells
 * what changed.
 */
#include "cli.h"

#include <kivis/inspect.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What the engine's progress reports added up to. */
typedef struct migration {
    cli_progress bar;
    char label[160];                 /* the bar's unit: "records of item rewritten" */
    const kivis_schema_desc *schema; /* the one migrated to */
    bool *touched;                   /* per table: a rewrite or build went over it */
    uint64_t rewritten;              /* records */
    uint64_t indexed;                /* records read by index builds */
    uint64_t indexes;                /* indexes built */
    uint32_t last_phase;             /* the pass counted last: its end may be */
    const char *last_table;          /* reported twice (an empty table: 0/0) */
} migration;

static void note_pass(migration *m, const kivis_progress *p)
{
    if (p->phase == m->last_phase && p->table == m->last_table)
        return;
    m->last_phase = p->phase;
    m->last_table = p->table;
    for (uint32_t i = 0; i < m->schema->ntables; i++)
        m->touched[i] |= !strcmp(m->schema->tables[i].name, p->table);
    if (p->phase == KIVIS_PROGRESS_REWRITE) {
        m->rewritten += p->total;
    } else {
        m->indexes += p->indexes;
        m->indexed += p->total;
    }
}

static void on_progress(void *ctx, const kivis_progress *p)
{
    migration *m = ctx;
    snprintf(m->label, sizeof m->label, "records of %s %s", p->table,
             p->phase == KIVIS_PROGRESS_REWRITE ? "rewritten" : "indexed");
    m->bar.unit = m->label;
    cli_progress_draw(&m->bar, p->done, p->total);
    if (p->done == p->total)
        note_pass(m, p);
}

/* The schema as `kivis schema` prints it (malloc'd), to tell whether the
 * open changed the stored one; NULL when out of memory. */
static char *kvs_text(const kivis_schema_desc *schema)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    cli_print_kvs(f, schema);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* Whether the stored schema is no longer `before` (kvs_text of it). */
static int stored_changed(const cli_store *s, const char *before, bool *changed)
{
    kivis_schema_desc *now = NULL;
    int rc = kivis_schema_load(s->st, NULL, &now);
    if (rc)
        return cli_fail("%s: reading the stored schema again: %s", s->name,
                        kivis_strerror(rc));
    char *after = kvs_text(now);
    kivis_schema_free(now, NULL);
    if (!after)
        return cli_fail("out of memory");
    *changed = strcmp(before, after) != 0;
    free(after);
    return 0;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void print_summary(const cli_store *s, const migration *m, bool changed,
                          double secs)
{
    if (!changed) {
        printf("%s is already at schema %s: nothing changed\n", s->name, m->schema->name);
        return;
    }
    uint32_t tables = 0;
    for (uint32_t i = 0; i < m->schema->ntables; i++)
        tables += m->touched[i];
    printf("migrated %s to schema %s in %.2f s: %" PRIu32 " table%s changed, %" PRIu64
           " record%s rewritten, %" PRIu64 " index%s built over %" PRIu64 " record%s\n",
           s->name, m->schema->name, secs, tables, tables == 1 ? "" : "s", m->rewritten,
           m->rewritten == 1 ? "" : "s", m->indexes, m->indexes == 1 ? "" : "es",
           m->indexed, m->indexed == 1 ? "" : "s");
}

/* Open s's storage with `schema`: the migration.  The stored schema's
 * text before it is `before`. */
static int migrate_open(cli_store *s, const char *kvs, migration *m, const char *before)
{
    char err[512] = "";
    kivis_options o;
    memset(&o, 0, sizeof o);
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    o.progress = on_progress;
    o.progress_ctx = m;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = kivis_open(s->st, m->schema, &o, &s->db);
    double secs = seconds_since(&t0);
    cli_progress_clear(&m->bar);
    if (rc)
        return cli_fail("%s: cannot migrate to %s: %s%s%s; nothing was changed", s->name,
                        kvs, kivis_strerror(rc), err[0] ? ": " : "", err);
    bool changed = false;
    int status = stored_changed(s, before, &changed);
    if (!status)
        print_summary(s, m, changed, secs);
    return status;
}

int cli_migrate(const char *store, const char *kvs, bool quiet)
{
    kivis_schema_desc *schema = NULL;
    int status = cli_kvs_load(kvs, &schema); /* before the store is touched */
    if (status)
        return status;
    cli_store s;
    migration m;
    memset(&m, 0, sizeof m);
    m.schema = schema;
    cli_progress_init(&m.bar, "records", quiet);
    m.touched = calloc(schema->ntables ? schema->ntables : 1, sizeof *m.touched);
    char *before = NULL;
    status = m.touched ? cli_open_storage(&s, store) : cli_fail("out of memory");
    if (!status && !(before = kvs_text(s.schema)))
        status = cli_fail("out of memory");
    if (!status)
        status = migrate_open(&s, kvs, &m, before);
    if (m.touched)
        cli_close(&s);
    free(before);
    free(m.touched);
    cli_kvs_free(schema);
    return status;
}
