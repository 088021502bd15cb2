"""What the CPUID instruction tells the guest, and /proc/cpuinfo written from it.

The answers are not a table kept here: they are learnt by running CPUID on a scratch Unicorn
CPU of the same model as the guest's, so /proc/cpuinfo always describes the one emulated
x86-64 core the guest's own CPUID sees. The text follows arch/x86/kernel/cpu/proc.c; fields
the emulated core has no value for (the clock rate, bogomips, the microcode revision) are
left out, as Linux leaves out what it does not know.
"""

from __future__ import annotations

import struct

from unicorn import UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn.x86_const import UC_X86_REG_RDI

CODE_ADDR, DATA_ADDR = 0x1000, 0x10000
CACHE_LEAF_SUBLEAVES = 8

# Linux's flag names for the CPUID feature words it shows (arch/x86/include/asm/
# cpufeatures.h), bit by bit; "" for a bit Linux does not show.
FEATURE_WORDS: tuple[tuple[tuple[int, int, str], tuple[str, ...]], ...] = (
    ((1, 0, "edx"), (
        "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "", "sep",
        "mtrr", "pge", "mca", "cmov", "pat", "pse36", "pn", "clflush", "", "dts", "acpi",
        "mmx", "fxsr", "sse", "sse2", "ss", "ht", "tm", "ia64", "pbe")),
    ((0x80000001, 0, "edx"), (
        "", "", "", "", "", "", "", "", "", "", "", "syscall", "", "", "", "", "", "", "",
        "mp", "nx", "", "mmxext", "", "", "fxsr_opt", "pdpe1gb", "rdtscp", "", "lm",
        "3dnowext", "3dnow")),
    ((1, 0, "ecx"), (
        "pni", "pclmulqdq", "dtes64", "monitor", "ds_cpl", "vmx", "smx", "est", "tm2",
        "ssse3", "cid", "sdbg", "fma", "cx16", "xtpr", "pdcm", "", "pcid", "dca", "sse4_1",
        "sse4_2", "x2apic", "movbe", "popcnt", "tsc_deadline_timer", "aes", "xsave", "",
        "avx", "f16c", "rdrand", "hypervisor")),
    ((0x80000001, 0, "ecx"), (
        "lahf_lm", "cmp_legacy", "svm", "extapic", "cr8_legacy", "abm", "sse4a",
        "misalignsse", "3dnowprefetch", "osvw", "ibs", "xop", "skinit", "wdt", "", "lwp",
        "fma4", "tce", "", "nodeid_msr", "", "tbm", "topoext", "perfctr_core", "perfctr_nb",
        "", "bpext", "ptsc", "perfctr_llc", "mwaitx", "", "")),
    ((7, 0, "ebx"), (
        "fsgsbase", "tsc_adjust", "sgx", "bmi1", "hle", "avx2", "", "smep", "bmi2", "erms",
        "invpcid", "rtm", "cqm", "", "mpx", "rdt_a", "avx512f", "avx512dq", "rdseed", "adx",
        "smap", "avx512ifma", "", "clflushopt", "clwb", "intel_pt", "avx512pf", "avx512er",
        "avx512cd", "sha_ni", "avx512bw", "avx512vl")),
    ((7, 0, "ecx"), (
        "", "avx512vbmi", "umip", "pku", "ospke", "waitpkg", "avx512_vbmi2", "", "gfni",
        "vaes", "vpclmulqdq", "avx512_vnni", "avx512_bitalg", "tme", "avx512_vpopcntdq", "",
        "la57", "", "", "", "", "", "rdpid", "", "bus_lock_detect", "cldemote", "",
        "movdiri", "movdir64b", "enqcmd", "sgx_lc", "")),
    ((7, 0, "edx"), (
        "", "", "avx512_4vnniw", "avx512_4fmaps", "fsrm", "", "", "", "avx512_vp2intersect",
        "", "md_clear", "", "", "", "serialize", "", "tsxldtrk", "", "pconfig", "arch_lbr",
        "ibt", "", "amx_bf16", "avx512_fp16", "amx_tile", "amx_int8", "", "", "flush_l1d",
        "arch_capabilities", "", "")),
)
REGISTERS = ("eax", "ebx", "ecx", "edx")


def _program(queries: list[tuple[int, int]]) -> bytes:
    """Machine code that runs CPUID for each (leaf, subleaf) and stores eax, ebx, ecx, edx
    at rdi, advancing rdi by 16."""
    code = bytearray()
    for leaf, subleaf in queries:
        code += b"\xb8" + struct.pack("<I", leaf)  # mov eax, leaf
        code += b"\xb9" + struct.pack("<I", subleaf)  # mov ecx, subleaf
        code += b"\x0f\xa2"  # cpuid
        code += b"\x89\x07\x89\x5f\x04\x89\x4f\x08\x89\x57\x0c"  # mov [rdi+0..12], eax..edx
        code += b"\x48\x83\xc7\x10"  # add rdi, 16
    return bytes(code)


