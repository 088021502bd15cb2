"""How the emulated machine is built and observed: every parameter with its default and meaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from legorun.rpc.network import NetworkModel

DEFAULT_CLOCK_HZ = 2.4e9  # the LegoOS testbed's Xeon E5-2620 v3
DEFAULT_CPI = 1.0
# How long a client of a manager server waits for each reply, and how often it asks.
DEFAULT_RPC_TIMEOUT_S = 2.0
DEFAULT_RPC_TRIES = 4


@dataclass(frozen=True, slots=True)
class MachineConfig:
    excache_size: int = 64 << 20  # bytes of processor-local DRAM used as the ExCache
    excache_assoc: int = 64  # ways per set (LegoOS: 64)
    excache_policy: str = "fifo"  # eviction: fifo | lru (clock approximation) | random
    seed: int = 0  # seeds every random choice (random eviction), for reproducible runs
    network: NetworkModel = field(default_factory=NetworkModel)
    root: Path | None = None  # confine the guest's file system to this host directory
    sysroot: str = "/"  # guest path under which a program's interpreter is found (-L)
    clock_hz: float = DEFAULT_CLOCK_HZ  # modelled processor clock
    cpi: float = DEFAULT_CPI  # modelled cycles per instruction
    count_instructions: bool = False  # keep the modelled clock (costs a compiled block hook)
    # The descriptors legorun was started with: the guest inherits them, as a program
    # started by the same parent would.
    inherited_fds: tuple[int, ...] = (0, 1, 2)
    memory_servers: tuple[str, ...] = ()  # remote memory managers; () = embedded
    placement: str = "capacity"  # of vRegions over memory_servers: capacity | striped
    storage_server: str = ""  # a remote storage manager; "" = embedded
    rpc_timeout_s: float = DEFAULT_RPC_TIMEOUT_S  # per try, for the remote managers
    # Keep the process at the memory server this often (host time; 0: never), under this
    # name, for `legorun --restore` (processor/checkpoint.py).
    checkpoint_interval_s: float = 0.0
    checkpoint_name: str = ""
    key_file: Path | None = None  # authenticates to the remote managers (rpc/security.py)


@dataclass(frozen=True, slots=True)
class CacheGeometry:
    """One cache as cachegrind gives it: --I1=size,assoc,line_size."""

    size: int
    assoc: int
    line_size: int


@dataclass(frozen=True, slots=True)
class TraceConfig:
    """What to record about a run; every output is off unless asked for."""

    strace: bool = False  # one line per syscall, as qemu-user -strace
    log_file: str | None = None  # -D: where --strace and -d write (%p = pid); stderr if None
    debug_items: frozenset[str] = frozenset()  # -d: in_asm, exec
    filters: tuple[str, ...] = ()  # -dfilter: address ranges or symbols limiting -d/--trace-mem
    trace_json: Path | None = None  # Chrome Trace Event JSON
    trace_mem: Path | None = None  # lackey-format memory trace
    cache_sim: bool = False  # simulate the virtually tagged L1I/L1D/LL caches
    i1: CacheGeometry | None = None  # None: the host's, as cachegrind picks them
    d1: CacheGeometry | None = None
    ll: CacheGeometry | None = None
    cachegrind_out: str = "cachegrind.out.%p"  # %p = pid
