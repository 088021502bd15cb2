"""The managers as network services (see rpc/server.py): what each keeps per connection.

A storage server is stateless: every connection is served by the one StorageManager of its
export. A memory server keeps one MemoryManager per processor (the HelloRequest names it),
so that several legorun runs can share the server while their address spaces, whose pids
may coincide, stay apart; a processor's forked children connect on their own and reach the
same manager. The memory manager reads program files from the storage server the processor
named, or from the memory server's own host when it named none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from legorun.managers.memory import MemoryManager
from legorun.managers.storage import StorageManager
from legorun.rpc.messages import HelloRequest, Opcode, Request
from legorun.rpc.remote import ChannelOptions, RemoteChannel


@dataclass
class _Handlers:
    table: dict[Opcode, Callable[[Any], Any]]

    def handlers(self) -> dict[Opcode, Callable[[Any], Any]]:
        return self.table


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
    _managers: dict[int, _Handlers] = field(default_factory=dict)
    _storages: dict[str, Callable[[Request], Any]] = field(default_factory=dict)

    def hello(self, request: HelloRequest) -> _Handlers:
        session = self._managers.get(request.processor)
        if session is None:
            manager = MemoryManager(self._storage(request.storage))
            session = self._managers[request.processor] = _Handlers(manager.handlers())
        return session

    def backup(self) -> str:
        return self.backup_address

    def _storage(self, address: str) -> Callable[[Request], Any]:
        """The call that reaches the storage a processor uses, made once per address."""
        call = self._storages.get(address)
        if call is None:
            if address:
                call = RemoteChannel(address, "storage", self.channel_options).call
            else:
                call = _local_call(StorageManager(None))
            self._storages[address] = call
        return call


def _local_call(storage: StorageManager) -> Callable[[Request], Any]:
    handlers = storage.handlers()
    return lambda request: handlers[request.OPCODE](request)
