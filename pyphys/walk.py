"""Walk an x86-64 page table from user space, level by level, and check the answer.

pyphys.ko's ``/dev/pyphys_walk`` ioctl says where a process's walk starts (``mm->pgd``, the
KPTI user half, 4 or 5 levels, IA32_PAT: kmod/ABI.md); :mod:`pyphys.physmem` reads each
entry; :func:`decode` explains every bit (layout in :mod:`pyphys.layouts.pagetable`). The
check is built in: a user address's frame is compared with pagemap's, a kernel address's
with the kernel image's ``__pa_symbol()`` arithmetic or the direct map's ``__pa()``.

:func:`walk_tables` is pure (it takes a ``read_u64(phys)`` function), so unit tests walk
page tables made of bytes.
"""

from __future__ import annotations

import errno
import os

from pyphys import paths
from pyphys.dialect import json_raw
from pyphys.errors import (
    FILE_MODE,
    NO_ADMIN,
    ModuleNotLoadedError,
    NotFoundError,
    PermissionDeniedError,
    ProcessGoneError,
    PyphysError,
    RegionError,
    UsageError,
    from_oserror,
    root_hint,
)
from pyphys.layouts import pagetable as L
from pyphys.record import Record

DEVICE = "pyphys_walk"
LOAD_HINT = "load it: sudo pyphys module install (builds it for this kernel and loads it), or in the lab: make shell"
#: x86-64 direct map base without KASLR's memory randomization (page_64_types.h)
PAGE_OFFSET_L4 = 0xFFFF888000000000
PAGE_OFFSET_L5 = 0xFF11000000000000


class Start(Record):
    """Where a walk starts, as the module reported it."""

    __slots__ = ("pid", "levels", "pgd_phys", "user_pgd_phys", "pat")
    _frozen = True

    pid: int
    levels: int
    pgd_phys: int
    user_pgd_phys: int | None  # KPTI's user half, None without KPTI
    pat: int | None  # IA32_PAT, None if the module could not read it


class Step(Record):
    """One level of a walk: which entry was read and what it says."""

    __slots__ = ("level", "index", "entry_phys", "raw", "kind", "bits", "page_size")
    _frozen = True

    level: str
    index: int
    entry_phys: int
    raw: int
    kind: str  # "table", "page", "not present", "swap", "PROT_NONE page"
    bits: dict  # short name -> bool, plus "pkey" and "frame"
    page_size: int | None  # for kind "page": bytes it maps


class Walk(Record):
    """A whole walk: every level, and the answer."""

    __slots__ = (
        "vaddr",
        "levels",
        "top",
        "steps",
        "phys_addr",
        "page_size",
        "pat_index",
        "memory_type",
        "swap_type",
        "swap_offset",
        "start",
        "pid",
        "check",
        "notes",
    )
    _defaults = {"swap_type": None, "swap_offset": None, "start": None, "pid": None, "check": {}, "notes": []}

    vaddr: int
    levels: int
    top: int  # physical address of the table the walk started in
    steps: list[Step]
    phys_addr: int | None
    page_size: int | None
    pat_index: int | None
    memory_type: str | None
    swap_type: int | None
    swap_offset: int | None
    start: Start | None
    pid: int | None
    check: dict  # source, expected, agree, note
    notes: list[str]

    @property
    def pfn(self) -> int | None:
        return None if self.phys_addr is None else self.phys_addr >> L.PAGE_SHIFT

    def to_json(self) -> dict:
        hx = _hex
        s = self.start
        return {
            "pid": self.pid,
            "virt": hx(self.vaddr),
            "levels": self.levels,
            "top": hx(self.top),
            "pgd_phys": hx(s.pgd_phys) if s else None,
            "user_pgd_phys": hx(s.user_pgd_phys) if s else None,
            "pat_msr": json_raw(s.pat) if s else None,
            "steps": [
                {
                    "level": st.level,
                    "index": st.index,
                    "entry_phys": hx(st.entry_phys),
                    "raw": json_raw(st.raw),
                    "kind": st.kind,
                    "bits": {k: (hx(v) if k == "frame" else v) for k, v in st.bits.items()},
                    "page_size": st.page_size,
                }
                for st in self.steps
            ],
            "phys": hx(self.phys_addr),
            "pfn": self.pfn,
            "page_size": self.page_size,
            "pat_index": self.pat_index,
            "memory_type": self.memory_type,
            "swap_type": self.swap_type,
            "swap_offset": hx(self.swap_offset),
            "check": {k: (hx(v) if k == "expected" else v) for k, v in self.check.items()},
            "notes": list(self.notes),
        }


