/* SPDX-License-Identifier: MIT */
/*
 * kivis/etcd.h - the etcd backend: a store in an etcd cluster (version 3.4
 * or later), shared by every process that reaches the cluster, replicated
 * by Raft and so still there when a minority of its members is lost.
 *
 * The backend speaks etcd's v3 API through the JSON gateway every member
 * serves on its client URL (POST /v3/kv/range, /v3/kv/txn, /v3/watch, ...)
 * with libcurl, keeping one connection per storage alive between requests.
 *
 * Layout.  Every key of the store lives under a prefix (the options;
 * "kivis/" by default): key k is etcd key prefix + "d" + k.  Under prefix +
 * "t" the backend keeps, for a short while, one marker per commit (see
 * commits below).  Two storages with different prefixes do not see each
 * other; no prefix may be a prefix of another's.
 *
 * Transactions.  etcd keeps every key's history (revisions), so a
 * transaction reads one snapshot: its first read takes the cluster's
 * current revision and every later read asks for that revision.
 *  - A read-only transaction costs nothing at the server between reads;
 *    its end sends nothing.
 *  - A write transaction reads the same way and buffers its writes
 *    (read-your-writes, kivis/overlay.h).  Commit sends ONE etcd txn: its
 *    compares say that nothing the transaction read has changed since (the
 *    mod_revision of each key read, or its absence; no key of a scanned
 *    range modified or created after the read revision; each key written
 *    unchanged since then) and its success branch holds every put and
 *    delete.  When a compare fails nothing is applied and commit returns
 *    KIVIS_ECONFLICT: begin again and redo every read and write.  So
 *    concurrent read-modify-write never loses an update (serializable), and
 *    any number of writers, in any processes, run at once (no KIVIS_EBUSY).
 *  - A commit is one etcd txn and etcd refuses a txn with more compares or
 *    writes than its --max-txn-ops (128 by default) or larger than its
 *    --max-request-bytes (1.5 MiB): commit then fails with KIVIS_EINVAL,
 *    nothing applied, and kivis_etcd_errmsg names the limit.  A transaction
 *    is never split.  Each key read or scanned counts as one compare.
 *  - A snapshot older than the cluster's last compaction cannot be read
 *    any more: KIVIS_ECONFLICT (retry with a new transaction).
 *  - Durability: etcd commits through its Raft log, flushed on a majority
 *    of members before the reply; KIVIS_NOSYNC changes nothing.
 *
 * The network.  endpoints lists the members' client URLs; requests go to
 * one of them and move to the next one when it cannot be reached or has
 * no leader, trying each member in turn until the request's time runs out
 * (timeout_ms): then KIVIS_EUNAVAILABLE, and the next call starts again.
 * One member gets a quarter of that time (at least a second), so that a
 * member that accepts connections but answers nothing (paused, or a
 * follower waiting on a dead leader) costs a request part of its time,
 * not all of it.
 * A commit whose reply is lost is sent again to the next member: the
 * commit's marker key (written in the same etcd txn, compared absent) makes
 * a second application impossible, and a resend that finds the marker
 * reports the first one's success.  A commit returns KIVIS_EUNAVAILABLE
 * only when no member answered within its time: then its outcome is
 * unknown (docs/storage.md says how to find out).
 *
 * Errors: unreachable members, no leader, timeouts KIVIS_EUNAVAILABLE;
 * failed compares and compacted revisions KIVIS_ECONFLICT; "database space
 * exceeded" KIVIS_EFULL; limits (above) KIVIS_EINVAL; anything else
 * KIVIS_EIO.  The server's message is kept in kivis_etcd_errmsg.
 *
 * Borrowed results (storage.h): a value returned by get lives until the end
 * of the transaction; keys and values of a cursor until its next step.
 *
 * Threads: one storage may be shared by any number of threads (its
 * requests take turns on its connection); a transaction and its cursors are
 * used by one thread at a time.
 */
#ifndef KIVIS_ETCD_H
#define KIVIS_ETCD_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kivis_etcd_options {
    /** Allocator for the backend's own objects; NULL for the default
     *  (libcurl and jansson allocate with malloc). */
    const kivis_allocator *allocator;
    /** Every etcd key of the store starts with it; NULL for "kivis/". */
    const char *prefix;
    /** Longest key accepted, in bytes; 0 for KIVIS_ETCD_MAX_KEY, at most
     *  KIVIS_ETCD_MAX_KEY. */
    size_t max_key_size;
    /** TLS (https:// endpoints): the CA bundle that signs the members'
     *  certificates (NULL: the system's), and a client certificate and its
     *  key in PEM (NULL: none), handed to libcurl. */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /** etcd authentication: a user and password (NULL: auth off).  The
     *  backend asks /v3/auth/authenticate for a token at open and again
     *  when the cluster says the token is invalid. */
    const char *user;
    const char *password;
    /** How long one request may take, retries on other members included,
     *  in milliseconds; 0 for 5000. */
    int timeout_ms;
} kivis_etcd_options;

#define KIVIS_ETCD_MAX_KEY 4096

/**
 * Open a store on the etcd cluster whose members' client URLs are listed
 * in `endpoints`, comma-separated ("http://10.0.0.1:2379,http://10.0.0.2:
 * 2379").  Asks one of them for the cluster's revision to check that it
 * answers.  opts may be NULL.  The caller owns *out and frees it with
 * kivis_storage_close.
 * @return KIVIS_OK; KIVIS_EUNAVAILABLE (no member answered); KIVIS_EINVAL
 *         (NULL or empty endpoints, an endpoint that is no http:// or
 *         https:// URL, a max_key_size over the limit, a refused login);
 *         KIVIS_EIO; KIVIS_ENOMEM.  *out = NULL on failure.
 */
int kivis_etcd_open(const char *endpoints, const kivis_etcd_options *opts,
                    kivis_storage **out);

/**
 * The server's or libcurl's message for the last error the backend met in
 * the calling thread (a failed open included), "" when none yet.
 * @return a string of this thread, valid until its next call into the
 *         backend.
 */
const char *kivis_etcd_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_ETCD_H */
