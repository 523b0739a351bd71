/*
 * etcdcluster.h - a private three-member etcd cluster for one test program.
 *
 * kt_etcd_start starts /usr/bin/etcd (Debian's etcd-server) three times on
 * free ports of 127.0.0.1, each member with a data directory under one new
 * directory in /dev/shm (etcd flushes its Raft log at every commit; on
 * memory that costs nothing) or $TMPDIR when there is no /dev/shm.  The
 * members run with --max-txn-ops 1024 (etcd's default is 128: the
 * conformance suite commits transactions of some hundred keys read and
 * written) and a 50 ms heartbeat / 500 ms election timeout, so that a lost
 * leader is replaced within a second.  etcd 3.4 runs as root, so the
 * members run as the test's user.
 *
 * A watchdog process kills the members and removes the directory when the
 * test program ends, however it ends (normal exit, failed assertion,
 * abort, kill): it waits for a pipe only the test holds to close.
 *
 * A test that cannot start the cluster fails (exit 1 with the reason and
 * the members' logs); it never skips.
 */
#ifndef KT_ETCDCLUSTER_H
#define KT_ETCDCLUSTER_H

#include <stdbool.h>

#define KT_ETCD_MEMBERS 3

/** The members' --max-txn-ops (1024 unless this is called): call before
 *  kt_etcd_start.  The benchmark raises it for its transactions of 1,000
 *  records (a put of the record and one of its index entry each, and as
 *  many compares). */
void kt_etcd_set_max_txn_ops(int n);

/** Start the cluster once per process (later calls return the same one)
 *  and wait until it has a leader.  @return the members' client URLs,
 *  comma-separated, for kivis_etcd_open; exits the program when the
 *  cluster cannot start. */
const char *kt_etcd_start(void);

/** Member i's client URL, in a static buffer. */
const char *kt_etcd_endpoint(int i);

/** Kill member i (SIGKILL, as a crash would) and wait for it to die. */
void kt_etcd_kill(int i);

/** Freeze member i (SIGSTOP): its sockets still accept connections, but
 *  it answers nothing, as a member in a long pause or behind a network
 *  that drops its packets.  kt_etcd_thaw(i) (SIGCONT) ends it. */
void kt_etcd_freeze(int i);
void kt_etcd_thaw(int i);

/** Start member i again on its data and ports; waits until it answers. */
void kt_etcd_revive(int i);

/** The index of the member that is the leader now (asks the members). */
int kt_etcd_leader(void);

/** Delete every key under `prefix`.  Exits the program on failure. */
void kt_etcd_wipe(const char *prefix);

/** The cluster's revision now. */
long long kt_etcd_revision(void);

/** Compact the cluster's history up to `revision`. */
void kt_etcd_compact(long long revision);

#endif /* KT_ETCDCLUSTER_H */
