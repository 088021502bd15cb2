/* signals.c - signal handlers for faults, for signals sent to oneself and for timers: a
 * SIGSEGV handler reading si_addr and leaving with siglongjmp, SIGFPE from a division by
 * zero, a SIGILL handler that skips the instruction by editing the saved rip, masks and
 * pending signals, sigsuspend, sigtimedwait, the alternate stack, SA_RESETHAND and
 * SA_NODEFER, an interval timer interrupting a compute loop, EINTR from a pipe read, a read
 * restarted by SA_RESTART that another thread completes, and pthread_kill.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "signals: check %d failed: %s\n", (code), #cond);          \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

static sigjmp_buf jump;
static volatile sig_atomic_t delivered[65];
static void *volatile fault_address;
static volatile int fault_code;
static volatile int on_alternate_stack = -1;
static volatile int nesting, deepest;
static char alternate_stack[64 * 1024];

static void on_fault(int sig, siginfo_t *info, void *context)
{
    (void)context;
    fault_address = info->si_addr;
    fault_code = info->si_code;
    siglongjmp(jump, sig);
}

static void skip_ud2(int sig, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;
    CHECK(20, info->si_addr == (void *)uc->uc_mcontext.gregs[REG_RIP]);
    uc->uc_mcontext.gregs[REG_RIP] += 2; /* ud2 is two bytes long */
    delivered[sig]++;
}

static void count(int sig) { delivered[sig]++; }

static void where_am_i(int sig)
{
    char here;
    on_alternate_stack = &here >= alternate_stack && &here < alternate_stack + sizeof alternate_stack;
    delivered[sig]++;
}

static void nested(int sig)
{
    delivered[sig]++;
    if (++nesting > deepest)
        deepest = nesting;
    if (nesting < 3)
        raise(sig); /* runs the handler again at once: SA_NODEFER */
    nesting--;
}

static void handle(int sig, void (*handler)(int), int flags)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = flags;
    CHECK(1, sigaction(sig, &action, NULL) == 0);
}

static void handle_info(int sig, void (*handler)(int, siginfo_t *, void *))
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO;
    CHECK(2, sigaction(sig, &action, NULL) == 0);
}

static void arm_timer(long usec)
{
    struct itimerval timer = {{0, 0}, {usec / 1000000, usec % 1000000}};
    CHECK(3, setitimer(ITIMER_REAL, &timer, NULL) == 0);
}

static int pipe_fds[2];

static void *write_later(void *arg)
{
    (void)arg;
    while (!delivered[SIGALRM]) /* the reader has been interrupted once */
        usleep(1000);
    CHECK(4, write(pipe_fds[1], "!", 1) == 1);
    return NULL;
}

static void faults(void)
{
    handle_info(SIGSEGV, on_fault);
    int sig = sigsetjmp(jump, 1);
    if (sig == 0)
        *(volatile int *)0x1234 = 1;
    CHECK(5, sig == SIGSEGV && fault_address == (void *)0x1234 && fault_code == SEGV_MAPERR);
    printf("SIGSEGV at %p, code SEGV_MAPERR\n", fault_address);

    handle_info(SIGFPE, on_fault);
    volatile int zero = 0, seven = 7;
    sig = sigsetjmp(jump, 1);
    if (sig == 0)
        printf("%d\n", seven / zero);
    CHECK(6, sig == SIGFPE && fault_code == FPE_INTDIV);
    printf("SIGFPE, code FPE_INTDIV\n");

    handle_info(SIGILL, skip_ud2);
    __asm__ volatile("ud2");
    CHECK(7, delivered[SIGILL] == 1);
    printf("SIGILL handled, execution went on after ud2\n");
}

static void masks(void)
{
    sigset_t usr1, old, pending;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    handle(SIGUSR1, count, 0);
    CHECK(8, sigprocmask(SIG_BLOCK, &usr1, &old) == 0);
    raise(SIGUSR1);
    CHECK(9, delivered[SIGUSR1] == 0);
    CHECK(10, sigpending(&pending) == 0 && sigismember(&pending, SIGUSR1));
    printf("SIGUSR1 blocked and pending\n");
    sigsuspend(&old);
    CHECK(11, delivered[SIGUSR1] == 1);
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    CHECK(12, sigismember(&now, SIGUSR1));
    printf("sigsuspend ran the handler, the mask is back\n");

    raise(SIGUSR1);
    siginfo_t info;
    struct timespec none = {0, 0};
    CHECK(13, sigtimedwait(&usr1, &info, &none) == SIGUSR1 && info.si_signo == SIGUSR1);
    CHECK(14, sigtimedwait(&usr1, &info, &none) == -1 && errno == EAGAIN);
    CHECK(15, delivered[SIGUSR1] == 1);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("sigtimedwait took SIGUSR1 without the handler\n");
}

static void stacks_and_flags(void)
{
    stack_t stack = {.ss_sp = alternate_stack, .ss_size = sizeof alternate_stack};
    CHECK(16, sigaltstack(&stack, NULL) == 0);
    handle(SIGUSR2, where_am_i, SA_ONSTACK | SA_RESETHAND);
    raise(SIGUSR2);
    CHECK(17, on_alternate_stack == 1);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    CHECK(18, now.sa_handler == SIG_DFL);
    printf("SA_ONSTACK handler ran on the alternate stack, SA_RESETHAND reset it\n");

    handle(SIGWINCH, nested, SA_NODEFER);
    raise(SIGWINCH);
    CHECK(19, deepest == 3 && delivered[SIGWINCH] == 3);
    printf("SA_NODEFER let the handler nest %d deep\n", deepest);
}

static void timers(void)
{
    handle(SIGALRM, count, 0);
    arm_timer(20000);
    volatile unsigned long spins = 0;
    while (!delivered[SIGALRM])
        spins++;
    printf("the timer interrupted a compute loop\n");

    CHECK(21, pipe(pipe_fds) == 0);
    delivered[SIGALRM] = 0;
    arm_timer(20000);
    char c;
    CHECK(22, read(pipe_fds[0], &c, 1) == -1 && errno == EINTR);
    printf("a blocked read failed with EINTR\n");

    handle(SIGALRM, count, SA_RESTART);
    delivered[SIGALRM] = 0;
    pthread_t writer;
    CHECK(23, pthread_create(&writer, NULL, write_later, NULL) == 0);
    arm_timer(20000);
    CHECK(24, read(pipe_fds[0], &c, 1) == 1 && c == '!');
    CHECK(25, delivered[SIGALRM] == 1);
    pthread_join(writer, NULL);
    printf("SA_RESTART restarted the read, which another thread completed\n");
}

static void *wait_for_usr1(void *arg)
{
    sigset_t *usr1 = arg;
    pthread_sigmask(SIG_UNBLOCK, usr1, NULL); /* created with it blocked, as main has it */
    while (!delivered[SIGUSR1])
        sched_yield();
    return (void *)(uintptr_t)pthread_self();
}

static void threads(void)
{
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* only the new thread can take it */
    delivered[SIGUSR1] = 0;
    pthread_t thread;
    CHECK(26, pthread_create(&thread, NULL, wait_for_usr1, &usr1) == 0);
    CHECK(27, pthread_kill(thread, SIGUSR1) == 0);
    void *back;
    CHECK(28, pthread_join(thread, &back) == 0 && back == (void *)(uintptr_t)thread);
    printf("pthread_kill reached the thread that waited for it\n");
}

int main(void)
{
    faults();
    masks();
    stacks_and_flags();
    timers();
    threads();
    return 0;
}
