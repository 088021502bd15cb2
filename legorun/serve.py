"""`legorun memory-server ...` and `legorun storage-server ...`: the managers as services.

    legorun storage-server --export DIR [--listen tcp://127.0.0.1:7701]
    legorun memory-server [--listen tcp://127.0.0.1:7700] [--backup ADDR]

A server prints the address it listens on (the port chosen when given as `*`) on stdout,
serves until SIGINT or SIGTERM, then exits 0. It binds to loopback unless told otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Sequence

import zmq

from legorun.cli import _Parser
from legorun.errors import UsageError
from legorun.managers.services import MemoryService, StorageService
from legorun.rpc.server import RpcServer, Service

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
                            help="another memory server that processors fail over to")
    return parser


def _service(role: str, options: argparse.Namespace) -> Service:
    if role == "storage":
        if not options.export.is_dir():
            raise UsageError(f"--export {options.export}: not a directory")
        return StorageService(options.export.resolve())
    return MemoryService(backup_address=options.backup)


def serve(role: str, argv: Sequence[str]) -> int:
    options = build_parser(role).parse_args(argv)
    service = _service(role, options)
    try:
        server = RpcServer(service, options.listen)
    except zmq.ZMQError as error:
        raise UsageError(f"--listen {options.listen}: {error}") from None

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
