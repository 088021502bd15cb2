/* args_env.c - prints argv and selected environment variables and checks the auxiliary
 * vector that the loader must build (AT_PAGESZ, AT_RANDOM, AT_PHDR, AT_ENTRY, AT_UID...).
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "args_env: check %d failed: %s\n", (code), #cond);         \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

extern char **environ;

static const char *const VARS[] = {
    "LEGORUN_SAMPLE_A", "LEGORUN_SAMPLE_B", "LEGORUN_SAMPLE_EMPTY", "LEGORUN_SAMPLE_UNSET",
};

static void print_escaped(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int main(int argc, char **argv, char **envp)
{
    CHECK(1, argc >= 1);
    CHECK(2, argv[argc] == NULL);
    CHECK(3, envp == environ);

    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=", i);
        print_escaped(argv[i]);
        putchar('\n');
    }

    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
        const char *v = getenv(VARS[i]);
        printf("%s", VARS[i]);
        if (v) {
            putchar('=');
            print_escaped(v);
            putchar('\n');
        } else {
            printf(" is unset\n");
        }
    }

    /* The environment block must be passed through complete and in order. */
    int envc = 0;
    unsigned long envsum = 0;
    for (char **e = envp; *e; e++) {
        envc++;
        for (const char *p = *e; *p; p++)
            envsum = envsum * 31 + (unsigned char)*p;
        CHECK(4, strchr(*e, '=') != NULL);
    }
    printf("envc=%d envsum=%016lx\n", envc, envsum);

    /* Auxiliary vector. */
    CHECK(10, getauxval(AT_PAGESZ) == 4096);
    CHECK(11, sysconf(_SC_PAGESIZE) == 4096);
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    CHECK(12, rnd != NULL);
    unsigned orbits = 0;
    for (int i = 0; i < 16; i++)
        orbits |= rnd[i]; /* must be readable; 16 zero bytes would be suspicious */
    CHECK(13, orbits != 0);
    CHECK(14, getauxval(AT_PHDR) != 0);
    CHECK(15, getauxval(AT_PHENT) == 56);
    CHECK(16, getauxval(AT_PHNUM) > 0);
    CHECK(17, getauxval(AT_ENTRY) != 0);
    CHECK(18, getauxval(AT_UID) == (unsigned long)getuid());
    CHECK(19, getauxval(AT_EUID) == (unsigned long)geteuid());
    CHECK(20, getauxval(AT_GID) == (unsigned long)getgid());
    CHECK(21, getauxval(AT_EGID) == (unsigned long)getegid());
    CHECK(22, getauxval(AT_SECURE) == 0);
    /* The initial stack pointer area: argv strings live above argv itself. */
    CHECK(23, (void *)argv[0] > (void *)argv);
    printf("auxv ok: pagesz=%lu\n", getauxval(AT_PAGESZ));
    return 0;
}
