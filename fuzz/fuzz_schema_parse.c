/*
 * Compile arbitrary bytes as a schema.  Whatever the input, kg_compile
 * must return without crashing, leaking or hanging, report at least one
 * error exactly when it returns no schema, and print its diagnostics
 * (to /dev/null, so the printing code runs too).
 */
#include "model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();
    kg_schema *s = NULL;
    int errors = kg_compile("fuzz.kvs", (const char *)data, size, devnull, &s);
    if (errors < 0 || (errors == 0) != (s != NULL))
        abort();
    kg_schema_free(s);
    return 0;
}
