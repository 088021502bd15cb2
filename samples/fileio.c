/* fileio.c - file system round trip in a scratch directory created under argv[1] (or the
 * current directory): mkdir, open, write, lseek, pread, pwrite, fstat, stat, rename, unlink,
 * opendir/readdir (sorted before printing), rmdir.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fileio: check %d failed: %s (errno %d)\n", (code), #cond, \
                    errno);                                                            \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

static char dir[4096];

static void path_in(char *out, size_t n, const char *name)
{
    int r = snprintf(out, n, "%s/%s", dir, name);
    CHECK(1, r > 0 && (size_t)r < n);
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void write_all(int fd, const void *buf, size_t len, int code)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        CHECK(code, w > 0);
        p += w;
        len -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : ".";
    int r = snprintf(dir, sizeof dir, "%s/fileio-scratch", base);
    CHECK(2, r > 0 && (size_t)r < sizeof dir);

    CHECK(3, mkdir(dir, 0755) == 0);
    errno = 0;
    CHECK(4, mkdir(dir, 0755) == -1 && errno == EEXIST);

    char a[4200], b[4200], c[4200], sub[4200];
    path_in(a, sizeof a, "alpha.txt");
    path_in(b, sizeof b, "beta.bin");
    path_in(c, sizeof c, "gamma.txt");
    path_in(sub, sizeof sub, "subdir");

    /* alpha.txt: text written in pieces, then patched with pwrite. */
    int fd = open(a, O_CREAT | O_EXCL | O_RDWR, 0644);
    CHECK(5, fd >= 0);
    const char *text = "The quick brown fox jumps over the lazy dog.\n";
    write_all(fd, text, strlen(text), 6);
    write_all(fd, "second line\n", 12, 7);
    off_t end = lseek(fd, 0, SEEK_CUR);
    CHECK(8, end == (off_t)(strlen(text) + 12));
    CHECK(9, lseek(fd, 4, SEEK_SET) == 4);
    char buf[256];
    memset(buf, 0, sizeof buf);
    CHECK(10, read(fd, buf, 5) == 5 && memcmp(buf, "quick", 5) == 0);
    CHECK(11, lseek(fd, 0, SEEK_CUR) == 9);
    CHECK(12, pwrite(fd, "QUICK", 5, 4) == 5);
    CHECK(13, lseek(fd, 0, SEEK_CUR) == 9); /* pwrite must not move the offset */
    memset(buf, 0, sizeof buf);
    CHECK(14, pread(fd, buf, sizeof buf - 1, 0) == end);
    CHECK(15, strncmp(buf, "The QUICK brown fox", 19) == 0);
    char head[32];
    memcpy(head, buf, 19);
    head[19] = '\0';
    CHECK(16, lseek(fd, 0, SEEK_CUR) == 9); /* nor must pread */
    CHECK(17, lseek(fd, -12, SEEK_END) == end - 12);
    memset(buf, 0, sizeof buf);
    CHECK(18, read(fd, buf, sizeof buf) == 12 && strcmp(buf, "second line\n") == 0);
    CHECK(19, read(fd, buf, sizeof buf) == 0); /* EOF */
    struct stat st;
    CHECK(20, fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == end);
    CHECK(21, close(fd) == 0);
    printf("alpha.txt: %lld bytes, starts \"%s\"\n", (long long)end, head);

    /* beta.bin: 100000 bytes of a pattern, a hole made by seeking past EOF. */
    fd = open(b, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(22, fd >= 0);
    static unsigned char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 8));
    write_all(fd, big, sizeof big, 23);
    CHECK(24, lseek(fd, 50000, SEEK_CUR) == 150000);
    write_all(fd, "END", 3, 25);
    CHECK(26, close(fd) == 0);
    CHECK(27, stat(b, &st) == 0 && st.st_size == 150003 && S_ISREG(st.st_mode));
    fd = open(b, O_RDONLY);
    CHECK(28, fd >= 0);
    static unsigned char back[150003];
    size_t got = 0;
    while (got < sizeof back) {
        ssize_t n = read(fd, back + got, sizeof back - got);
        CHECK(29, n > 0);
        got += (size_t)n;
    }
    CHECK(30, memcmp(back, big, sizeof big) == 0);
    for (size_t i = sizeof big; i < 150000; i++)
        CHECK(31, back[i] == 0);
    CHECK(32, memcmp(back + 150000, "END", 3) == 0);
    CHECK(33, close(fd) == 0);
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof back; i++)
        sum = sum * 131 + back[i];
    printf("beta.bin: %zu bytes, checksum %016lx\n", got, sum);

    /* rename alpha -> gamma; the old name must be gone. */
    CHECK(34, rename(a, c) == 0);
    errno = 0;
    CHECK(35, stat(a, &st) == -1 && errno == ENOENT);
    CHECK(36, stat(c, &st) == 0 && st.st_size == end);
    errno = 0;
    CHECK(37, open(a, O_RDONLY) == -1 && errno == ENOENT);

    CHECK(38, mkdir(sub, 0700) == 0);
    CHECK(39, stat(sub, &st) == 0 && S_ISDIR(st.st_mode));

    /* readdir, sorted. */
    DIR *d = opendir(dir);
    CHECK(40, d != NULL);
    char *names[16];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        CHECK(41, n < 16);
        names[n] = strdup(de->d_name);
        CHECK(42, names[n] != NULL);
        n++;
    }
    CHECK(43, closedir(d) == 0);
    qsort(names, (size_t)n, sizeof names[0], cmpstr);
    printf("listing (%d entries):", n);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
    CHECK(44, n == 5); /* . .. beta.bin gamma.txt subdir */

    /* Cleanup: rmdir of a non-empty directory must fail first. */
    errno = 0;
    CHECK(45, rmdir(dir) == -1 && (errno == ENOTEMPTY || errno == EEXIST));
    CHECK(46, unlink(b) == 0);
    CHECK(47, unlink(c) == 0);
    errno = 0;
    CHECK(48, unlink(c) == -1 && errno == ENOENT);
    CHECK(49, rmdir(sub) == 0);
    CHECK(50, rmdir(dir) == 0);
    errno = 0;
    CHECK(51, stat(dir, &st) == -1 && errno == ENOENT);
    printf("fileio ok\n");
    return 0;
}
