"""Named pipes: mkfifo/mknod make the node on the storage manager, and processes that open
it meet in one pipe at the processor (processor/fifo.py). Compared with native runs."""

from __future__ import annotations

from pathlib import Path

from guest_programs import compile_c, run_both

PROGRAM = r"""
#include <sys/sysmacros.h>
#include <sys/wait.h>

int main(void) {
    SHOW(mkfifo("pipe", 0640));
    SHOW(mkfifo("pipe", 0640));  /* EEXIST */
    struct stat st;
    stat("pipe", &st);
    printf("fifo %d, mode %o, size %ld\n", S_ISFIFO(st.st_mode), st.st_mode & 0777,
           (long)st.st_size);
    SHOW(open("pipe", O_WRONLY | O_NONBLOCK));  /* no reader: ENXIO */

    pid_t writer = fork();
    if (writer == 0) {
        int fd = open("pipe", O_WRONLY);  /* waits for the reader */
        for (int i = 0; i < 3; i++) {
            char line[32];
            int n = snprintf(line, sizeof line, "line %d\n", i);
            write(fd, line, n);
            usleep(10000);
        }
        _exit(0);
    }
    usleep(50000);  /* the writer waits in open meanwhile */
    int fd = open("pipe", O_RDONLY);
    char buffer[256];
    long total = 0, n;
    while ((n = read(fd, buffer + total, sizeof buffer - total - 1)) > 0)
        total += n;
    buffer[total] = 0;
    printf("read %ld bytes:\n%s", total, buffer);
    SHOW(read(fd, buffer, 1));  /* every writer gone: end of file */
    waitpid(writer, NULL, 0);
    close(fd);

    int both = open("pipe", O_RDWR);  /* never waits */
    SHOW(write(both, "self", 4));
    SHOW(read(both, buffer, 4));
    int reader = open("pipe", O_RDONLY | O_NONBLOCK);
    SHOW(reader >= 0);
    close(both);
    SHOW(read(reader, buffer, 4));  /* no writer now: end of file */

    SHOW(mknod("plain", S_IFREG | 0600, 0));
    stat("plain", &st);
    printf("regular %d, mode %o\n", S_ISREG(st.st_mode), st.st_mode & 0777);
    SHOW(mknod("fifo2", S_IFIFO | 0600, 0));
    SHOW(mknodat(AT_FDCWD, "dir", S_IFDIR | 0700, 0));
    SHOW(unlink("pipe"));
    return 0;
}
"""


def test_named_pipes(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "fifo", PROGRAM))
