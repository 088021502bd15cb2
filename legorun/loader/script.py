"""`#!` scripts, as Linux's binfmt_script reads them: the first line names an interpreter
and at most one argument, and the script runs as `interpreter [argument] script args...`."""

from __future__ import annotations

from dataclasses import dataclass

from legorun.errors import LoaderError

BINPRM_BUF_SIZE = 256  # how much of the file the kernel looks at
MAX_NESTING = 4  # BINPRM_MAX_RECURSION: a script's interpreter may itself be a script


@dataclass(frozen=True, slots=True)
class Shebang:
    interpreter: bytes
    argument: bytes | None

    def argv(self, script: bytes, argv: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """The interpreter's argv: argv[0] is replaced by the script's path."""
        head = (self.interpreter,) if self.argument is None else (self.interpreter, self.argument)
        return (*head, script, *argv[1:])


def parse_shebang(data: bytes, path: str) -> Shebang | None:
    """The interpreter line of a script, or None when data does not start with `#!`."""
    if not data.startswith(b"#!"):
        return None
    head = data[2:BINPRM_BUF_SIZE]
    line, newline, _ = head.partition(b"\n")
    if not newline and len(data) > BINPRM_BUF_SIZE:
        # The kernel refuses a first line that does not fit, unless the interpreter's name
        # itself ends within it.
        stripped = line.lstrip(b" \t")
        if not any(c in stripped for c in b" \t"):
            raise LoaderError(f"{path}: interpreter line is too long")
    line = line.strip(b" \t")
    if not line:
        raise LoaderError(f"{path}: no interpreter on the #! line")
    interpreter, _, rest = line.replace(b"\t", b" ").partition(b" ")
    rest = rest.strip(b" \t")
    return Shebang(interpreter, rest or None)
