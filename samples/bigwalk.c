/* bigwalk.c - an 80 MiB working set: writes a page-specific pattern to every page, then
 * reads it back in a strided order and in LCG-random order; prints checksums.
 * With a small ExCache nearly every access is a miss (and most an eviction with writeback).
 * Optional argv[1]: number of random probes (default 20480).
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "bigwalk: check %d failed: %s\n", (code), #cond);          \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define PAGE 4096u
#define SIZE (80u << 20)
#define NPAGES (SIZE / PAGE)
#define WORDS_PER_PAGE (PAGE / 8u)
#define STRIDE 37u /* prime, so the strided walk visits every page exactly once */

static uint64_t pattern(uint64_t page, uint64_t k)
{
    uint64_t v = (page + 1) * 0x9E3779B97F4A7C15ULL + k * 0xD1B54A32D192ED03ULL;
    return v ^ (v >> 29);
}

/* Each page gets 8 words at a page-dependent position (so not every access hits the
 * same cache set offset) plus its page number in the last word. */
static unsigned slot_of(uint64_t page) { return (unsigned)((page * 8) % (WORDS_PER_PAGE - 8)); }

int main(int argc, char **argv)
{
    long probes = argc > 1 ? atol(argv[1]) : (long)NPAGES;
    CHECK(1, probes > 0);
    uint64_t *mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(2, mem != MAP_FAILED);

    /* Pass 1: write. */
    for (uint64_t p = 0; p < NPAGES; p++) {
        uint64_t *pg = mem + p * WORDS_PER_PAGE;
        unsigned s = slot_of(p);
        for (unsigned k = 0; k < 8; k++)
            pg[s + k] = pattern(p, k);
        pg[WORDS_PER_PAGE - 1] = p;
    }

    /* Pass 2: strided read of every page. */
    uint64_t sum = 0;
    uint64_t p = 0;
    for (uint64_t i = 0; i < NPAGES; i++) {
        const uint64_t *pg = mem + p * WORDS_PER_PAGE;
        CHECK(3, pg[WORDS_PER_PAGE - 1] == p);
        unsigned s = slot_of(p);
        for (unsigned k = 0; k < 8; k++) {
            CHECK(4, pg[s + k] == pattern(p, k));
            sum += pg[s + k] * (k + 1);
        }
        /* A word that was never written must still read as zero. */
        CHECK(5, pg[s + 8] == 0); /* s + 8 <= 504: never written */
        p = (p + STRIDE) % NPAGES;
    }
    CHECK(6, p == 0);
    printf("strided: %u pages, checksum %016llx\n", NPAGES, (unsigned long long)sum);

    /* Pass 3: random reads, and a random read-modify-write of the page's last word. */
    uint64_t x = 88172645463325252ULL, rsum = 0;
    for (long i = 0; i < probes; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t pg = (x >> 33) % NPAGES;
        uint64_t *w = mem + pg * WORDS_PER_PAGE;
        unsigned k = (unsigned)(x >> 20) & 7u;
        CHECK(7, w[slot_of(pg) + k] == pattern(pg, k));
        rsum = rsum * 31 + w[slot_of(pg) + k];
        w[WORDS_PER_PAGE - 2] += 1; /* dirties the page again */
    }
    uint64_t touched = 0, total = 0;
    for (uint64_t q = 0; q < NPAGES; q++) {
        uint64_t c = mem[q * WORDS_PER_PAGE + WORDS_PER_PAGE - 2];
        total += c;
        touched += c != 0;
    }
    CHECK(8, total == (uint64_t)probes);
    printf("random: %ld probes over %llu distinct pages, checksum %016llx\n", probes,
           (unsigned long long)touched, (unsigned long long)rsum);
    CHECK(9, munmap(mem, SIZE) == 0);
    return 0;
}
