/* tls.c - thread-local storage (initialised .tdata, zeroed .tbss, an over-aligned
 * variable) and errno, which is itself thread-local in both glibc and musl.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "tls: check %d failed: %s\n", (code), #cond);              \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

static __thread int counter = 41;                       /* .tdata */
static __thread char tbuf[100];                         /* .tbss */
static __thread long zeroed[32];                        /* .tbss */
static __thread double __attribute__((aligned(64))) aligned_d = 2.5;
static _Thread_local unsigned long long c11_tls = 0x1122334455667788ULL;

/* noinline so the compiler really goes through the thread pointer each time. */
static __attribute__((noinline)) int *counter_addr(void) { return &counter; }
static __attribute__((noinline)) void bump(void) { counter++; }

int main(void)
{
    CHECK(1, counter == 41);
    bump();
    CHECK(2, counter == 42 && *counter_addr() == 42);
    for (int i = 0; i < 32; i++)
        CHECK(3, zeroed[i] == 0);
    for (size_t i = 0; i < sizeof tbuf; i++)
        CHECK(4, tbuf[i] == 0);
    strcpy(tbuf, "thread-local buffer");
    CHECK(5, strlen(tbuf) == 19);
    CHECK(6, ((uintptr_t)&aligned_d & 63) == 0);
    CHECK(7, aligned_d == 2.5);
    aligned_d *= 4;
    CHECK(8, c11_tls == 0x1122334455667788ULL);
    c11_tls >>= 8;
    printf("tls: counter=%d tbuf=\"%s\" aligned_d=%.1f c11=%llx\n", counter, tbuf, aligned_d,
           c11_tls);

    /* errno */
    errno = 0;
    int fd = open("/nonexistent-legorun-sample/file", O_RDONLY);
    CHECK(10, fd == -1 && errno == ENOENT);
    int *e1 = &errno;
    printf("open missing: errno=ENOENT (%s)\n", strerror(ENOENT));
    errno = 0;
    CHECK(11, close(-1) == -1 && errno == EBADF);
    errno = 0;
    long v = strtol("99999999999999999999999", NULL, 10);
    CHECK(12, v == LONG_MAX && errno == ERANGE);
    errno = 0;
    CHECK(13, write(-5, "x", 1) == -1 && errno == EBADF);
    int pfd[2];
    CHECK(14, pipe(pfd) == 0);
    errno = 0;
    CHECK(18, lseek(pfd[0], 0, SEEK_SET) == -1 && errno == ESPIPE);
    char pc = 0;
    CHECK(19, write(pfd[1], "p", 1) == 1 && read(pfd[0], &pc, 1) == 1 && pc == 'p');
    CHECK(20, close(pfd[0]) == 0 && close(pfd[1]) == 0);
    CHECK(15, &errno == e1); /* errno lives at a fixed TLS address */
    errno = 0;
    char small[4];
    CHECK(16, getcwd(small, sizeof small) == NULL && errno == ERANGE);
    errno = 12345;
    CHECK(17, errno == 12345);
    errno = 0;
    printf("errno ok: EBADF=%d ERANGE=%d\n", EBADF, ERANGE);
    return 0;
}
