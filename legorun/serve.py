"""`legorun memory-server ...` and `legorun storage-server ...`: the managers as services.

    legorun storage-server --export DIR [--listen tcp://127.0.0.1:7701] [--key-file FILE]
    legorun memory-server [--listen tcp://127.0.0.1:7700] [--backup ADDR] [--key-file FILE]
                          [--capacity SIZE]

A server prints the address it listens on (the port chosen when given as `*`) on stdout,
serves until SIGINT or SIGTERM, then exits 0. It binds to loopback unless told otherwise,
and binds any other address only with a key file (rpc/security.py): then it admits only
clients holding the same file, and a memory server uses it to reach storage servers too.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Sequence

import zmq

from legorun.cli import _Parser, _typed
from legorun.errors import UsageError
from legorun.managers.page_account import PageAccount
from legorun.managers.services import MemoryService, StorageService
from legorun.rpc.remote import ChannelOptions
from legorun.rpc.security import client_configure, is_local_endpoint, server_configure
from legorun.rpc.server import RpcServer, Service
from legorun.units import parse_size

DEFAULT_MEMORY_ADDRESS = "tcp://127.0.0.1:7700"
DEFAULT_STORAGE_ADDRESS = "tcp://127.0.0.1:7701"


def build_parser(role: str) -> argparse.ArgumentParser:
    default = DEFAULT_MEMORY_ADDRESS if role == "memory" else DEFAULT_STORAGE_ADDRESS
    parser = _Parser(prog=f"legorun {role}-server",
                     description=f"Serve a legorun {role} manager over the network.")
    parser.add_argument("--listen", metavar="ADDR", default=default,
                        help=f"the ZeroMQ endpoint to bind (default {default}; "
                             "tcp://HOST:* picks a free port)")
    if role == "storage":
        parser.add_argument("--export", metavar="DIR", type=Path, required=True,
                            help="the directory served as the guest's /")
    else:
        parser.add_argument("--backup", metavar="ADDR", default="",
                            help="another memory server, which this one logs every change "
                                 "to before answering, and which processors fail over to")
        parser.add_argument("--capacity", metavar="SIZE", type=_typed(parse_size), default=0,
                            help="the most page memory the server holds for all its "
                                 "processors, e.g. 512M (default 0: no limit)")
    parser.add_argument("--key-file", metavar="FILE", type=Path,
                        help="admit only clients holding this key file (legorun keygen); "
                             "required to listen off loopback")
    return parser


def _service(role: str, options: argparse.Namespace) -> Service:
    if role == "storage":
        if not options.export.is_dir():
            raise UsageError(f"--export {options.export}: not a directory")
        return StorageService(options.export.resolve())
    # The memory server is a client of its backup and of the storage servers its
    # processors name: it uses the key there too.
    keys = client_configure(options.key_file) if options.key_file else None
    return MemoryService(backup_address=options.backup,
                         channel_options=ChannelOptions(configure=keys),
                         pages=PageAccount(options.capacity))


def serve(role: str, argv: Sequence[str]) -> int:
    options = build_parser(role).parse_args(argv)
    if "://" not in options.listen:
        raise UsageError(f"--listen {options.listen}: not a ZeroMQ endpoint "
                         "(e.g. tcp://127.0.0.1:PORT)")
    if options.key_file is None and not is_local_endpoint(options.listen):
        raise UsageError(f"--listen {options.listen}: off loopback a server needs --key-file "
                         "(make one with 'legorun keygen FILE')")
    if role == "memory" and options.backup and "://" not in options.backup:
        raise UsageError(f"--backup {options.backup}: not a ZeroMQ endpoint "
                         "(e.g. tcp://127.0.0.1:PORT)")
    configure = server_configure(options.key_file) if options.key_file else None
    service = _service(role, options)
    try:
        server = RpcServer(service, options.listen, configure=configure)
    except zmq.ZMQError as error:
        raise UsageError(f"--listen {options.listen}: {error}") from None
    if role == "memory" and options.backup == server.address:
        server.close()  # it would log every change to itself, waiting on its own reply
        raise UsageError(f"--backup {options.backup}: that is this server's own address")

    def stop(signum: int, frame: object) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(f"legorun {role}-server listening on {server.address}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.close()
    return 0


def memory_main(argv: Sequence[str]) -> int:
    return serve("memory", argv)


def storage_main(argv: Sequence[str]) -> int:
    return serve("storage", argv)
