/*
 * bench/engines/main.c - bench_engines: the same workload on kivis (memory,
 * LMDB), raw LMDB, SQLite and Berkeley DB, side by side (docs/bench.md);
 * PostgreSQL (kivis over it, raw libpq) and etcd (kivis over it, raw
 * gateway requests) when those backends are built.
 *
 *   bench_engines [--n N] [--csv PATH] [--engines a,b,...|all]
 *                 [--reference ENGINE]
 *       the phase table at N records (default 1,000,000): ops/s per engine
 *       and the ratio to the reference engine (default raw LMDB, "lmdb") on
 *       stdout, the figures as CSV in PATH (default build/bench/results.csv);
 *       by default on kivis-memory, kivis-lmdb, lmdb, sqlite and bdb.
 *       Engines that talk to a server also get their round trips per op.
 *   bench_engines --scaling [--min-n N] [--max-n N] [--csv PATH] [--png PATH]
 *       load and get at N = --min-n (default 10^4), ten times that, ... up
 *       to --max-n (default 10^7) on the engines marked for scaling, or on
 *       those --engines names: ns/op as CSV (default
 *       build/bench/scaling.csv) and a gnuplot PNG (build/bench/scaling.png).
 *       One size alone (--min-n N --max-n N) is a get phase to profile.
 *
 * On-disk engines run in a fresh directory under $TMPDIR (or /tmp), removed
 * after each run.  Every phase's rows and checksum must agree across the
 * engines; a mismatch stops the run.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The engines, in table order; "lmdb" is the reference for ratios unless
 * --reference names another. */
static const bench_engine *const engines[] = {
    &bench_kivis_memory, &bench_kivis_lmdb, &bench_kivis_layered,
    &bench_kivis_layered_full,
    &bench_kivis_layered_admit,
    &bench_kivis_sqlite, &bench_kivis_rocksdb, &bench_lmdb, &bench_sqlite,
    &bench_rocksdb, &bench_bdb,
#ifdef KIVIS_WITH_POSTGRES
    &bench_kivis_postgres, &bench_kivis_layered_postgres, &bench_postgres,
#endif
#ifdef KIVIS_WITH_ETCD
    &bench_kivis_etcd, &bench_kivis_layered_etcd, &bench_etcd,
#endif
};
#define N_ENGINES (sizeof engines / sizeof engines[0])
/* The table's engines unless --engines names others: kivis against the
 * stores it is chosen instead of. The other kivis backends run in a table of
 * their own (scripts/bench.sh): with every store open at once, three more
 * busy stores shift the others' figures (kivis-lmdb's load ratio fell from
 * 0.89x to 0.68x beside them). */
#define COMPARISON "kivis-memory,kivis-lmdb,lmdb,sqlite,bdb"

#define WRITE_TXN 1000 /* records per write transaction (throughput) */
#define DURABLE_TXN 10 /* records per transaction in the durable phase */

enum phase {
    P_LOAD, P_GET, P_ZIPF, P_BY_NAME, P_SCAN, P_RENAME, P_REMOVE, P_DURABLE,
    P_COUNT
};

static const char *const phase_names[P_COUNT] = {
    "load", "get", "zipf_get", "by_name", "scan", "rename", "remove",
    "durable_load",
};

typedef struct cell {
    bool ran;
    size_t ops;
    double secs;
    bench_result res;
    unsigned long long trips; /* round trips to a server (round_trips) */
} cell;

typedef struct options {
    size_t n, min_n, max_n;
    bool scaling;
    bool no_durable; /* leave the durable phase out (a profile of the rest) */
    const char *csv, *png, *only;
    const char *reference; /* the engine ratios are to */
    char *tmp; /* the run's temporary directory */
} options;

static char run_tmp[4096]; /* removed at exit, also after bench_die */

static void rm_tree(const char *path);

static void remove_run_tmp(void)
{
    if (run_tmp[0])
        rm_tree(run_tmp);
}

