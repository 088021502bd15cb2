"""Open files whose name is unlinked or renamed, on a storage manager that keeps no state.

The storage manager knows files by path only, so an open file is a path and an offset
(files.StorageFile). On Linux a file unlinked while open lives on until its last close
(tmpfile(3), `tac`'s spill file, sort's temporaries all rely on it), and a renamed file
stays the same open file. The processor keeps both promises itself, as an NFS client does
("silly rename"): unlinking a path this process holds open renames it to a hidden name in
the same directory, and the process that hid it removes it when its last descriptor for it
closes or the process ends; renaming a held path (or a directory above it) re-points the
open files at the new path.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

from legorun.processor.files import Directory, StorageFile

if TYPE_CHECKING:
    from syscalls.context import SyscallContext

HIDDEN_PREFIX = ".legorun-unlinked-"
_hidden_names = itertools.count(1)


def hidden_name(ctx: SyscallContext, path: str) -> str | None:
    """Where unlinking `path` must move it instead, or None when this process holds no
    open regular file at `path` (the unlink can really happen)."""
    if not any(isinstance(file, StorageFile) and not isinstance(file, Directory)
               and file.path == path for file in ctx.fds.open_files()):
        return None
    return hidden_path(os.path.dirname(path))


def hidden_path(directory: str) -> str:
    """A new hidden name in `directory` for a file this process removes when it closes it
    (an unlinked open file, a memfd)."""
    return os.path.join(directory, f"{HIDDEN_PREFIX}{os.getpid()}-{next(_hidden_names)}")


def renamed(ctx: SyscallContext, old: str, new: str, hidden: bool = False) -> None:
    """After rename(2) of `old` to `new`: open files at or below `old` follow it; `hidden`:
    the rename hid an unlinked file, which this process removes when it closes it."""
    below = old.rstrip("/") + "/"
    for file in ctx.fds.open_files():
        if not isinstance(file, StorageFile) or file.path is None:
            continue
        if file.path == old:
            file.path = new
            if hidden:
                file.remove_on_close = os.getpid()
        elif file.path.startswith(below):
            file.path = new.rstrip("/") + "/" + file.path[len(below):]
