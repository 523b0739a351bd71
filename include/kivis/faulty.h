/* SPDX-License-Identifier: MIT */
/*
 * kivis/faulty.h - a wrapper backend that fails on demand, for fault tests.
 *
 * It forwards every call to an inner storage and counts them.  Writes are
 * put, del and the commit of a read-write transaction; reads are get and
 * cursor steps.  Armed with kivis_faulty_fail(f, KIVIS_FAULT_WRITE, n, rc),
 * the n-th write from now returns rc instead of reaching the inner storage
 * (a failing commit aborts the inner transaction, so nothing of it lands).
 * Each arming fires once.
 */
#ifndef KIVIS_FAULTY_H
#define KIVIS_FAULTY_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kivis_fault_kind { KIVIS_FAULT_READ = 0, KIVIS_FAULT_WRITE = 1 };

/**
 * Wrap `inner`, which the wrapper then owns and closes.  alloc may be NULL.
 * On failure `inner` is left open and still the caller's.
 * @return KIVIS_OK, KIVIS_ENOMEM, KIVIS_EINVAL.
 */
int kivis_faulty_open(kivis_storage *inner, const kivis_allocator *alloc,
                      kivis_storage **out);

/**
 * Make the n-th read or write (n >= 1, counted from this call) fail with
 * `rc` (a negative status, e.g. KIVIS_EIO).  n = 0 disarms.
 */
void kivis_faulty_fail(kivis_storage *faulty, int kind, unsigned long n,
                       int rc);

/** Reads or writes seen since open (failed ones included). */
unsigned long kivis_faulty_count(kivis_storage *faulty, int kind);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_FAULTY_H */
