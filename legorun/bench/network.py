"""The benchmark's network transport: the median cost of one ExCache miss sent to a memory
server on loopback, next to the floor this host sets for any Python request/reply over
loopback (a ZeroMQ echo and a plain TCP echo of the same size).

The miss is measured at the processor's side of the transport, as the pager issues it: a
PageMissRequest for a page of a real address space (the memory server exec'ed the hello
sample for it), once alone and once with a dirty 4 KiB line piggybacked as a write-back,
which is what a miss with eviction sends.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legorun.bench.runners import memory_server, subprocess_env
from legorun.managers.vma import PAGE_SIZE

CALLS = 2000
GOAL_US = 80.0

# An echo server for the floors: `python -c ECHO zmq|tcp`; prints its port, echoes forever.
ECHO = r"""
import socket, sys
if sys.argv[1] == "zmq":
    import zmq
    router = zmq.Context().socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        router.send_multipart(router.recv_multipart())
else:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    connection, _ = listener.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := connection.recv(1 << 16):
        connection.sendall(data)
"""


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    line: str

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _start(argv: list[str]) -> _Child:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=subprocess_env())
    assert process.stdout is not None
    return _Child(process, process.stdout.readline().decode().strip())


def _median_us(call, count: int = CALLS) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def _zmq_floor(payload: bytes) -> float:
    import zmq

    echo = _start([sys.executable, "-c", ECHO, "zmq"])
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{echo.line}")
    try:
        def call() -> None:
            dealer.send_multipart([b"h", payload])
            dealer.recv_multipart()
        call()
        return _median_us(call)
    finally:
        dealer.close(0)
        context.term()
        echo.stop()


def _tcp_floor(payload: bytes) -> float:
    import socket

    echo = _start([sys.executable, "-c", ECHO, "tcp"])
    connection = socket.create_connection(("127.0.0.1", int(echo.line)))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        def call() -> None:
            connection.sendall(payload)
            got = 0
            while got < len(payload):
                got += len(connection.recv(1 << 16))
        call()
        return _median_us(call)
    finally:
        connection.close()
        echo.stop()


def remote_miss_cost(hello: Path) -> dict[str, Any]:
    """Median µs of a miss (and a miss with a write-back) through a memory server on
    loopback, and the host's loopback floors for a 4 KiB reply."""
    from legorun.rpc.messages import ExecReply, ExecRequest, PageMissRequest
    from legorun.rpc.remote import RemoteChannel

    with memory_server() as address:
        channel = RemoteChannel(address, "memory", processor=os.getpid())
        pid = 1
        image: ExecReply = channel.call(ExecRequest(pid, str(hello.resolve()), (b"hello",),
                                                    (), b"hello"))
        if image.status:
            raise RuntimeError(f"the memory server could not exec {hello}: {image.status}")
        page = image.sp & ~(PAGE_SIZE - 1)
        line = bytes(PAGE_SIZE)
        miss = _median_us(lambda: channel.call(PageMissRequest(pid, page)))
        with_writeback = _median_us(lambda: channel.call(
            PageMissRequest(pid, page, ((page - PAGE_SIZE, line),))))
        channel.close()
    payload = bytes(PAGE_SIZE + 64)
    return {"miss_us": miss, "miss_with_writeback_us": with_writeback,
            "zmq_echo_4k_us": _zmq_floor(payload), "tcp_echo_4k_us": _tcp_floor(payload),
            "calls": CALLS}


def network_report(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    return [
        f"ExCache miss through the network transport (memory server on loopback, median of "
        f"{result['calls']} calls)",
        f"  miss                      {result['miss_us']:8.1f} us",
        f"  miss with write-back      {result['miss_with_writeback_us']:8.1f} us",
        f"  floor: ZeroMQ echo, 4 KiB {result['zmq_echo_4k_us']:8.1f} us  "
        "(Python, this host: the least any ZeroMQ request/reply costs here)",
        f"  floor: TCP echo, 4 KiB    {result['tcp_echo_4k_us']:8.1f} us",
        "",
    ]
