/*
 * test_damage - damaged LMDB files against the kivis tool and the API.
 *
 *   test_damage               open every variant through the API
 *   test_damage <kivis-path>  run kivis check, dump and stats on every variant
 *
 * Builds a real pets store (LMDB; users, pets, toys and blobs with their
 * indexes, enough that the tree has branch and overflow pages), then writes
 * damaged copies of its data.mdb: truncated at many lengths (on, just
 * below and just above page boundaries, and anywhere) and with one bit
 * flipped (in every page header, in the meta pages' fields, and anywhere).
 * Offsets come from a seeded PRNG, so a failure reproduces from its
 * variant number.  KIVIS_DAMAGE_VARIANTS=n makes n variants (default 200),
 * never fewer than the systematic ones (each page header, each meta field,
 * each page boundary).
 *
 * The tool must never die by a signal: it exits 0 (the damage was
 * harmless, say in a free page), 2 with a message (damaged), or for check
 * 1 with its problem report (the damage hit record bytes LMDB does not
 * look at).  The API runs in a forked child: LMDB maps the file and trusts
 * its pages, so the child may die where LMDB faults on one (SIGSEGV in
 * liblmdb, SIGBUS on a truncated map, an LMDB assertion); those are
 * counted, and anything else (another abort, a sanitizer report, a leak, a
 * SIGSEGV outside liblmdb) fails the test.
 */
#define _GNU_SOURCE /* dladdr, REG_RIP */
#include "testutil.h"

#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/lmdb.h>

#include "pets_schema.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

enum { DEFAULT_VARIANTS = 200, TIMEOUT_SECONDS = 60 };

static const char *kivis_tool;

/* ---- the store ------------------------------------------------------------ */

static void fill_store(kivis_db *db)
{
    char name[64], email[64];
    for (uint32_t i = 0; i < 700; i++) {
        snprintf(name, sizeof name, "user %04u of the damage corpus", (i * 37u) % 700u);
        snprintf(email, sizeof email, "user%u@damage.example.org", i);
        user u = {name, email, 20 + i % 60};
        assert_int_equal(kivis_put(db, PETS_USER, &u, NULL), KIVIS_OK);
    }
    for (uint32_t c = 0; c < 40; c++) {
        toy t = {c % 2 ? TOY_MOUSE : TOY_BALL, (uint8_t)c};
        assert_int_equal(kivis_put(db, PETS_TOY, &t, NULL), KIVIS_OK);
    }
    for (uint32_t i = 0; i < 300; i++) {
        pet p = {"", {1 + i % 700}, {i % 2 ? TOY_MOUSE : TOY_BALL, (uint8_t)(i % 40)},
                 false, 0};
        snprintf(p.name, sizeof p.name, "pet %u", i);
        assert_int_equal(kivis_put(db, PETS_PET, &p, NULL), KIVIS_OK);
    }
    uint8_t data[6000];
    for (uint32_t i = 0; i < 24; i++) {
        size_t n = i % 4 ? 100 + i * 10 : sizeof data; /* some need overflow pages */
        for (size_t j = 0; j < n; j++)
            data[j] = (uint8_t)(i * 31 + j);
        blob b = {{data, n}};
        assert_int_equal(kivis_put(db, PETS_BLOB, &b, NULL), KIVIS_OK);
    }
}

static void build_store(const char *dir)
{
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    fill_store(db);
    kivis_close(db);
    kivis_storage_close(st);
}

typedef struct image {
    unsigned char *bytes;
    size_t size;
    size_t page; /* LMDB's page size, from the meta page */
    size_t npages;
} image;

static image read_image(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct stat sb;
    assert_int_equal(fstat(fileno(fp), &sb), 0);
    image im = {malloc((size_t)sb.st_size), (size_t)sb.st_size, 0, 0};
    assert_non_null(im.bytes);
    assert_int_equal(fread(im.bytes, 1, im.size, fp), im.size);
    fclose(fp);
    /* The meta page: a 16-byte page header, magic and version (4 each),
     * address and map size (8 each), then the free DB, whose first field
     * (md_pad) holds the page size. */
    uint32_t page;
    memcpy(&page, im.bytes + 16 + 24, sizeof page);
    assert_true(page >= 512 && page <= 65536 && im.size % page == 0);
    im.page = page;
    im.npages = im.size / page;
    return im;
}

