/*
 * tools/progress.c - progress bars on stderr, drawn only when it is a
 * terminal: a pipe or a file gets nothing but the command's own output.
 */
#include "cli.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_progress_init(cli_progress *p, const char *unit, bool quiet)
{
    p->on = !quiet && isatty(STDERR_FILENO);
    p->drawn = false;
    p->unit = unit;
}

void cli_progress_draw(cli_progress *p, uint64_t done, uint64_t total)
{
    if (!p->on)
        return;
    if (!total) {
        fprintf(stderr, "\r%" PRIu64 " %s\033[K", done, p->unit);
    } else {
        enum { WIDTH = 40 };
        uint64_t shown = done < total ? done : total;
        int filled = (int)(shown * WIDTH / total);
        fprintf(stderr, "\r[%.*s%*s] %3d%% %" PRIu64 "/%" PRIu64 " %s\033[K", filled,
                "########################################", WIDTH - filled, "",
                (int)(shown * 100 / total), done, total, p->unit);
    }
    p->drawn = true;
}

void cli_progress_clear(cli_progress *p)
{
    if (p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = false;
}

uint64_t cli_path_bytes(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode))
        return (uint64_t)sb.st_size;
    uint64_t total = 0;
    DIR *d = opendir(path);
    char entry[4096];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            (size_t)snprintf(entry, sizeof entry, "%s/%s", path, e->d_name) < sizeof entry &&
            stat(entry, &sb) == 0 && S_ISREG(sb.st_mode))
            total += (uint64_t)sb.st_size;
    if (d)
        closedir(d);
    return total;
}

/* ---- watching a copy grow ---------------------------------------------- */

struct cli_watch {
    cli_progress *p;
    const char *path;
    uint64_t total; /* KiB */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
};

static void *watch_loop(void *arg)
{
    cli_watch *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        cli_progress_draw(w->p, cli_path_bytes(w->path) / 1024, w->total);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

cli_watch *cli_watch_start(cli_progress *p, const char *path, uint64_t total)
{
    if (!p->on)
        return NULL;
    cli_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->p = p;
    w->path = path;
    w->total = total / 1024;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, watch_loop, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void cli_watch_stop(cli_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    cli_progress_clear(w->p);
    free(w);
}
