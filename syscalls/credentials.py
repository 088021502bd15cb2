"""The process's credentials (credentials(7)): real, effective, saved and file-system user and
group ids, and the supplementary groups.

They are the emulated process's own, kept by the processor with the rules of the kernel's
kernel/sys.c: a process whose effective uid is 0 may set any id (CAP_SETUID, CAP_SETGID),
any other only to one of its current real, effective or saved ids. The ids start as
legorun's own. File permissions are not checked against them: the storage manager opens
files as the user it runs as, whatever the guest's ids are.
"""

from __future__ import annotations

from legorun.processor.process import Ids
from syscalls.args import Int, Ptr, UInt
from syscalls.context import SyscallContext
from syscalls.errno import Errno, SyscallError

UNCHANGED = 0xFFFFFFFF  # (uid_t)-1: leave this id as it is
NGROUPS_MAX = 65536


def _ids(ctx: SyscallContext, group: bool) -> Ids:
    return ctx.proc.gids if group else ctx.proc.uids


def _privileged(ctx: SyscallContext) -> bool:
    return ctx.proc.uids.effective == 0


def _set_id(ctx: SyscallContext, value: int, group: bool) -> int:
    """setuid(2), setgid(2)."""
    ids = _ids(ctx, group)
    if _privileged(ctx):
        ids.real = ids.effective = ids.saved = ids.fs = value
    elif value in (ids.real, ids.saved):
        ids.effective = ids.fs = value
    else:
        raise SyscallError(Errno.EPERM)
    return 0


def _set_re(ctx: SyscallContext, real: int, effective: int, group: bool) -> int:
    """setreuid(2), setregid(2)."""
    ids = _ids(ctx, group)
    privileged = _privileged(ctx)
    if real != UNCHANGED and not privileged and real not in (ids.real, ids.effective):
        raise SyscallError(Errno.EPERM)
    if effective != UNCHANGED and not privileged and not ids.any_of_mine(effective):
        raise SyscallError(Errno.EPERM)
    old_real = ids.real
    if real != UNCHANGED:
        ids.real = real
    if effective != UNCHANGED:
        ids.effective = effective
    # The saved id follows the new effective one when the real one was set, or the
    # effective one was set to something else than the old real id.
    if real != UNCHANGED or (effective != UNCHANGED and effective != old_real):
        ids.saved = ids.effective
    ids.fs = ids.effective
    return 0


def _set_res(ctx: SyscallContext, real: int, effective: int, saved: int, group: bool) -> int:
    """setresuid(2), setresgid(2)."""
    ids = _ids(ctx, group)
    if not _privileged(ctx):
        for value in (real, effective, saved):
            if value != UNCHANGED and not ids.any_of_mine(value):
                raise SyscallError(Errno.EPERM)
    if real != UNCHANGED:
        ids.real = real
    if effective != UNCHANGED:
        ids.effective = effective
    if saved != UNCHANGED:
        ids.saved = saved
    ids.fs = ids.effective
    return 0


def _get_res(ctx: SyscallContext, real: int, effective: int, saved: int, group: bool) -> int:
    ids = _ids(ctx, group)
    for addr, value in ((real, ids.real), (effective, ids.effective), (saved, ids.saved)):
        ctx.mem.write_u32(addr, value)
    return 0


def _set_fs(ctx: SyscallContext, value: int, group: bool) -> int:
    """setfsuid(2), setfsgid(2): the old id, whether or not the new one was allowed."""
    ids = _ids(ctx, group)
    old = ids.fs
    if value != UNCHANGED and (_privileged(ctx) or ids.any_of_mine(value) or value == ids.fs):
        ids.fs = value
    return old


def sys_getuid(ctx: SyscallContext) -> int:
    return ctx.proc.uids.real


def sys_geteuid(ctx: SyscallContext) -> int:
    return ctx.proc.uids.effective


def sys_getgid(ctx: SyscallContext) -> int:
    return ctx.proc.gids.real


def sys_getegid(ctx: SyscallContext) -> int:
    return ctx.proc.gids.effective


def sys_setuid(ctx: SyscallContext, uid: UInt) -> int:
    return _set_id(ctx, uid, group=False)


def sys_setgid(ctx: SyscallContext, gid: UInt) -> int:
    return _set_id(ctx, gid, group=True)


def sys_setreuid(ctx: SyscallContext, ruid: UInt, euid: UInt) -> int:
    return _set_re(ctx, ruid, euid, group=False)


def sys_setregid(ctx: SyscallContext, rgid: UInt, egid: UInt) -> int:
    return _set_re(ctx, rgid, egid, group=True)


def sys_setresuid(ctx: SyscallContext, ruid: UInt, euid: UInt, suid: UInt) -> int:
    return _set_res(ctx, ruid, euid, suid, group=False)


def sys_setresgid(ctx: SyscallContext, rgid: UInt, egid: UInt, sgid: UInt) -> int:
    return _set_res(ctx, rgid, egid, sgid, group=True)


def sys_getresuid(ctx: SyscallContext, ruid: Ptr, euid: Ptr, suid: Ptr) -> int:
    return _get_res(ctx, ruid, euid, suid, group=False)


def sys_getresgid(ctx: SyscallContext, rgid: Ptr, egid: Ptr, sgid: Ptr) -> int:
    return _get_res(ctx, rgid, egid, sgid, group=True)


def sys_setfsuid(ctx: SyscallContext, fsuid: UInt) -> int:
    return _set_fs(ctx, fsuid, group=False)


def sys_setfsgid(ctx: SyscallContext, fsgid: UInt) -> int:
    return _set_fs(ctx, fsgid, group=True)


def sys_getgroups(ctx: SyscallContext, size: Int, groups: Ptr) -> int:
    have = ctx.proc.groups
    if size < 0:
        raise SyscallError(Errno.EINVAL)
    if size:
        if size < len(have):
            raise SyscallError(Errno.EINVAL)
        for index, gid in enumerate(have):
            ctx.mem.write_u32(groups + 4 * index, gid)
    return len(have)


def sys_setgroups(ctx: SyscallContext, size: Int, groups: Ptr) -> int:
    if not 0 <= size <= NGROUPS_MAX:
        raise SyscallError(Errno.EINVAL)
    if not _privileged(ctx):
        raise SyscallError(Errno.EPERM)
    ctx.proc.groups = tuple(ctx.mem.read_u32(groups + 4 * index) for index in range(size))
    return 0
