"""legorun's own errors: each carries the exit status a shell would give for it.

Guest errors that the guest sees (errnos) are `syscalls.errno.SyscallError`, not these.
"""

from __future__ import annotations


class LegorunError(Exception):
    """A failure of legorun itself, reported as one `legorun: ...` line on stderr."""

    exit_status = 1


class UsageError(LegorunError):
    """Bad command line: exit 2, as argparse and most tools do."""

    exit_status = 2


class LoaderError(LegorunError):
    """The program file cannot be executed (not an ELF, wrong class or machine, truncated):
    exit 126, as a shell does for a file it cannot execute."""

    exit_status = 126


class ProgramNotFound(LegorunError):
    """The program file does not exist: exit 127, as a shell does."""

    exit_status = 127


class RpcError(LegorunError):
    """A manager could not be reached or answered with garbage: exit 125, the status of a
    command (env, timeout) that failed itself before its program could finish."""

    exit_status = 125
