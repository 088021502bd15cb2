"""The managers as network services: the same program prints the same against real memory
and storage servers on loopback as under the embedded default."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest


def _remote(memory, storage=None) -> list[str]:  # type: ignore[no-untyped-def]
    options = ["--memory", memory.address]
    if storage is not None:
        options += ["--storage", storage.address]
    return options


def test_working_set_larger_than_the_excache(e2e, samples_built, servers) -> None:
    """workingset walks 4 MiB through a 256K ExCache: every miss and write-back crosses
    the network, and the program's files come from the storage server."""
    memory, storage = servers.memory(), servers.storage("/")
    program = samples_built / "workingset"
    embedded = e2e.run_legorun(program, cwd=e2e.fresh_dir(), options=["--excache", "256K"])
    remote = e2e.run_legorun(program, cwd=e2e.fresh_dir(),
                             options=["--excache", "256K", *_remote(memory, storage)])
    assert embedded.returncode == 0, embedded.describe()
    e2e.assert_same(embedded, remote, "workingset against remote managers")


def test_files_come_from_the_storage_servers_export(e2e, samples_built, servers,
                                                     tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "hello").write_bytes((samples_built / "hello").read_bytes())
    (export / "hello").chmod(0o755)
    storage = servers.storage(export)
    run = e2e.run_legorun("/hello", cwd=e2e.fresh_dir(),
                          options=["--storage", storage.address])
    native = e2e.run_native(samples_built / "hello", cwd=e2e.fresh_dir())
    e2e.assert_same(native, run, "hello from an export")


def test_fork_and_exec_against_a_memory_server(e2e, samples_built, servers) -> None:
    memory = servers.memory()
    native = e2e.run_native(samples_built / "processes", cwd=e2e.fresh_dir())
    remote = e2e.run_legorun(samples_built / "processes", cwd=e2e.fresh_dir(),
                             options=_remote(memory))
    e2e.assert_same(native, remote, "processes against a memory server")


def test_an_unreachable_server_is_one_clear_error(e2e, samples_built) -> None:
    run = e2e.run_legorun(samples_built / "hello", cwd=e2e.fresh_dir(),
                          options=["--memory", "tcp://127.0.0.1:9", "--rpc-timeout", "200ms"])
    assert run.returncode == 125, run.describe()
    (line,) = run.stderr.decode().splitlines()
    assert line.startswith("legorun: memory server tcp://127.0.0.1:9 did not answer"), line


@pytest.mark.parametrize("argv", [["memory-server", "--listen", "nonsense"],
                                  ["storage-server", "--export", "/nonexistent"],
                                  ["storage-server"]])
def test_bad_server_arguments(e2e, argv) -> None:
    run = e2e.run_legorun(None, raw_argv=argv, cwd=e2e.fresh_dir())
    assert run.returncode == 2, run.describe()
    assert run.stderr.decode().startswith("legorun: "), run.describe()


FILE_LOOP = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    char line[64], back[64];
    struct timespec pause = {0, 5 * 1000 * 1000};
    int fd = open("journal", O_CREAT | O_RDWR | O_TRUNC, 0644);
    setvbuf(stdout, NULL, _IOLBF, 0);  /* the test watches the run's progress */
    for (int i = 0; i < 400; i++) {
        int n = snprintf(line, sizeof line, "entry %d\n", i);
        pwrite(fd, line, n, (off_t)i * 16);
        memset(back, 0, sizeof back);
        pread(fd, back, n, (off_t)i * 16);
        if (strcmp(line, back) != 0) { printf("lost entry %d\n", i); return 1; }
        if (i % 50 == 0) printf("%s", back);
        nanosleep(&pause, NULL);
    }
    printf("size %ld\n", (long)lseek(fd, 0, SEEK_END));
    return 0;
}
"""


def test_storage_server_restarted_mid_run(e2e, servers, tmp_path: Path) -> None:
    """The storage server keeps no state: killed and started again while the program
    reads and writes, it serves the rest of the run as if nothing happened."""
    program = e2e.compile_c(tmp_path, "file_loop", FILE_LOOP)
    native = e2e.run_native(program, cwd=e2e.fresh_dir())
    storage = servers.storage("/")
    cwd = e2e.fresh_dir()
    argv = e2e.legorun_argv(program, options=["--storage", storage.address,
                                              "--rpc-timeout", "300ms"])
    # Unbuffered: communicate() reads the pipe itself, past anything a reader buffered.
    run = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           bufsize=0,
                           env=dict(e2e.BASE_ENV))
    assert run.stdout is not None
    run.stdout.readline()  # the run is under way: 400 steps of at least 5 ms each
    assert run.poll() is None
    storage.restart()
    time.sleep(0.2)
    storage.restart()
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == native.status, stderr.decode()
    assert b"entry 0\n" + stdout == native.stdout
    assert stderr == native.stderr


FAKE_SERVER = r"""
import sys
import zmq
router = zmq.Context().socket(zmq.ROUTER)
print(router.bind_to_random_port("tcp://127.0.0.1"), flush=True)
while True:
    identity, head, _body = router.recv_multipart()
    router.send_multipart([identity, head if sys.argv[1] == "body" else b"0" * 14,
                           b"\xc1 not msgpack"])
"""


@pytest.mark.parametrize("broken", ["body", "header"])
def test_a_server_that_answers_garbage_is_one_clear_error(e2e, samples_built, broken) -> None:
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, broken], stdout=subprocess.PIPE)
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline())
        run = e2e.run_legorun(samples_built / "hello", cwd=e2e.fresh_dir(),
                              options=["--memory", f"tcp://127.0.0.1:{port}"])
    finally:
        fake.kill()
        fake.wait()
    assert run.returncode == 125, run.describe()
    (line,) = run.stderr.decode().splitlines()
    assert line.startswith(f"legorun: memory server tcp://127.0.0.1:{port} sent garbage: "), line
    assert run.stdout == b""
