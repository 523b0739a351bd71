/* SPDX-License-Identifier: MIT */
/*
 * kivis/common.h - status codes, byte slices and allocator hooks shared by
 * every layer of Kivis (core, codec, storage).
 *
 * Ownership: a kivis_slice never owns its bytes; whoever hands one out says
 * how long the bytes stay valid.  A kivis_bytes inside a record owns its bytes
 * once a get has filled it; <record>_clear / kivis_record_clear frees them.
 */
#ifndef KIVIS_COMMON_H
#define KIVIS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The one list of status codes.  X(NAME, value, message).  KIVIS_OK and
 * KIVIS_NOTFOUND are statuses (non-negative); every error is negative.
 * kivis_strerror and kivis_errname are generated from this list, so they
 * cannot drift from the codes.
 */
#define KIVIS_STATUS_MAP(X)                                                   \
    X(OK, 0, "success")                                                       \
    X(NOTFOUND, 1, "not found")                                               \
    X(EINVAL, -1, "invalid argument")                                         \
    X(ENOMEM, -2, "out of memory")                                            \
    X(ECORRUPT, -3, "corrupt or malformed stored data")                       \
    X(EKEYSIZE, -4, "key too large for the storage backend")                  \
    X(ECONSTRAINT, -5, "constraint violated (unique index or reference)")     \
    X(ESCHEMA, -6, "schema does not match the stored schema")                 \
    X(EBADTXN, -7, "transaction failed earlier and must be aborted")          \
    X(EIO, -8, "storage I/O error")                                           \
    X(EFULL, -9, "storage is full")                                           \
    X(EOVERFLOW, -10, "auto-increment key space exhausted")                   \
    X(EBUSY, -11, "another write transaction is active")                      \
    X(EVERSION, -12, "unsupported storage interface or format version")       \
    X(EUTF8, -13, "string is not valid UTF-8")                                \
    X(ERANGE, -14, "value out of range for its field")                        \
    X(ENOTSUP, -15, "operation not supported by this backend or table")     \
    X(ETOOSMALL, -16, "buffer too small for the record's strings and blobs") \
    X(ECONFLICT, -17, "conflict with a concurrent transaction: retry it")     \
    X(EUNAVAILABLE, -18, "the storage server is unreachable")                \
    X(EEXIST, -19, "a record with this key already exists")

enum kivis_status {
#define KIVIS__STATUS_ENUM(name, value, msg) KIVIS_##name = (value),
    KIVIS_STATUS_MAP(KIVIS__STATUS_ENUM)
#undef KIVIS__STATUS_ENUM
};

/**
 * Describe a status code.
 * @return a static string, never NULL ("unknown status" for codes not in
 *         KIVIS_STATUS_MAP).
 */
const char *kivis_strerror(int rc);

/**
 * The symbolic name of a status code ("KIVIS_ENOMEM").
 * @return a static string, never NULL.
 */
const char *kivis_errname(int rc);

/** A borrowed run of bytes.  Never owns `data`. */
typedef struct kivis_slice {
    const void *data;
    size_t len;
} kivis_slice;

/** Build a slice over `len` bytes at `data`. */
static inline kivis_slice kivis_slice_make(const void *data, size_t len)
{
    kivis_slice s;
    s.data = data;
    s.len = len;
    return s;
}

/**
 * An owned byte blob, the C type of a `kivis_bytes` record field.
 * After a get, `data` was allocated with the db's allocator and is freed by
 * kivis_record_clear.  When writing, the caller owns it.
 */
typedef struct kivis_bytes {
    uint8_t *data;
    size_t len;
} kivis_bytes;

/**
 * Allocation hooks (SQLite's xMalloc idea).  Every allocation Kivis makes
 * goes through the allocator given when a storage or db is opened.
 * `realloc(ctx, NULL, n)` must behave as malloc; `free(ctx, NULL)` is a no-op.
 * A hook that returns NULL makes the operation fail with KIVIS_ENOMEM and
 * leave the store as it was.  The hooks must be thread-safe when a storage
 * is used from several threads or runs a thread of its own (the etcd
 * backend's watch thread allocates the changes of a feed with them).
 */
typedef struct kivis_allocator {
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} kivis_allocator;

/** The allocator used when NULL is passed: the C library's malloc family. */
const kivis_allocator *kivis_default_allocator(void);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_COMMON_H */
