"""The managers as network services: the same program prints the same against real memory
and storage servers on loopback as under the embedded default."""

from __future__ import annotations

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
