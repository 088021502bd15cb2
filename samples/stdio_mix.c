/* stdio_mix.c - writes to stdout (buffered) and stderr (unbuffered) through stdio and raw
 * write(2), with explicit flushes and setvbuf, and deliberately exits with status 3. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char outbuf[64];

int main(void)
{
    /* A tiny full buffer for stdout, so it flushes every ~64 bytes. */
    if (setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf) != 0)
        return 10;
    printf("out 1: buffered\n");
    fprintf(stderr, "err 1: unbuffered\n");
    for (int i = 0; i < 20; i++)
        printf("out line %02d: %s\n", i, "some text to overflow the small buffer");
    fflush(stdout);
    const char raw[] = "out raw: written with write(2) after fflush\n";
    if (write(STDOUT_FILENO, raw, strlen(raw)) != (ssize_t)strlen(raw))
        return 11;
    fputs("err 2: fputs\n", stderr);
    putc('E', stderr);
    putc('\n', stderr);
    for (int i = 0; i < 300; i++)
        putchar('a' + i % 26);
    putchar('\n');
    fprintf(stderr, "err 3: %d %s %.2f\n", 42, "mixed", 0.125);
    printf("out last: not flushed explicitly; exit() flushes it\n");
    return 3;
}