_Noreturn void bench_die(const char *engine, const char *what,
                         const char *detail)
{
    fprintf(stderr, "bench_engines: %s: %s: %s\n", engine, what, detail);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- directories -------------------------------------------------------- */

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st))
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[4096];
            int len = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (len > 0 && (size_t)len < sizeof sub)
                rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* mkdir -p of the directory part of file path `file`. */
static void make_parent(const char *file)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", file);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) && errno != EEXIST)
            bench_die("main", p, strerror(errno));
        *s = '/';
    }
}

/* A fresh empty directory for one engine run, inside the run's temp dir. */
static void run_dir(const options *o, const char *engine, const char *what,
                    char *out, size_t size)
{
    int len = snprintf(out, size, "%s/%s-%s", o->tmp, engine, what);
    if (len < 0 || (size_t)len >= size)
        bench_die(engine, "temp dir", "path too long");
    rm_tree(out);
    if (mkdir(out, 0755))
        bench_die(engine, out, strerror(errno));
}

/* ---- engine selection and checks ---------------------------------------- */

static bool selected(const options *o, const bench_engine *e)
{
    if (!o->only)
        return true;
    size_t len = strlen(e->name);
    for (const char *p = o->only; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == len && !strncmp(p, e->name, len))
            return true;
        p += l + (end != NULL);
    }
    return false;
}

/* Whether this run (table or --scaling) runs e: --scaling runs the
 * engines marked for it, or any that --engines names. */
static bool runs(const options *o, const bench_engine *e)
{
    return selected(o, e) && (!o->scaling || e->scaling || o->only);
}

/* Every engine must return what the first one returned. */
static void cross_check(const bench_engine *e, const char *phase, size_t n,
                        const bench_result *ref, const char *ref_engine,
                        const bench_result *got)
{
    if (ref->rows == got->rows && ref->sum == got->sum)
        return;
    fprintf(stderr,
            "bench_engines: %s %s at N=%zu: %llu rows, checksum %llu; "
            "%s gave %llu rows, checksum %llu\n",
            e->name, phase, n, (unsigned long long)got->rows,
            (unsigned long long)got->sum, ref_engine,
            (unsigned long long)ref->rows, (unsigned long long)ref->sum);
    exit(1);
}

/* ---- machine info ------------------------------------------------------- */

