/*
 * Compile arbitrary bytes as a schema.  Whatever the input, kg_compile
 * must return without crashing, leaking or hanging, report at least one
 * error exactly when it returns no schema, and print its diagnostics
 * (to /dev/null, so the printing code runs too).  A schema it accepts is
 * emitted (into a temporary directory), which must succeed.
 *
 * With KIVIS_FUZZ_KEEP_ACCEPTED=DIR in the environment, every accepted
 * input is also written to DIR (named by its hash, at most 2000 files),
 * not only those the fuzzer keeps for new coverage, which are few:
 * scripts/fuzz-headers.sh compiles the headers of a sample of them.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/kivis-fuzz-XXXXXX";

static void remove_dir(void)
{
    rmdir(dir);
}

/* Emit `s` into dir, then remove what was written. */
static void emit(const kg_schema *s)
{
    static const char *const ext[] = {".kivis.h", ".kivis.c"};
    size_t n = sizeof dir + strlen(s->name) + 16;
    char *path = malloc(n);
    if (!path || kg_emit(s, dir, stderr) != 0)
        abort();
    for (int i = 0; i < 2; i++) {
        snprintf(path, n, "%s/%s%s", dir, s->name, ext[i]);
        remove(path);
    }
    free(path);
}

/* Write data to keep/<hash>.kvs, once per content. */
static void keep(const char *keep_dir, const uint8_t *data, size_t size)
{
    static unsigned kept;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211u;
    size_t n = strlen(keep_dir) + 32;
    char *path = malloc(n);
    if (!path)
        abort();
    snprintf(path, n, "%s/%016llx.kvs", keep_dir, (unsigned long long)h);
    FILE *f = kept < 2000 ? fopen(path, "wbx") : NULL;
    if (f) {
        kept++;
        if (fwrite(data, 1, size, f) != size || fclose(f) != 0)
            abort();
    }
    free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    static int have_dir;
    static const char *keep_dir;
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();
    if (!have_dir) {
        if (!mkdtemp(dir) || atexit(remove_dir) != 0)
            abort();
        have_dir = 1;
        keep_dir = getenv("KIVIS_FUZZ_KEEP_ACCEPTED");
    }
    kg_schema *s = NULL;
    int errors = kg_compile("fuzz.kvs", (const char *)data, size, devnull, &s);
    if (errors < 0 || (errors == 0) != (s != NULL))
        abort();
    if (s)
        emit(s);
    if (s && keep_dir)
        keep(keep_dir, data, size);
    kg_schema_free(s);
    return 0;
}
