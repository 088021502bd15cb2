/* hello.c - the smallest possible guest: one line on stdout, exit 0. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    const char msg[] = "Hello, world!\n";
    /* Both through stdio and through a raw write(2), in that order. */
    if (printf("Hello from legorun samples.\n") < 0)
        return 1;
    if (fflush(stdout) != 0)
        return 2;
    if (write(STDOUT_FILENO, msg, strlen(msg)) != (ssize_t)strlen(msg))
        return 3;
    return 0;
}
