/* segfault.c - prints a line, flushes it, then writes through a NULL pointer: the process
 * must die of SIGSEGV (a shell reports "Segmentation fault" and status 139). */
#define _GNU_SOURCE
#include <stdio.h>

int main(void)
{
    /* The pointer is laundered through a volatile so the compiler cannot see it is NULL
     * (and so cannot replace the store with a trap instruction), and the store itself is
     * volatile so it cannot be dropped either. */
    volatile int *volatile target = NULL;
    printf("about to write through a NULL pointer\n");
    fflush(stdout);
    *target = 42;
    printf("still alive?!\n");
    return 1;
}
