/*
 * bench/engines/data.c - the data set: the same records and the same
 * operation arguments for every engine, deterministic for a given N.
 *
 * Names are "First Last" with realistic duplicates: first names from a list
 * of 100 under a Zipf (1/rank) law, so a few are very common; surnames
 * uniform over N/128 synthetic ones (at least 16).  A name then has about
 * 128 * p(first) records: ~24 for the commonest first name, well under one
 * for the rarest (mostly unique names).  Emails are unique, ages 18..87.
 */
#include "bench.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const first_names[] = {
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael",
    "Linda", "William", "Elizabeth", "David", "Barbara", "Richard", "Susan",
    "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Maria",
    "Anna", "Ahmed", "Fatima", "Wei", "Li", "Yuki", "Hiroshi", "Olga",
    "Ivan", "Sofia", "Lucas", "Emma", "Noah", "Olivia", "Liam", "Ava",
    "Mateo", "Isabella", "Elijah", "Mia", "Mohammed", "Aisha", "Chen",
    "Priya", "Arjun", "Lena", "Jonas", "Clara", "Felix", "Marta", "Pablo",
    "Lucia", "Hugo", "Chloe", "Louis", "Ines", "Nina", "Omar", "Leila",
    "Kofi", "Amara", "Sven", "Ingrid", "Piotr", "Zofia", "Dmitri", "Irina",
    "Giulia", "Marco", "Rosa", "Diego", "Camila", "Tariq", "Noor", "Kenji",
    "Sakura", "Min", "Ji", "Hana", "Arash", "Darius", "Eitan", "Maya",
    "Tomas", "Eva", "Bruno", "Alma", "Rafael", "Beatriz", "Oskar", "Freya",
    "Nils", "Astrid", "Mikko", "Aino", "Emre", "Elif", "Sipho", "Thandi",
};
#define N_FIRST (sizeof first_names / sizeof first_names[0])

/* Two-letter syllables: surname j is its base-32 digits, at least two. */
static const char syllables[] = "kalomisuneritavobedigopuhazejowy"
                                "rasenulimakotebiduronasevilupagh";

#define SCAN_LEN 1000

static size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(bench_rng_next(s) % n);
}

typedef struct namegen {
    double cdf[N_FIRST]; /* Zipf over the first names */
    size_t n_last;
} namegen;

static void namegen_init(namegen *g, size_t n)
{
    double total = 0;
    for (size_t i = 0; i < N_FIRST; i++)
        total += 1.0 / (double)(i + 1);
    double acc = 0;
    for (size_t i = 0; i < N_FIRST; i++) {
        acc += 1.0 / (double)(i + 1) / total;
        g->cdf[i] = acc;
    }
    g->cdf[N_FIRST - 1] = 1.0;
    g->n_last = n / 128 > 16 ? n / 128 : 16;
}

static size_t draw_first(const namegen *g, uint64_t *s)
{
    double u = (double)(bench_rng_next(s) >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = N_FIRST - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Surname j into out (capitalised); returns its length. */
static size_t surname(size_t j, char *out)
{
    size_t len = 0;
    for (int digits = 0; digits < 2 || j; digits++, j /= 32) {
        out[len++] = syllables[2 * (j % 32)];
        out[len++] = syllables[2 * (j % 32) + 1];
    }
    out[0] = (char)(out[0] - 'a' + 'A');
    out[len] = '\0';
    return len;
}

typedef struct arena {
    char *buf;
    size_t used, cap;
} arena;

/* "<x><sep><y>[<i>]<tail>" into the arena, at most max bytes with the NUL. */
static const char *arena_join(arena *a, size_t max, const char *x,
                              const char *sep, const char *y, size_t i,
                              const char *tail)
{
    if (a->used + max > a->cap) {
        fprintf(stderr, "bench_engines: data arena too small\n");
        exit(1);
    }
    char *p = a->buf + a->used;
    int len = i ? snprintf(p, max, "%s%s%s%zu%s", x, sep, y, i, tail)
                : snprintf(p, max, "%s%s%s%s", x, sep, y, tail);
    if (len < 0 || (size_t)len >= max) {
        fprintf(stderr, "bench_engines: generated string too long\n");
        exit(1);
    }
    a->used += (size_t)len + 1;
    return p;
}

static const char *make_name(arena *a, const namegen *g, uint64_t *s,
                             size_t *first)
{
    char last[24];
    *first = draw_first(g, s);
    surname(rng_below(s, g->n_last), last);
    return arena_join(a, BENCH_NAME_MAX, first_names[*first], " ", last, 0,
                      "");
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        fprintf(stderr, "bench_engines: out of memory\n");
        exit(1);
    }
    return p;
}

/* keys[0..count) = the first count of a random permutation of 1..n. */
static uint64_t *random_keys(uint64_t *s, size_t n, size_t count)
{
    uint64_t *k = xmalloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++)
        k[i] = i + 1;
    for (size_t i = 0; i < count && i + 1 < n; i++) {
        size_t j = i + rng_below(s, n - i);
        uint64_t t = k[i];
        k[i] = k[j];
        k[j] = t;
    }
    return k;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* n draws of ranks 1..n with P(r) proportional to 1/r (inverse CDF),
 * mapped to keys through the random permutation `perm`, so that the hot
 * records are spread over the key space. */
static uint64_t *zipf_keys(uint64_t *s, const uint64_t *perm, size_t n)
{
    double *cdf = xmalloc(n * sizeof *cdf), sum = 0;
    for (size_t i = 0; i < n; i++)
        cdf[i] = sum += 1.0 / (double)(i + 1);
    uint64_t *keys = xmalloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        double u = (double)rng_below(s, UINT64_C(1) << 52) / (double)(UINT64_C(1) << 52) * sum;
        size_t lo = 0, hi = n - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        keys[i] = perm[lo];
    }
    free(cdf);
    return keys;
}

