"""Guest path to host path translation for the storage manager (LegoOS sComponent export).

The storage manager serves one directory tree (the export) to the guest, which sees it as
its whole file system, like a chroot(2): path resolution follows Linux path_resolution(7)
(fs/namei.c) component by component, but the walk starts at, and can never leave, the
export root. `..` at the root stays at the root; a symlink is read and followed by hand,
an absolute target being taken relative to the root and a relative one relative to the
directory holding the link; more than 40 links in one resolution fail with ELOOP
(MAXSYMLINKS).

Without a root the host file system is exported as is and the host kernel does the walk.

The returned host path contains no symbolic link except, when the caller asked not to
follow it, the final component; so an operation that does not follow its final component
(lstat, readlink, unlink, rename, ...) cannot reach outside the root. This assumes that
only the guest changes the export: the storage manager serves one request at a time, so
the guest cannot swap a directory for a symlink between a lookup and its use.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from syscalls.errno import Errno, SyscallError

SYMLOOP_MAX = 40  # MAXSYMLINKS in include/linux/namei.h
PATH_MAX = 4096  # include/uapi/linux/limits.h, counting the terminating NUL
NAME_MAX = 255

# Host errno names that differ from the Linux name for the same error.
_ERRNO_ALIASES: dict[str, str] = {
    "EWOULDBLOCK": "EAGAIN",
    "EDEADLOCK": "EDEADLK",
    "ENOTSUP": "EOPNOTSUPP",
}


def host_errno(exc: OSError) -> Errno:
    """The Linux errno for a host OSError, by name, so that a non-Linux host's numbering
    never leaks to the guest; EIO for an error Linux has no name for."""
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    if name is None:
        return Errno.EIO
    name = _ERRNO_ALIASES.get(name, name)
    return Errno[name] if name in Errno.__members__ else Errno.EIO


def final_component(guest_path: str) -> str:
    """The last name of `guest_path` as the kernel classifies it for create/remove calls:
    "." or ".." (LAST_DOT, LAST_DOTDOT), "" for the root (LAST_ROOT), else a plain name."""
    return guest_path.rstrip("/").rpartition("/")[2]


class PathResolver:
    """Maps absolute guest paths to host paths, confined to `root` when one is given."""

    def __init__(self, root: Path | None) -> None:
        # Canonical form so that the root's own host-side symlinks (e.g. /tmp -> /private/tmp)
        # are resolved once, by the host, and `is_root` can compare strings.
        self._root: str | None = None if root is None else os.path.realpath(root)

    @property
    def root(self) -> str | None:
        """The canonical host path of the export root, or None when unconfined."""
        return self._root

    @property
    def confined(self) -> bool:
        return self._root is not None

    def is_root(self, host_path: str) -> bool:
        """Whether `host_path` (as returned by `resolve`) is the guest's "/"."""
        if self._root is None:
            # normpath keeps a leading "//" (POSIX leaves it implementation-defined).
            return os.path.normpath(host_path).strip("/") == ""
        return host_path.rstrip("/") == self._root.rstrip("/")

    def parent(self, host_path: str) -> str:
        """The host path of the directory ".." names inside `host_path` (a resolved
        directory): the root is its own parent."""
        if self._root is None:
            return host_path.rstrip("/") + "/.."
        if self.is_root(host_path):
            return self._root
        # Resolved paths hold no symlinks, so the lexical parent is the physical one.
        return os.path.dirname(host_path.rstrip("/"))

    def resolve(self, guest_path: str, follow_final: bool = True) -> str:
        """The host path for `guest_path`; raises SyscallError as path lookup would fail.

        A missing final component is not an error (the caller may be about to create it);
        a missing intermediate one is ENOENT.
        """
        if not guest_path:
            raise SyscallError(Errno.ENOENT, "empty path")
        if "\0" in guest_path:
            raise SyscallError(Errno.EINVAL, "NUL in path")
        if not guest_path.startswith("/"):
            # The processor turns relative paths into absolute ones (it owns the cwd); a
            # relative path here is a protocol error, not something to guess at.
            raise SyscallError(Errno.EINVAL, f"relative path {guest_path!r}")
        if len(os.fsencode(guest_path)) >= PATH_MAX:
            raise SyscallError(Errno.ENAMETOOLONG, guest_path[:64])
        if self._root is None:
            return guest_path
        return self._walk(self._root, guest_path, follow_final)

    def _walk(self, root: str, guest_path: str, follow_final: bool) -> str:
        parts: list[str] = []  # resolved components below root; each one a real directory
        pending = _components(guest_path)
        pending.reverse()  # a stack: the next component to walk is at the end
        # A trailing slash makes the last component a directory, and a symlink there is
        # followed even by calls that do not otherwise follow (path_resolution(7)).
        must_be_dir = guest_path.endswith("/")
        links = 0
        while pending:
            name = pending.pop()
            last = not pending
            if name == ".":
                continue
            if name == "..":
                # `parts` holds no symlinks, so dropping a name is the physical parent; at
                # the root there is nothing to drop, which keeps ".." from leaving it.
                if parts:
                    parts.pop()
                continue
            if len(os.fsencode(name)) > NAME_MAX:
                raise SyscallError(Errno.ENAMETOOLONG, name[:64])
            host = os.path.join(root, *parts, name)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                if not last:
                    raise SyscallError(Errno.ENOENT, guest_path) from None
                # Keep the trailing slash so the host applies its rules for it
                # (mkdir("d/") succeeds, open("f/", O_CREAT) fails with EISDIR).
                return host + "/" if must_be_dir else host
            except OSError as exc:
                raise SyscallError(host_errno(exc), guest_path) from None
            if stat.S_ISLNK(st.st_mode) and (not last or follow_final or must_be_dir):
                links += 1
                if links > SYMLOOP_MAX:
                    raise SyscallError(Errno.ELOOP, guest_path)
                try:
                    target = os.readlink(host)
                except OSError as exc:
                    raise SyscallError(host_errno(exc), guest_path) from None
                if not target:
                    raise SyscallError(Errno.ENOENT, guest_path)
                if target.startswith("/"):
                    parts = []  # absolute targets mean the guest's root, never the host's
                if last and target.endswith("/"):
                    must_be_dir = True
                pending.extend(reversed(_components(target)))
                continue
            if not stat.S_ISDIR(st.st_mode) and (not last or must_be_dir):
                raise SyscallError(Errno.ENOTDIR, guest_path)
            parts.append(name)
        return os.path.join(root, *parts)


def _components(path: str) -> list[str]:
    """The names of `path` in order, empty ones (from "//" or a leading "/") dropped."""
    return [name for name in path.split("/") if name]
