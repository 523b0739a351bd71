/*
 * gen/source.c - kg_compile_file: a schema file read whole and compiled,
 * for kivis-gen and for the kivis tool's `migrate`, which print the same
 * diagnostics for the same file.
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

char *kg_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap *= 2);
        if (!bigger)
            free(buf);
        buf = bigger;
    }
    int bad = !buf || ferror(f);
    int saved = buf ? EIO : ENOMEM;
    fclose(f);
    if (bad) {
        free(buf);
        errno = saved;
        return NULL;
    }
    *len = n;
    return buf;
}

int kg_compile_file(const char *path, void *err, kg_schema **out)
{
    size_t len = 0;
    *out = NULL;
    char *src = kg_read_file(path, &len);
    if (!src)
        return -1;
    int errors = kg_compile(path, src, len, err, out);
    free(src);
    return errors;
}