def _hex(v: int | None) -> str | None:
    return None if v is None else hex(v)


# -- decoding ----------------------------------------------------------------------------------
def levels_of(levels: int) -> tuple[tuple[str, int], ...]:
    if levels == 5:
        return L.LEVELS_5
    if levels == 4:
        return L.LEVELS_4
    raise UsageError(f"{levels}-level paging is not x86-64's (4 or 5)")


def index_of(vaddr: int, shift: int) -> int:
    return (vaddr >> shift) & (L.ENTRIES - 1)


def decode(raw: int, level: str) -> tuple[str, dict, int | None]:
    """``(kind, bits, page_size)`` of one entry at ``level`` ("pgd" .. "pte")."""
    bits = {name: bool(raw >> bit & 1) for bit, name, _ in L.BITS}
    bits["pkey"] = raw >> L.PKEY_SHIFT & L.PKEY_MASK
    huge = level in L.HUGE_LEVELS and bits["PS"]
    leaf = level == "pte" or huge
    if level == "pte":
        bits["PAT"] = bits.pop("PS")
    elif huge:
        bits["PAT"] = bool(raw >> L.PAT_LARGE & 1)
    if not bits["P"]:
        if leaf and raw >> L.PROTNONE & 1:
            # PROT_NONE: the frame is stored inverted (L1TF), the page is still the process's
            frame = (raw ^ ((1 << 64) - 1)) & L.ADDR_MASK
            bits["frame"] = frame & ~(_size_of(level, huge) - 1)
            return "PROT_NONE page", bits, _size_of(level, huge)
        bits["frame"] = 0
        return ("swap" if leaf and raw else "not present"), bits, None
    frame = raw & L.ADDR_MASK
    if huge:
        frame &= ~(_size_of(level, True) - 1)  # bit 12 is PAT here, not an address bit
        bits["frame"] = frame
        return "page", bits, _size_of(level, True)
    bits["frame"] = frame
    if level == "pte":
        return "page", bits, 1 << L.PAGE_SHIFT
    return "table", bits, None


def _size_of(level: str, huge: bool) -> int:
    return {"pud": 1 << 30, "pmd": 1 << 21}[level] if huge and level != "pte" else 1 << L.PAGE_SHIFT


def swap_entry(raw: int) -> tuple[int, int]:
    """``(type, offset)`` of a non-present x86-64 swap PTE (pgtable_64.h __swp_type/__swp_offset)."""
    mask = (1 << 64) - 1
    return raw >> (64 - L.SWP_TYPE_BITS), ((~raw << L.SWP_TYPE_BITS) & mask) >> L.SWP_OFFSET_SHIFT


def pat_index(bits: dict) -> int:
    """PAT index = PAT<<2 | PCD<<1 | PWT (SDM 13.12.3)."""
    return int(bits.get("PAT", False)) << 2 | int(bits["PCD"]) << 1 | int(bits["PWT"])


def memory_type(pat_msr: int | None, index: int) -> str | None:
    if pat_msr is None:
        return None
    return L.PAT_TYPES.get(pat_msr >> (8 * index) & 0xFF, f"reserved ({pat_msr >> (8 * index) & 0xFF:#x})")


def canonical(vaddr: int, levels: int) -> bool:
    """True when bits 63..(47 or 56) are all equal: a canonical x86-64 address."""
    top = 48 if levels == 4 else 57
    high = vaddr >> (top - 1)
    return high in (0, (1 << (64 - top + 1)) - 1)


