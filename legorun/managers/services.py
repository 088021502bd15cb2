"""The managers as network services (see rpc/server.py): what each keeps per connection.

A storage server is stateless: every connection is served by the one StorageManager of its
export. A memory server keeps one MemoryManager per processor (the HelloRequest names it),
so that several legorun runs can share the server while their address spaces, whose pids
may coincide, stay apart; a processor's forked children connect on their own and reach the
same manager. The memory manager reads program files from the storage server the processor
named, or from the memory server's own host when it named none. A memory server started
with a backup logs every change to each processor's memory there first (replication.py).
A memory server's pages, over all its processors, are counted against its capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import zmq

from legorun.errors import RpcError
from legorun.managers.checkpoints import CheckpointStore
from legorun.managers.page_account import PageAccount
from legorun.managers.memory import MemoryManager
from legorun.managers.replication import ReplicatedSession
from legorun.managers.storage import StorageManager
from legorun.rpc.messages import HelloRequest, Opcode, Request
from legorun.rpc.remote import ChannelOptions, RemoteChannel
from legorun.rpc.server import Origin, Session
from syscalls.errno import Errno, SyscallError


@dataclass
class _Handlers:
    table: dict[Opcode, Callable[[Any], Any]]

    def serves(self, opcode: Opcode) -> bool:
        return opcode in self.table

    def serve(self, request: Request, origin: Origin) -> Any:
        return self.table[request.OPCODE](request)


class StorageService:
    role = "storage"

    def __init__(self, export: Path | None) -> None:
        self._session = _Handlers(StorageManager(export).handlers())

    def hello(self, request: HelloRequest) -> _Handlers:
        return self._session

    def backup(self) -> str:
        return ""


@dataclass
class MemoryService:
    role = "memory"
    backup_address: str = ""
    channel_options: ChannelOptions = field(default_factory=ChannelOptions)
    # Named checkpoints, shared by every processor's manager: a run restored from one is a
    # processor of its own (managers/checkpoints.py).
    checkpoints: CheckpointStore = field(default_factory=CheckpointStore)
    # The pages held for all processors, against --capacity (page_account.py; 0: no limit).
    pages: PageAccount = field(default_factory=PageAccount)
    _managers: dict[int, Session] = field(default_factory=dict)
    _storages: dict[str, Callable[[Request], Any]] = field(default_factory=dict)

    def hello(self, request: HelloRequest) -> Session:
        session = self._managers.get(request.processor)
        if session is None:
            manager = MemoryManager(self._storage(request.storage), self.checkpoints,
                                    self.pages)
            session = _Handlers(manager.handlers())
            if self.backup_address:  # every change is logged to the backup first
                try:
                    session = ReplicatedSession.connect(session, self.backup_address,
                                                        self.channel_options, request)
                except RpcError as error:  # this processor is refused, the server goes on
                    raise SyscallError(Errno.EHOSTUNREACH, str(error)) from None
                except zmq.ZMQError as error:
                    raise SyscallError(Errno.EINVAL, f"backup memory server "
                                       f"{self.backup_address}: {error}") from None
            self._managers[request.processor] = session
        return session

    def backup(self) -> str:
        return self.backup_address

    def _storage(self, address: str) -> Callable[[Request], Any]:
        """The call that reaches the storage a processor uses, made once per address."""
        call = self._storages.get(address)
        if call is None:
            if address:
                # The address comes from the client's hello: one that is malformed or
                # does not answer fails that hello, not the server.
                try:
                    call = RemoteChannel(address, "storage", self.channel_options).call
                except RpcError as error:
                    raise SyscallError(Errno.EHOSTUNREACH, str(error)) from None
                except zmq.ZMQError as error:
                    raise SyscallError(Errno.EINVAL,
                                       f"storage server {address}: {error}") from None
            else:
                call = _local_call(StorageManager(None))
            self._storages[address] = call
        return call


def _local_call(storage: StorageManager) -> Callable[[Request], Any]:
    handlers = storage.handlers()
    return lambda request: handlers[request.OPCODE](request)
