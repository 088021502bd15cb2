/*
 * The turn on the emulated core of processes that share memory (processor/core_turn.py): a
 * futex lock in host shared memory that a process holds while it runs guest code.
 *
 * word[0]: 0 free, 1 held, 2 held and someone waits (Drepper's "Futexes Are Tricky" mutex);
 * word[1]: the holder's host pid, so that a waiter can take over from a holder that died.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int holder_gone(int32_t *word)
{
    int32_t holder = __atomic_load_n(&word[1], __ATOMIC_RELAXED);
    return holder > 0 && kill(holder, 0) < 0 && errno == ESRCH;
}

/* Take the turn: 0 once held, -1 after timeout_ns without it (the caller runs anyway). */
int core_turn_take(int32_t *word, int64_t timeout_ns)
{
    int32_t state = 0;
    int64_t deadline = now_ns() + timeout_ns;
    if (!__atomic_compare_exchange_n(&word[0], &state, 1, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED)) {
        if (state != 2)
            state = __atomic_exchange_n(&word[0], 2, __ATOMIC_ACQUIRE);
        while (state != 0) {
            int64_t left = deadline - now_ns();
            if (left <= 0) {
                if (!holder_gone(word))
                    return -1;
                __atomic_store_n(&word[0], 0, __ATOMIC_RELEASE); /* the holder died */
                deadline = now_ns() + timeout_ns;
            } else {
                struct timespec wait = {left / 1000000000, left % 1000000000};
                syscall(SYS_futex, &word[0], FUTEX_WAIT, 2, &wait, NULL, 0);
            }
            state = __atomic_exchange_n(&word[0], 2, __ATOMIC_ACQUIRE);
        }
    }
    __atomic_store_n(&word[1], (int32_t)getpid(), __ATOMIC_RELAXED);
    return 0;
}

/* Give the turn up; a waiter, if any, is woken and gets a chance to take it first. */
void core_turn_give(int32_t *word)
{
    __atomic_store_n(&word[1], 0, __ATOMIC_RELAXED);
    if (__atomic_fetch_sub(&word[0], 1, __ATOMIC_RELEASE) != 1) {
        __atomic_store_n(&word[0], 0, __ATOMIC_RELEASE);
        syscall(SYS_futex, &word[0], FUTEX_WAKE, 1, NULL, NULL, 0);
        sched_yield();
    }
}
