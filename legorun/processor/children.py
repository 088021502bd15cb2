"""A process's children as its processor keeps track of them, and waiting for them.

A child is a host legorun process (see fork.py), so the host kernel holds its state and its
exit status; the processor only remembers, per child, the token of the address-space
snapshot it made for it (released once the child has been reaped: see fork.py) and a pidfd,
which becomes readable when the child ends.

A wait4 or waitid that has to block does so as every guest wait does (wait.py): its thread
gives the CPU to the other threads and a signal with a handler interrupts it. When every
thread waits, the scheduler polls the children's pidfds with the other host descriptors;
the call itself then runs on the host and returns at once.
"""

from __future__ import annotations

import os
import select
from dataclasses import dataclass

from legorun.processor.wait import Wait, blocking_point
from legorun.rpc.messages import ForkReleaseRequest
from legorun.rpc.transport import Transport

WNOHANG = 0x00000001
WNOWAIT = 0x01000000


@dataclass(slots=True)
class Child:
    token: int  # its fork snapshot at the memory manager
    pidfd: int  # readable once the child has ended; -1 when the host has no pidfds


class Children:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._children: dict[int, Child] = {}

    def add(self, pid: int, token: int) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # a host older than Linux 5.3: waits then see only signals
            pidfd = -1
        self._children[pid] = Child(token, pidfd)

    def reaped(self, pid: int) -> None:
        """The child `pid` was waited for: its snapshot and pidfd can go."""
        child = self._children.pop(pid, None)
        if child is None:
            return
        if child.pidfd >= 0:
            os.close(child.pidfd)
        self._transport.call(ForkReleaseRequest(child.token))

    def release_vanished(self) -> None:
        """Children that ended without being waited for (the host reaps them itself when
        SIGCHLD is ignored) leave their snapshots too."""
        for pid in list(self._children):
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):  # gone, or the pid was reused
                self.reaped(pid)

    def disown(self) -> None:
        """In a new child: its parent's children are not its own. Their snapshots belong to
        the parent; only the descriptors go."""
        for child in self._children.values():
            if child.pidfd >= 0:
                os.close(child.pidfd)
        self._children.clear()

    def host_events(self) -> list[tuple[int, int]]:
        return [(child.pidfd, select.POLLIN) for child in self._children.values()
                if child.pidfd >= 0]


class ChildWait(Wait):
    """Until a child that waitid(idtype, id, options) would report has news (or there is no
    such child: the call then fails at once)."""

    def __init__(self, children: Children, idtype: int, id: int, options: int) -> None:
        self._children = children
        self._call = (idtype, id, options | WNOHANG | WNOWAIT)

    def satisfied(self) -> bool:
        try:
            return os.waitid(*self._call) is not None
        except OSError:  # ECHILD, EINVAL: what the call itself will answer
            return True

    def host_events(self) -> list[tuple[int, int]]:
        return self._children.host_events()

    def wakeable_from_outside(self) -> bool:
        return True

    def describe(self) -> str:
        return "for a child process"


def wait_for_child(children: Children, idtype: int, id: int, options: int) -> None:
    """Block the calling guest thread until waitid(idtype, id, options) has something to
    report; raises Interrupted when a signal comes first."""
    wait = ChildWait(children, idtype, id, options)
    thread = blocking_point()
    if thread is not None and not wait.satisfied():
        thread.block(wait)