void bench_data_make(bench_data *d, size_t n)
{
    uint64_t s = 0x9E3779B97F4A7C15ull ^ n;
    namegen g;
    namegen_init(&g, n);
    memset(d, 0, sizeof *d);
    d->n = n;
    d->n_lookups = n / 10 ? n / 10 : 1;
    d->n_renames = n / 10 ? n / 10 : 1;
    d->n_removes = n / 10 ? n / 10 : 1;
    d->scan_len = n < SCAN_LEN ? n : SCAN_LEN;
    d->n_scans = n / 1000 ? n / 1000 : 1;

    arena a = {NULL, 0,
               n * (BENCH_NAME_MAX + BENCH_EMAIL_MAX) +
                   d->n_renames * BENCH_NAME_MAX};
    a.buf = d->arena = xmalloc(a.cap);
    d->users = xmalloc(n * sizeof *d->users);
    for (size_t i = 0; i < n; i++) {
        size_t f;
        const char *name = make_name(&a, &g, &s, &f);
        char first[BENCH_NAME_MAX], last[BENCH_NAME_MAX];
        snprintf(first, sizeof first, "%s", first_names[f]);
        snprintf(last, sizeof last, "%s", strchr(name, ' ') + 1);
        lower(first);
        lower(last);
        d->users[i].name = name;
        d->users[i].email = arena_join(&a, BENCH_EMAIL_MAX, first, ".", last,
                                       i + 1, "@example.org");
        d->users[i].age = 18 + (uint32_t)rng_below(&s, 70);
    }

    d->get_keys = random_keys(&s, n, n);
    d->zipf_keys = zipf_keys(&s, d->get_keys, n);

    /* Lookups ask for names that exist, as often as they occur. */
    d->lookup_names = xmalloc(d->n_lookups * sizeof *d->lookup_names);
    for (size_t i = 0; i < d->n_lookups; i++)
        d->lookup_names[i] = d->users[rng_below(&s, n)].name;

    d->scan_starts = xmalloc(d->n_scans * sizeof *d->scan_starts);
    for (size_t i = 0; i < d->n_scans; i++)
        d->scan_starts[i] = 1 + rng_below(&s, n - d->scan_len + 1);

    d->rename_keys = random_keys(&s, n, d->n_renames);
    d->new_names = xmalloc(d->n_renames * sizeof *d->new_names);
    for (size_t i = 0; i < d->n_renames; i++) {
        const char *old = d->users[d->rename_keys[i] - 1].name, *name;
        size_t f;
        for (;;) {
            name = make_name(&a, &g, &s, &f);
            if (strcmp(name, old))
                break;
            a.used -= strlen(name) + 1; /* the same name: draw again */
        }
        d->new_names[i] = name;
    }

    d->remove_keys = random_keys(&s, n, d->n_removes);
}

void bench_data_free(bench_data *d)
{
    free(d->users);
    free(d->get_keys);
    free(d->zipf_keys);
    free(d->lookup_names);
    free(d->scan_starts);
    free(d->rename_keys);
    free(d->new_names);
    free(d->remove_keys);
    free(d->arena);
    memset(d, 0, sizeof *d);
}
