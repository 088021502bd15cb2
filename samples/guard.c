/* guard.c - mmap/mprotect/munmap/mremap semantics:
 *   mmap 3 pages, mprotect the middle PROT_NONE, read the other two, mprotect it back
 *   (contents preserved), munmap the middle, mmap MAP_FIXED into the hole (zeroed),
 *   MAP_FIXED_NOREPLACE over a mapped page fails with EEXIST, mremap grow (in place or
 *   moved) and move to a fixed address preserve contents;
 * then prints its results and finally reads a PROT_NONE guard page, dying of SIGSEGV.
 * Exit status: SIGSEGV on success, or the number of the first failed check. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "guard: check %d failed: %s (errno %d)\n", (code), #cond,  \
                    errno);                                                            \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define PG 4096u

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7 + (i >> 12));
}

static int same(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7 + (i >> 12)))
            return 0;
    return 1;
}

int main(void)
{
    CHECK(1, sysconf(_SC_PAGESIZE) == PG);
    unsigned char *m = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    CHECK(2, m != MAP_FAILED);
    CHECK(3, ((uintptr_t)m & (PG - 1)) == 0);
    for (size_t i = 0; i < 3 * PG; i++)
        CHECK(4, m[i] == 0);
    fill(m, 3 * PG, 11);

    /* Middle page PROT_NONE; the neighbours still work. */
    CHECK(5, mprotect(m + PG, PG, PROT_NONE) == 0);
    CHECK(6, same(m, PG, 11));
    CHECK(7, same(m + 2 * PG, PG, 11 + (unsigned)(2 * PG * 7) + 2));
    m[0] ^= 0xFF;
    m[3 * PG - 1] ^= 0xFF;
    m[0] ^= 0xFF;
    m[3 * PG - 1] ^= 0xFF;
    /* Read-only also works for a read. */
    CHECK(8, mprotect(m, PG, PROT_READ) == 0);
    CHECK(9, same(m, PG, 11));
    CHECK(10, mprotect(m, PG, PROT_READ | PROT_WRITE) == 0);
    /* Back to RW: the contents of the middle page survived. */
    CHECK(11, mprotect(m + PG, PG, PROT_READ | PROT_WRITE) == 0);
    CHECK(12, same(m, 3 * PG, 11));
    printf("mprotect: PROT_NONE middle page, neighbours readable, contents preserved\n");

    /* Punch a hole, then fill it with MAP_FIXED: new page is zero, neighbours intact. */
    CHECK(13, munmap(m + PG, PG) == 0);
    unsigned char *h = mmap(m + PG, PG, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(14, h == m + PG);
    for (size_t i = 0; i < PG; i++)
        CHECK(15, h[i] == 0);
    CHECK(16, same(m, PG, 11));
    CHECK(17, m[2 * PG] == (unsigned char)(11 + 2 * PG * 7 + 2));
    /* MAP_FIXED over existing pages replaces them. */
    unsigned char *r = mmap(m, PG, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(18, r == m && m[0] == 0 && m[PG - 1] == 0);
    fill(m, 3 * PG, 29);
    printf("munmap + MAP_FIXED: hole refilled with zeroes\n");

    /* MAP_FIXED_NOREPLACE over a mapped page must fail with EEXIST and leave it alone. */
    errno = 0;
    void *nr = mmap(m + PG, PG, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(19, nr == MAP_FAILED && errno == EEXIST);
    CHECK(20, same(m, 3 * PG, 29));
    printf("MAP_FIXED_NOREPLACE: EEXIST\n");

    /* mremap: grow 3 -> 64 pages (in place or moved), contents preserved, new part zero. */
    unsigned char *g = mremap(m, 3 * PG, 64 * PG, MREMAP_MAYMOVE);
    CHECK(21, g != MAP_FAILED);
    CHECK(22, same(g, 3 * PG, 29));
    for (size_t i = 3 * PG; i < 64 * PG; i += 64)
        CHECK(23, g[i] == 0);
    g[64 * PG - 1] = 0x77;
    /* Shrink back to 2 pages. */
    unsigned char *s = mremap(g, 64 * PG, 2 * PG, 0);
    CHECK(24, s == g && same(s, 2 * PG, 29));
    /* Move to a fixed, freshly reserved address. */
    unsigned char *dst = mmap(NULL, 8 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(25, dst != MAP_FAILED);
    unsigned char *mv = mremap(s, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst + 3 * PG);
    CHECK(26, mv == dst + 3 * PG);
    CHECK(27, same(mv, 2 * PG, 29));
    mv[0] = 1;
    mv[0] = 0;
    /* The old range is gone: mapping it with NOREPLACE now succeeds. */
    unsigned char *old = mmap(s, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                              -1, 0);
    CHECK(28, old == s);
    CHECK(29, munmap(old, PG) == 0);
    printf("mremap: grow, shrink and move preserve contents\n");

    /* munmap of an unmapped range is not an error; bad alignment is EINVAL. */
    CHECK(30, munmap(s, PG) == 0);
    errno = 0;
    CHECK(31, munmap(mv + 1, PG) == -1 && errno == EINVAL);
    errno = 0;
    /* Raw syscall: musl's mprotect() wrapper rounds the address down itself. */
    CHECK(32, syscall(SYS_mprotect, mv + 1, PG, PROT_READ) == -1 && errno == EINVAL);

    /* dst + 0..3 and dst + 5..8 are still PROT_NONE guard pages around the moved block. */
    printf("touching a PROT_NONE guard page now\n");
    fflush(stdout);
    volatile unsigned char *guardpg = dst + 5 * PG;
    unsigned char v = *guardpg;
    printf("read %u from a guard page?!\n", v);
    return 40;
}
