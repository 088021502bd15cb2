"""memfd_create (an anonymous file, shared with the children that inherit it) and fallocate
(the sizes and zeros a program can see), compared with native runs."""

from __future__ import annotations

from pathlib import Path

from guest_programs import compile_c, run_both

MEMFD = r"""
#include <sys/mman.h>
#include <sys/wait.h>

int main(void) {
    int fd = memfd_create("legorun test", MFD_CLOEXEC);
    SHOW(fd >= 0);
    char link[64] = {0}, proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    SHOW(readlink(proc, link, sizeof link - 1));
    printf("link: %s\n", link);
    SHOW(fcntl(fd, F_GETFD));
    SHOW(ftruncate(fd, 8192));
    SHOW(write(fd, "hello", 5));
    char *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mapped: %.5s\n", shared);
    if (fork() == 0) {
        memcpy(shared + 4096, "from the child", 15);
        _exit(0);
    }
    wait(NULL);
    printf("parent sees: %s\n", shared + 4096);
    char back[16] = {0};
    SHOW(pread(fd, back, 14, 4096));
    printf("read back: %s\n", back);
    struct stat st;
    fstat(fd, &st);
    printf("size %ld\n", (long)st.st_size);
    SHOW(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    SHOW(memfd_create("bad", 0x100));
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    SHOW(memfd_create(long_name, 0));
    return 0;
}
"""

FALLOCATE = r"""
static void show_size(int fd) {
    struct stat st;
    fstat(fd, &st);
    printf("  size %ld\n", (long)st.st_size);
}

int main(void) {
    int fd = open("file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789abcdef", 16);
    SHOW(fallocate(fd, 0, 0, 100));
    show_size(fd);
    SHOW(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 5000));
    show_size(fd);
    SHOW(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, 4));
    char text[17] = {0};
    pread(fd, text, 16, 0);
    for (int i = 0; i < 16; i++) putchar(text[i] ? text[i] : '.');
    putchar('\n');
    show_size(fd);
    SHOW(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4));
    SHOW(fallocate(fd, 0, -1, 4));
    SHOW(fallocate(fd, 0, 0, 0));
    SHOW(posix_fallocate(fd, 0, 300) == 0);
    show_size(fd);
    int readonly = open("file", O_RDONLY);
    SHOW(fallocate(readonly, 0, 0, 10));
    int pipes[2];
    pipe(pipes);
    SHOW(fallocate(pipes[1], 0, 0, 10));
    SHOW(fallocate(99, 0, 0, 10));
    return 0;
}
"""


def test_memfd_create(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "memfd", MEMFD))


def test_fallocate(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "fallocate", FALLOCATE))
