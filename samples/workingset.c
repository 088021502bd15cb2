/* workingset.c - a key-value table with a known working set, read and updated with
 * Zipf-distributed keys, as a cache or an in-memory store sees its requests.
 *
 * The working set is MIB MiB of 4 KiB rows (argv[1], default 4: 1024 rows), plus a few pages
 * of code, stack and bookkeeping. Each of OPS operations (argv[2], default 12000) draws a key
 * rank from a Zipf distribution (exponent 1: the rank-k key is requested in proportion to
 * 1/k), maps the rank to a row through a fixed permutation (hot rows are scattered over the
 * table, not packed together), checks the row's header, folds the row's 512 words into a
 * digest, and writes the digest back into one word of the row (so the row becomes dirty).
 *
 * The digest is the work of a request: about 14,500 instructions per 4 KiB row touched.
 * That is what sets the shape of the slowdown curve when memory is remote: a miss costs
 * ~6.5 us (~15,600 instructions at 2.4 GHz, more with a dirty victim to write back), and
 * with a quarter of the working set in local memory about one request in three misses, so
 * the program runs about 1.5x slower; with all of it local, hardly slower at all.
 *
 * Prints the table size, the number of distinct rows touched, the hottest row's share and
 * a checksum of every digest; exit status 0, or the number of the first failed check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "workingset: check %d failed: %s\n", (code), #cond);       \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define ROW_BYTES 4096u
#define ROW_WORDS (ROW_BYTES / 8u)
#define ROWS_PER_MIB ((1u << 20) / ROW_BYTES)
/* Prime and larger than any row count: rank -> rank * SCATTER % rows is a permutation. */
#define SCATTER 2654435761ULL
#define DIGEST_ROUNDS 4u
#define HEADER_TAG 0x57534554u /* "WSET": high half of every row's header word */

/* splitmix64: a small, fast generator with the same sequence on every libc. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Cumulative Zipf weights: cdf[k] = sum of 1/(i+1) for i <= k. Only divisions and sums,
 * so every build computes the same table. */
static double *zipf_table(size_t n)
{
    double *cdf = malloc(n * sizeof *cdf);
    CHECK(2, cdf != NULL);
    double total = 0.0;
    for (size_t k = 0; k < n; k++) {
        total += 1.0 / (double)(k + 1);
        cdf[k] = total;
    }
    return cdf;
}

/* The rank whose cumulative weight first exceeds u, u in [0, cdf[n-1]). */
static size_t zipf_rank(const double *cdf, size_t n, double u)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static uint64_t initial_word(uint64_t row, uint64_t k)
{
    uint64_t v = (row + 1) * 0x9E3779B97F4A7C15ULL + k * 0xD1B54A32D192ED03ULL;
    return v ^ (v >> 29);
}

/* The work of one request: DIGEST_ROUNDS passes of a multiply-rotate hash over every word
 * of the row. */
static uint64_t digest(const uint64_t *row)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (unsigned round = 0; round < DIGEST_ROUNDS; round++) {
        for (unsigned k = 0; k < ROW_WORDS; k++) {
            h ^= row[k];
            h *= 0x100000001B3ULL;
            h = (h << 23) | (h >> 41);
            h += k + round;
        }
    }
    return h;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? atol(argv[1]) : 4;
    long ops = argc > 2 ? atol(argv[2]) : 12000;
    CHECK(1, mib > 0 && mib <= 4096 && ops > 0);
    size_t rows = (size_t)mib * ROWS_PER_MIB;

    /* Rows start on page boundaries: one row is one 4 KiB line of the ExCache. */
    uint64_t *table = aligned_alloc(ROW_BYTES, rows * ROW_BYTES);
    CHECK(2, table != NULL);
    for (size_t r = 0; r < rows; r++) {
        uint64_t *row = table + r * ROW_WORDS;
        row[0] = (uint64_t)HEADER_TAG << 32 | r; /* visits are counted in bits 24..31 */
        for (unsigned k = 1; k < ROW_WORDS; k++)
            row[k] = initial_word(r, k);
    }
    double *cdf = zipf_table(rows);
    uint64_t *visits = calloc(rows, sizeof *visits);
    CHECK(2, visits != NULL);

    uint64_t state = 0x853C49E6748FEA9BULL, checksum = 0;
    for (long op = 0; op < ops; op++) {
        /* 53 random bits -> u uniform in [0, total weight). */
        double u = (double)(next_random(&state) >> 11) * 0x1.0p-53 * cdf[rows - 1];
        size_t rank = zipf_rank(cdf, rows, u);
        size_t r = (size_t)(rank * SCATTER % rows);
        uint64_t *row = table + r * ROW_WORDS;
        /* The row comes back from wherever it was with its own header and visit count. */
        CHECK(3, row[0] >> 32 == HEADER_TAG && (row[0] & 0xFFFFFF) == r);
        CHECK(4, (row[0] >> 24 & 0xFF) == (visits[r] & 0xFF));
        uint64_t h = digest(row);
        checksum = checksum * 31 + h;
        row[1 + visits[r] % (ROW_WORDS - 1)] = h;
        visits[r]++;
        row[0] = (row[0] & ~0xFF000000ULL) | (visits[r] & 0xFF) << 24;
    }

    size_t touched = 0, hottest = 0;
    uint64_t total = 0;
    for (size_t r = 0; r < rows; r++) {
        touched += visits[r] != 0;
        if (visits[r] > visits[hottest])
            hottest = r;
        total += visits[r];
    }
    CHECK(5, total == (uint64_t)ops);
    printf("workingset: %ld MiB (%zu rows of %u bytes), %ld operations, Zipf exponent 1\n",
           mib, rows, ROW_BYTES, ops);
    printf("workingset: %zu rows touched, the hottest %.1f%% of operations, checksum %016llx\n",
           touched, 100.0 * (double)visits[hottest] / (double)ops,
           (unsigned long long)checksum);
    free(visits);
    free(cdf);
    free(table);
    return 0;
}
