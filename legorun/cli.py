"""The command line: `legorun [options] PROGRAM [ARGS...]`, in the manner of qemu-user.

Exit status: the guest's own; 128+N when it dies of signal N (with the shell's message);
126 when the program cannot be executed, 127 when it does not exist, 2 for usage errors,
125 when a manager server cannot be reached or answers garbage, 1 for legorun's other
failures. legorun's messages start with "legorun: ".
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import ContextManager, NoReturn, Sequence, TextIO

from legorun.config import (
    DEFAULT_CLOCK_HZ,
    DEFAULT_CPI,
    DEFAULT_RPC_TIMEOUT_S,
    DEFAULT_RPC_TRIES,
    CacheGeometry,
    MachineConfig,
    TraceConfig,
)
from legorun.errors import LegorunError, UsageError
from legorun.managers.global_memory import PLACEMENT_POLICIES
from legorun.rpc.network import DEFAULT_BANDWIDTH_BPS, DEFAULT_LATENCY_S, NetworkModel
from legorun.units import parse_bandwidth, parse_duration, parse_frequency, parse_size

PROG = "legorun"
INTERNAL_ERROR = 70  # EX_SOFTWARE: legorun failed, not the guest
TRACEBACK_VARIABLE = "LEGORUN_TRACEBACK"
# `legorun report ...` and the like: a program of that name runs as ./report.
SUBCOMMANDS = {
    "report": "legorun.report:main",
    "sweep": "legorun.sweep:main",
    "memory-server": "legorun.serve:memory_main",
    "storage-server": "legorun.serve:storage_main",
    "keygen": "legorun.rpc.security:keygen_main",
}
DEBUG_ITEMS = ("in_asm", "exec")
MAX_CHECKPOINT_NAME = 255


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (try 'legorun --help')")


def _typed(parse):  # type: ignore[no-untyped-def]
    """Wrap a parser so that argparse reports its ValueError text."""
    def convert(text: str):  # type: ignore[no-untyped-def]
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = parse.__name__
    return convert


def parse_geometry(text: str) -> CacheGeometry:
    """cachegrind's --I1/--D1/--LL value: size,assoc,line_size (sizes may carry K/M)."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"expected size,assoc,line_size, got {text!r}")
    size, assoc, line = parse_size(parts[0]), int(parts[1]), parse_size(parts[2])
    if min(size, assoc, line) <= 0 or line & (line - 1) or size % (assoc * line):
        raise ValueError(f"{text!r}: size must be a multiple of assoc * line_size, "
                         "line_size a power of two")
    sets = size // (assoc * line)
    if sets & (sets - 1):
        raise ValueError(f"{text!r}: the number of sets ({sets}) must be a power of two")
    return CacheGeometry(size, assoc, line)


def parse_debug_items(text: str) -> frozenset[str]:
    items = frozenset(item for item in text.split(",") if item)
    unknown = items - set(DEBUG_ITEMS)
    if unknown or not items:
        raise ValueError(f"unknown -d item {', '.join(sorted(unknown)) or text!r} "
                         f"(known: {', '.join(DEBUG_ITEMS)})")
    return items


def parse_addresses(text: str) -> tuple[str, ...]:
    addresses = tuple(part for part in text.split(",") if part)
    if not addresses:
        raise ValueError("no address given")
    return addresses


def parse_interval(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"must be positive: {text!r}")
    return seconds


def parse_checkpoint_name(text: str) -> str:
    if not text or len(text) > MAX_CHECKPOINT_NAME or not text.isprintable():
        raise ValueError(f"{text!r}: a checkpoint name is 1 to {MAX_CHECKPOINT_NAME} "
                         "printable characters")
    return text