/* LMDB page flags (mp_flags at offset 10 of the page header). */
enum { P_BRANCH = 0x01, P_LEAF = 0x02, P_OVERFLOW = 0x04, P_META = 0x08 };

static size_t pages_flagged(const image *im, uint16_t flag)
{
    size_t n = 0;
    for (size_t p = 0; p < im->npages; p++) {
        uint16_t flags;
        memcpy(&flags, im->bytes + p * im->page + 10, sizeof flags);
        n += (flags & flag) != 0;
    }
    return n;
}

/* ---- the variants ----------------------------------------------------------- */

typedef struct variant {
    bool truncate;
    size_t at; /* truncation length, or the byte whose bit flips */
    int bit;
} variant;

/* Offsets of the meta page's fields (after the page header): magic,
 * version, address, map size, the free DB's and the main DB's md_flags,
 * md_depth, page counts, entries and root, last page, txnid. */
static const size_t meta_fields[] = {16, 20, 24, 32, 44, 46, 48, 72, 80,
                                     88, 92, 94, 96, 120, 128, 136, 144};

/* Variant i: first one bit flip in every page header and in every meta
 * field of both meta pages, a truncation at every page boundary (on it, a
 * byte below or a byte above, in turn); then PRNG-chosen truncations and
 * flips, alternating. */
static variant make_variant(const image *im, size_t i, uint64_t *rng)
{
    size_t nmeta = sizeof meta_fields / sizeof meta_fields[0];
    variant v = {false, 0, (int)(kt_rand(rng) % 8)};
    if (i < im->npages) {
        v.at = i * im->page + kt_rand(rng) % 16;
        return v;
    }
    i -= im->npages;
    if (i < 2 * nmeta) {
        v.at = (i / nmeta) * im->page + meta_fields[i % nmeta] + kt_rand(rng) % 4;
        return v;
    }
    i -= 2 * nmeta;
    v.truncate = true;
    if (i < im->npages - 1) {
        v.at = (1 + i) * im->page + i % 3 - 1;
        return v;
    }
    i -= im->npages - 1;
    v.truncate = i % 2 == 0;
    v.at = 1 + kt_rand(rng) % (im->size - 1);
    return v;
}

static size_t variant_count(const image *im)
{
    const char *env = getenv("KIVIS_DAMAGE_VARIANTS");
    size_t n = env && *env ? strtoul(env, NULL, 10) : DEFAULT_VARIANTS;
    size_t systematic = im->npages + 2 * sizeof meta_fields / sizeof meta_fields[0] +
                        im->npages - 1;
    return n > systematic ? n : systematic;
}

static void describe(char *buf, size_t n, size_t i, const variant *v)
{
    if (v->truncate)
        snprintf(buf, n, "variant %zu: truncated to %zu bytes", i, v->at);
    else
        snprintf(buf, n, "variant %zu: bit %d of byte %zu flipped", i, v->bit, v->at);
}

/* Write the variant as dir/data.mdb, with no lock file left over. */
static void write_variant(const char *dir, const image *im, const variant *v)
{
    char path[300];
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    size_t n = v->truncate ? v->at : im->size;
    if (!v->truncate)
        im->bytes[v->at] ^= (unsigned char)(1u << v->bit);
    assert_int_equal(fwrite(im->bytes, 1, n, fp), n);
    if (!v->truncate)
        im->bytes[v->at] ^= (unsigned char)(1u << v->bit);
    assert_int_equal(fclose(fp), 0);
}

/* Run body(ctx, ...) over every variant of a freshly built store. */
typedef void (*variant_fn)(void *ctx, const image *im, const variant *v, const char *what);

