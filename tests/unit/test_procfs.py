"""/proc and /sys files that describe the process and its processor (processor/procfs.py,
processor/cpuid.py). Natively and under legorun a static C program checks what they say
against what it knows itself (its argv, environment, auxv, pid, CPUID) and prints only the
verdicts, so both must print the same; the parts that differ on purpose (one emulated core,
the layout of the address space) are checked under legorun alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from guest_programs import compile_c, run_both, run_legorun

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

READ_ALL = r"""
#include <cpuid.h>
#include <dirent.h>
#include <sys/auxv.h>
static char text[1 << 16];
/* The whole file at `path` (NULs kept), or -1. */
static long slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    long total = 0, n;
    while ((n = read(fd, text + total, sizeof text - 1 - total)) > 0)
        total += n;
    close(fd);
    text[total] = 0;
    return total;
}
"""


def test_process_files_agree_with_the_process(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "selfcheck", READ_ALL + r"""
extern char **environ;
int main(int argc, char **argv) {
    long n = slurp("/proc/self/cmdline");
    long expected = 0;
    for (int i = 0; i < argc; i++)
        expected += strlen(argv[i]) + 1;
    printf("cmdline matches argv: %d\n", n == expected && !memcmp(text, argv[0], n));
    n = slurp("/proc/self/environ");
    long env_bytes = 0, count = 0;
    for (char **e = environ; *e; e++, count++)
        env_bytes += strlen(*e) + 1;
    printf("environ matches: %d (%ld variables)\n", n == env_bytes && !memcmp(text, environ[0], n), count);
    n = slurp("/proc/self/auxv");
    unsigned long *aux = (unsigned long *)text;
    int found = 0, ended = 0;
    for (long i = 0; i + 1 < n / 8; i += 2) {
        if (aux[i] == AT_PAGESZ) found += aux[i + 1] == (unsigned long)getauxval(AT_PAGESZ);
        if (aux[i] == AT_ENTRY) found += aux[i + 1] == (unsigned long)getauxval(AT_ENTRY);
        if (aux[i] == AT_RANDOM) found += aux[i + 1] == (unsigned long)getauxval(AT_RANDOM);
        if (aux[i] == AT_NULL) ended = i + 2 == n / 8;
    }
    printf("auxv agrees: %d, ends with AT_NULL: %d\n", found == 3, ended);

    slurp("/proc/self/stat");
    int pid, ppid;
    char comm[64], state;
    sscanf(text, "%d (%63[^)]) %c %d", &pid, comm, &state, &ppid);
    printf("stat: pid %d ppid %d comm %d state %c\n", pid == getpid(), ppid == getppid(),
           !strcmp(comm, "selfcheck"), state);
    unsigned long field[60] = {0};
    char *rest = strrchr(text, ')') + 2;
    int fields = 0;
    for (char *tok = strtok(rest, " "); tok && fields < 60; tok = strtok(NULL, " "))
        field[fields++] = strtoul(tok, NULL, 10);
    /* fields[] starts at field 3 (state): startstack is field 28, arg_start 48. */
    printf("stat has %d fields, arg_start is argv[0]: %d, startstack below argv: %d\n",
           fields + 2, field[45] == (unsigned long)argv[0],
           field[25] < (unsigned long)argv && (unsigned long)argv - field[25] < 64);
    slurp("/proc/self/status");
    char want[64];
    snprintf(want, sizeof want, "\nPid:\t%d\n", getpid());
    printf("status: name %d pid %d threads %d\n", !strncmp(text, "Name:\tselfcheck\n", 16),
           strstr(text, want) != NULL, strstr(text, "\nThreads:\t1\n") != NULL);
    char link[256];
    n = readlink("/proc/self/exe", link, sizeof link);
    struct stat a, b;
    printf("exe link names this program: %d\n",
           n > 0 && stat(argv[0], &a) == 0 && stat("/proc/self/exe", &b) == 0
           && a.st_ino == b.st_ino);
    int fd = open("/proc/self/exe", O_RDONLY);
    char magic[4] = {0};
    printf("exe opens the program: %d\n", read(fd, magic, 4) == 4 && !memcmp(magic, "\177ELF", 4));
    int p[2];
    pipe(p);
    snprintf(want, sizeof want, "/proc/self/fd/%d", p[0]);
    n = readlink(want, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    printf("fd link: %.6s\n", link);
    SHOW(open(want, O_RDONLY) < 0 ? -errno : 0);
    SHOW(open("/proc/self/maps", O_RDONLY | O_DIRECTORY));        /* ENOTDIR */
    fd = open("/proc/self/maps", O_RDONLY);
    SHOW(lseek(fd, 0, SEEK_END));                                 /* EINVAL */
    SHOW(lseek(fd, 5, SEEK_SET));
    char five[6] = {0};
    SHOW(read(fd, five, 5));
    struct stat st;
    SHOW(fstat(fd, &st));
    printf("regular %d mode %o size %ld\n", S_ISREG(st.st_mode), st.st_mode & 0777, (long)st.st_size);

    /* The descriptors, as /proc/self/fd lists them: in order, each a link. */
    DIR *dir = opendir("/proc/self/fd");
    int listed[64], listed_count = 0;
    for (struct dirent *e; (e = readdir(dir)) && listed_count < 64;)
        if (e->d_name[0] != '.')
            listed[listed_count++] = atoi(e->d_name);
    for (int i = 0; i < listed_count; i++)
        for (int j = i + 1; j < listed_count; j++)
            if (listed[j] < listed[i]) { int t = listed[i]; listed[i] = listed[j]; listed[j] = t; }
    printf("fds:");
    for (int i = 0; i < listed_count; i++) {
        snprintf(want, sizeof want, "/proc/self/fd/%d", listed[i]);
        printf(" %d%s", listed[i], lstat(want, &st) == 0 && S_ISLNK(st.st_mode) ? "" : "?");
    }
    printf("\n");
    snprintf(want, sizeof want, "/proc/self/fd/%d", p[1]);
    SHOW(lstat(want, &st));
    printf("write end mode %o\n", st.st_mode & 0777);
    closedir(dir);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_maps_and_cpu_description_under_legorun(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "machine", READ_ALL + r"""
int main(void) {
    long n = slurp("/proc/self/maps");
    fwrite(text, 1, n, stdout);
    printf("--\n");
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    slurp("/proc/cpuinfo");
    int processors = 0;
    for (char *at = text; (at = strstr(at, "processor\t: ")); at++)
        processors++;
    char *flags = strstr(text, "\nflags\t\t: ");
    int sse2 = flags && strstr(flags, " sse2 ") != NULL;
    int ssse3 = flags && strstr(flags, " ssse3 ") != NULL;
    printf("processors %d, sse2 %d/%d, ssse3 %d/%d\n", processors, sse2, !!(d & bit_SSE2),
           ssse3, !!(c & bit_SSSE3));
    slurp("/sys/devices/system/cpu/online");
    printf("online %s", text);
    printf("nprocs %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}
""")
    lego = run_legorun(exe, tmp_path / "run")
    assert lego.returncode == 0, lego.stderr
    maps, _, rest = lego.stdout.decode().partition("--\n")
    lines = maps.splitlines()
    assert any(line.endswith(" " + str(exe)) and " r-xp " in line for line in lines), maps
    assert any(line.endswith(" [stack]") and " rw-p " in line for line in lines), maps
    starts = [int(line.split("-")[0], 16) for line in lines]
    assert starts == sorted(starts)
    assert rest.splitlines() == ["processors 1, sse2 1/1, ssse3 1/1", "online 0", "nprocs 1"]
