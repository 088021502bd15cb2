"""fork(2) and vfork(2): every emulated process is one host legorun process.

The parent asks its memory manager for a copy-on-write snapshot of its address space
(P2M_FORK, answered with a token), then forks its own host process. The child claims the
snapshot under its own pid (P2M_FORK_CLAIM; the guest's pid is the host pid of its legorun
process) and carries on from the same instruction: the host fork gave it copies of the CPU,
the fd table (host descriptors included) and the ExCache, whose slot region is private
memory, so the dirty lines the child holds are its own and consistent with the snapshot.
With the embedded machine the child's copy of the memory manager holds the snapshot; a
memory manager in another process hands it over the same way.

The parent releases its token (P2M_FORK_RELEASE, see children.py) once it has reaped the
child, which by
then has claimed its snapshot: with a memory manager shared by both, nothing is left to
drop; with an embedded one, the parent's own, unused copy goes. Dropping that copy while
the child's host process lives would cost the parent a host page fault per page (CPython
writes the reference count of every page object it lets go, and the host shares those
objects copy-on-write with the child); once the child is gone it costs nothing.

For vfork the parent then waits until the child execs or ends: the child holds the write
end of a pipe (`release_vfork_parent` closes it at exec; its host process's end does too),
and the parent reads until the end of the pipe.

When the child ends, its host process must end exactly as the guest did, so that the
parent's wait4 sees the same status: `exit_as` does that.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from typing import TYPE_CHECKING, NoReturn

from legorun.errors import LegorunError
from legorun.rpc.messages import (
    ForkClaimRequest,
    ForkReleaseRequest,
    ForkReply,
    ForkRequest,
    StatusReply,
)
from legorun.trace.instrument import fork_instruments, prepare_instruments_for_fork
from syscalls.errno import Errno, SyscallError

if TYPE_CHECKING:
    from legorun.processor.processor import Exit, Processor


def fork_process(processor: Processor, vfork: bool) -> int:
    """Make a child process of `processor`'s process; the child's pid in the parent, 0 in
    the child."""
    processor.children.release_vanished()
    transport = processor.transport
    reply: ForkReply = transport.call(ForkRequest(processor.pid))
    if reply.status:
        raise SyscallError(Errno(reply.status))
    for fd in processor.fds.fds():  # both processes hold every open file from now on
        processor.fds.get(fd).shared_by_fork = True
    # Nothing buffered may be inherited: the child would write it a second time.
    prepare_instruments_for_fork(processor.instruments)
    sys.stdout.flush()
    sys.stderr.flush()
    vfork_read, vfork_write = os.pipe2(os.O_CLOEXEC) if vfork else (-1, -1)
    try:
        processor.shared.forking()
        child = os.fork()
    except OSError:
        if vfork:
            os.close(vfork_read)
            os.close(vfork_write)
        transport.call(ForkReleaseRequest(reply.token))
        raise SyscallError(Errno.EAGAIN) from None
    if child == 0:
        if vfork:
            os.close(vfork_read)
        _become_child(processor, reply.token, vfork_write if vfork else None)
        return 0
    processor.children.add(child, reply.token)
    if vfork:
        os.close(vfork_write)
        try:
            with processor.core_turn.given_up():
                os.read(vfork_read, 1)  # the end of the pipe: the child exec'ed or ended
        finally:
            os.close(vfork_read)
    processor.core_turn.take()  # memory shared with the child: take turns from now on
    return child


def _become_child(processor: Processor, token: int, vfork_write: int | None) -> None:
    parent = processor.pid
    pid = os.getpid()
    # A vfork parent of ours waits for our parent's exec or exit, not for ours; our
    # parent's children, and their snapshots, are none of ours.
    release_vfork_parent(processor)
    processor.children.disown()
    processor.transport.forked()
    claimed: StatusReply = processor.transport.call(ForkClaimRequest(token, pid))
    if claimed.status:
        raise LegorunError(f"fork: the memory manager has no snapshot for pid {pid}")
    processor.become_child(pid, parent)
    processor.core_turn.forked()
    fork_instruments(processor.instruments, pid)
    processor.vfork_parent = vfork_write


def release_vfork_parent(processor: Processor) -> None:
    """Let a parent blocked in vfork go on: this process execs or ends."""
    if processor.vfork_parent is not None:
        os.close(processor.vfork_parent)
        processor.vfork_parent = None


def exit_as(exit: Exit) -> NoReturn:
    """End this host process as the guest process ended: with its exit status, or killed
    by its signal (default action, no core file, nothing printed), so that the parent's
    wait sees exactly what Linux would report."""
    sys.stdout.flush()
    sys.stderr.flush()
    if exit.signal:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if exit.signal != signal.SIGKILL:  # whose disposition is always the default
            signal.signal(exit.signal, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {exit.signal})
        os.kill(os.getpid(), exit.signal)
        # A signal whose default action does not end a process (the guest died of it only
        # because legorun said so) cannot reproduce the death: the shell's status instead.
    os._exit(exit.shell_status & 0xFF)
