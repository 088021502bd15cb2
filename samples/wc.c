/* wc.c - a stdin filter like wc(1): prints the lines, words and bytes read from stdin, and
 * the longest line. Reads with read(2) in odd-sized chunks to exercise partial reads.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "wc: check %d failed: %s\n", (code), #cond);               \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int main(void)
{
    static unsigned char buf[3001];
    unsigned long lines = 0, words = 0, bytes = 0, longest = 0, cur = 0;
    unsigned long hash = 5381;
    int inword = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(1, n >= 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            unsigned char c = buf[i];
            hash = hash * 33 + c;
            if (c == '\n') {
                lines++;
                if (cur > longest)
                    longest = cur;
                cur = 0;
            } else {
                cur++;
            }
            if (is_space(c)) {
                inword = 0;
            } else if (!inword) {
                inword = 1;
                words++;
            }
        }
        bytes += (unsigned long)n;
    }
    if (cur > longest)
        longest = cur;
    /* Reading again after EOF must still give EOF. */
    CHECK(2, read(STDIN_FILENO, buf, sizeof buf) == 0);
    printf("%7lu %7lu %7lu\n", lines, words, bytes);
    printf("longest line %lu, hash %016lx\n", longest, hash);
    return 0;
}