static size_t for_each_variant(variant_fn body, void *ctx)
{
    char dir[256], what[128];
    kt_tempdir(dir, sizeof dir);
    build_store(dir);
    image im = read_image(dir);
    kt_rmdir(dir);
    assert_true(pages_flagged(&im, P_BRANCH) > 0);
    assert_true(pages_flagged(&im, P_OVERFLOW) > 0);
    uint64_t rng = 0x6b69766973ull; /* "kivis" */
    size_t n = variant_count(&im);
    for (size_t i = 0; i < n; i++) {
        variant v = make_variant(&im, i, &rng);
        describe(what, sizeof what, i, &v);
        body(ctx, &im, &v, what);
    }
    printf("%zu variants of a %zu-byte store (%zu pages of %zu bytes, %zu branch, "
           "%zu leaf, %zu overflow)\n", n, im.size, im.npages, im.page,
           pages_flagged(&im, P_BRANCH), pages_flagged(&im, P_LEAF),
           pages_flagged(&im, P_OVERFLOW));
    free(im.bytes);
    return n;
}

/* ---- the tool ------------------------------------------------------------- */

enum { NCOMMANDS = 3 };
static const char *const commands[NCOMMANDS] = {"check", "dump", "stats"};

typedef struct tool_tally {
    char tmp[NCOMMANDS][256]; /* a store and output files for each command */
    size_t exits[NCOMMANDS][3]; /* by command and exit status 0, 1, 2 */
    size_t faults;              /* exits 2 on a fault in the tool's child */
} tool_tally;

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct stat sb;
    assert_int_equal(fstat(fileno(fp), &sb), 0);
    char *buf = malloc((size_t)sb.st_size + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (size_t)sb.st_size, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* The tool as in a release build: a fault kills it by its signal rather
 * than going to the sanitizer's handler, which would exit with a status.
 * A sanitizer report (a bug in kivis, not damage) exits 86 instead of
 * aborting, which the tool would take for damage.  No leak check: it
 * doubles the cost of a run, and the API children below run the same
 * library code with it. */
static void tool_env(void)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts,
             "%s%shandle_segv=0:handle_sigbus=0:abort_on_error=0:exitcode=86:detect_leaks=0",
             asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
}

/* Start `kivis cmd tmp/store` writing to tmp/out and tmp/err. */
static pid_t start_tool(const char *cmd, const char *tmp)
{
    char store[300], outp[300], errp[300];
    snprintf(store, sizeof store, "%s/store", tmp);
    snprintf(outp, sizeof outp, "%s/out", tmp);
    snprintf(errp, sizeof errp, "%s/err", tmp);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        tool_env();
        alarm(TIMEOUT_SECONDS); /* kept across exec: a hang fails the test */
        execl(kivis_tool, kivis_tool, cmd, store, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static char *slurp_in(const char *dir, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return slurp(path);
}

/* The run's outcome is one the tool may give; count it.  Exit 1 must be
 * check's report of the problems it found, not a walk that stopped. */
static void judge_tool(tool_tally *t, const char *what, size_t c, int ws)
{
    char *out = slurp_in(t->tmp[c], "out"), *err = slurp_in(t->tmp[c], "err");
    if (WIFSIGNALED(ws))
        fail_msg("%s: kivis %s died by signal %d (%s)\n%s", what, commands[c],
                 WTERMSIG(ws), strsignal(WTERMSIG(ws)), err);
    int status = WEXITSTATUS(ws);
    bool report = c == 0 && !strncmp(out, "problem: ", 9) && strstr(out, "\nFAILED: ");
    if (strstr(err, "Sanitizer"))
        fail_msg("%s: kivis %s:\n%s", what, commands[c], err);
    if (status == 2 && !strstr(err, "kivis: "))
        fail_msg("%s: kivis %s exited 2 without a message:\n%s", what, commands[c], err);
    if ((status == 1 && !report) || status > 2)
        fail_msg("%s: kivis %s exited %d:\n%s%s", what, commands[c], status, out, err);
    t->exits[c][status < 2 ? status : 2]++;
    t->faults += strstr(err, ": the store is damaged (reading it raised SIG") != NULL;
    free(out);
    free(err);
}

/* The three commands run at once, each on its own copy of the variant. */
static void tool_on_variant(void *ctx, const image *im, const variant *v, const char *what)
{
    tool_tally *t = ctx;
    pid_t pids[NCOMMANDS];
    for (size_t c = 0; c < NCOMMANDS; c++) {
        char store[300];
        snprintf(store, sizeof store, "%s/store", t->tmp[c]);
        write_variant(store, im, v);
        pids[c] = start_tool(commands[c], t->tmp[c]);
    }
    for (size_t c = 0; c < NCOMMANDS; c++) {
        int ws;
        assert_int_equal(waitpid(pids[c], &ws, 0), pids[c]);
        judge_tool(t, what, c, ws);
    }
}

/* dir/sub, made. */
static void make_subdir(const char *dir, const char *sub)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    assert_int_equal(mkdir(path, 0700), 0);
}

static void remove_subdir(const char *dir, const char *sub)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    kt_rmdir(path);
}

