"""What the processor knows about the process it runs: identity, cwd, limits, signal
bookkeeping. Memory is not here: it belongs to the memory manager."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

RLIM_INFINITY = (1 << 64) - 1


class ProcessExit(Exception):
    """The guest asked to exit (exit/exit_group) with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class FatalSignal(Exception):
    """The guest dies of a signal whose default action terminates it."""

    def __init__(self, signal: int) -> None:
        super().__init__(signal)
        self.signal = signal


RLIMIT_COUNT = 16  # RLIMIT_CPU .. RLIMIT_RTTIME
RLIMIT_NOFILE = 7
FD_LIMIT_CAP = 1 << 20  # the kernel's nr_open: no fd table grows beyond it


def default_rlimits() -> dict[int, tuple[int, int]]:
    """The guest's resource limits start as legorun's own, as a child inherits its
    parent's; the host's "infinity" (-1 in Python) is the kernel's all-ones."""
    def kernel(value: int) -> int:
        return RLIM_INFINITY if value == resource.RLIM_INFINITY else value

    limits = {}
    for which in range(RLIMIT_COUNT):
        soft, hard = resource.getrlimit(which)
        limits[which] = (kernel(soft), kernel(hard))
    return limits


@dataclass(slots=True)
class Ids:
    """The user (or group) ids of a process: real, effective, saved and file-system
    (credentials(7)); they start as legorun's own."""

    real: int
    effective: int
    saved: int
    fs: int

    @classmethod
    def of_user(cls) -> Ids:
        real, effective, saved = os.getresuid()
        return cls(real, effective, saved, effective)

    @classmethod
    def of_group(cls) -> Ids:
        real, effective, saved = os.getresgid()
        return cls(real, effective, saved, effective)

    def any_of_mine(self, value: int) -> bool:
        return value in (self.real, self.effective, self.saved)


@dataclass(slots=True)
class SignalAction:
    handler: int = 0  # SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0


@dataclass(slots=True)
class ProcessState:
    pid: int
    exe: str  # absolute guest path of the running program (/proc/self/exe)
    cwd: str
    argv: tuple[bytes, ...] = ()
    envp: tuple[bytes, ...] = ()
    stack_start: int = 0  # the initial sp: argc, argv, envp, auxv (Linux mm->start_stack)
    ppid: int = field(default_factory=os.getppid)
    uids: Ids = field(default_factory=Ids.of_user)
    gids: Ids = field(default_factory=Ids.of_group)
    groups: tuple[int, ...] = field(default_factory=lambda: tuple(os.getgroups()))
    umask: int = 0o022
    rlimits: dict[int, tuple[int, int]] = field(default_factory=default_rlimits)
    sigactions: dict[int, SignalAction] = field(default_factory=dict)  # per-thread signal
    # state (mask, pending, alternate stack) is in threads.py
    start_monotonic: float = field(default_factory=time.monotonic)
    prctl: dict[int, int | bytes] = field(default_factory=dict)  # PR_GET_* -> value set

    @property
    def uid(self) -> int:
        return self.uids.real

    @property
    def euid(self) -> int:
        return self.uids.effective

    @property
    def gid(self) -> int:
        return self.gids.real

    @property
    def egid(self) -> int:
        return self.gids.effective

    @property
    def comm(self) -> bytes:
        """The task name: the program file's base name, cut to TASK_COMM_LEN - 1 bytes."""
        return self.exe.rsplit("/", 1)[-1].encode()[:15]
