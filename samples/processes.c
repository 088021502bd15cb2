/* processes.c - fork, vfork, execve and wait: exit statuses and deaths by signal as the
 * parent sees them, the child's copy of memory, a pipe from child to parent, a pipe dup2'ed
 * onto a child's stdin before it execs this program again (through /proc/self/exe), argv
 * and the environment across exec, close-on-exec, a child killed with SIGTERM, process
 * groups and sessions.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "processes: check %d failed: %s\n", (code), #cond);        \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

extern char **environ;
static char memory[1 << 20];
static int *volatile nowhere;  /* NULL, and the compiler cannot tell */

static int wait_status(pid_t pid) {
    int status;
    CHECK(90, waitpid(pid, &status, 0) == pid);
    return status;
}

/* The program exec'ed as a child: argv[1] says what to do. */
static int child_main(int argc, char **argv) {
    if (strcmp(argv[1], "upper") == 0) {  /* stdin to stdout in capitals */
        int c;
        while ((c = getchar()) != EOF)
            putchar(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        return 0;
    }
    /* "args": the arguments, the environment and the descriptors exec kept */
    CHECK(40, argc == 5 && strcmp(argv[2], "two words") == 0 && argv[3][0] == '\0');
    CHECK(41, getenv("PROCESSES_SAMPLE") && strcmp(getenv("PROCESSES_SAMPLE"), "set") == 0);
    CHECK(42, fcntl(5, F_GETFD) == 0);   /* inherited */
    CHECK(43, fcntl(6, F_GETFD) == -1);  /* close-on-exec */
    struct sigaction action;
    sigaction(SIGUSR1, NULL, &action);
    CHECK(44, action.sa_handler == SIG_DFL);  /* a caught signal is reset by exec */
    sigaction(SIGUSR2, NULL, &action);
    CHECK(45, action.sa_handler == SIG_IGN);  /* an ignored one stays ignored */
    return atoi(argv[4]);
}

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv) {
    if (argc > 1)
        return child_main(argc, argv);
    memset(memory, 'p', sizeof memory);

    pid_t parent = getpid();
    pid_t pid = fork();
    CHECK(1, pid >= 0);
    if (pid == 0) {
        if (getppid() != parent || memory[4321] != 'p')
            _exit(1);
        memset(memory, 'c', sizeof memory);
        _exit(7);
    }
    int status = wait_status(pid);
    CHECK(2, WIFEXITED(status) && WEXITSTATUS(status) == 7);
    CHECK(3, memory[4321] == 'p');  /* the child wrote its own copy */

    int deaths[] = {SIGSEGV, SIGABRT, SIGKILL, SIGUSR2};
    for (int i = 0; i < 4; i++) {
        pid = fork();
        if (pid == 0) {
            if (deaths[i] == SIGSEGV)
                *nowhere = 1;
            if (deaths[i] == SIGABRT)
                abort();
            raise(deaths[i]);
            _exit(0);
        }
        status = wait_status(pid);
        CHECK(4, WIFSIGNALED(status) && WTERMSIG(status) == deaths[i] && !WCOREDUMP(status));
    }

    int p[2];
    CHECK(5, pipe(p) == 0);
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        dprintf(p[1], "from the child");
        _exit(0);
    }
    close(p[1]);
    char buf[64] = {0};
    CHECK(6, read(p[0], buf, sizeof buf) == 14 && strcmp(buf, "from the child") == 0);
    CHECK(7, read(p[0], buf, sizeof buf) == 0);  /* the writer is gone */
    close(p[0]);
    CHECK(8, WIFEXITED(wait_status(pid)));

    /* exec: arguments, environment, kept and closed descriptors, signal dispositions */
    setenv("PROCESSES_SAMPLE", "set", 1);
    CHECK(9, dup2(1, 5) == 5 && dup2(1, 6) == 6 && fcntl(6, F_SETFD, FD_CLOEXEC) == 0);
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, SIG_IGN);
    char *args[] = {"/proc/self/exe", "args", "two words", "", "23", NULL};
    for (int use_vfork = 0; use_vfork < 2; use_vfork++) {
        pid = use_vfork ? vfork() : fork();
        if (pid == 0) {
            execve(args[0], args, environ);
            _exit(127);
        }
        status = wait_status(pid);
        CHECK(10 + use_vfork, WIFEXITED(status) && WEXITSTATUS(status) == 23);
    }
    char *missing[] = {"/nonexistent/program", NULL};
    CHECK(12, execve(missing[0], missing, environ) == -1 && errno == ENOENT);
    char *directory[] = {"/", NULL};
    CHECK(13, execve(directory[0], directory, environ) == -1 && errno == EACCES);

    /* a pipe onto a child's stdin, then exec: the shell's `echo ... | upper` */
    int in[2], out[2];
    CHECK(14, pipe(in) == 0 && pipe(out) == 0);
    pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        char *upper[] = {"/proc/self/exe", "upper", NULL};
        execv(upper[0], upper);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    CHECK(15, write(in[1], "shout this\n", 11) == 11);
    close(in[1]);
    memset(buf, 0, sizeof buf);
    size_t got = 0;
    ssize_t n;
    while ((n = read(out[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += n;
    CHECK(16, strcmp(buf, "SHOUT THIS\n") == 0);
    CHECK(17, WIFEXITED(wait_status(pid)));

    /* a child that runs until it is killed */
    int ready[2];
    CHECK(18, pipe(ready) == 0);
    pid = fork();
    if (pid == 0) {
        close(ready[0]);
        write(ready[1], "r", 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    CHECK(19, read(ready[0], buf, 1) == 1);
    CHECK(20, waitpid(pid, &status, WNOHANG) == 0);
    CHECK(21, kill(pid, SIGTERM) == 0);
    status = wait_status(pid);
    CHECK(22, WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    CHECK(23, waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD);

    /* process groups and sessions */
    pid = fork();
    if (pid == 0) {
        if (setpgid(0, 0) != 0 || getpgrp() != getpid() || getpgid(0) != getpid())
            _exit(1);
        if (setsid() != -1 || errno != EPERM)  /* a group leader cannot */
            _exit(2);
        _exit(0);
    }
    CHECK(24, setpgid(pid, pid) == 0 || errno == EACCES);  /* racing the child is fine */
    status = wait_status(pid);
    CHECK(25, WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pid = fork();
    if (pid == 0)
        _exit(setsid() == getpid() && getsid(0) == getpid() && getpgid(0) == getpid() ? 0 : 1);
    status = wait_status(pid);
    CHECK(26, WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(27, getpgid(pid) == -1 && errno == ESRCH);

    puts("processes: all checks passed");
    return 0;
}