static void test_tool_damage(void **state)
{
    (void)state;
    tool_tally t;
    memset(&t, 0, sizeof t);
    for (size_t c = 0; c < NCOMMANDS; c++) {
        kt_tempdir(t.tmp[c], sizeof t.tmp[c]);
        make_subdir(t.tmp[c], "store");
    }
    size_t n = for_each_variant(tool_on_variant, &t);
    for (size_t c = 0; c < NCOMMANDS; c++) {
        remove_subdir(t.tmp[c], "store");
        kt_rmdir(t.tmp[c]);
    }
    for (size_t c = 0; c < NCOMMANDS; c++) {
        const size_t *e = t.exits[c];
        printf("kivis %-5s exit 0 %zu, exit 1 (problems found) %zu, exit 2 %zu, signal 0\n",
               commands[c], e[0], e[1], e[2]);
        assert_int_equal(e[0] + e[1] + e[2], n);
        assert_true(e[2] > 0);
    }
    printf("exits 2 on a fault in the reading process: %zu\n", t.faults);
    assert_true(t.faults > 0);
}

/* ---- the API -------------------------------------------------------------- */

/* What the child's fault handler saw, in memory shared with the parent. */
typedef struct fault {
    bool in_lmdb; /* the faulting instruction lies in liblmdb */
    char object[200];
} fault;

static fault *shared_fault;

static const void *fault_pc(void *uc)
{
#if defined(__x86_64__)
    return (const void *)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (const void *)((ucontext_t *)uc)->uc_mcontext.pc;
#else
    (void)uc;
    return NULL;
#endif
}

/* Note where the fault is, then let it kill the child: the handler resets
 * itself, so the faulting instruction runs again under the default action. */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    Dl_info info;
    const void *pc = fault_pc(uc);
    if (pc && dladdr(pc, &info) && info.dli_fname) {
        strncpy(shared_fault->object, info.dli_fname, sizeof shared_fault->object - 1);
        shared_fault->in_lmdb = strstr(info.dli_fname, "liblmdb") != NULL;
    }
}

