/* cpu_loop.c - CPU-bound integer work (Collatz step counting plus a multiply-xorshift
 * hash), about 0.2 s natively; prints a checksum. Used by the benchmarks.
 * Optional argv[1]: upper bound of the Collatz range (default 1000000).
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "cpu_loop: check %d failed: %s\n", (code), #cond);         \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

int main(int argc, char **argv)
{
    long limit = argc > 1 ? atol(argv[1]) : 1000000;
    CHECK(1, limit > 1);
    uint64_t total = 0, best_n = 1, best_steps = 0, h = 0xcbf29ce484222325ULL;
    for (uint64_t n = 1; n < (uint64_t)limit; n++) {
        uint64_t x = n, steps = 0;
        while (x != 1) {
            x = (x & 1) ? 3 * x + 1 : x >> 1;
            steps++;
        }
        total += steps;
        if (steps > best_steps) {
            best_steps = steps;
            best_n = n;
        }
        h ^= steps * 0x9E3779B97F4A7C15ULL + n;
        h *= 0x100000001B3ULL;
        h ^= h >> 31;
    }
    /* Known values of the Collatz step counts. */
    if (limit >= 28)
        CHECK(2, best_steps >= 111);
    if (limit == 1000000)
        CHECK(3, best_n == 837799 && best_steps == 524);
    printf("collatz below %ld: total %llu steps, longest n=%llu (%llu steps), hash %016llx\n",
           limit, (unsigned long long)total, (unsigned long long)best_n,
           (unsigned long long)best_steps, (unsigned long long)h);
    return 0;
}