def run_cpuid(cpu_model: int,
              queries: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, int]]:
    """CPUID's registers for each (leaf, subleaf), on a scratch CPU of model `cpu_model`."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.ctl_set_cpu_model(cpu_model)
    code = _program(queries)
    uc.mem_map(CODE_ADDR, 0x8000, UC_PROT_ALL)
    uc.mem_map(DATA_ADDR, max(0x1000, (16 * len(queries) + 0xFFF) & ~0xFFF), UC_PROT_ALL)
    uc.mem_write(CODE_ADDR, code)
    uc.reg_write(UC_X86_REG_RDI, DATA_ADDR)
    uc.emu_start(CODE_ADDR, CODE_ADDR + len(code))
    raw = uc.mem_read(DATA_ADDR, 16 * len(queries))
    return {query: dict(zip(REGISTERS, struct.unpack_from("<4I", raw, 16 * index)))
            for index, query in enumerate(queries)}


def _cache_size_kb(leaves: dict[tuple[int, int], dict[str, int]]) -> int:
    """The size of the last-level cache, from the deterministic cache parameters (leaf 4)
    or, failing those, the L2 size of leaf 0x80000006."""
    best_level, best_size = 0, 0
    for subleaf in range(CACHE_LEAF_SUBLEAVES):
        regs = leaves.get((4, subleaf))
        if regs is None or regs["eax"] & 0x1F == 0:
            break
        level = regs["eax"] >> 5 & 7
        ways = (regs["ebx"] >> 22) + 1
        partitions = (regs["ebx"] >> 12 & 0x3FF) + 1
        line = (regs["ebx"] & 0xFFF) + 1
        size = ways * partitions * line * (regs["ecx"] + 1) // 1024
        if level >= best_level:
            best_level, best_size = level, size
    if best_size:
        return best_size
    extended = leaves.get((0x80000006, 0))
    return extended["ecx"] >> 16 if extended else 0


def cpuinfo(cpu_model: int) -> bytes:
    """/proc/cpuinfo for one core of model `cpu_model`, as processor 0."""
    basic = run_cpuid(cpu_model, [(0, 0), (0x80000000, 0)])
    max_leaf, max_extended = basic[(0, 0)]["eax"], basic[(0x80000000, 0)]["eax"]
    queries = [(leaf, 0) for leaf in (1, 7) if leaf <= max_leaf]
    if max_leaf >= 4:
        queries += [(4, subleaf) for subleaf in range(CACHE_LEAF_SUBLEAVES)]
    queries += [(leaf, 0) for leaf in (0x80000001, 0x80000002, 0x80000003, 0x80000004,
                                       0x80000006, 0x80000008) if leaf <= max_extended]
    leaves = {**basic, **run_cpuid(cpu_model, queries)}
    vendor = struct.pack("<3I", *(leaves[(0, 0)][r] for r in ("ebx", "edx", "ecx")))
    signature = leaves.get((1, 0), {"eax": 0, "ebx": 0})
    family = signature["eax"] >> 8 & 0xF
    model = signature["eax"] >> 4 & 0xF
    if family == 0xF:
        family += signature["eax"] >> 20 & 0xFF
    if family >= 6:
        model += (signature["eax"] >> 16 & 0xF) << 4
    brand = b"".join(struct.pack("<4I", *(leaves[(leaf, 0)][r] for r in REGISTERS))
                     for leaf in (0x80000002, 0x80000003, 0x80000004) if (leaf, 0) in leaves)
    flags = [name for (leaf, subleaf, register), names in FEATURE_WORDS
             if (leaf, subleaf) in leaves
             for bit, name in enumerate(names)
             if name and leaves[(leaf, subleaf)][register] >> bit & 1]
    clflush = (signature["ebx"] >> 8 & 0xFF) * 8
    lines = [
        ("processor", "0"),
        ("vendor_id", vendor.decode("ascii", "replace")),
        ("cpu family", str(family)),
        ("model", str(model)),
        ("model name", brand.rstrip(b"\0").strip().decode("ascii", "replace") or "unknown"),
        ("stepping", str(signature["eax"] & 0xF)),
    ]
    cache = _cache_size_kb(leaves)
    if cache:
        lines.append(("cache size", f"{cache} KB"))
    lines += [
        ("physical id", "0"), ("siblings", "1"), ("core id", "0"), ("cpu cores", "1"),
        ("apicid", "0"), ("initial apicid", "0"), ("fpu", "yes"), ("fpu_exception", "yes"),
        ("cpuid level", str(max_leaf)), ("wp", "yes"), ("flags", " ".join(flags)),
        ("bugs", ""), ("clflush size", str(clflush)), ("cache_alignment", str(clflush)),
    ]
    if (0x80000008, 0) in leaves:
        sizes = leaves[(0x80000008, 0)]["eax"]
        lines.append(("address sizes",
                      f"{sizes & 0xFF} bits physical, {sizes >> 8 & 0xFF} bits virtual"))
    text = "".join(_line(key, value) for key, value in lines)
    return (text + "power management:\n\n").encode()


def _line(key: str, value: str) -> str:
    """One "key<tabs>: value" line, the colon at the second tab stop as Linux aligns it."""
    tabs = "\t" if len(key) >= 8 else "\t\t"
    return f"{key}{tabs}:{' ' + value if value else ''}\n"
