/*
 * watchdog.h - what the server fixtures (pgserver.c, etcdcluster.c) share:
 * a free port, and a watchdog process that cleans up after the test
 * program however it ends (normal exit, failed assertion, abort, kill).
 *
 * The watchdog is a shell in its own session (a ^C of the test does not
 * stop it) whose standard input is a pipe only the test process holds: it
 * reads until EOF, which comes when the test exits or dies, then stops the
 * servers and removes their directory.
 */
#ifndef KT_WATCHDOG_H
#define KT_WATCHDOG_H

#include <sys/types.h>

typedef struct kt_watchdog {
    pid_t owner; /* the process that started it */
    pid_t pid;   /* the shell */
    int guard;   /* the pipe's write end: closing it starts the cleanup */
} kt_watchdog;

/** A free TCP port on 127.0.0.1 (bound and released).  @return it, or -1. */
int kt_free_port(void);

/** Start `sh -c script sh args...` (args NULL-terminated, at most 8) with
 *  its stdin the read end of the pipe; the script begins with
 *  `cat >/dev/null` to wait for EOF.  The write end is close-on-exec, so
 *  that the servers the test starts do not hold it.  @return 0, or -1
 *  (pipe or fork failed). */
int kt_watchdog_start(kt_watchdog *w, const char *script, const char *const *args);

/** In the process that started it (in a forked child, nothing): close the
 *  pipe and wait until the watchdog has cleaned up.  Once only. */
void kt_watchdog_stop(kt_watchdog *w);

#endif /* KT_WATCHDOG_H */
