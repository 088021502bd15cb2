"""The checkpoint options: each misuse is one `legorun: ...` line and exit status 2, before
anything runs."""

from __future__ import annotations

import pytest

from legorun.cli import main

MEMORY = ["--memory", "tcp://127.0.0.1:9"]  # never reached: the options are refused first


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint-interval", "1s", "prog"], "--checkpoint-interval needs --memory"),
    (["--restore", "run"], "--restore needs --memory"),
    ([*MEMORY, "--checkpoint-interval", "0s", "prog"], "must be positive"),
    ([*MEMORY, "--checkpoint-interval", "soon", "prog"], "not a duration"),
    ([*MEMORY, "--restore", "run", "prog"], "--restore takes no PROGRAM"),
    ([*MEMORY, "--restore", "run", "-E", "A=1"], "-E, -U and -0 do not go with --restore"),
    ([*MEMORY, "--checkpoint-name", "run", "prog"], "--checkpoint-name goes with"),
    ([*MEMORY, "--checkpoint-interval", "1s", "--checkpoint-name", "", "prog"],
     "a checkpoint name is 1 to 255 printable characters"),
    ([*MEMORY, "--restore", "line\nbreak"], "a checkpoint name is 1 to 255 printable"),
])
def test_misuse_is_a_usage_error(argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("legorun: ") and message in line, line
