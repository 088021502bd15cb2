"""The end-of-run statistics: ExCache, RPC by opcode, syscalls by name, modelled cost, and
the load of each remote memory server.

The `modelled` section is the modelled clock at the end of the run (legorun/processor/clock.py);
`legorun sweep` reads it, so its keys are a contract: instructions, clock_hz, cpi, compute_s,
remote_s, total_s (instructions, compute_s and total_s are null when instructions were not
counted)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from legorun.rpc.stats import RpcStats, ServerLoad
from legorun.units import format_size

if TYPE_CHECKING:
    from legorun.processor.processor import Processor


@dataclass(frozen=True, slots=True)
class RunStats:
    excache: dict[str, Any]
    rpc: dict[str, dict[str, int | float]]
    syscalls: dict[str, int]
    modelled_remote_s: float
    modelled: dict[str, int | float | None]
    # Remote memory servers by address, the home first (empty when memory is embedded).
    memory_servers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def collect(cls, processor: Processor, rpc: RpcStats) -> RunStats:
        cache = processor.excache
        stats = cache.stats
        excache: dict[str, Any] = {
            "size": cache.size,
            "assoc": cache.assoc,
            "sets": cache.sets,
            "policy": cache.policy_name,
            "misses": stats.misses,
            "zero_fills": stats.zero_fills,
            "evictions": stats.evictions,
            "writebacks": stats.writebacks,
            "invalidations": stats.invalidations,
            "resident_lines": cache.resident_lines,
            **cache.native_counters,
        }
        by_opcode = {
            opcode.name: {"count": entry.count, "bytes": entry.bytes,
                          "modelled_s": entry.modelled_s}
            for opcode, entry in sorted(rpc.by_opcode.items())
        }
        syscalls = dict(processor.dispatcher.counts.most_common()) if processor.dispatcher else {}
        clock = processor.clock
        modelled = {
            "instructions": clock.instructions,
            "clock_hz": clock.clock_hz,
            "cpi": clock.cpi,
            "compute_s": clock.compute_s,
            "remote_s": clock.remote_s,
            "total_s": clock.total_s,
        }
        servers = {address: _server_load(load) for address, load in rpc.servers.items()}
        return cls(excache, by_opcode, syscalls, rpc.modelled_s, modelled, servers)

    def to_json(self) -> str:
        return json.dumps({
            "excache": self.excache,
            "rpc": self.rpc,
            "syscalls": self.syscalls,
            "modelled_remote_s": self.modelled_remote_s,
            "modelled": self.modelled,
            "memory_servers": self.memory_servers,
        }, indent=2)

    def summary(self) -> str:
        c = self.excache
        lines = [
            "legorun: statistics",
            f"  ExCache    {format_size(c['size'])}, {c['assoc']}-way, {c['sets']} sets, "
            f"{c['policy']}",
            f"    misses {c['misses']} (zero-filled locally {c['zero_fills']}), "
            f"evictions {c['evictions']}, write-backs {c['writebacks']}, "
            f"resident lines {c['resident_lines']}",
            f"    TLB fills {c['tlb_fills']} (served in the hook {c['tlb_fill_hits']}), "
            f"first writes to clean lines {c['dirty_marks']}",
            f"  RPC        modelled remote time {self.modelled_remote_s * 1e3:.3f} ms",
        ]
        for name, entry in self.rpc.items():
            lines.append(f"    {name:<18} {entry['count']:>9} calls {entry['bytes']:>12} bytes")
        lines.append(self._modelled_line())
        lines += self._server_lines()
        total = sum(self.syscalls.values())
        lines.append(f"  syscalls   {total}")
        for name, count in list(self.syscalls.items())[:12]:
            lines.append(f"    {name:<18} {count:>9}")
        return "\n".join(lines) + "\n"

    def _server_lines(self) -> list[str]:
        if not self.memory_servers:
            return []
        lines = ["  memory servers (what each held for all its processors at exit)"]
        for address, load in self.memory_servers.items():
            capacity = format_size(load["capacity"]) if load["capacity"] else "no limit"
            role = "home" if load["home"] else "    "
            lines.append(f"    {address} {role} {load['requests']:>9} calls "
                         f"{load['bytes']:>12} bytes, {len(load['vregions'])} vRegions, "
                         f"held {load['pages_held']} pages (capacity {capacity})")
        return lines

    def _modelled_line(self) -> str:
        m = self.modelled
        remote = f"remote {m['remote_s'] * 1e3:.3f} ms"
        if m["instructions"] is None:
            return f"  modelled   {remote} (instructions not counted)"
        return (f"  modelled   {m['total_s'] * 1e3:.3f} ms = compute {m['compute_s'] * 1e3:.3f} ms "
                f"({m['instructions']} instructions x CPI {m['cpi']:g} at "
                f"{m['clock_hz'] / 1e9:g} GHz) + {remote}")


def _server_load(load: ServerLoad) -> dict[str, Any]:
    return {
        "home": load.home,
        "requests": load.requests,
        "bytes": load.bytes,
        "modelled_s": load.modelled_s,
        "vregions": sorted(load.vregions),
        "capacity": load.capacity,
        "bytes_held": load.bytes_held,
        "pages_held": load.pages_held,
    }
