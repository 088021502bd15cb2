/*
 * Host signals meant for the guest: SIGALRM from the interval timers the guest armed (they
 * are the host process's timers), SIGINT from the terminal, SIGTERM or SIGUSR1 sent with
 * kill(1) to the legorun process, which is the guest process.
 *
 * They arrive while the guest may be running compiled code with no Python callback for a
 * long time, so the handler is compiled too: it records the signal (with the sender's pid,
 * uid and si_code), asks Unicorn to stop (uc_emu_stop only sets flags, which is safe in a
 * signal handler) and writes one byte to a pipe, so that a host wait of the scheduler (all
 * guest threads blocked) wakes up as well. The run loop then takes the recorded signals and
 * delivers them to the guest.
 *
 * The guest's POSIX timers are host POSIX timers whose expirations all arrive on one host
 * signal, the timer carrier, with si_code SI_TIMER and the guest timer's slot as si_value:
 * those are counted per slot (this expiration and the ones the host merged into it, its
 * si_overrun) instead of being recorded as the carrier signal, so that several timers
 * firing at once lose nothing. Anything else on the carrier is an ordinary signal.
 *
 * A signal handler receives no user data, so the one active recorder is kept in a static
 * pointer: a host process runs one emulated process.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, siginfo_t under -std=c11 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SIGNAL 64
#define MAX_TIMERS 4096 /* guest POSIX timers that may exist at once */

typedef int (*emu_stop_fn)(void *uc);

typedef struct {
    volatile sig_atomic_t arrived; /* first: read directly by Python after every syscall */
    void *uc;
    emu_stop_fn emu_stop;          /* uc_emu_stop, passed in: this file does not link Unicorn */
    int wakeup_fd;                 /* write end of a non-blocking pipe, or -1 */
    volatile sig_atomic_t pending[MAX_SIGNAL + 1];
    int32_t code[MAX_SIGNAL + 1];  /* si_code, si_pid, si_uid, si_status of the latest */
    int32_t pid[MAX_SIGNAL + 1];   /* arrival (si_status: SIGCHLD only) */
    uint32_t uid[MAX_SIGNAL + 1];
    int32_t status[MAX_SIGNAL + 1];
    uint8_t changed[MAX_SIGNAL + 1];       /* the host disposition was replaced ... */
    struct sigaction saved[MAX_SIGNAL + 1]; /* ... and this is what it was */
    int timer_signal;                       /* the timer carrier, 0 before one is set */
    int64_t expirations[MAX_TIMERS];        /* per guest timer slot, not taken yet */
} hostsig_t;

static hostsig_t *volatile active;

static void on_signal(int sig, siginfo_t *info, void *context)
{
    (void)context;
    hostsig_t *s = active;
    if (!s || sig <= 0 || sig > MAX_SIGNAL)
        return;
    int saved_errno = errno;
    int slot = info ? info->si_value.sival_int : -1;
    if (sig == s->timer_signal && info && info->si_code == SI_TIMER && slot >= 0
        && slot < MAX_TIMERS) {
        int64_t count = 1 + (int64_t)(info->si_overrun > 0 ? info->si_overrun : 0);
        __atomic_add_fetch(&s->expirations[slot], count, __ATOMIC_RELAXED);
    } else {
        s->code[sig] = info ? info->si_code : 0;
        s->pid[sig] = info ? info->si_pid : 0;
        s->uid[sig] = info ? info->si_uid : 0;
        s->status[sig] = info && sig == SIGCHLD ? info->si_status : 0;
        s->pending[sig] = 1;
    }
    s->arrived = 1;
    if (s->uc)
        s->emu_stop(s->uc);
    if (s->wakeup_fd >= 0) {
        char byte = (char)sig;
        ssize_t ignored = write(s->wakeup_fd, &byte, 1); /* a full pipe already wakes */
        (void)ignored;
    }
    errno = saved_errno;
}

hostsig_t *hostsig_new(void *uc, emu_stop_fn emu_stop)
{
    hostsig_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->uc = uc;
    s->emu_stop = emu_stop;
    s->wakeup_fd = -1;
    active = s;
    return s;
}

void hostsig_set_wakeup_fd(hostsig_t *s, int fd)
{
    s->wakeup_fd = fd;
}

/* Replace the host disposition of sig: 1 = record it for the guest, 0 = ignore it. The
 * first replacement remembers the original, which hostsig_restore puts back. */
int hostsig_set(hostsig_t *s, int sig, int catch_it)
{
    if (sig <= 0 || sig > MAX_SIGNAL)
        return -EINVAL;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    sigfillset(&action.sa_mask);
    if (catch_it) {
        /* No SA_RESTART: a blocking host call made for the guest (wait4) ends with EINTR,
         * as the guest's own call would. */
        action.sa_sigaction = on_signal;
        action.sa_flags = SA_SIGINFO;
    } else {
        action.sa_handler = SIG_IGN;
    }
    active = s;
    if (sigaction(sig, &action, s->changed[sig] ? NULL : &s->saved[sig]) != 0)
        return -errno;
    s->changed[sig] = 1;
    return 0;
}

/* Put back the host disposition sig had before hostsig_set. */
int hostsig_restore(hostsig_t *s, int sig)
{
    if (sig <= 0 || sig > MAX_SIGNAL || !s->changed[sig])
        return 0;
    if (sigaction(sig, &s->saved[sig], NULL) != 0)
        return -errno;
    s->changed[sig] = 0;
    return 0;
}

/* If sig arrived since the last call: clear it, fill info (si_code, si_pid, si_uid,
 * si_status) and return 1; else 0. */
int hostsig_take(hostsig_t *s, int sig, int32_t info[4])
{
    if (sig <= 0 || sig > MAX_SIGNAL || !s->pending[sig])
        return 0;
    s->pending[sig] = 0;
    info[0] = s->code[sig];
    info[1] = s->pid[sig];
    info[2] = (int32_t)s->uid[sig];
    info[3] = s->status[sig];
    return 1;
}

/* Route the host timers' signal sig to the per-slot expiration counts (see the top). */
void hostsig_set_timer_signal(hostsig_t *s, int sig)
{
    s->timer_signal = sig;
}

/* The expirations of the timer in slot since the last call (0 for a bad slot). Exchanged
 * atomically: the handler may add to the count at any moment. */
int64_t hostsig_take_expirations(hostsig_t *s, int slot)
{
    if (slot < 0 || slot >= MAX_TIMERS)
        return 0;
    return __atomic_exchange_n(&s->expirations[slot], 0, __ATOMIC_RELAXED);
}

int hostsig_max_timers(void)
{
    return MAX_TIMERS;
}

/* Restore every replaced disposition and forget the recorder. */
void hostsig_free(hostsig_t *s)
{
    for (int sig = 1; sig <= MAX_SIGNAL; sig++)
        hostsig_restore(s, sig);
    if (active == s)
        active = NULL;
    free(s);
}
