/* randwalk.c - random access over a 64 MiB array (LCG-chosen 64-bit words, read-modify-
 * write); the array is never initialised, so its pages are first touched in random
 * order and must read as zero. Used by the benchmarks.
 * Optional argv[1]: number of steps (default 262144).
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "randwalk: check %d failed: %s\n", (code), #cond);         \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define BYTES (64u << 20)
#define N (BYTES / 8u)

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 262144;
    CHECK(1, steps > 0);
    uint64_t *a = mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(2, a != MAP_FAILED);

    uint64_t x = 0x853c49e6748fea9bULL, sum = 0, fresh = 0;
    for (long s = 0; s < steps; s++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t i = (x >> 24) % N;
        uint64_t v = a[i];
        if (v == 0)
            fresh++;
        else
            CHECK(3, (v & 0xFFFF) == (i & 0xFFFF)); /* only ever written with this tag */
        sum += v >> 16;
        a[i] = (((v >> 16) + 1) << 16) | (i & 0xFFFF);
    }
    /* Replay the same sequence: every word visited holds its visit count. */
    x = 0x853c49e6748fea9bULL;
    uint64_t visits = 0;
    for (long s = 0; s < steps; s++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t i = (x >> 24) % N;
        CHECK(4, (a[i] & 0xFFFF) == (i & 0xFFFF) && (a[i] >> 16) >= 1);
        visits += a[i] >> 16;
    }
    CHECK(5, visits >= (uint64_t)steps);
    printf("randwalk: %ld steps over %u words, %llu first touches, checksum %llu/%llu\n", steps,
           N, (unsigned long long)fresh, (unsigned long long)sum, (unsigned long long)visits);
    CHECK(6, munmap(a, BYTES) == 0);
    return 0;
}
