"""A failure inside legorun (a bug) ends it with one line and status 70, not a traceback;
LEGORUN_TRACEBACK=1 (which the test suite sets) shows the traceback instead."""

from __future__ import annotations

import pytest

from legorun import cli


def _broken_run(argv: object) -> int:
    raise RuntimeError("the page table is upside down")


def test_one_line_and_status_70(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "run", _broken_run)
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    assert cli.main(["program"]) == cli.INTERNAL_ERROR == 70
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("legorun: internal error at test_internal_error.py:")
    assert "RuntimeError: the page table is upside down" in line
    assert "LEGORUN_TRACEBACK=1" in line


def test_the_traceback_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "run", _broken_run)
    monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
    with pytest.raises(RuntimeError, match="upside down"):
        cli.main(["program"])
