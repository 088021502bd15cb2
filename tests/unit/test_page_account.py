"""A memory server's capacity: page contents counted once per distinct page, however many
address spaces (fork snapshots) share them, and refused cleanly when full."""

from __future__ import annotations

import shutil

import pytest

from legorun.managers.memory import STACK_TOP, MemoryManager
from legorun.managers.page_account import CountedPages, PageAccount
from legorun.managers.storage import StorageManager
from legorun.managers.vma import PAGE_SIZE
from legorun.rpc.messages import (
    CapacityReply,
    CapacityRequest,
    ExecReply,
    ExecRequest,
    ExitRequest,
    ForkClaimRequest,
    ForkReleaseRequest,
    ForkReply,
    ForkRequest,
    MmapRequest,
    MmReply,
    StatusReply,
    WritebackRequest,
)
from syscalls.errno import Errno, SyscallError

MAP_PRIVATE_ANONYMOUS = 0x22
PROT_RW = 3
STACK_PAGE = STACK_TOP - PAGE_SIZE


def page(fill: int) -> bytes:
    return bytes([fill]) * PAGE_SIZE


def test_a_page_shared_by_copies_is_counted_once() -> None:
    account = PageAccount()
    pages = CountedPages(account)
    pages[1], pages[2] = page(1), page(2)
    snapshot = pages.copy()
    assert (account.used, account.pages) == (2 * PAGE_SIZE, 2)
    snapshot[1] = page(9)  # copy-on-write: the snapshot gets a page of its own
    assert account.pages == 3
    pages.clear()  # the original goes; the snapshot still holds page 2
    assert (account.used, account.pages) == (2 * PAGE_SIZE, 2)
    del snapshot[2]
    assert snapshot.pop(1) == page(9)
    assert (account.used, account.pages) == (0, 0)


def test_a_full_account_refuses_a_new_page_and_changes_nothing() -> None:
    account = PageAccount(capacity=2 * PAGE_SIZE)
    pages = CountedPages(account)
    pages.update({1: page(1), 2: page(2)})
    with pytest.raises(SyscallError) as refused:
        pages[3] = page(3)
    assert refused.value.errno == Errno.ENOMEM
    assert 3 not in pages and account.used == 2 * PAGE_SIZE
    pages[1] = page(7)  # replacing a page needs no more room, even when full
    assert pages[1] == page(7) and account.used == 2 * PAGE_SIZE
    with pytest.raises(SyscallError):
        CountedPages.holding(PageAccount(capacity=PAGE_SIZE), {1: page(1), 2: page(2)})


def test_only_a_request_larger_than_the_whole_capacity_is_refused_up_front() -> None:
    assert PageAccount(capacity=0).admits(1 << 40)
    assert PageAccount(capacity=1 << 20).admits(1 << 20)
    assert not PageAccount(capacity=1 << 20).admits((1 << 20) + PAGE_SIZE)


@pytest.fixture
def program() -> str:
    found = shutil.which("true")
    if found is None:
        pytest.skip("no true(1) to load")
    return found


def server(capacity: int) -> tuple[MemoryManager, PageAccount]:
    account = PageAccount(capacity)
    storage = StorageManager(None).handlers()
    manager = MemoryManager(lambda request: storage[request.OPCODE](request), account=account)
    return manager, account


def exec_true(manager: MemoryManager, pid: int, program: str) -> ExecReply:
    return manager.handle_p2m_execve(ExecRequest(pid, program, (b"true",), (), b"true"))


def test_processes_pay_for_their_pages_and_give_them_back(program: str) -> None:
    manager, account = server(capacity=0)
    assert exec_true(manager, 1, program).status == 0
    image = account.used
    assert image > 0
    assert manager.handle_p2m_writeback(WritebackRequest(1, ((STACK_PAGE, page(5)),))) \
        == StatusReply()
    before = account.used
    fork: ForkReply = manager.handle_p2m_fork(ForkRequest(1))
    assert account.used == before  # the snapshot shares every page
    manager.handle_p2m_fork_claim(ForkClaimRequest(fork.token, 2))
    manager.handle_p2m_writeback(WritebackRequest(2, ((STACK_PAGE, page(6)),)))
    assert account.used == before + PAGE_SIZE
    report: CapacityReply = manager.handle_p2m_capacity(CapacityRequest())
    assert (report.capacity, report.used, report.pages) == (0, account.used, account.pages)
    manager.handle_p2m_exit(ExitRequest(1))
    manager.handle_p2m_exit(ExitRequest(2))
    manager.handle_p2m_fork_release(ForkReleaseRequest(fork.token))
    assert (account.used, account.pages) == (0, 0)


def test_a_full_server_refuses_exec_mmap_and_write_backs(program: str) -> None:
    probe, probed = server(capacity=0)
    exec_true(probe, 1, program)
    image = probed.used
    tiny, _ = server(capacity=image - PAGE_SIZE)
    assert exec_true(tiny, 1, program).status == Errno.ENOMEM

    manager, account = server(capacity=image + 16 * PAGE_SIZE)
    assert exec_true(manager, 1, program).status == 0
    # Linux's heuristic overcommit: only a mapping bigger than the whole capacity fails.
    big: MmReply = manager.handle_p2m_mmap(
        MmapRequest(1, 0, account.capacity + PAGE_SIZE, PROT_RW, MAP_PRIVATE_ANONYMOUS))
    assert big.status == Errno.ENOMEM
    area: MmReply = manager.handle_p2m_mmap(
        MmapRequest(1, 0, 64 * PAGE_SIZE, PROT_RW, MAP_PRIVATE_ANONYMOUS))
    assert area.status == 0
    lines = tuple((area.result + n * PAGE_SIZE, page(n)) for n in range(32))
    refused: StatusReply = manager.handle_p2m_writeback(WritebackRequest(1, lines))
    assert refused.status == Errno.ENOMEM
    assert account.used <= account.capacity


def test_a_child_reaped_without_exiting_gives_its_pages_back(program: str) -> None:
    """A child killed by a signal never says P2M_EXIT: its parent's release of the fork
    token, once it has reaped the child, lets the child's space go."""
    manager, account = server(capacity=0)
    exec_true(manager, 1, program)
    fork: ForkReply = manager.handle_p2m_fork(ForkRequest(1))
    manager.handle_p2m_fork_claim(ForkClaimRequest(fork.token, 2))
    manager.handle_p2m_writeback(WritebackRequest(2, ((STACK_PAGE, page(6)),)))
    manager.handle_p2m_exit(ExitRequest(1))
    assert account.pages > 0
    manager.handle_p2m_fork_release(ForkReleaseRequest(fork.token))
    assert (account.used, account.pages) == (0, 0)

