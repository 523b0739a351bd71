/* A free port and the cleanup watchdog of the server fixtures (see
 * watchdog.h). */
#include "watchdog.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int kt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             getsockname(fd, (struct sockaddr *)&a, &len) == 0;
    if (fd >= 0)
        close(fd);
    return ok ? ntohs(a.sin_port) : -1;
}

int kt_watchdog_start(kt_watchdog *w, const char *script, const char *const *args)
{
    const char *argv[12] = {"sh", "-c", script, "sh"};
    for (int i = 0; args[i] && i < 8; i++)
        argv[4 + i] = args[i];
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        setsid(); /* a ^C of the test must not stop the cleanup */
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        execv("/bin/sh", (char *const *)argv);
        _exit(127);
    }
    close(fds[0]);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC); /* not into the servers */
    w->owner = getpid();
    w->pid = pid;
    w->guard = fds[1];
    return 0;
}

void kt_watchdog_stop(kt_watchdog *w)
{
    if (getpid() != w->owner || w->guard < 0)
        return;
    close(w->guard);
    w->guard = -1;
    waitpid(w->pid, NULL, 0);
}
