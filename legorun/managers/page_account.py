"""What a memory server's page contents cost, counted against its capacity.

A memory server holds the pages of every process of every processor it serves, and
`legorun memory-server --capacity SIZE` bounds their total. A page is counted once however
many address spaces hold it: fork snapshots share page objects copy-on-write
(address_space.py), so the account counts distinct page objects, each with the number of
stores that hold it, and a page costs its bytes from its first holder until its last one
lets it go.

`CountedPages` is such a store: the page dictionary of an address space (page number ->
contents) whose every change goes through the account. A change that needs more room than
is left raises ENOMEM and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syscalls.errno import Errno, SyscallError


class PageAccount:
    """The pages one memory server holds, over all its processors; `capacity` 0 is no
    limit."""

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.used = 0  # bytes of distinct pages held
        self._holders: dict[int, int] = {}  # id(page) -> how many stores hold it

    @property
    def pages(self) -> int:
        return len(self._holders)

    def admits(self, nbytes: int) -> bool:
        """Whether one request for `nbytes` of new memory can be promised at all: Linux's
        heuristic overcommit (OVERCOMMIT_GUESS) refuses only a request larger than the whole
        memory; the pages are then paid for one by one, when they are stored."""
        return not self.capacity or nbytes <= self.capacity

    def exchange(self, old: bytes | None, new: bytes) -> None:
        """A store holds `new` where it held `old` (None: nothing); ENOMEM, with nothing
        changed, when `new` needs room that letting `old` go does not make."""
        if old is new:
            return
        needed = 0 if id(new) in self._holders else len(new)
        freed = len(old) if old is not None and self._holders[id(old)] == 1 else 0
        if needed and self.capacity and self.used - freed + needed > self.capacity:
            raise SyscallError(Errno.ENOMEM, f"the memory server is full (capacity "
                                             f"{self.capacity} bytes, {self.used} used)")
        if old is not None:
            self.release(old)
        self._holders[id(new)] = self._holders.get(id(new), 0) + 1
        self.used += needed

    def release(self, page: bytes) -> None:
        count = self._holders[id(page)]
        if count == 1:
            del self._holders[id(page)]
            self.used -= len(page)
        else:
            self._holders[id(page)] = count - 1


class CountedPages(dict[int, bytes]):
    """An address space's pages, each held in `account` while it is stored here.

    Every way of changing a dict is covered, so the address space's code treats this as the
    plain dict it uses when nothing is counted (the embedded memory manager)."""

    __slots__ = ("_account",)

    def __init__(self, account: PageAccount) -> None:
        super().__init__()
        self._account = account

    @classmethod
    def holding(cls, account: PageAccount, pages: dict[int, bytes]) -> CountedPages:
        """A counted copy of `pages`; ENOMEM, with nothing counted, when they do not fit."""
        store = cls(account)
        try:
            store.update(pages)
        except SyscallError:
            store.clear()
            raise
        return store

    def __setitem__(self, number: int, page: bytes) -> None:
        self._account.exchange(self.get(number), page)
        super().__setitem__(number, page)

    def __delitem__(self, number: int) -> None:
        page = self[number]
        super().__delitem__(number)
        self._account.release(page)

    def pop(self, number: int, *default: Any) -> Any:
        if number not in self:
            return super().pop(number, *default)
        page = super().pop(number)
        self._account.release(page)
        return page

    def popitem(self) -> tuple[int, bytes]:
        number, page = super().popitem()
        self._account.release(page)
        return number, page

    def setdefault(self, number: int, default: bytes = b"") -> bytes:  # type: ignore[override]
        if number not in self:
            self[number] = default
        return self[number]

    def update(self, other: Any = (), /, **more: Any) -> None:  # type: ignore[override]
        items: Iterable[tuple[int, bytes]] = other.items() if hasattr(other, "items") else other
        for number, page in items:
            self[number] = page
        for number, page in more.items():
            self[number] = page

    def __ior__(self, other: Any) -> CountedPages:  # type: ignore[override]
        self.update(other)
        return self

    def clear(self) -> None:
        """Also how an address space that is gone (its process exited or exec'ed, its
        snapshot was released) gives its pages back at once."""
        for page in self.values():
            self._account.release(page)
        super().clear()

    def copy(self) -> CountedPages:  # type: ignore[override]
        """A fork snapshot's pages: the same page objects, so no new bytes are counted."""
        other = CountedPages(self._account)
        other.update(self)
        return other