# -- walking ------------------------------------------------------------------------------------
def walk_tables(read_u64, top: int, vaddr: int, levels: int, pat_msr: int | None = None) -> Walk:
    """Walk from the table at physical ``top``; ``read_u64(phys)`` reads one entry."""
    steps: list[Step] = []
    table = top
    w = Walk(vaddr, levels, top, steps, None, None, None, None)
    for level, shift in levels_of(levels):
        idx = index_of(vaddr, shift)
        where = table + idx * L.ENTRY_SIZE
        raw = read_u64(where)
        kind, bits, size = decode(raw, level)
        steps.append(Step(level, idx, where, raw, kind, bits, size))
        if kind == "table":
            table = bits["frame"]
            continue
        if kind in ("page", "PROT_NONE page"):
            assert size is not None
            w.page_size = size
            w.phys_addr = bits["frame"] + vaddr % size
            w.pat_index = pat_index(bits)
            w.memory_type = memory_type(pat_msr, w.pat_index)
        elif kind == "swap":
            w.swap_type, w.swap_offset = swap_entry(raw)
        break
    return w


def stable_walk(read_u64, top: int, vaddr: int, levels: int, pat_msr: int | None = None) -> Walk:
    """:func:`walk_tables`, read twice: if an entry changed in between, walk once more and say so."""
    first = walk_tables(read_u64, top, vaddr, levels, pat_msr)
    again = walk_tables(read_u64, top, vaddr, levels, pat_msr)
    if [s.raw for s in first.steps] == [s.raw for s in again.steps]:
        return first
    third = walk_tables(read_u64, top, vaddr, levels, pat_msr)
    if [s.raw for s in third.steps] != [s.raw for s in again.steps]:
        third.notes.append("the page table changed during the walk, twice: this answer may already be stale")
    else:
        third.notes.append("an entry changed during the first walk; walked again")
    return third


