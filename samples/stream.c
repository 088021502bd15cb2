/* stream.c - sequential streaming over a 32 MiB array of 64-bit words: fill, then several
 * passes (sum, scale in place, copy between halves, sum), with a checksum. Used by the
 * benchmarks. Optional argv[1]: number of scale passes (default 3).
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "stream: check %d failed: %s\n", (code), #cond);           \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define BYTES (32u << 20)

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#define N (BYTES / 8u)

int main(int argc, char **argv)
{
    int passes = argc > 1 ? atoi(argv[1]) : 3;
    CHECK(1, passes >= 0 && passes < 1000);
    uint64_t *a = malloc(BYTES);
    CHECK(2, a != NULL);

    for (uint64_t i = 0; i < N; i++)
        a[i] = i;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < N; i++)
        sum += a[i];
    CHECK(3, sum == (uint64_t)N * (N - 1) / 2);
    printf("fill: %u words, sum %llu\n", N, (unsigned long long)sum);

    /* a[i] = a[i] * 3 + 1, `passes` times; closed form checked below. */
    for (int p = 0; p < passes; p++)
        for (uint64_t i = 0; i < N; i++)
            a[i] = a[i] * 3 + 1;
    uint64_t mul = 1, add = 0;
    for (int p = 0; p < passes; p++) {
        mul *= 3;
        add = add * 3 + 1;
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint64_t i = 0; i < N; i++) {
        if ((i & 4095) == 0)
            CHECK(4, a[i] == i * mul + add);
        h = mix64(h ^ a[i]);
    }
    printf("scale x%d: hash %016llx\n", passes, (unsigned long long)h);

    /* Copy the lower half over the upper half, then compare halves. */
    memcpy(a + N / 2, a, BYTES / 2);
    CHECK(5, memcmp(a, a + N / 2, BYTES / 2) == 0);
    uint64_t s2 = 0;
    for (uint64_t i = 0; i < N; i++)
        s2 = mix64(s2 + (a[i] ^ (i >> 3)));
    printf("copy: checksum %016llx\n", (unsigned long long)s2);
    free(a);
    return 0;
}