static void catch_faults(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static int scan_table(kivis_db *db, uint32_t t)
{
    const kivis_table_desc *td = &pets_schema.tables[t];
    void *key = calloc(1, td->key->size), *rec = calloc(1, td->record->size);
    kivis_query q;
    memset(&q, 0, sizeof q);
    q.table = t;
    q.index = -1;
    kivis_scan *scan = NULL;
    int rc = key && rec ? kivis_scan_open(db, &q, &scan) : KIVIS_ENOMEM;
    while (!rc && (rc = kivis_scan_next(scan, key, rec)) == KIVIS_OK) {
        kivis_key_clear(db, t, key);
        kivis_record_clear(db, t, rec);
    }
    kivis_scan_close(scan);
    free(key);
    free(rec);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

/* Open, scan every table, check: 0 when all of it succeeds. */
static int read_through_api(const char *dir)
{
    kivis_storage *st;
    kivis_db *db = NULL;
    int rc = kivis_lmdb_open(dir, NULL, &st);
    if (rc)
        return rc;
    rc = kivis_open(st, &pets_schema, NULL, &db);
    for (uint32_t t = 0; !rc && t < pets_schema.ntables; t++)
        rc = scan_table(db, t);
    if (!rc)
        rc = kivis_check(db, NULL, NULL, NULL);
    kivis_close(db);
    kivis_storage_close(st);
    return rc;
}

typedef struct api_tally {
    char tmp[256]; /* the variant goes to tmp/store, the child's stderr to tmp/err */
    size_t ok, error, sigsegv, sigbus, sigabrt;
} api_tally;

/* LMDB's own assertions print "mdb.c:<line>: Assertion ..." and abort. */
static bool lmdb_asserted(const api_tally *t)
{
    char *err = slurp_in(t->tmp, "err");
    bool asserted = !strncmp(err, "mdb.c:", 6) && strstr(err, ": Assertion '");
    free(err);
    return asserted;
}

/* Whether the child's death by sig is LMDB faulting on a page it trusts:
 * its assertion, a fault in its code, or a read of a truncated map
 * (wherever it happens: kivis decodes values in place). */
static bool lmdb_fault(const api_tally *t, int sig)
{
    if (sig == SIGABRT)
        return lmdb_asserted(t);
    return sig == SIGBUS || (sig == SIGSEGV && shared_fault->in_lmdb);
}

static void api_on_variant(void *ctx, const image *im, const variant *v, const char *what)
{
    api_tally *t = ctx;
    char dir[300], errp[300];
    snprintf(dir, sizeof dir, "%s/store", t->tmp);
    snprintf(errp, sizeof errp, "%s/err", t->tmp);
    write_variant(dir, im, v);
    memset(shared_fault, 0, sizeof *shared_fault);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (e < 0 || dup2(e, 2) < 0)
            _exit(127);
        catch_faults();
        alarm(TIMEOUT_SECONDS);
        exit(read_through_api(dir) ? 1 : 0); /* exit: the leak check runs */
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (WIFEXITED(ws) && WEXITSTATUS(ws) <= 1) {
        *(WEXITSTATUS(ws) ? &t->error : &t->ok) += 1;
        return;
    }
    if (!WIFSIGNALED(ws))
        fail_msg("%s: the API child exited %d:\n%s", what, WEXITSTATUS(ws), slurp(errp));
    int sig = WTERMSIG(ws);
    if (!lmdb_fault(t, sig))
        fail_msg("%s: the API child died by signal %d (%s) in %s:\n%s", what, sig,
                 strsignal(sig), shared_fault->object[0] ? shared_fault->object : "?",
                 slurp(errp));
    *(sig == SIGSEGV ? &t->sigsegv : sig == SIGBUS ? &t->sigbus : &t->sigabrt) += 1;
}

static void test_api_damage(void **state)
{
    (void)state;
    shared_fault = mmap(NULL, sizeof *shared_fault, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared_fault != MAP_FAILED);
    api_tally t;
    memset(&t, 0, sizeof t);
    kt_tempdir(t.tmp, sizeof t.tmp);
    make_subdir(t.tmp, "store");
    size_t n = for_each_variant(api_on_variant, &t);
    remove_subdir(t.tmp, "store");
    kt_rmdir(t.tmp);
    size_t died = t.sigsegv + t.sigbus + t.sigabrt;
    printf("API (open, scan every table, check): error %zu, ok %zu, signal %zu "
           "(LMDB: SIGSEGV %zu, SIGBUS %zu, assertion %zu)\n", t.error, t.ok, died,
           t.sigsegv, t.sigbus, t.sigabrt);
    munmap(shared_fault, sizeof *shared_fault);
    assert_int_equal(t.ok + t.error + died, n);
    assert_true(t.error > 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tool[] = {cmocka_unit_test(test_tool_damage)};
    const struct CMUnitTest api[] = {cmocka_unit_test(test_api_damage)};
    if (argc > 1) {
        kivis_tool = argv[1];
        return cmocka_run_group_tests_name("kivis tool on damaged stores", tool, NULL, NULL);
    }
    return cmocka_run_group_tests_name("API on damaged stores", api, NULL, NULL);
}