# -- the module's ioctl ------------------------------------------------------------------------
def read_start(pid: int) -> Start:
    """Ask pyphys.ko where ``pid``'s walk starts. Raises ModuleNotLoadedError,
    PermissionDeniedError, ProcessGoneError, UsageError (a kernel thread)."""
    import fcntl

    path = paths.dev(DEVICE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.isdir(paths.sys("kernel", "pyphys")):
            raise ModuleNotLoadedError(
                f"{path} is missing: an older pyphys.ko is loaded", "rmmod pyphys and load this version"
            ) from None
        raise ModuleNotLoadedError(f"pyphys.ko is not loaded (no {path})", LOAD_HINT) from None
    except PermissionError as err:
        raise PermissionDeniedError(
            f"cannot open {path}: {os.strerror(err.errno)}",
            root_hint(FILE_MODE, "page-table addresses are root-only: run as root"),
        ) from err
    except OSError as err:
        raise from_oserror(err, f"opening {path}") from err
    buf = bytearray(L.PGD_STRUCT.pack(pid, 0, 0, 0, 0, 0, 0))
    try:
        fcntl.ioctl(fd, L.PYPHYS_IOC_PGD, buf, True)
    except OSError as err:
        if err.errno == errno.ESRCH:
            raise ProcessGoneError(f"process {pid} does not exist or has exited") from None
        if err.errno == errno.EINVAL:
            raise UsageError(f"process {pid} is a kernel thread: it has no page table of its own") from None
        if err.errno == errno.EPERM:
            raise PermissionDeniedError(
                f"{path}: the page-table ioctl needs CAP_SYS_ADMIN", root_hint(NO_ADMIN, "run as root")
            ) from None
        if err.errno == errno.ENOTTY:
            raise ModuleNotLoadedError(
                f"{path} does not know the page-table ioctl: an older pyphys.ko is loaded",
                "rmmod pyphys and load this version",
            ) from None
        raise from_oserror(err, f"ioctl on {path}") from err
    finally:
        os.close(fd)
    d = dict(zip(L.PGD_FIELDS, L.PGD_STRUCT.unpack(buf)))
    return Start(
        pid=pid,
        levels=d["levels"],
        pgd_phys=d["pgd_phys"],
        user_pgd_phys=d["user_pgd_phys"] if d["flags"] & L.PGD_PTI else None,
        pat=d["pat"] if d["flags"] & L.PGD_PAT_VALID else None,
    )


def _open_memory(backend: str):
    """Physical memory for reading page tables. ``auto`` reads with pread(), never mmap: with PAT
    active, an O_SYNC mmap of /dev/mem asks for an uncached mapping of RAM the direct map has as
    write-back, which the kernel refuses ("conflicting memory types"). The module's device is
    taken when it exists (STRICT_DEVMEM kernels refuse RAM through /dev/mem)."""
    from pyphys import physmem

    if backend == "auto":
        backend = "module" if os.path.exists(paths.dev("pyphys_mem")) else "rw"
    return physmem.open_physmem(backend)


def _reader(pm):
    def read_u64(phys: int) -> int:
        return pm.read_word(phys, 64)

    return read_u64


def _check_canonical(vaddr: int, levels: int) -> None:
    """UsageError for a non-canonical address (5-level's canonical set contains 4-level's, so a
    check with 5 needs no module; the check with the real mode follows)."""
    if not canonical(vaddr, levels):
        bits = 48 if levels == 4 else 57
        raise UsageError(
            f"address {vaddr:#x} is not canonical for {levels}-level paging: bits 63..{bits - 1} must all be equal"
        )


def parse_address(vaddr: int) -> int:
    if not 0 <= vaddr < 1 << 64:
        raise UsageError(f"address {vaddr:#x} is not a 64-bit address")
    return vaddr


# -- process and kernel walks -------------------------------------------------------------
def walk_process(process: int | str, vaddr: int, backend: str = "auto") -> Walk:
    """Walk ``vaddr`` of ``process`` (pid, "self" or a name) and compare with pagemap.

    The walk starts in the table the CPU uses in user mode: KPTI's user half when it is on.
    """
    from pyphys import pagemap
    from pyphys.procmaps import check_address_space, resolve_pid, stat_of

    parse_address(vaddr)
    _check_canonical(vaddr, 5)
    if vaddr >= 1 << 63:
        raise UsageError(f"address {vaddr:#x} is a kernel address", f"try `pyphys walk kernel {vaddr:#x}`")
    pid, name, state, kthread = stat_of(resolve_pid(process))
    check_address_space(pid, name, state, kthread)
    start = read_start(pid)
    _check_canonical(vaddr, start.levels)
    top = start.user_pgd_phys if start.user_pgd_phys is not None else start.pgd_phys
    with _open_memory(backend) as pm:
        w = stable_walk(_reader(pm), top, vaddr, start.levels, start.pat)
    w.start, w.pid = start, pid
    if start.user_pgd_phys is not None:
        w.notes.append("KPTI is on: walked the user half, the table the CPU uses in user mode")
    try:
        t = pagemap.translate(pid, vaddr)
    except PyphysError as err:
        w.check = {"source": "pagemap", "expected": None, "agree": False, "note": f"pagemap: {err.message}"}
        return w
    w.check = _compare_pagemap(w, t)
    return w


def _compare_pagemap(w: Walk, t) -> dict:
    e = t.entry
    if e.present:
        if e.pfn is None:
            return {"source": "pagemap", "expected": None, "agree": False, "note": "pagemap hides the frame"}
        agree = w.pfn == e.pfn
        note = (
            "walk and pagemap give the same frame"
            if agree
            else (f"DISAGREE: the walk gives frame {_hex(w.pfn)}, pagemap frame {e.pfn:#x}")
        )
        return {"source": "pagemap", "expected": e.pfn << L.PAGE_SHIFT | w.vaddr % 4096, "agree": agree, "note": note}
    if e.swapped and e.swap_type is not None:
        agree = (w.swap_type, w.swap_offset) == (e.swap_type, e.swap_offset)
        note = (
            "walk and pagemap give the same swap entry"
            if agree
            else (
                f"DISAGREE: the walk gives swap {w.swap_type}/{_hex(w.swap_offset)}, "
                f"pagemap {e.swap_type}/{e.swap_offset:#x}"
            )
        )
        return {"source": "pagemap", "expected": None, "agree": agree, "note": note}
    agree = w.phys_addr is None and w.swap_type is None
    note = "not present in the walk or in pagemap" if agree else "DISAGREE: pagemap says not present"
    return {"source": "pagemap", "expected": None, "agree": agree, "note": note}


def walk_kernel(vaddr: int, backend: str = "auto") -> Walk:
    """Walk kernel address ``vaddr`` from this process's pgd (its kernel half is every process's)
    and compare with ``__pa_symbol()`` (kernel image) or ``__pa()`` (direct map)."""
    parse_address(vaddr)
    _check_canonical(vaddr, 5)
    if vaddr < 1 << 63:
        raise UsageError(
            f"address {vaddr:#x} is in user space, not the kernel's half", "try `pyphys walk PROCESS ADDRESS`"
        )
    start = read_start(os.getpid())
    _check_canonical(vaddr, start.levels)
    with _open_memory(backend) as pm:
        read = _reader(pm)
        w = stable_walk(read, start.pgd_phys, vaddr, start.levels, start.pat)
        w.start = start
        w.check = _kernel_check(vaddr, start.levels, pm)
    exp = w.check.get("expected")
    if exp is not None:
        w.check["agree"] = w.phys_addr == exp
        if w.check["agree"]:
            w.check["note"] = f"{w.check['note']}: the walk gives the same address"
        else:
            w.check["note"] = f"DISAGREE: the walk gives {_hex(w.phys_addr)}, {w.check['source']} gives {exp:#x}"
    return w


def _kernel_check(vaddr: int, levels: int, pm) -> dict:
    """What the kernel's own arithmetic says ``vaddr``'s physical address is, if it knows."""
    from pyphys import iomem, ksym

    try:
        syms = ksym.load_kallsyms(("_text", "_end", "page_offset_base"))
        text = syms.lookup("_text")
        code = iomem.load().find("Kernel code")
    except PyphysError as err:
        return {"source": None, "expected": None, "agree": None, "note": f"no check: {err.message}"}
    if syms.hidden or text is None or not code:
        return {"source": None, "expected": None, "agree": None, "note": "no check: kallsyms or iomem hidden"}
    base = ksym.phys_base(text, code[0].start)
    end = syms.lookup("_end") or text
    if text <= vaddr < end:
        exp = ksym.image_phys(vaddr, base)
        return {"source": "__pa_symbol (kallsyms+iomem)", "expected": exp, "agree": None, "note": "kernel image"}
    offset = PAGE_OFFSET_L5 if levels == 5 else PAGE_OFFSET_L4
    pob = syms.lookup("page_offset_base")
    if pob is not None:  # CONFIG_RANDOMIZE_MEMORY: the base is a variable in the image
        offset = pm.read_word(ksym.image_phys(pob, base), 64)
    if offset <= vaddr < offset + (1 << (46 if levels == 4 else 55)):
        return {"source": "__pa (direct map)", "expected": vaddr - offset, "agree": None, "note": "direct map"}
    return {"source": None, "expected": None, "agree": None, "note": "no check: not the image or the direct map"}


def module_buffer_virt() -> int:
    """The virtual address of pyphys.ko's buffer: the ``pyphys_buffer`` pointer, read through
    physical memory at its kallsyms address (walked from this process's pgd)."""
    from pyphys import ksym

    addr = ksym.symbol_address("pyphys_buffer", module="pyphys")
    if addr is None:
        raise NotFoundError("pyphys_buffer is not in /proc/kallsyms (module not loaded, or addresses hidden)")
    start = read_start(os.getpid())
    with _open_memory("auto") as pm:
        w = walk_tables(_reader(pm), start.pgd_phys, addr, start.levels)
        if w.phys_addr is None:
            raise RegionError(f"pyphys_buffer at {addr:#x} is not mapped")
        return pm.read_word(w.phys_addr, 64)