static void print_machine(const options *o)
{
    char model[256] = "unknown", line[512];
    long mem_kb = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && !strncmp(line, "model name", 10)) {
            snprintf(model, sizeof model, "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
    if ((f = fopen("/proc/meminfo", "r"))) {
        if (fscanf(f, "MemTotal: %ld kB", &mem_kb) != 1)
            mem_kb = 0;
        fclose(f);
    }
    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
    printf("date     %s\n", date);
    printf("cpu      %s, %ld cores online\n", model,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("memory   %.1f GiB\n", (double)mem_kb / (1024.0 * 1024.0));
    printf("temp dir %s\n", o->tmp);
    printf("engines ");
    for (size_t i = 0; i < N_ENGINES; i++)
        if (runs(o, engines[i]))
            printf(" %s (%s)", engines[i]->name, engines[i]->version());
    printf("\n\n");
}

/* ---- the phase table ---------------------------------------------------- */

/* ---- running phases in slices ------------------------------------------- *
 * A phase runs as SLICES consecutive slices of its ops, and the engines take
 * turns slice by slice (each slice in a rotated order), so that a stretch of
 * noise from the rest of the machine (on a shared virtual machine, another
 * tenant's memory traffic moves a run by 20% or more) falls on every engine
 * alike instead of on whichever ran then.  Every op still runs exactly once.
 * A read phase leaves the store as it was, so its slices are alike: it
 * reports the median slice's rate.  A write phase reports its total time. */
#define SLICES 3

/* One engine's store for the phase table. */
typedef struct engine_run {
    const bench_engine *e;
    void *h;
    cell *cells; /* its row: one cell per phase */
    char dir[4096];
} engine_run;

static bool is_read(int p)
{
    return p == P_GET || p == P_ZIPF || p == P_BY_NAME || p == P_SCAN;
}

static size_t phase_ops(const bench_data *d, int p)
{
    switch (p) {
    case P_BY_NAME: return d->n_lookups;
    case P_SCAN: return d->n_scans;
    case P_RENAME: return d->n_renames;
    case P_REMOVE: return d->n_removes;
    default: return d->n; /* load, get, zipf_get */
    }
}

/* Ops [from, to) of phase p. */
static void run_slice(const bench_engine *e, void *h, const bench_data *d,
                      int p, size_t from, size_t to, bench_result *res)
{
    size_t n = to - from;
    switch (p) {
    case P_LOAD:
        e->load(h, d->users, from, n, WRITE_TXN, res);
        break;
    case P_GET:
        e->get(h, d->get_keys + from, n, res);
        break;
    case P_ZIPF:
        e->get(h, d->zipf_keys + from, n, res);
        break;
    case P_BY_NAME:
        e->by_name(h, d->lookup_names + from, n, res);
        break;
    case P_SCAN:
        e->scan(h, d->scan_starts + from, n, d->scan_len, res);
        break;
    case P_RENAME:
        e->rename(h, d->rename_keys + from, d->new_names + from, n, WRITE_TXN,
                  res);
        break;
    case P_REMOVE:
        e->remove(h, d->remove_keys + from, n, WRITE_TXN, res);
        break;
    }
}

static unsigned long long trips(const bench_engine *e, void *h)
{
    return e->round_trips ? e->round_trips(h) : 0;
}

static int by_rate(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Where slice i of `slices` starts: writes keep whole transactions. */
static size_t slice_edge(size_t ops, size_t i, size_t slices, size_t unit)
{
    if (i == slices)
        return ops;
    size_t at = ops * i / slices;
    return at - at % unit;
}

static void run_interleaved(engine_run *runs, size_t nruns,
                            const bench_data *d, int p)
{
    size_t ops = phase_ops(d, p), unit = is_read(p) ? 1 : WRITE_TXN;
    size_t slices = ops >= SLICES * unit ? SLICES : 1;
    double rate[N_ENGINES][SLICES], total[N_ENGINES] = {0};
    for (size_t s = 0; s < slices; s++) {
        size_t from = slice_edge(ops, s, slices, unit);
        size_t to = slice_edge(ops, s + 1, slices, unit);
        for (size_t k = 0; k < nruns; k++) {
            size_t i = (k + s) % nruns;
            unsigned long long trips0 = trips(runs[i].e, runs[i].h);
            double t0 = now();
            run_slice(runs[i].e, runs[i].h, d, p, from, to, &runs[i].cells[p].res);
            double t = now() - t0;
            runs[i].cells[p].trips += trips(runs[i].e, runs[i].h) - trips0;
            rate[i][s] = (double)(to - from) / (t > 0 ? t : 1e-9);
            total[i] += t;
        }
    }
    for (size_t i = 0; i < nruns; i++) {
        cell *c = &runs[i].cells[p];
        qsort(rate[i], slices, sizeof rate[i][0], by_rate);
        c->ops = ops;
        c->secs = is_read(p) ? (double)ops / rate[i][slices / 2] : total[i];
        c->ran = true;
    }
}

/* One phase on one engine alone (the scaling curve). */
static void run_phase(const bench_engine *e, void *h, const bench_data *d,
                      int p, cell *c)
{
    cell row[P_COUNT];
    engine_run one = {e, h, row, ""};
    memset(row, 0, sizeof row);
    run_interleaved(&one, 1, d, p);
    *c = row[p];
}

/* The durable phase: a fresh store flushed at every commit. */
static void run_durable(const options *o, const bench_engine *e,
                        const bench_data *d, cell *c)
{
    char dir[4096];
    size_t n = d->n / 100 ? d->n / 100 : 1;
    run_dir(o, e->name, "durable", dir, sizeof dir);
    void *h = e->open(e->arg, dir, n, true);
    unsigned long long trips0 = trips(e, h);
    double t0 = now();
    e->load(h, d->users, 0, n, DURABLE_TXN, &c->res);
    c->secs = now() - t0;
    c->trips = trips(e, h) - trips0;
    c->ops = n;
    c->ran = true;
    e->close(h);
    rm_tree(dir);
}

static double ratio(const cell *c, const cell *ref)
{
    if (!c->ran || !ref || !ref->ran || c->secs <= 0)
        return 0;
    return ((double)c->ops / c->secs) / ((double)ref->ops / ref->secs);
}

static int reference_index(const options *o)
{
    for (size_t i = 0; i < N_ENGINES; i++)
        if (!strcmp(engines[i]->name, o->reference) && selected(o, engines[i]))
            return (int)i;
    return -1;
}

/* Round trips per op of the engines that talk to a server. */
static void print_trips(const options *o, cell (*cells)[P_COUNT])
{
    bool any = false;
    for (size_t i = 0; i < N_ENGINES; i++)
        any |= selected(o, engines[i]) && engines[i]->round_trips;
    if (!any)
        return;
    printf("\nround trips to the server per op (writes: %d ops a "
           "transaction, %d in durable_load)\n%-13s", WRITE_TXN, DURABLE_TXN,
           "phase");
    for (size_t i = 0; i < N_ENGINES; i++)
        if (selected(o, engines[i]) && engines[i]->round_trips)
            printf(" %22s", engines[i]->name);
    printf("\n");
    for (int p = 0; p < P_COUNT; p++) {
        printf("%-13s", phase_names[p]);
        for (size_t i = 0; i < N_ENGINES; i++) {
            const cell *c = &cells[i][p];
            if (!selected(o, engines[i]) || !engines[i]->round_trips)
                continue;
            if (c->ran && c->ops)
                printf(" %22.3f", (double)c->trips / (double)c->ops);
            else
                printf(" %22s", "n/a");
        }
        printf("\n");
    }
}

/* The raw engine kivis engine i runs over ("kivis-sqlite": "sqlite"),
 * when that one ran too; -1 if none. */
static int raw_of(const options *o, size_t i)
{
    const char *name = engines[i]->name;
    if (strncmp(name, "kivis-", 6))
        return -1;
    for (size_t j = 0; j < N_ENGINES; j++)
        if (!strcmp(engines[j]->name, name + 6) && selected(o, engines[j]))
            return (int)j;
    return -1;
}

/* kivis over a store against that store by hand, phase by phase: the
 * ratio of each kivis engine whose raw engine ran beside it. */
static void print_pairs(const options *o, cell (*cells)[P_COUNT])
{
    bool any = false;
    for (size_t i = 0; i < N_ENGINES; i++)
        any |= selected(o, engines[i]) && raw_of(o, i) >= 0;
    if (!any)
        return;
    printf("\nkivis over a store / the store by hand (same run)\n%-13s", "phase");
    for (size_t i = 0; i < N_ENGINES; i++)
        if (selected(o, engines[i]) && raw_of(o, i) >= 0)
            printf(" %18s", engines[i]->name);
    printf("\n");
    for (int p = 0; p < P_COUNT; p++) {
        printf("%-13s", phase_names[p]);
        for (size_t i = 0; i < N_ENGINES; i++) {
            int raw = selected(o, engines[i]) ? raw_of(o, i) : -1;
            if (raw < 0)
                continue;
            double r = ratio(&cells[i][p], &cells[raw][p]);
            if (r > 0)
                printf(" %17.2fx", r);
            else
                printf(" %18s", "n/a");
        }
        printf("\n");
    }
}

static void print_table(const options *o, const bench_data *d,
                        cell (*cells)[P_COUNT])
{
    int ref = reference_index(o);
    printf("N = %zu records; ops/s and ratio to %s (higher is faster)\n",
           d->n, o->reference);
    printf("%-13s %9s", "phase", "ops");
    for (size_t i = 0; i < N_ENGINES; i++)
        if (selected(o, engines[i]))
            printf(" %18s", engines[i]->name);
    printf("\n");
    for (int p = 0; p < P_COUNT; p++) {
        size_t ops = 0;
        for (size_t i = 0; i < N_ENGINES; i++)
            if (cells[i][p].ran)
                ops = cells[i][p].ops;
        printf("%-13s %9zu", phase_names[p], ops);
        for (size_t i = 0; i < N_ENGINES; i++) {
            const cell *c = &cells[i][p];
            if (!selected(o, engines[i]))
                continue;
            if (!c->ran) {
                printf(" %18s", "n/a");
                continue;
            }
            double r = ratio(c, ref >= 0 ? &cells[ref][p] : NULL);
            printf(" %10.0f", (double)c->ops / c->secs);
            if (r > 0)
                printf(" %6.2fx", r);
            else
                printf(" %7s", "");
        }
        printf("\n");
    }
    print_pairs(o, cells);
    printf("\nrows per phase (identical in every engine):");
    for (int p = 0; p < P_COUNT; p++)
        for (size_t i = 0; i < N_ENGINES; i++)
            if (cells[i][p].ran) {
                printf(" %s %llu", phase_names[p],
                       (unsigned long long)cells[i][p].res.rows);
                break;
            }
    printf("\nscan: ops are scans of %zu records; durable_load: %zu "
           "records, %d per fsync'd commit\n",
           d->scan_len, d->n / 100 ? d->n / 100 : 1, DURABLE_TXN);
    print_trips(o, cells);
}

static void write_csv(const options *o, cell (*cells)[P_COUNT])
{
    int ref = reference_index(o);
    make_parent(o->csv);
    FILE *f = fopen(o->csv, "w");
    if (!f)
        bench_die("main", o->csv, strerror(errno));
    fprintf(f, "engine,phase,n,ops,seconds,ops_per_sec,ratio_to_%s\n",
            o->reference);
    for (size_t i = 0; i < N_ENGINES; i++)
        for (int p = 0; p < P_COUNT; p++) {
            const cell *c = &cells[i][p];
            if (!c->ran)
                continue;
            double r = ratio(c, ref >= 0 ? &cells[ref][p] : NULL);
            fprintf(f, "%s,%s,%zu,%zu,%.6f,%.1f,", engines[i]->name,
                    phase_names[p], o->n, c->ops, c->secs,
                    (double)c->ops / c->secs);
            if (r > 0)
                fprintf(f, "%.4f", r);
            fprintf(f, "\n");
        }
    if (fclose(f))
        bench_die("main", o->csv, strerror(errno));
    printf("CSV: %s\n", o->csv);
}

/* Every engine's rows for phase p must equal the first engine's. */
static void cross_check_phase(const options *o, engine_run *runs, size_t nruns,
                              int p)
{
    const engine_run *ref = NULL;
    for (size_t i = 0; i < nruns; i++) {
        if (!runs[i].cells[p].ran)
            continue;
        if (ref)
            cross_check(runs[i].e, phase_names[p], o->n, &ref->cells[p].res,
                        ref->e->name, &runs[i].cells[p].res);
        else
            ref = &runs[i];
    }
}

static void report_phase(engine_run *runs, size_t nruns, int p)
{
    fprintf(stderr, "%-13s", phase_names[p]);
    for (size_t i = 0; i < nruns; i++)
        if (runs[i].cells[p].ran)
            fprintf(stderr, " %s %.2fs", runs[i].e->name, runs[i].cells[p].secs);
    fprintf(stderr, "\n");
}

static void run_table(const options *o)
{
    static cell cells[N_ENGINES][P_COUNT];
    static engine_run runs[N_ENGINES];
    size_t nruns = 0;
    bench_data d;
    double t0 = now();
    bench_data_make(&d, o->n);
    fprintf(stderr, "data set of %zu records made in %.1f s\n", o->n,
            now() - t0);
    /* every store open at once, so that the engines can take turns */
    for (size_t i = 0; i < N_ENGINES; i++) {
        if (!selected(o, engines[i]))
            continue;
        engine_run *r = &runs[nruns++];
        r->e = engines[i];
        r->cells = cells[i];
        run_dir(o, r->e->name, "throughput", r->dir, sizeof r->dir);
        r->h = r->e->open(r->e->arg, r->dir, d.n, false);
    }
    for (int p = 0; p < P_DURABLE; p++) {
        run_interleaved(runs, nruns, &d, p);
        report_phase(runs, nruns, p);
        cross_check_phase(o, runs, nruns, p);
    }
    for (size_t i = 0; i < nruns; i++) {
        runs[i].e->close(runs[i].h);
        rm_tree(runs[i].dir);
    }
    for (size_t i = 0; i < nruns; i++)
        if (runs[i].e->on_disk && !o->no_durable)
            run_durable(o, runs[i].e, &d, &runs[i].cells[P_DURABLE]);
    report_phase(runs, nruns, P_DURABLE);
    cross_check_phase(o, runs, nruns, P_DURABLE);
    print_table(o, &d, cells);
    write_csv(o, cells);
    bench_data_free(&d);
}

/* ---- scaling ------------------------------------------------------------ */

#define MAX_SIZES 12

typedef struct scaling_point {
    size_t n;
    double load_ns[N_ENGINES], get_ns[N_ENGINES];
} scaling_point;

static void plot(const options *o, const scaling_point *pts, size_t npts)
{
    make_parent(o->png);
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, "bench_engines: gnuplot not found, no PNG\n");
        return;
    }
    fprintf(g, "set terminal pngcairo size 900,560 font ',10'\n"
               "set output '%s'\n"
               "set title 'Cost per operation against N (load in txns of %d, "
               "random gets)'\n"
               "set logscale x\nset xlabel 'N (records)'\n"
               "set ylabel 'ns per operation'\nset yrange [0:*]\n"
               "set grid\nset key top left\nplot ",
            o->png, WRITE_TXN);
    int series = 0;
    for (size_t i = 0; i < N_ENGINES; i++) {
        if (!runs(o, engines[i]))
            continue;
        for (int get = 0; get < 2; get++)
            fprintf(g, "%s'-' using 1:2 with linespoints lw 2 lc %d dt %d "
                       "title '%s %s'",
                    series++ ? ", " : "", (int)i + 1, get ? 1 : 2,
                    engines[i]->name, get ? "get" : "load");
    }
    fprintf(g, "\n");
    for (size_t i = 0; i < N_ENGINES; i++) {
        if (!runs(o, engines[i]))
            continue;
        for (int get = 0; get < 2; get++) {
            for (size_t k = 0; k < npts; k++)
                fprintf(g, "%zu %.1f\n", pts[k].n,
                        get ? pts[k].get_ns[i] : pts[k].load_ns[i]);
            fprintf(g, "e\n");
        }
    }
    if (pclose(g))
        fprintf(stderr, "bench_engines: gnuplot failed\n");
    else
        printf("PNG: %s\n", o->png);
}

static void run_scaling(const options *o)
{
    scaling_point pts[MAX_SIZES];
    size_t npts = 0;
    make_parent(o->csv);
    FILE *f = fopen(o->csv, "w");
    if (!f)
        bench_die("main", o->csv, strerror(errno));
    fprintf(f, "engine,phase,n,ops,seconds,ns_per_op\n");
    printf("Scaling: ns per operation (load in txns of %d; random gets)\n",
           WRITE_TXN);
    printf("%10s", "N");
    for (size_t i = 0; i < N_ENGINES; i++)
        for (int get = 0; get < 2 && runs(o, engines[i]); get++) {
            char label[64];
            snprintf(label, sizeof label, "%s %s", engines[i]->name,
                     get ? "get" : "load");
            printf(" %18s", label);
        }
    printf("\n");
    for (size_t n = o->min_n; n <= o->max_n && npts < MAX_SIZES; n *= 10) {
        scaling_point *pt = &pts[npts++];
        pt->n = n;
        bench_data d;
        bench_data_make(&d, n);
        cell ref[2] = {{0}};
        const char *ref_engine = NULL;
        printf("%10zu", n);
        for (size_t i = 0; i < N_ENGINES; i++) {
            const bench_engine *e = engines[i];
            if (!runs(o, e))
                continue;
            char dir[4096];
            run_dir(o, e->name, "scaling", dir, sizeof dir);
            void *h = e->open(e->arg, dir, n, false);
            cell c[2] = {{0}};
            run_phase(e, h, &d, P_LOAD, &c[0]);
            run_phase(e, h, &d, P_GET, &c[1]);
            e->close(h);
            rm_tree(dir);
            for (int k = 0; k < 2; k++) {
                if (ref_engine)
                    cross_check(e, phase_names[k ? P_GET : P_LOAD], n,
                                &ref[k].res, ref_engine, &c[k].res);
                else
                    ref[k] = c[k];
                double ns = c[k].secs * 1e9 / (double)c[k].ops;
                fprintf(f, "%s,%s,%zu,%zu,%.6f,%.1f\n", e->name,
                        k ? "get" : "load", n, c[k].ops, c[k].secs, ns);
                *(k ? &pt->get_ns[i] : &pt->load_ns[i]) = ns;
                printf(" %18.0f", ns);
            }
            ref_engine = ref_engine ? ref_engine : e->name;
            fflush(stdout);
        }
        printf("\n");
        bench_data_free(&d);
    }
    if (fclose(f))
        bench_die("main", o->csv, strerror(errno));
    printf("CSV: %s\n", o->csv);
    plot(o, pts, npts);
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_engines [--n N] [--csv PATH] "
            "[--engines a,b,...|all] [--reference ENGINE] [--no-durable]\n"
            "       bench_engines --scaling [--min-n N] [--max-n N] "
            "[--csv PATH] [--png PATH] [--engines ...]\n"
            "engines:");
    for (size_t i = 0; i < N_ENGINES; i++)
        fprintf(out, " %s%s", engines[i]->name,
                engines[i]->scaling ? "*" : "");
    fprintf(out, "\n(the table runs %s unless --engines names others;\n"
                 " --scaling runs the engines marked * unless --engines "
                 "names others)\n", COMPARISON);
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end); /* 1e6 and 1000000 alike */
    if (end == s || *end || v < 1 || v > 1e10) {
        fprintf(stderr, "bench_engines: bad count '%s'\n", s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    options o = {1000000, 10000, 10000000, false, false, NULL,
                 "build/bench/scaling.png", NULL, "lmdb", NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--scaling")) {
            o.scaling = true;
            continue;
        } else if (!strcmp(a, "--no-durable")) {
            o.no_durable = true;
            continue;
        } else if (!v) {
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--n")) {
            o.n = parse_size(v);
        } else if (!strcmp(a, "--min-n")) {
            o.min_n = parse_size(v);
        } else if (!strcmp(a, "--max-n")) {
            o.max_n = parse_size(v);
        } else if (!strcmp(a, "--csv")) {
            o.csv = v;
        } else if (!strcmp(a, "--png")) {
            o.png = v;
        } else if (!strcmp(a, "--engines")) {
            o.only = v;
        } else if (!strcmp(a, "--reference")) {
            o.reference = v;
        } else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!o.csv)
        o.csv = o.scaling ? "build/bench/scaling.csv"
                          : "build/bench/results.csv";
    if (o.only && !strcmp(o.only, "all"))
        o.only = NULL;
    else if (!o.only && !o.scaling)
        o.only = COMPARISON;
    const char *tmp = getenv("TMPDIR");
    char dir[sizeof run_tmp];
    int len = snprintf(dir, sizeof dir, "%s/kivis-bench-XXXXXX",
                       tmp && *tmp ? tmp : "/tmp");
    if (len < 0 || (size_t)len >= sizeof dir || !mkdtemp(dir))
        bench_die("main", "temp dir", len < 0 || (size_t)len >= sizeof dir
                                          ? "TMPDIR too long"
                                          : strerror(errno));
    memcpy(run_tmp, dir, sizeof run_tmp);
    o.tmp = run_tmp;
    atexit(remove_run_tmp);
    print_machine(&o);
    fflush(stdout);
    double t0 = now();
    if (o.scaling)
        run_scaling(&o);
    else
        run_table(&o);
    printf("total %.1f s\n", now() - t0);
    return 0;
}
