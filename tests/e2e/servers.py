"""Real manager servers for the tests: `python -m legorun memory-server|storage-server` as
child processes on loopback, each on a port of its own choosing (`tcp://127.0.0.1:*`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Server:
    role: str
    args: tuple[str, ...]
    process: subprocess.Popen[bytes]
    address: str
    stderr_path: Path
    restarts: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9: the server vanishes without a word."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        """SIGTERM, as an operator would; the exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def restart(self) -> None:
        """Kill it and start it again on the same address."""
        self.kill()
        self.process = _spawn(self.role, [*self.args, "--listen", self.address],
                              self.stderr_path)
        _read_address(self.process, self.stderr_path)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _spawn(role: str, args: Sequence[str], stderr_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "legorun", f"{role}-server", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=open(stderr_path, "ab"), env=server_env())


def _read_address(process: subprocess.Popen[bytes], stderr_path: Path) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}\n{stderr_path.read_text()}")
    return line.rsplit(" ", 1)[1].strip()


def start_server(role: str, args: Sequence[str], log_dir: Path,
                 listen: str = "tcp://127.0.0.1:*") -> Server:
    stderr_path = log_dir / f"{role}-server-{os.urandom(4).hex()}.err"
    process = _spawn(role, [*args, "--listen", listen], stderr_path)
    address = _read_address(process, stderr_path)
    return Server(role, tuple(args), process, address, stderr_path)


class Servers:
    """Starts servers for one test and stops every one of them afterwards."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[Server] = []

    def memory(self, *args: str) -> Server:
        return self._start("memory", args)

    def storage(self, export: Path | str = "/", *args: str) -> Server:
        return self._start("storage", ("--export", str(export), *args))

    def _start(self, role: str, args: Sequence[str]) -> Server:
        server = start_server(role, args, self._log_dir)
        self._started.append(server)
        return server

    def close(self) -> Iterator[str]:
        """Stop all; yields a complaint for each server that died of a failure of its own."""
        for server in self._started:
            if server.alive():
                server.stop()
            text = server.stderr()
            if "Traceback" in text:
                yield f"{server.role} server wrote a traceback:\n{text}"
