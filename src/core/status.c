/* Status names and messages, the default allocator, and the storage
 * version check: the pieces every layer shares. */
#include <kivis/common.h>
#include <kivis/storage.h>

#include <stdlib.h>

const char *kivis_strerror(int rc)
{
    switch (rc) {
#define KIVIS__STATUS_MSG(name, value, msg) \
    case (value):                          \
        return (msg);
        KIVIS_STATUS_MAP(KIVIS__STATUS_MSG)
#undef KIVIS__STATUS_MSG
    }
    return "unknown status";
}

const char *kivis_errname(int rc)
{
    switch (rc) {
#define KIVIS__STATUS_NAME(name, value, msg) \
    case (value):                           \
        return "KIVIS_" #name;
        KIVIS_STATUS_MAP(KIVIS__STATUS_NAME)
#undef KIVIS__STATUS_NAME
    }
    return "unknown status";
}

static void *default_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n ? n : 1);
}

static void *default_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n ? n : 1);
}

static void default_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static const kivis_allocator default_allocator = {
    default_malloc, default_realloc, default_free, NULL};

const kivis_allocator *kivis_default_allocator(void)
{
    return &default_allocator;
}

int kivis_storage_check(const kivis_storage *st)
{
    if (!st || !st->methods)
        return KIVIS_EINVAL;
    if (st->methods->version < 1 ||
        st->methods->version > KIVIS_STORAGE_VERSION)
        return KIVIS_EVERSION;
    return KIVIS_OK;
}

int kivis_storage_close(kivis_storage *st)
{
    if (!st)
        return KIVIS_OK;
    if (__atomic_load_n(&st->handles, __ATOMIC_ACQUIRE) != 0)
        return KIVIS_EBUSY;
    st->methods->close(st);
    return KIVIS_OK;
}
