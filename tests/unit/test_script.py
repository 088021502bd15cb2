"""#! lines as binfmt_script reads them."""

from __future__ import annotations

import pytest

from legorun.errors import LoaderError
from legorun.loader.script import Shebang, parse_shebang


@pytest.mark.parametrize("data, expected", [
    (b"#!/bin/sh\n", Shebang(b"/bin/sh", None)),
    (b"#! /usr/bin/env python3 -S\nbody", Shebang(b"/usr/bin/env", b"python3 -S")),
    (b"#!/bin/awk -f   \n", Shebang(b"/bin/awk", b"-f")),
    (b"#!\t/bin/sh\t-e\n", Shebang(b"/bin/sh", b"-e")),
    (b"#!/bin/sh", Shebang(b"/bin/sh", None)),  # no newline at all
    (b"\x7fELF", None),
    (b"#/bin/sh\n", None),
])
def test_parse(data, expected):
    assert parse_shebang(data, "script") == expected


def test_argv_replaces_argv0_with_the_script():
    assert Shebang(b"/bin/sh", b"-e").argv(b"./s", (b"s", b"1")) == (b"/bin/sh", b"-e", b"./s", b"1")
    assert Shebang(b"/bin/sh", None).argv(b"./s", (b"s",)) == (b"/bin/sh", b"./s")


@pytest.mark.parametrize("data", [b"#!\n", b"#!   \n", b"#!/" + b"x" * 300])
def test_rejects(data):
    with pytest.raises(LoaderError):
        parse_shebang(data, "script")
