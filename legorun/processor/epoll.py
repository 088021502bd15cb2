"""I/O event notification (epoll(7)) as a host epoll instance owned by the processor.

Every file the guest can watch has a host descriptor (a pipe, socket, eventfd, timerfd,
another epoll instance, an inherited terminal or pipe); files served by the storage manager
or the processor have none, and Linux refuses regular files too (EPERM). Each registration
watches its own host duplicate of the file's descriptor, because Linux keys an interest by
(file, fd number): two guest descriptors of one open file may both be added. The host then
provides level- and edge-triggered reporting, EPOLLONESHOT, EPOLLEXCLUSIVE and nesting.

When the last guest descriptor of a file closes, Linux drops it from every epoll set; the
duplicate here would otherwise keep the host file open (a pipe's reader would never see end
of file), so the file tells its epoll instances when it closes.
"""

from __future__ import annotations

import os
import select
from dataclasses import dataclass

from legorun.processor.files import O_RDWR, OpenFile, host_errno
from legorun.processor.hostfile import HostFile
from legorun.processor.wait import POLLIN, wait_until_ready
from syscalls.errno import Errno, SyscallError

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3


@dataclass(slots=True)
class Interest:
    file: OpenFile
    fd: int  # the guest's descriptor number
    host_fd: int  # the duplicate the host epoll watches
    data: int  # epoll_data, returned as given


class Epoll(HostFile):
    def __init__(self) -> None:
        self._epoll = select.epoll()  # close-on-exec, as every host descriptor here
        super().__init__(self._epoll.fileno(), O_RDWR)
        self._interests: dict[tuple[int, int], Interest] = {}  # (id(file), fd) -> interest
        self._by_host_fd: dict[int, Interest] = {}

    def fd_link(self) -> str:
        return "anon_inode:[eventpoll]"

    def wakeable_by_others(self) -> bool:
        return any(interest.file.wakeable_by_others() for interest in self._interests.values())

    def control(self, op: int, fd: int, file: OpenFile, events: int, data: int) -> None:
        """epoll_ctl(2) for the guest's descriptor `fd`, open as `file`."""
        if op not in (EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD):
            raise SyscallError(Errno.EINVAL)
        host = file.host_fd()
        if host is None:
            raise SyscallError(Errno.EPERM)  # no poll method: a regular file, a /proc file
        if file is self:
            raise SyscallError(Errno.EINVAL)
        key = (id(file), fd)
        interest = self._interests.get(key)
        if op == EPOLL_CTL_ADD:
            if interest is not None:
                raise SyscallError(Errno.EEXIST)
            self._add(key, file, fd, host, events, data)
            return
        if interest is None:
            raise SyscallError(Errno.ENOENT)
        if op == EPOLL_CTL_DEL:
            self._remove(key)
            return
        try:
            self._epoll.modify(interest.host_fd, events)
        except OSError as error:
            raise host_errno(error) from None
        interest.data = data

    def _add(self, key: tuple[int, int], file: OpenFile, fd: int, host: int, events: int,
             data: int) -> None:
        duplicate = os.dup(host)  # os.dup makes it close-on-exec
        try:
            self._epoll.register(duplicate, events)
        except OSError as error:
            os.close(duplicate)
            raise host_errno(error) from None
        interest = Interest(file, fd, duplicate, data)
        self._interests[key] = interest
        self._by_host_fd[duplicate] = interest
        if isinstance(file, HostFile) and self._forget not in file.close_listeners:
            file.close_listeners.append(self._forget)

    def _remove(self, key: tuple[int, int], unregister: bool = True) -> None:
        interest = self._interests.pop(key)
        del self._by_host_fd[interest.host_fd]
        if unregister:
            self._epoll.unregister(interest.host_fd)
        os.close(interest.host_fd)

    def _forget(self, file: HostFile) -> None:
        """`file` closed for good: drop every interest in it. An epoll instance a fork
        shares keeps its registrations for the other process (closing the duplicate the
        host watches is all this one does), as Linux keeps them while the file lives."""
        for key in [key for key, interest in self._interests.items() if interest.file is file]:
            self._remove(key, unregister=not self.shared_by_fork)
        if self._forget in file.close_listeners:
            file.close_listeners.remove(self._forget)

    def wait(self, maxevents: int, timeout_ns: int | None) -> list[tuple[int, int]]:
        """Up to `maxevents` (events, data) pairs, waiting as epoll_wait(2) does."""
        if not wait_until_ready([(self, POLLIN)], timeout_ns)[0]:
            return []
        # No more events than interests can be ready: that bounds the host's buffer.
        ready = self._epoll.poll(0, max(1, min(maxevents, len(self._interests))))
        return [(events, self._by_host_fd[host].data) for host, events in ready
                if host in self._by_host_fd]

    def close(self) -> None:
        for file in {id(i.file): i.file for i in self._interests.values()}.values():
            if isinstance(file, HostFile):
                self._forget(file)
        for key in list(self._interests):  # inherited streams, which never close
            self._remove(key, unregister=not self.shared_by_fork)
        super().close()

    def release_host(self) -> None:
        self._epoll.close()
