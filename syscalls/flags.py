"""open(2) flags as the x86-64 Linux ABI defines them (include/uapi/asm-generic/fcntl.h).

Shared by the processor, which keeps them in its open file descriptions, and the storage
manager, which translates them to the host's.
"""

from __future__ import annotations

O_ACCMODE = 0o3
O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_EXCL = 0o200
O_NOCTTY = 0o400
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_NONBLOCK = 0o4000
O_DIRECT = 0o40000
O_LARGEFILE = 0o100000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000
O_TMPFILE = 0o20200000
O_DSYNC = 0o10000
O_ASYNC = 0o20000
O_NOATIME = 0o1000000
O_SYNC = 0o4010000