def check_checkpoint_options(options: argparse.Namespace) -> None:
    if options.restore is not None:
        if options.program is not None:
            raise UsageError("--restore takes no PROGRAM: the checkpoint holds the program "
                             "and its arguments")
        if options.set_env or options.unset_env or options.argv0 is not None:
            raise UsageError("-E, -U and -0 do not go with --restore: the checkpoint holds "
                             "the environment and arguments")
    elif options.checkpoint_name is not None and options.checkpoint_interval is None:
        raise UsageError("--checkpoint-name goes with --checkpoint-interval or --restore")
    for flag, value in (("--checkpoint-interval", options.checkpoint_interval),
                        ("--restore", options.restore)):
        if value is not None and not options.memory:
            raise UsageError(f"{flag} needs --memory: checkpoints are kept by a memory "
                             "server")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage="legorun [options] PROGRAM [ARGS...]\n"
              "       legorun --memory ADDR [options] --restore NAME",
        description="Run an x86-64 Linux ELF program on an emulated disaggregated machine "
        "(LegoOS): a processor with a software-managed DRAM cache (the ExCache) in front of "
        "a remote memory manager, and a stateless storage manager.",
    )
    machine = parser.add_argument_group("the machine")
    machine.add_argument("--excache", metavar="SIZE", type=_typed(parse_size), default=64 << 20,
                         help="ExCache size, e.g. 64K, 256M (default 64M)")
    machine.add_argument("--assoc", metavar="N", type=int, default=64,
                         help="ExCache ways per set (default 64, as in LegoOS)")
    machine.add_argument("--policy", choices=("fifo", "lru", "random"), default="fifo",
                         help="ExCache eviction policy (default fifo; lru is the clock "
                         "approximation over reference bits)")
    machine.add_argument("--seed", type=int, default=0,
                         help="seed for random choices, for reproducible runs (default 0)")
    machine.add_argument("--net-latency", metavar="TIME", type=_typed(parse_duration),
                         default=DEFAULT_LATENCY_S,
                         help=f"modelled per-RPC latency (default {DEFAULT_LATENCY_S * 1e6:.2f}us)")
    machine.add_argument("--net-bandwidth", metavar="RATE", type=_typed(parse_bandwidth),
                         default=DEFAULT_BANDWIDTH_BPS,
                         help="modelled network bandwidth, e.g. 40Gbit/s "
                         f"(default {DEFAULT_BANDWIDTH_BPS / 1e9:.2f}GB/s)")
    machine.add_argument("--root", metavar="DIR", type=Path,
                         help="confine the guest's file system to DIR")
    machine.add_argument("--clock", metavar="FREQ", type=_typed(parse_frequency),
                         default=DEFAULT_CLOCK_HZ,
                         help=f"modelled processor clock, e.g. 2.4GHz "
                         f"(default {DEFAULT_CLOCK_HZ / 1e9:g}GHz)")
    machine.add_argument("--cpi", metavar="N", type=float, default=DEFAULT_CPI,
                         help=f"modelled cycles per instruction (default {DEFAULT_CPI:g})")
    managers = parser.add_argument_group(
        "managers on other hosts (default: all embedded in this process)")
    managers.add_argument("--memory", metavar="ADDR[,ADDR...]", type=_typed(parse_addresses),
                          default=(), help="memory servers (legorun memory-server), e.g. "
                          "tcp://127.0.0.1:7700; the first is each process's home")
    managers.add_argument("--placement", choices=PLACEMENT_POLICIES, default="capacity",
                          help="how 1 GiB vRegions are placed on several memory servers: on "
                          "the one with the most free capacity, or round robin (default "
                          "capacity)")
    managers.add_argument("--storage", metavar="ADDR", default="",
                          help="a storage server (legorun storage-server)")
    managers.add_argument("--rpc-timeout", metavar="TIME", type=_typed(parse_duration),
                          default=DEFAULT_RPC_TIMEOUT_S,
                          help=f"how long to wait for a server's reply before asking again "
                          f"(default {DEFAULT_RPC_TIMEOUT_S:g}s; {DEFAULT_RPC_TRIES} tries)")
    managers.add_argument("--key-file", metavar="FILE", type=Path,
                          help="the key file the servers were given (legorun keygen): "
                          "needed by servers off loopback")
    checkpoints = parser.add_argument_group(
        "checkpoints (kept by the memory server: need --memory)",
        "A restored run re-executes the program from the checkpoint, so its output and the "
        "killed run's add up to one undisturbed run's when the program is one process with "
        "one thread, holds no pipe or socket, and reads nothing from its stdin after the "
        "checkpoint; the times and random bytes it reads may differ. A process that "
        "forks, runs threads or holds a pipe, socket or the like when a checkpoint is due "
        "ends the run with an error.")
    checkpoints.add_argument("--checkpoint-interval", metavar="TIME",
                             type=_typed(parse_interval),
                             help="keep the process (registers, open files, memory) at the "
                             "memory server every TIME of host time, e.g. 500ms")
    checkpoints.add_argument("--checkpoint-name", metavar="NAME",
                             type=_typed(parse_checkpoint_name),
                             help="the name to keep them under (default: the program's file "
                             "name; a restored run: the checkpoint's)")
    checkpoints.add_argument("--restore", metavar="NAME", type=_typed(parse_checkpoint_name),
                             help="go on with the process of checkpoint NAME after its "
                             "processor was killed, without writing again what it wrote; "
                             "no PROGRAM (the checkpoint has it); it goes on taking "
                             "checkpoints as before")
    guest = parser.add_argument_group("the guest (as in qemu-user)")
    guest.add_argument("-L", "--sysroot", metavar="DIR", default="/",
                       help="look up the dynamic linker (PT_INTERP) under DIR (default /)")
    guest.add_argument("-E", dest="set_env", metavar="VAR=VALUE", action="append", default=[],
                       help="set an environment variable for the guest")
    guest.add_argument("-U", dest="unset_env", metavar="VAR", action="append", default=[],
                       help="remove an environment variable from the guest")
    guest.add_argument("-0", dest="argv0", metavar="ARGV0",
                       help="use ARGV0 as the guest's argv[0]")
    output = parser.add_argument_group("output")
    output.add_argument("--stats", action="store_true",
                        help="print ExCache, RPC and syscall statistics to stderr at exit")
    output.add_argument("--stats-json", metavar="FILE", type=Path,
                        help="write the statistics as JSON to FILE")
    output.add_argument("--list-syscalls", action="store_true",
                        help="print every x86-64 syscall and whether legorun implements it")
    traces = parser.add_argument_group("traces")
    traces.add_argument("--strace", action="store_true",
                        help="log every syscall with its decoded arguments and result")
    traces.add_argument("-d", dest="debug_items", metavar="ITEMS", type=_typed(parse_debug_items),
                        default=frozenset(),
                        help="log translated code (in_asm) and executed blocks (exec), "
                        "comma-separated, as qemu -d")
    traces.add_argument("-dfilter", "--trace-filter", dest="filters", metavar="RANGES",
                        action="append", default=[],
                        help="limit -d and --trace-mem to START..END, START+LEN or a symbol "
                        "(comma-separated; repeatable)")
    traces.add_argument("-D", dest="log_file", metavar="FILE",
                        help="write --strace and -d output to FILE (%%p: the pid) "
                        "instead of stderr")
    traces.add_argument("--trace", dest="trace_json", metavar="FILE.json", type=Path,
                        help="write a Chrome Trace Event file (Perfetto, chrome://tracing)")
    traces.add_argument("--trace-mem", metavar="FILE", type=Path,
                        help="write every instruction fetch and data access in lackey's "
                        "format")
    cachesim = parser.add_argument_group("cache simulation (as valgrind --tool=cachegrind)")
    cachesim.add_argument("--cache-sim", action="store_true",
                          help="simulate the virtually tagged L1I, L1D and last-level caches "
                          "and write a cachegrind.out file")
    for flag, dest, what in (("--I1", "i1", "L1 instruction"), ("--D1", "d1", "L1 data"),
                             ("--LL", "ll", "last-level")):
        cachesim.add_argument(flag, dest=dest, metavar="SIZE,ASSOC,LINE",
                              type=_typed(parse_geometry),
                              help=f"{what} cache geometry (default: the host's)")
    cachesim.add_argument("--cachegrind-out-file", metavar="FILE", default="cachegrind.out.%p",
                          help="where --cache-sim writes (default cachegrind.out.%%p)")
    parser.add_argument("program", nargs="?", metavar="PROGRAM", help="the program to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="arguments for the program")
    return parser


def guest_environment(options: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    for assignment in options.set_env:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise UsageError(f"-E expects VAR=VALUE, got {assignment!r}")
        env[name] = value
    for name in options.unset_env:
        env.pop(name, None)
    return env


def trace_config(options: argparse.Namespace) -> TraceConfig:
    return TraceConfig(
        strace=options.strace, log_file=options.log_file, debug_items=options.debug_items,
        filters=tuple(options.filters), trace_json=options.trace_json,
        trace_mem=options.trace_mem, cache_sim=options.cache_sim, i1=options.i1,
        d1=options.d1, ll=options.ll, cachegrind_out=options.cachegrind_out_file,
    )


def _open_output(path: Path | None, option: str) -> ContextManager[TextIO | None]:
    """Open an output file before the run, so that a long run never ends with nowhere to
    write; nothing when the option was not given."""
    if path is None:
        return nullcontext()
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{option} {path}: {error.strerror}") from None


def inherited_descriptors() -> tuple[int, ...]:
    """The descriptors this process was started with (before it opens any of its own)."""
    try:
        listing = os.listdir("/proc/self/fd")  # its own descriptor is closed when it returns
    except OSError:
        return (0, 1, 2)
    numbers = sorted(int(name) for name in listing if name.isdigit())
    return tuple(fd for fd in numbers if _is_open(fd))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def run(argv: Sequence[str]) -> int:
    inherited = inherited_descriptors()
    if argv and argv[0] in SUBCOMMANDS:
        from importlib import import_module

        module, function = SUBCOMMANDS[argv[0]].split(":")
        return getattr(import_module(module), function)(list(argv[1:]))
    options = build_parser().parse_args(argv)
    if options.list_syscalls:
        from syscalls.table import SyscallTable

        sys.stdout.write(SyscallTable.build().format())
        return 0
    check_checkpoint_options(options)
    if options.program is None and options.restore is None:
        raise UsageError("no program given (usage: legorun [options] PROGRAM [ARGS...])")
    if options.root is not None and not options.root.is_dir():
        raise UsageError(f"--root {options.root}: not a directory")

    from legorun.machine import Machine
    from legorun.processor.processor import signal_message

    config = MachineConfig(
        excache_size=options.excache,
        excache_assoc=options.assoc,
        excache_policy=options.policy,
        seed=options.seed,
        network=NetworkModel(options.net_latency, options.net_bandwidth),
        root=options.root,
        sysroot=options.sysroot,
        clock_hz=options.clock,
        cpi=options.cpi,
        count_instructions=bool(options.stats or options.stats_json or options.trace_json),
        inherited_fds=inherited,
        memory_servers=options.memory,
        placement=options.placement,
        storage_server=options.storage,
        rpc_timeout_s=options.rpc_timeout,
        key_file=options.key_file,
        checkpoint_interval_s=options.checkpoint_interval or 0.0,
        checkpoint_name=options.checkpoint_name or (
            os.path.basename(options.program)
            if options.program and options.checkpoint_interval else ""),
    )
    if options.cpi <= 0:
        raise UsageError("--cpi must be positive")
    machine = Machine(config, trace_config(options))
    with _open_output(options.stats_json, "--stats-json") as stats_file:
        try:
            if options.restore is not None:
                result = machine.restore(options.restore)
            else:
                result = machine.run(options.program, options.args,
                                     guest_environment(options), options.argv0)
        finally:
            machine.close()
        if result.forked:
            # A process the guest forked ends as its guest did, for its parent's wait; the
            # shell's message, --stats and --stats-json are the top-level process's.
            from legorun.processor.fork import exit_as

            exit_as(result.exit)
        if stats_file is not None:
            stats_file.write(result.stats.to_json() + "\n")
    if result.exit.signal:
        message = signal_message(result.exit.signal)
        if message:
            sys.stderr.write(message + "\n")
    if options.stats:
        sys.stderr.write(result.stats.summary())
    return result.exit.shell_status


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = run(sys.argv[1:] if argv is None else argv)
    except LegorunError as error:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: {error}\n")
        return error.exit_status
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug in legorun itself: one line, not a traceback
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        sys.stdout.flush()
        frame = traceback.extract_tb(error.__traceback__)[-1]
        sys.stderr.write(f"{PROG}: internal error at {Path(frame.filename).name}:"
                         f"{frame.lineno}: {type(error).__name__}: {error} (please report it; "
                         f"{TRACEBACK_VARIABLE}=1 shows the traceback)\n")
        return INTERNAL_ERROR
    sys.stdout.flush()
    return status
