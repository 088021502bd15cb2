/* malloc_heavy.c - allocator stress: many small allocations and frees in a fixed
 * pseudo-random order, realloc growth, several allocations > 1 MiB (served by mmap),
 * calloc zeroing (also of recycled memory), and a checksum over everything.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "malloc_heavy: check %d failed: %s\n", (code), #cond);     \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

static uint64_t lcg_state = 0x2545F4914F6CDD1DULL;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

static uint64_t checksum;
static void mix(uint64_t v) { checksum = (checksum ^ v) * 0x100000001B3ULL; }

#define SLOTS 4096
#define ROUNDS 60000

struct slot {
    unsigned char *p;
    size_t len;
    unsigned char tag;
};

static void fill(struct slot *s)
{
    for (size_t i = 0; i < s->len; i++)
        s->p[i] = (unsigned char)(s->tag + i);
}

static int verify(const struct slot *s)
{
    for (size_t i = 0; i < s->len; i++)
        if (s->p[i] != (unsigned char)(s->tag + i))
            return 0;
    return 1;
}

int main(void)
{
    static struct slot slots[SLOTS];
    unsigned long allocs = 0, frees = 0;

    /* 1. Small allocations and frees in random order. */
    for (int r = 0; r < ROUNDS; r++) {
        struct slot *s = &slots[lcg() % SLOTS];
        if (s->p) {
            CHECK(1, verify(s));
            mix(s->len);
            free(s->p);
            s->p = NULL;
            frees++;
        } else {
            s->len = 1 + lcg() % 200;
            s->tag = (unsigned char)lcg();
            s->p = malloc(s->len);
            CHECK(2, s->p != NULL);
            CHECK(3, ((uintptr_t)s->p & 15) == 0); /* malloc alignment on x86-64 */
            fill(s);
            allocs++;
        }
    }
    size_t live = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            CHECK(4, verify(&slots[i]));
            live += slots[i].len;
            mix(slots[i].len * 3 + slots[i].tag);
        }
    }
    printf("small: %lu allocs, %lu frees, %zu live bytes\n", allocs, frees, live);

    /* 2. realloc growth: a buffer that doubles until 4 MiB, contents preserved. */
    size_t cap = 16;
    unsigned char *buf = malloc(cap);
    CHECK(5, buf != NULL);
    for (size_t i = 0; i < cap; i++)
        buf[i] = (unsigned char)(i * 13);
    int grows = 0;
    while (cap < (4u << 20)) {
        size_t ncap = cap * 2;
        unsigned char *nb = realloc(buf, ncap);
        CHECK(6, nb != NULL);
        for (size_t i = 0; i < cap; i++)
            CHECK(7, nb[i] == (unsigned char)(i * 13));
        for (size_t i = cap; i < ncap; i++)
            nb[i] = (unsigned char)(i * 13);
        buf = nb;
        cap = ncap;
        grows++;
    }
    /* ... and shrink again. */
    buf = realloc(buf, 1000);
    CHECK(8, buf != NULL);
    for (size_t i = 0; i < 1000; i++)
        CHECK(9, buf[i] == (unsigned char)(i * 13));
    mix(grows);
    printf("realloc: %d doublings to 4 MiB and back\n", grows);
    free(buf);

    /* 3. Large allocations (mmap-backed), written sparsely and densely. */
    enum { NBIG = 6 };
    unsigned char *big[NBIG];
    size_t bigsz[NBIG];
    for (int i = 0; i < NBIG; i++) {
        bigsz[i] = ((size_t)(i + 1) << 20) + 12345 * (size_t)i + 100;
        big[i] = malloc(bigsz[i]);
        CHECK(10, big[i] != NULL);
        for (size_t j = 0; j < bigsz[i] - 1; j += 4096)
            big[i][j] = (unsigned char)(j / 4096 + (size_t)i);
        big[i][bigsz[i] - 1] = 0xA5;
    }
    for (int i = 0; i < NBIG; i++) {
        for (size_t j = 0; j < bigsz[i] - 1; j += 4096) {
            CHECK(11, big[i][j] == (unsigned char)(j / 4096 + (size_t)i));
            mix(big[i][j]);
        }
        CHECK(12, big[i][bigsz[i] - 1] == 0xA5);
    }
    for (int i = 0; i < NBIG; i += 2)
        free(big[i]);
    /* A big realloc of an mmap-backed block (mremap in glibc). */
    big[1] = realloc(big[1], 9u << 20);
    CHECK(13, big[1] != NULL);
    for (size_t j = 0; j < bigsz[1] - 1; j += 4096)
        CHECK(14, big[1][j] == (unsigned char)(j / 4096 + 1));
    memset(big[1] + bigsz[1], 0x5A, (9u << 20) - bigsz[1]);
    CHECK(15, big[1][(9u << 20) - 1] == 0x5A);
    for (int i = 1; i < NBIG; i += 2)
        free(big[i]);
    printf("large: %d blocks between 1 and 6 MiB\n", NBIG);

    /* 4. calloc must return zeroed memory, also when recycling dirty memory. */
    for (int round = 0; round < 50; round++) {
        size_t n = 1 + lcg() % 5000;
        unsigned char *d = malloc(n);
        CHECK(16, d != NULL);
        memset(d, 0xFF, n);
        free(d);
        unsigned char *z = calloc(n, 1);
        CHECK(17, z != NULL);
        for (size_t i = 0; i < n; i++)
            CHECK(18, z[i] == 0);
        free(z);
    }
    unsigned char *zb = calloc(3, 1u << 20); /* 3 MiB zeroed, mmap-backed */
    CHECK(19, zb != NULL);
    for (size_t i = 0; i < (3u << 20); i += 512)
        CHECK(20, zb[i] == 0);
    free(zb);
    /* calloc overflow must fail cleanly. */
    volatile size_t huge = SIZE_MAX / 2; /* volatile: hide the overflow from the compiler */
    void *volatile ov = calloc(huge, 4);
    CHECK(21, ov == NULL);
    printf("calloc: zeroed\n");

    for (int i = 0; i < SLOTS; i++)
        free(slots[i].p);
    printf("checksum %016llx\n", (unsigned long long)checksum);
    return 0;
}
