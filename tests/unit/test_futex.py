"""futex(2) for a single-threaded guest, compared with the same calls natively."""

from __future__ import annotations

from guest_programs import compile_c, run_both, run_legorun


def test_futex_calls_match_native(tmp_path):
    exe = compile_c(tmp_path, "futex", r"""
#include <linux/futex.h>
static long futex(unsigned *word, int op, unsigned val, struct timespec *ts, unsigned *word2,
                  unsigned val3) {
    return syscall(SYS_futex, word, op, val, ts, word2, val3);
}
int main(void) {
    static unsigned word = 7, second = 5;
    struct timespec ten_ms = {0, 10 * 1000 * 1000}, bad = {0, 2000000000L};
    SHOW(futex(&word, FUTEX_WAKE, 1, NULL, NULL, 0));
    SHOW(futex(&word, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));
    SHOW(futex(&word, FUTEX_WAIT, 8, NULL, NULL, 0));                 /* EAGAIN */
    SHOW(futex(&word, FUTEX_WAIT_PRIVATE, 7, &ten_ms, NULL, 0));      /* ETIMEDOUT */
    SHOW(futex(&word, FUTEX_WAIT, 7, &bad, NULL, 0));                 /* EINVAL */
    SHOW(futex((unsigned *)((char *)&word + 1), FUTEX_WAKE, 1, NULL, NULL, 0)); /* EINVAL */
    SHOW(futex(NULL, FUTEX_WAKE, 1, NULL, NULL, 0));                  /* EFAULT */
    SHOW(futex(&word, FUTEX_WAIT_BITSET, 7, NULL, NULL, 0));          /* EINVAL: empty mask */
    SHOW(futex(&word, FUTEX_CMP_REQUEUE, 1, NULL, &second, 6));       /* EAGAIN: 7 != 6 */
    SHOW(futex(&word, FUTEX_CMP_REQUEUE, 1, NULL, &second, 7));
    SHOW(futex(&word, FUTEX_WAKE_OP, 1, NULL, &second,
               FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 0)));
    printf("second = %u\n", second);
    SHOW(futex(&word, FUTEX_WAKE_OP, 1, NULL, &second,
               FUTEX_OP(FUTEX_OP_OR | FUTEX_OP_OPARG_SHIFT, 4, FUTEX_OP_CMP_EQ, 0)));
    printf("second = %u\n", second);
    return 0;
}
""")
    run_both(tmp_path, exe)


def test_waiting_forever_alone_is_reported_as_deadlock(tmp_path):
    exe = compile_c(tmp_path, "deadlock", r"""
int main(void) {
    static unsigned word = 1;
    printf("waiting\n");
    fflush(stdout);
    syscall(SYS_futex, &word, 0 /* FUTEX_WAIT */, 1, NULL, NULL, 0);
    return 0;
}
""")
    lego = run_legorun(exe, tmp_path / "run")
    assert lego.stdout == b"waiting\n"
    assert lego.returncode == 1
    (line,) = lego.stderr.decode().splitlines()
    assert line.startswith("legorun: deadlock: the guest's only thread waits forever on futex 0x")
