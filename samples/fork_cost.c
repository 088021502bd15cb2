/* fork_cost.c - the cost of fork for a process with much memory touched: each round forks a
 * child that checks a page of the parent's memory, writes one of its own and exits; the
 * parent waits for it and checks that its own memory did not change.
 * Optional argv[1]: MiB touched (default 16); argv[2]: rounds (default 3); argv[3] "time":
 * print the mean time of fork (until it returns in the parent) and of fork+exit+wait.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fork_cost: check %d failed: %s\n", (code), #cond);        \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t size = (size_t)(argc > 1 ? atol(argv[1]) : 16) << 20;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    int timed = argc > 3 && strcmp(argv[3], "time") == 0;
    CHECK(1, size > 0 && rounds > 0);
    unsigned char *memory = malloc(size);
    CHECK(2, memory != NULL);
    for (size_t i = 0; i < size; i += 4096)
        memory[i] = (unsigned char)(i >> 12);
    double forking = 0, round_trip = 0;
    for (int round = 0; round < rounds; round++) {
        size_t page = (size_t)round * 7919 % (size >> 12) << 12;
        double start = now();
        pid_t pid = fork();
        CHECK(3, pid >= 0);
        if (pid == 0) {
            int ok = memory[page] == (unsigned char)(page >> 12);
            memory[page] = 0xAA;
            _exit(ok ? 0 : 1);
        }
        double forked = now();
        int status;
        CHECK(4, waitpid(pid, &status, 0) == pid);
        double done = now();
        CHECK(5, WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(6, memory[page] == (unsigned char)(page >> 12));
        forking += forked - start;
        round_trip += done - start;
    }
    printf("fork_cost: %zu MiB touched, %d forks\n", size >> 20, rounds);
    if (timed)
        printf("fork %.2f ms, fork+exit+wait %.2f ms (mean)\n", 1e3 * forking / rounds,
               1e3 * round_trip / rounds);
    return 0;
}
