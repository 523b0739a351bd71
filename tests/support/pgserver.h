/*
 * pgserver.h - a private PostgreSQL server for one test program.
 *
 * kt_pg_start finds PostgreSQL's binaries (/usr/lib/postgresql/N/bin,
 * newest N), runs initdb in a new directory under $TMPDIR (as `nobody`
 * when the test runs as root: initdb refuses root), and starts the server
 * on a free port of 127.0.0.1 with its unix socket in that directory.  A
 * watchdog process stops the server and removes the directory when the
 * test program ends, however it ends (normal exit, failed assertion,
 * abort, kill): it waits for a pipe only the test holds to close.
 *
 * Tests connect through the unix socket (twice as fast as TCP on
 * loopback); the TCP port serves tests that need one.
 *
 * A test that cannot start the server fails (exit 1 with the reason); it
 * never skips.
 */
#ifndef KT_PGSERVER_H
#define KT_PGSERVER_H

#include <stdbool.h>

/** Extra options of the `postgres` command for the server kt_pg_start
 *  starts (e.g. "-c fsync=on"), after the defaults, so they override them;
 *  call before kt_pg_start.  The benchmark uses it: the tests crash the
 *  server process, not the machine, and run with fsync off. */
void kt_pg_configure(const char *server_options);

/** Start the server once per process (later calls return the same one).
 *  @return its libpq connection string (superuser "kivis", database
 *  "postgres"); exits the program when the server cannot start. */
const char *kt_pg_start(void);

/** A connection string for database `db` on the running server, as user
 *  `user` (NULL: "kivis"), in a static buffer. */
const char *kt_pg_conninfo(const char *db, const char *user);

/** Run SQL on the server as the superuser; exits the program on error. */
void kt_pg_exec(const char *sql);

/** Drop a kivis store's table `table` with its change log, its feed's
 *  table and functions (src/storage/postgres.c's names), if they exist,
 *  so that the next kivis_postgres_open on it starts empty. */
void kt_pg_drop_store(const char *table);

/** A fresh database for one test (dropped and created again). */
const char *kt_pg_fresh_db(const char *name);

/** Stop the server (crash: immediate mode, as a power cut would for the
 *  server process; else a fast shutdown) and leave it stopped: clients get
 *  KIVIS_EUNAVAILABLE until kt_pg_resume.  Exits the program on failure. */
void kt_pg_stop(bool crash);

/** Start the server kt_pg_stop stopped again, on the same port and data
 *  directory.  Exits the program on failure. */
void kt_pg_resume(void);

/** kt_pg_stop(crash), then kt_pg_resume. */
void kt_pg_restart(bool crash);

#endif /* KT_PGSERVER_H */
