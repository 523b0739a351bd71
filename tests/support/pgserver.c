/*
 * pgserver.c - a private PostgreSQL server for one test program (see
 * pgserver.h).
 */
#include "pgserver.h"
#include "watchdog.h"

#include <libpq-fe.h>

#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SUPERUSER "kivis"

static struct {
    char bin[256];  /* PostgreSQL's bin directory */
    char dir[256];  /* the temporary directory: data/, logs, socket */
    char data[300];
    char log[300];  /* the server's log */
    char setup_log[300]; /* initdb's and pg_ctl's output */
    char opts[700]; /* postgres options for pg_ctl -o */
    char extra[256]; /* kt_pg_configure's, after the defaults */
    int port;
    bool as_nobody; /* run the server as nobody (the test runs as root) */
    kt_watchdog watchdog; /* stops the server, removes the directory */
    char conninfo[400];
} pg;

static void die(const char *what)
{
    fprintf(stderr, "pgserver: %s\n", what);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "tail -n 30 '%s' '%s' >&2 2>/dev/null", pg.setup_log,
             pg.log);
    if (pg.log[0] && system(cmd) != 0)
        fprintf(stderr, "pgserver: no log\n");
    exit(1);
}

/* The newest /usr/lib/postgresql/N/bin with an initdb. */
static void find_binaries(void)
{
    glob_t g;
    long best = -1;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
        die("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
            "(scripts/deps.sh installs the postgresql package)");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
        if (v > best) {
            best = v;
            snprintf(pg.bin, sizeof pg.bin, "%.*s", (int)(strlen(g.gl_pathv[i]) - 7),
                     g.gl_pathv[i]);
        }
    }
    globfree(&g);
}

/* Run bin/prog with args (NULL-terminated, at most 12), as nobody when
 * root, output appended to the setup log.  @return its exit status. */
static int run(const char *prog, const char *const *args)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", pg.bin, prog);
    const char *argv[20];
    int n = 0;
    if (pg.as_nobody) {
        argv[n++] = "runuser";
        argv[n++] = "-u";
        argv[n++] = "nobody";
        argv[n++] = "--";
    }
    argv[n++] = path;
    for (int i = 0; args[i] && n < 19; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed");
    if (pid == 0) {
        int fd = open(pg.setup_log, O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(pg.dir, sizeof pg.dir, "%s/kivis-pg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(pg.dir))
        die("cannot create a temporary directory");
    snprintf(pg.data, sizeof pg.data, "%s/data", pg.dir);
    snprintf(pg.log, sizeof pg.log, "%s/server.log", pg.dir);
    snprintf(pg.setup_log, sizeof pg.setup_log, "%s/setup.log", pg.dir);
    pg.as_nobody = geteuid() == 0;
    if (pg.as_nobody) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw || chown(pg.dir, pw->pw_uid, pw->pw_gid) != 0)
            die("cannot give the server directory to user nobody");
    }
}

/* The watchdog (watchdog.h) stops the server and removes its directory. */
static void start_watchdog(void)
{
    static const char script[] =
        "cat >/dev/null; "
        "if [ \"$3\" = 1 ]; then runuser -u nobody -- \"$1/pg_ctl\" -D \"$2/data\" "
        "-m immediate stop; else \"$1/pg_ctl\" -D \"$2/data\" -m immediate stop; fi "
        ">/dev/null 2>&1; rm -rf \"$2\"";
    const char *args[] = {pg.bin, pg.dir, pg.as_nobody ? "1" : "0", NULL};
    if (kt_watchdog_start(&pg.watchdog, script, args) != 0)
        die("cannot start the watchdog");
}

static void stop_at_exit(void)
{
    kt_watchdog_stop(&pg.watchdog);
}

static void start_server(void)
{
    const char *args[] = {"-D", pg.data, "-l", pg.log, "-w", "-t", "60",
                          "-o", pg.opts, "start", NULL};
    if (run("pg_ctl", args) != 0)
        die("the server did not start");
}

void kt_pg_configure(const char *server_options)
{
    if (strlen(server_options) >= sizeof pg.extra)
        die("kt_pg_configure: options too long");
    snprintf(pg.extra, sizeof pg.extra, "%s", server_options);
}

const char *kt_pg_start(void)
{
    if (pg.conninfo[0])
        return pg.conninfo;
    find_binaries();
    make_dir();
    start_watchdog();
    atexit(stop_at_exit);
    const char *initdb[] = {"-D", pg.data, "-U", SUPERUSER, "--auth=trust",
                            "-E", "UTF8", "--no-sync", "--no-instructions", NULL};
    if (run("initdb", initdb) != 0)
        die("initdb failed");
    pg.port = kt_free_port();
    if (pg.port < 0)
        die("no free port on 127.0.0.1");
    snprintf(pg.opts, sizeof pg.opts,
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
             "-c max_connections=60 %s",
             pg.port, pg.dir, pg.extra);
    start_server();
    snprintf(pg.conninfo, sizeof pg.conninfo, "%s",
             kt_pg_conninfo("postgres", SUPERUSER));
    return pg.conninfo;
}

const char *kt_pg_conninfo(const char *db, const char *user)
{
    static char buf[400];
    if (!pg.port)
        kt_pg_start();
    snprintf(buf, sizeof buf, "host=%s port=%d user=%s dbname=%s", pg.dir, pg.port,
             user ? user : SUPERUSER, db);
    return buf;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

void kt_pg_exec(const char *sql)
{
    PGconn *c = PQconnectdb(kt_pg_start());
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgserver: %s", PQerrorMessage(c));
        PQfinish(c);
        die("cannot connect");
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgserver: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        die("statement failed");
    }
    PQclear(r);
    PQfinish(c);
}

void kt_pg_drop_store(const char *table)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS %s, %s_changes, %s_feed;"
             "DROP FUNCTION IF EXISTS %s_feed_log, %s_feed_trim, %s_feed_draw",
             table, table, table, table, table, table);
    kt_pg_exec(sql);
}

const char *kt_pg_fresh_db(const char *name)
{
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    kt_pg_exec(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    kt_pg_exec(sql);
    return kt_pg_conninfo(name, NULL);
}

void kt_pg_stop(bool crash)
{
    const char *stop[] = {"-D", pg.data, "-w", "-m", crash ? "immediate" : "fast",
                          "stop", NULL};
    kt_pg_start();
    if (run("pg_ctl", stop) != 0)
        die("the server did not stop");
}

void kt_pg_resume(void)
{
    kt_pg_start();
    start_server();
}

void kt_pg_restart(bool crash)
{
    kt_pg_stop(crash);
    kt_pg_resume();
}
