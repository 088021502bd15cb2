"""MAP_SHARED memory (processor/shared_memory.py, core_turn.py): shared between a process
and its children, with pshared mutexes and semaphores that work across them; file mappings
whose stores reach the file (munmap, msync, exit, and read(2) sees them), that show what
write(2) writes, and whose pages past the end are a SIGBUS.
Each program is compared with its native run."""

from __future__ import annotations

from pathlib import Path

from guest_programs import compile_c, run_both

PROCESSES = r"""
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>

static sigjmp_buf escape;
static void on_bus(int sig) { siglongjmp(escape, sig); }

struct shared { pthread_mutex_t lock; sem_t ready, done; long counter; char note[32]; };

int main(void) {
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *private = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    pthread_mutexattr_t shared_attr;
    pthread_mutexattr_init(&shared_attr);
    pthread_mutexattr_setpshared(&shared_attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->lock, &shared_attr);
    sem_init(&s->ready, 1, 0);
    sem_init(&s->done, 1, 0);
    strcpy(private, "parent's");
    pid_t child = fork();
    if (child == 0) {
        sem_wait(&s->ready);  /* blocks until the parent posts, from another process */
        for (int i = 0; i < 20000; i++) {
            pthread_mutex_lock(&s->lock);
            s->counter++;
            pthread_mutex_unlock(&s->lock);
        }
        strcpy(s->note, "written by the child");
        strcpy(private, "child's");  /* copy-on-write: the parent keeps its own */
        sem_post(&s->done);
        _exit(7);
    }
    usleep(20000);
    sem_post(&s->ready);
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&s->lock);
        s->counter++;
        pthread_mutex_unlock(&s->lock);
    }
    sem_wait(&s->done);
    int status;
    waitpid(child, &status, 0);
    printf("counter %ld, note \"%s\", private \"%s\", child status %d\n", s->counter, s->note,
           private, WEXITSTATUS(status));

    /* mremap keeps a shared mapping's contents; grown, its new pages have no memory */
    signal(SIGBUS, on_bus);
    char *grown = mremap(s, 4096, 3 * 4096, MREMAP_MAYMOVE);
    printf("after mremap: %s\n", ((struct shared *)grown)->note);
    int sig = sigsetjmp(escape, 1);
    if (!sig) printf("grown page: %d\n", grown[2 * 4096]);
    else printf("grown page: signal %d\n", sig);
    return 0;
}
"""

FILES = r"""
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>

static sigjmp_buf escape;
static void on_bus(int sig) { siglongjmp(escape, sig); }

static void show_file(const char *what, int fd) {
    char text[64] = {0};
    pread(fd, text, sizeof text - 1, 0);
    printf("%s: \"%s\"\n", what, text);
}

int main(void) {
    signal(SIGBUS, on_bus);
    int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    char *map = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mapped: %.10s\n", map);
    memcpy(map, "abc", 3);
    SHOW(msync(map, 4096, MS_SYNC));
    show_file("after msync", fd);
    char *again = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    map[3] = 'D';
    printf("second mapping sees: %.10s\n", again);
    pwrite(fd, "W", 1, 5);  /* write(2) and the mapping see one another, as on Linux */
    printf("after pwrite: %.10s\n", map);
    map[6] = 'S';
    show_file("after a store", fd);

    pid_t child = fork();
    if (child == 0) {
        map[4] = 'E';  /* the child's store reaches the parent's mapping and the file */
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("after the child: %.10s\n", map);
    map[100] = 'Z';  /* past the end of the file, in its last page: never written */
    SHOW(munmap(map, 2 * 4096));
    show_file("after munmap", fd);
    struct stat st;
    fstat(fd, &st);
    printf("size %ld\n", (long)st.st_size);

    char *whole = mmap(NULL, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
    int sig = sigsetjmp(escape, 1);
    if (!sig) printf("second page: %d\n", whole[4096]);
    else printf("second page: signal %d\n", sig);

    int readonly = open("data", O_RDONLY);
    SHOW((long)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, readonly, 0));
    SHOW((long)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, readonly, 0) > 0);
    SHOW(msync(whole + 1, 4096, MS_SYNC));
    SHOW(msync(whole, 4096, MS_SYNC | MS_ASYNC));
    SHOW(msync(whole, 64 * 4096, MS_ASYNC));

    int grow = open("grow", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(grow, 3 * 4096);
    char *small = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, grow, 0);
    char *grown = mremap(small, 4096, 3 * 4096, MREMAP_MAYMOVE);  /* past its memory */
    SHOW(grown != MAP_FAILED);
    grown[1] = 'G';
    show_file("grown, before munmap", grow);
    SHOW(unlink("grow"));  /* its mapped pages are read in first */
    SHOW(munmap(grown, 3 * 4096));
    return 0;
}
"""


def test_shared_memory_between_processes(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "shared_processes", PROCESSES))


def test_shared_file_mappings_write_the_file(tmp_path: Path) -> None:
    run_both(tmp_path, compile_c(tmp_path, "shared_files", FILES))
