"""A file's mappings outlive its name: unlinked, renamed or replaced after mmap, the file
still backs the pages it maps (sem_open(3) maps a file and unlinks it; shm_open users
unlink at once), and a page past its end is still a SIGBUS. Compared with native runs."""

from __future__ import annotations

from pathlib import Path

from guest_programs import compile_c, run_both

PROGRAM = r"""
#include <semaphore.h>
#include <setjmp.h>
#include <sys/mman.h>

static sigjmp_buf escape;
static void on_bus(int sig) { siglongjmp(escape, sig); }

/* A file of `pages` pages plus 100 bytes, each page filled with its letter. */
static void make_file(const char *name, int pages, char first) {
    int fd = open(name, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    char page[4096];
    for (int i = 0; i < pages; i++) {
        memset(page, first + i % 26, sizeof page);
        write(fd, page, sizeof page);
    }
    write(fd, page, 100);
    close(fd);
}

static char *map(const char *name, size_t length, int flags) {
    int fd = open(name, O_RDWR);
    char *at = mmap(NULL, length, PROT_READ | PROT_WRITE, flags, fd, 0);
    close(fd);
    return at;
}

static void show_pages(const char *what, const char *at, int pages) {
    printf("%s:", what);
    for (int i = 0; i < pages; i++) printf(" %c", at[i * 4096]);
    printf(" tail %d\n", at[pages * 4096 + 99]);
}

int main(void) {
    signal(SIGBUS, on_bus);

    make_file("unlinked", 200, 'A');  /* more than one read's worth of pages */
    char *shared = map("unlinked", 202 * 4096, MAP_SHARED);
    char *private = map("unlinked", 201 * 4096, MAP_PRIVATE);
    private[4096] = 'p';
    SHOW(unlink("unlinked"));
    SHOW(access("unlinked", F_OK));
    show_pages("shared", shared, 3);
    printf("page 199: %c\n", shared[199 * 4096]);
    show_pages("private", private, 3);
    int sig = sigsetjmp(escape, 1);
    if (!sig) printf("past the end: %d\n", shared[201 * 4096]);
    else printf("past the end: signal %d\n", sig);

    make_file("moved", 2, 'a');
    make_file("replacement", 2, 'x');
    char *moved = map("moved", 3 * 4096, MAP_PRIVATE);
    SHOW(rename("moved", "elsewhere"));
    show_pages("renamed", moved, 2);
    SHOW(rename("replacement", "elsewhere"));
    show_pages("replaced", moved, 2);

    mkdir("dir", 0700);
    make_file("dir/inner", 1, 'q');
    char *inner = map("dir/inner", 4096, MAP_PRIVATE);
    SHOW(rename("dir", "dir2"));
    SHOW(unlink("dir2/inner"));
    printf("inner: %c\n", inner[0]);

    sem_t *sem = sem_open("/legorun-test-sem", O_CREAT | O_EXCL, 0600, 2);
    SHOW(sem_unlink("/legorun-test-sem"));
    SHOW(sem_wait(sem));
    int value = -1;
    SHOW(sem_getvalue(sem, &value));
    printf("semaphore: %d\n", value);
    return 0;
}
"""


def test_mappings_keep_their_file_after_unlink_and_rename(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "unlinked_mappings", PROGRAM))
