"""Virtual to physical: /proc/PID/pagemap, decoded with /proc/kpageflags and /proc/kpagecount.

The one module that reads those files (bit layouts in :mod:`pyphys.layouts.pagemap`).

* :func:`translate` -- one virtual address: every pagemap field, PFN, physical address,
  kpageflags names (with the ones page-types expands), kpagecount, huge page, mapping.
* :func:`scan` / :func:`runs` / :func:`summarize` -- a range or every mapping, per page, per run
  of physically contiguous pages with equal flags, or page counts by flag set (page-types'
  summary), streaming: memory stays bounded however large the process is.

Everything returns dataclasses and never prints. Honest answers: a PFN the kernel zeroed
because the reader lacks CAP_SYS_ADMIN is *hidden*, never frame 0 (pagemap.rst: "Starting
from 4.2 the PFN field is zeroed if the user does not have CAP_SYS_ADMIN"); an unmapped
address names the nearest mappings; kernel threads, zombies and processes that exit during a
scan raise clear errors; mappings that change during a scan just read as not present.
"""

from __future__ import annotations

import os
from itertools import repeat
from operator import getitem, setitem  # vectorcall: cheaper per element than bound __getitem__

from pyphys import TYPE_CHECKING, paths
from pyphys.errors import (
    NotFoundError,
    PermissionDeniedError,
    ProcessGoneError,
    RegionError,
    UsageError,
    from_oserror,
)
from pyphys.layouts import pagemap as L
from pyphys.procmaps import (
    Mapping,
    ProcessInfo,
    check_address_space,
    find_mapping,
    lazy_dataclass,
    neighbours,
    read_maps_rows,
    require_address_space,
    resolve_pid,
    stat_of,
)

if TYPE_CHECKING:
    from array import array
    from collections.abc import Iterator

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# pagemap entries per pread: 64 Ki entries = 512 KiB. page-types reads the same batch size;
# big reads amortise the syscall and keep memory bounded per chunk.
CHUNK_PAGES = 1 << 16

# kpageflags/kpagecount are read in windows of 2**_WSH PFNs (512 bytes), only the windows some
# page of the scan falls in: a 4 GiB process's pages are spread over a wider PFN range shared
# with other processes, and the kernel spends ~0.15 us per PFN it reports. Whole-process scans
# fill most of each window (measured best at 64 PFNs); a range scan touches a window for few
# of its pages, so it reads 8-PFN windows.
_WSH = 6
_WSH_RANGE = 3

CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h


class UnmappedAddressError(RegionError):
    """The address (or range) lies in no mapping; ``below``/``above`` are the nearest ones."""

    def __init__(
        self, message: str, hint: str | None = None, below: Mapping | None = None, above: Mapping | None = None
    ):
        super().__init__(message, hint)
        self.below = below
        self.above = above


# ---------------------------------------------------------------------------------------
# Decoding one pagemap entry and flag words
# ---------------------------------------------------------------------------------------
@lazy_dataclass(frozen=True)
class PagemapEntry:
    """One decoded /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst)."""

    raw: int
    present: bool
    swapped: bool
    soft_dirty: bool
    exclusive: bool  # "page exclusively mapped" (since 4.2)
    uffd_wp: bool  # "pte is uffd-wp write-protected" (since 5.13)
    guard_region: bool  # "pte is a guard region" (since 6.15)
    file_or_shared_anon: bool  # "page is file-page or shared-anon" (since 3.5)
    pfn: int | None  # present and visible, else None
    pfn_hidden: bool  # the kernel zeroed the frame field (reader lacks CAP_SYS_ADMIN)
    swap_type: int | None  # swapped and visible
    swap_offset: int | None
    unknown_bits: int  # bits 59-60, documented as zero

    @property
    def kind(self) -> str:
        """``present``, ``guard region``, ``swapped`` or ``not present``."""
        return entry_kind(self.raw)

    def to_dict(self) -> dict:
        """JSON-ready fields (``raw`` as hex) plus ``kind``."""
        from dataclasses import asdict

        return _entry_json(asdict(self))


def entry_kind(raw: int) -> str:
    """``present``, ``guard region``, ``swapped`` or ``not present`` for a raw entry."""
    if raw & L.PM_PRESENT:
        return "present"
    if raw & L.PM_GUARD_REGION:
        return "guard region"  # a PTE marker, which the kernel reports with the swap bit set
    if raw & L.PM_SWAP:
        return "swapped"
    return "not present"


def decode_fields(raw: int, *, pfn_visible: bool | None = None) -> dict:
    """The fields of :class:`PagemapEntry` for ``raw``, as a dict (see :func:`decode_entry`)."""
    if not 0 <= raw < 1 << 64:
        raise ValueError(f"pagemap entry {raw!r} is not a 64-bit value")
    present = bool(raw & L.PM_PRESENT)
    swapped = bool(raw & L.PM_SWAP)
    frame = raw & L.PM_PFRAME_MASK
    hidden = (present or swapped) and (pfn_visible is False or (frame == 0 and not pfn_visible))
    pfn = frame if present and not hidden else None
    swap_type = frame & L.PM_SWAP_TYPE_MASK if swapped and not present and not hidden else None
    swap_offset = frame >> L.PM_SWAP_TYPE_BITS if swap_type is not None else None
    return {
        "raw": raw,
        "present": present,
        "swapped": swapped,
        "soft_dirty": bool(raw & L.PM_SOFT_DIRTY),
        "exclusive": bool(raw & L.PM_MMAP_EXCLUSIVE),
        "uffd_wp": bool(raw & L.PM_UFFD_WP),
        "guard_region": bool(raw & L.PM_GUARD_REGION),
        "file_or_shared_anon": bool(raw & L.PM_FILE),
        "pfn": pfn,
        "pfn_hidden": hidden,
        "swap_type": swap_type,
        "swap_offset": swap_offset,
        "unknown_bits": raw & _ZERO_BITS,
    }


_ZERO_BITS = sum(1 << b for b in L.PM_ZERO_BITS)


def decode_entry(raw: int, *, pfn_visible: bool | None = None) -> PagemapEntry:
    """Decode a 64-bit pagemap entry.

    ``pfn_visible``: whether the reader had CAP_SYS_ADMIN. ``None`` infers it from the entry:
    a present page (or swap entry) whose frame field is 0 was zeroed by the kernel (user pages
    never live in frame 0 on x86; swap offset 0 is the swap header).
    """
    return PagemapEntry(**decode_fields(raw, pfn_visible=pfn_visible))


def _entry_json(d: dict) -> dict:
    out = dict(d)
    out["raw"] = f"{d['raw']:#018x}"
    out["kind"] = entry_kind(d["raw"])
    return out


def _bit(n: int) -> int:
    return 1 << n


def kernel_release_tuple(release: str) -> tuple[int, int]:
    """``(major, minor)`` of a kernel release string such as ``6.12.117+deb12-amd64``."""
    major, _, rest = release.partition(".")
    minor = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    if not major.isdigit() or not minor:
        raise ValueError(f"{release!r} is not a kernel release")
    return int(major), int(minor)


class FlagTable:
    """page-types' flag names as the page-types of one kernel release prints them.

    ``letters``: (bit, letter) of the named bits, lowest first -- one column each in the
    symbolic flags; ``names``: a long name for every bit any release names (this release's
    own name first), plus pyphys' names for bits no page-types names.
    """

    __slots__ = ("release", "letters", "names", "slob", "_sym", "_long", "_expand")

    def __init__(self, release: tuple[int, int]):
        self.release = release
        rows = [
            (bit, name)
            for bit, name, since, until in L.PAGE_FLAG_NAMES
            if (since is None or release >= since) and (until is None or release < until)
        ]
        self.letters = tuple((bit, name[0]) for bit, name in sorted(rows))
        names = {bit: name[2:] for bit, name in rows}
        for bit, name, _since, _until in L.PAGE_FLAG_NAMES:
            names.setdefault(bit, name[2:])
        for bit, name in L.PYPHYS_EXTRA_NAMES:
            names.setdefault(bit, name)
        self.names = names
        # SLOB's PG_private expansion exists exactly where page-types names slob_free
        self.slob = any(bit == L.KPF_SLOB_FREE for bit, _name in rows)
        # A process has a handful of distinct flag words and a scan asks about them per page.
        self._sym: dict[int, str] = {}
        self._long: dict[int, tuple[str, ...]] = {}
        self._expand: dict[tuple[int, int], int] = {}

    def __repr__(self) -> str:
        return f"FlagTable({self.release!r})"


_MEMO_MAX = 1 << 14
_TABLES: dict[tuple[int, int], FlagTable] = {}
_CURRENT: dict[str, FlagTable] = {}  # procfs root -> the table of the kernel it describes


def flag_table(release: str | tuple[int, int] | None = None) -> FlagTable:
    """The :class:`FlagTable` of a kernel release (``"6.1.0-57-amd64"`` or ``(6, 1)``);
    ``None``: of the running kernel (``sys/kernel/osrelease`` under the procfs root)."""
    if release is None:
        root = paths.proc()
        table = _CURRENT.get(root)
        if table is None:
            table = _CURRENT[root] = flag_table(_running_release())
        return table
    key = kernel_release_tuple(release) if isinstance(release, str) else tuple(release)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = FlagTable(key)
    return table


def _running_release() -> str:
    try:
        with open(paths.proc("sys", "kernel", "osrelease"), encoding="ascii", errors="replace") as f:
            release = f.read().strip()
        kernel_release_tuple(release)
        return release
    except (OSError, ValueError):
        return os.uname().release


def expand_flags(kpageflags: int, pme: int = 0, table: FlagTable | None = None) -> int:
    """kpageflags as page-types -r shows them, plus the pagemap bits it folds in.

    Port of expand_overloaded_flags() in page-types.c: PG_mappedtodisk (PG_owner_2) on an
    anonymous page means anon_exclusive; slab pages reuse active/error (and, before 6.4,
    SLOB's private); PG_reclaim without writeback is readahead. From the pagemap entry
    ``pme``: soft-dirty (bit 40), file (61), swap (62), mmap_exclusive (63); pyphys adds
    uffd-wp (57) and guard region (58), which postdate page-types. ``table``: the kernel
    release's names (default: the running kernel's).
    """
    t = table or flag_table()
    key = (kpageflags, pme & L.PM_FLAGS_MASK)
    memo = t._expand
    f = memo.get(key)
    if f is None:
        f = _expand_flags(kpageflags, pme, t.slob)
        if len(memo) < _MEMO_MAX:
            memo[key] = f
    return f


def _expand_flags(kpageflags: int, pme: int = 0, slob: bool = False) -> int:
    """:func:`expand_flags` without the memo."""
    f = kpageflags
    if f & _bit(L.KPF_ANON) and f & _bit(L.KPF_MAPPEDTODISK):
        f ^= _bit(L.KPF_MAPPEDTODISK) | _bit(L.KPF_ANON_EXCLUSIVE)
    if f & _bit(L.KPF_SLAB):
        if slob and f & _bit(L.KPF_PRIVATE):
            f ^= _bit(L.KPF_PRIVATE) | _bit(L.KPF_SLOB_FREE)
        if f & _bit(L.KPF_ACTIVE):
            f ^= _bit(L.KPF_ACTIVE) | _bit(L.KPF_SLUB_FROZEN)
        if f & _bit(L.KPF_ERROR):
            f ^= _bit(L.KPF_ERROR) | _bit(L.KPF_SLUB_DEBUG)
    if f & (_bit(L.KPF_RECLAIM) | _bit(L.KPF_WRITEBACK)) == _bit(L.KPF_RECLAIM):
        f ^= _bit(L.KPF_RECLAIM) | _bit(L.KPF_READAHEAD)
    if pme & L.PM_SOFT_DIRTY:
        f |= _bit(L.KPF_SOFTDIRTY)
    if pme & L.PM_FILE:
        f |= _bit(L.KPF_FILE)
    if pme & L.PM_SWAP:
        f |= _bit(L.KPF_SWAP)
    if pme & L.PM_MMAP_EXCLUSIVE:
        f |= _bit(L.KPF_MMAP_EXCLUSIVE)
    if pme & L.PM_UFFD_WP:
        f |= _bit(L.KPF_UFFD_WP)
    if pme & L.PM_GUARD_REGION:
        f |= _bit(L.KPF_GUARD_REGION)
    return f


def well_known_flags(kpageflags: int) -> int:
    """kpageflags as page-types shows them by default (well_known_flags() in page-types.c):
    kernel-hacker bits 32-47 hidden, compound head/tail hidden unless hugetlb."""
    f = kpageflags & ~L.KPF_HACKERS_BITS
    compound = _bit(L.KPF_COMPOUND_HEAD) | _bit(L.KPF_COMPOUND_TAIL)
    if f & compound and not f & _bit(L.KPF_HUGE):
        f &= ~compound
    return f


def flag_names(flags: int, table: FlagTable | None = None) -> tuple[str, ...]:
    """Long names of the set bits, lowest first; unnamed bits as ``bitN``."""
    t = table or flag_table()
    memo = t._long
    names = memo.get(flags)
    if names is None:
        long = t.names
        names = tuple(long.get(b, f"bit{b}") for b in range(64) if flags >> b & 1)
        if len(memo) < _MEMO_MAX:
            memo[flags] = names
    return names


def symbolic_flags(flags: int, table: FlagTable | None = None) -> str:
    """page-types' symbolic-flags column: one letter per bit the running kernel's page-types
    names (or ``table``'s), ``_`` when clear."""
    t = table or flag_table()
    memo = t._sym
    sym = memo.get(flags)
    if sym is None:
        sym = "".join(letter if flags >> bit & 1 else "_" for bit, letter in t.letters)
        if len(memo) < _MEMO_MAX:
            memo[flags] = sym
    return sym


def flag_bits(names: str) -> int:
    """Bits for a comma-separated list of long names (or ``bitN``); UsageError on unknown.
    Names of every release are accepted (``mappedtodisk`` and ``owner_2`` are both bit 34)."""
    by_name = {name[2:]: bit for bit, name, _since, _until in L.PAGE_FLAG_NAMES}
    by_name.update((name, bit) for bit, name in L.PYPHYS_EXTRA_NAMES)
    bits = 0
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name in by_name:
            bits |= 1 << by_name[name]
        elif name.startswith("bit") and name[3:].isdigit() and int(name[3:]) < 64:
            bits |= 1 << int(name[3:])
        else:
            raise UsageError(f"unknown page flag {name!r}", "names are page-types' long names, e.g. anonymous,thp")
    return bits


# ---------------------------------------------------------------------------------------
# Environment: who may see PFNs, where user space ends
# ---------------------------------------------------------------------------------------
def pfns_visible() -> bool:
    """True if this process gets real PFNs from pagemap: CAP_SYS_ADMIN in the initial user
    namespace (fs/proc/task_mmu.c: ``file_ns_capable(file, &init_user_ns, CAP_SYS_ADMIN)``)."""
    try:
        with open(paths.proc("self", "status"), encoding="ascii", errors="replace") as f:
            caps = next((line.split()[1] for line in f if line.startswith("CapEff:")), "0")
        if not int(caps, 16) >> CAP_SYS_ADMIN & 1:
            return False
    except (OSError, ValueError, IndexError):
        return False
    try:
        with open(paths.proc("self", "uid_map"), encoding="ascii") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except FileNotFoundError:
        return True  # a kernel without user namespaces: everyone is in the initial one
    except OSError:
        return False


def user_space_limit() -> int | None:
    """First address above user space on this machine (TASK_SIZE_MAX + one page), or None."""
    machine = os.uname().machine
    if machine == "x86_64":
        bits = L.X86_64_USER_VA_BITS
        try:
            with open(paths.proc("cpuinfo"), encoding="ascii", errors="replace") as f:
                if any(line.startswith("flags") and " la57" in line for line in f):
                    bits = L.X86_64_USER_VA_BITS_LA57
        except OSError:
            pass
        return 1 << bits
    if machine == "aarch64":
        return 1 << 52  # the widest user VA arm64 supports (VA_BITS=52)
    return None


def _check_user_address(addr: int, what: str = "address", maps: list | None = None) -> None:
    if addr < 0 or addr >= 1 << 64:
        raise UsageError(f"{what} {addr:#x} is not a 64-bit address")
    if addr >= 1 << 47:  # only then is it worth reading cpuinfo
        limit = user_space_limit()
        if limit is not None and addr >= limit:
            mapping = find_mapping(maps, addr) if maps else None
            if mapping is not None:
                label = (mapping[6] if isinstance(mapping, tuple) else mapping.path) or "[anon]"
                raise RegionError(
                    f"{what} {addr:#x} is in {label}, which the kernel maps into "
                    f"every process above the user-space limit {limit - PAGE_SIZE:#x}: "
                    "pagemap has no entry for it",
                    "it is the kernel's page, not the process's",
                )
            raise UsageError(
                f"{what} {addr:#x} is above the user-space limit {limit - PAGE_SIZE:#x}: "
                "pagemap only covers user space",
                "for a kernel address, try `pyphys ksym`",
            )


# ---------------------------------------------------------------------------------------
# Opening a process
# ---------------------------------------------------------------------------------------
def _resolve_raw(process: int | str | ProcessInfo) -> tuple[int, str]:
    """``(pid, name)`` of a process with an address space, without building dataclasses."""
    if isinstance(process, ProcessInfo):
        require_address_space(process)
        return process.pid, process.name
    pid, name, state, kthread = stat_of(resolve_pid(process))
    check_address_space(pid, name, state, kthread)
    return pid, name


def _open_pagemap(pid: int) -> int:
    path = paths.proc(pid, "pagemap")
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise ProcessGoneError(f"process {pid} no longer exists ({path})") from err
    except PermissionError as err:
        raise PermissionDeniedError(
            f"cannot read {path}: {os.strerror(err.errno)}",
            "reading another user's page tables needs root (ptrace read access)",
        ) from err
    except OSError as err:
        raise from_oserror(err, f"cannot open {path}") from err


def _ensure_alive(pid: int, during: str) -> None:
    """Raise ProcessGoneError if ``pid`` exited (or is a zombie) -- used after a short read."""
    try:
        _pid, name, state, _kthread = stat_of(pid)
    except NotFoundError:
        raise ProcessGoneError(f"process {pid} exited {during}") from None
    if state in ("Z", "X"):
        raise ProcessGoneError(f"process {pid} ({name}) exited {during}: it is a zombie now")


def _read_u64(fd: int, index: int, what: str) -> int | None:
    try:
        data = os.pread(fd, 8, index * 8)
    except OSError as err:
        raise from_oserror(err, f"cannot read {what} at index {index:#x}") from err
    return int.from_bytes(data, "little") if len(data) == 8 else None


def _swap_areas() -> int | None:
    """Number of active swap areas (lines of /proc/swaps after its header), or None."""
    try:
        with open(paths.proc("swaps"), encoding="utf-8", errors="replace") as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return None


def _open_table(name: str) -> tuple[int | None, str | None]:
    """Open /proc/kpageflags or /proc/kpagecount; ``(fd, None)`` or ``(None, why not)``."""
    path = paths.proc(name)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), None
    except FileNotFoundError:
        return None, f"{path} does not exist (kernel built without CONFIG_PROC_PAGE_MONITOR)"
    except PermissionError:
        return None, f"{path} is readable by root only"
    except OSError as err:
        return None, f"cannot open {path}: {os.strerror(err.errno or 0)}"


# ---------------------------------------------------------------------------------------
# One address
# ---------------------------------------------------------------------------------------
@lazy_dataclass(frozen=True)
class HugePage:
    """The compound page a frame belongs to: a transparent huge page or a hugetlb page."""

    kind: str  # "THP" or "hugetlb"
    head_pfn: int
    pages: int  # base pages in it
    index: int  # which of them this frame is
    size: int  # bytes


@lazy_dataclass(frozen=True)
class Translation:
    """Everything pagemap, kpageflags and kpagecount say about one virtual address."""

    pid: int
    process: str
    vaddr: int
    page_size: int
    entry: PagemapEntry
    mapping: Mapping
    phys_addr: int | None  # pfn * page_size + offset, when the PFN is known
    kpageflags: int | None  # the kernel's raw word
    flags: int | None  # expanded as page-types -r does (see expand_flags)
    kpagecount: int | None
    huge: HugePage | None
    notes: tuple[str, ...]

    @property
    def vpage(self) -> int:
        return self.vaddr - self.vaddr % self.page_size

    @property
    def offset(self) -> int:
        return self.vaddr % self.page_size

    @property
    def pfn(self) -> int | None:
        return self.entry.pfn

    @property
    def flag_names(self) -> tuple[str, ...]:
        """Long names of :attr:`flags` (kpageflags, expanded), or of the pagemap bits alone."""
        return flag_names(expand_flags(0, self.entry.raw) if self.flags is None else self.flags)

    @classmethod
    def from_lookup(cls, d: dict) -> Translation:
        """Build from the plain data :func:`lookup` returns."""
        return cls(
            d["pid"],
            d["process"],
            d["vaddr"],
            d["page_size"],
            PagemapEntry(**d["entry"]),
            Mapping(**d["mapping"]),
            d["phys_addr"],
            d["kpageflags"],
            d["flags"],
            d["kpagecount"],
            None if d["huge"] is None else HugePage(**d["huge"]),
            tuple(d["notes"]),
        )

    def to_lookup(self) -> dict:
        """The plain data :func:`lookup` returns for the same address."""
        from dataclasses import asdict

        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    def to_dict(self) -> dict:
        """JSON-ready dictionary (addresses as hex strings): :func:`lookup_json`."""
        return lookup_json(self.to_lookup())


def lookup_json(d: dict) -> dict:
    """:func:`lookup`'s plain data made JSON-ready: addresses as hex strings, plus the derived
    ``vpage``, ``offset``, ``pfn``, ``flag_names`` and the entry's ``kind``."""
    hx = _hex
    e, m, h = d["entry"], d["mapping"], d["huge"]
    flags = d["flags"]
    return {
        "pid": d["pid"],
        "process": d["process"],
        "vaddr": hx(d["vaddr"]),
        "vpage": hx(d["vaddr"] - d["vaddr"] % d["page_size"]),
        "offset": hx(d["vaddr"] % d["page_size"]),
        "page_size": d["page_size"],
        "entry": _entry_json(e),
        "pfn": hx(e["pfn"]),
        "phys_addr": hx(d["phys_addr"]),
        "kpageflags": hx(d["kpageflags"]),
        "flags": hx(flags),
        "flag_names": list(flag_names(expand_flags(0, e["raw"]) if flags is None else flags)),
        "kpagecount": d["kpagecount"],
        "huge": None if h is None else dict(h, head_pfn=hx(h["head_pfn"])),
        "mapping": dict(m, start=hx(m["start"]), end=hx(m["end"]), offset=hx(m["offset"])),
        "notes": list(d["notes"]),
    }


def _hex(v: int | None) -> str | None:
    return None if v is None else hex(v)


def _unmapped(pid: int, maps: list, addr: int, what: str) -> UnmappedAddressError:
    maps = [m if isinstance(m, Mapping) else Mapping(*m) for m in maps]
    below, above = neighbours(maps, addr)
    parts = []
    if below is not None:
        parts.append(f"below: {below.describe()} (ends {addr - below.end:#x} bytes before)")
    if above is not None:
        parts.append(f"above: {above.describe()} (starts {above.start - addr:#x} bytes after)")
    near = "; ".join(parts) if parts else "the process has no mappings"
    return UnmappedAddressError(
        f"{what} is not mapped in process {pid}; nearest mappings: {near}", f"see /proc/{pid}/maps", below, above
    )


def _huge_page(fd: int, pfn: int, kflags: int, page_size: int) -> dict | None:
    """Find the head and length of the compound page ``pfn`` is part of (kpageflags
    COMPOUND_HEAD/TAIL; THP or HUGE says which kind)."""
    if not kflags & (_bit(L.KPF_THP) | _bit(L.KPF_HUGE)):
        return None
    kind = "hugetlb" if kflags & _bit(L.KPF_HUGE) else "THP"
    head, tail = _bit(L.KPF_COMPOUND_HEAD), _bit(L.KPF_COMPOUND_TAIL)
    max_pages = 1 << 18  # a 1 GiB page of 4 KiB frames: the largest huge page on x86-64
    head_pfn = None
    if kflags & head:
        head_pfn = pfn
    elif kflags & tail:
        lo = pfn
        while head_pfn is None and pfn - lo < max_pages and lo > 0:
            n = min(512, lo)
            lo -= n
            words = _read_words(fd, lo, n)
            for i in range(len(words) - 1, -1, -1):
                if words[i] & head:
                    head_pfn = lo + i
                    break
                if not words[i] & tail:
                    return None  # inconsistent (the page changed under us)
    if head_pfn is None:
        return None
    pages, pos = 1, head_pfn + 1
    while pages < max_pages:
        words = _read_words(fd, pos, 512)
        for w in words:
            if not w & tail:
                break
            pages += 1
        else:
            pos += len(words)
            if len(words) == 512:
                continue
        break
    return {"kind": kind, "head_pfn": head_pfn, "pages": pages, "index": pfn - head_pfn, "size": pages * page_size}


def _read_words(fd: int, index: int, count: int) -> list[int]:
    try:
        data = os.pread(fd, count * 8, index * 8)
    except OSError as err:
        raise from_oserror(err, "cannot read /proc/kpageflags") from err
    mv = memoryview(data[: len(data) // 8 * 8]).cast("Q")
    return mv.tolist()


def translate(process: int | str | ProcessInfo, vaddr: int) -> Translation:
    """Translate one virtual address of ``process`` (pid, ``"self"``, name or ProcessInfo).

    Raises UsageError (bad address, kernel thread), NotFoundError / ProcessGoneError,
    PermissionDeniedError, UnmappedAddressError (names the nearest mappings).
    """
    return Translation.from_lookup(lookup(process, vaddr))


def lookup(process: int | str | ProcessInfo, vaddr: int) -> dict:
    """The answer :func:`translate` gives, as plain data: the same field names, nested dicts
    for ``entry``, ``mapping`` and ``huge``, ints for addresses. The CLI prints this; it needs
    no dataclass machinery, which keeps a one-address ``pyphys pagemap`` quick to start."""
    if not 0 <= vaddr < 1 << 64:
        raise UsageError(f"address {vaddr:#x} is not a 64-bit address")
    pid, name = _resolve_raw(process)
    page_size = PAGE_SIZE
    rows = read_maps_rows(pid)
    _check_user_address(vaddr, maps=rows)
    row = find_mapping(rows, vaddr)
    if row is None:
        raise _unmapped(pid, rows, vaddr, f"address {vaddr:#x}")
    fd = _open_pagemap(pid)
    notes: list[str] = []
    try:
        raw = _read_u64(fd, vaddr // page_size, f"/proc/{pid}/pagemap")
    finally:
        os.close(fd)
    if raw is None:
        _ensure_alive(pid, "while pyphys read its pagemap")
        raise RegionError(
            f"address {vaddr:#x} ({row[6] or '[anon]'}) lies outside the user address space "
            "the kernel's pagemap covers",
            "the [vsyscall] page is the kernel's, not the process's",
        )
    e = decode_fields(raw, pfn_visible=pfns_visible() if raw & L.PM_PFRAME_MASK == 0 else None)
    if e["pfn_hidden"]:
        notes.append("PFN hidden: the kernel zeroes it for readers without CAP_SYS_ADMIN (pagemap.rst); run as root")
    if e["unknown_bits"]:
        notes.append(f"bits 59-60 are set ({e['unknown_bits']:#x}); pagemap.rst documents them as zero")
    pfn = e["pfn"]
    phys = kflags = flags = count = huge = None
    if pfn is not None:
        phys = pfn * page_size + vaddr % page_size
        kfd, why = _open_table("kpageflags")
        if kfd is None:
            notes.append(f"kpageflags unavailable: {why}")
        else:
            try:
                kflags = _read_u64(kfd, pfn, "/proc/kpageflags")
                if kflags is not None:
                    flags = expand_flags(kflags, raw)
                    huge = _huge_page(kfd, pfn, kflags, page_size)
            finally:
                os.close(kfd)
        cfd, why = _open_table("kpagecount")
        if cfd is None:
            notes.append(f"kpagecount unavailable: {why}")
        else:
            try:
                count = _read_u64(cfd, pfn, "/proc/kpagecount")
            finally:
                os.close(cfd)
    elif e["swap_type"] is not None and not e["guard_region"]:
        areas = _swap_areas()
        if areas is not None and e["swap_type"] >= areas:
            notes.append(
                f"swap type {e['swap_type']} is not one of the {areas} swap areas in /proc/swaps: "
                "a special entry (migration, hwpoison, device-private or a PTE marker such as uffd-wp)"
            )
    elif not e["present"] and not e["swapped"]:
        notes.append("no page: never touched, or dropped (file pages) -- touch it and ask again")
    keys = ("start", "end", "perms", "offset", "dev", "inode", "path")
    return {
        "pid": pid,
        "process": name,
        "vaddr": vaddr,
        "page_size": page_size,
        "entry": e,
        "mapping": dict(zip(keys, row)),
        "phys_addr": phys,
        "kpageflags": kflags,
        "flags": flags,
        "kpagecount": count,
        "huge": huge,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------
# Ranges and whole processes
# ---------------------------------------------------------------------------------------
@lazy_dataclass(frozen=True)
class PageRecord:
    """One virtual page of a scan."""

    vaddr: int
    entry: int  # raw pagemap entry
    kpageflags: int | None  # raw kernel word (None: not present, hidden, unreadable)
    kpagecount: int | None
    mapping: Mapping

    @property
    def decoded(self) -> PagemapEntry:
        return decode_entry(self.entry, pfn_visible=None)

    @property
    def present(self) -> bool:
        return bool(self.entry & L.PM_PRESENT)

    @property
    def pfn(self) -> int | None:
        return self.decoded.pfn

    @property
    def flags(self) -> int:
        """kpageflags expanded as page-types -r does, with the pagemap bits folded in."""
        return expand_flags(self.kpageflags or 0, self.entry)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return flag_names(self.flags)


@lazy_dataclass(frozen=True)
class PageRun:
    """Consecutive virtual pages on consecutive frames (or consecutive swap slots, or all not
    present) with the same pagemap bits, kpageflags and (if read) kpagecount."""

    vaddr: int
    pages: int
    page_size: int
    entry: int  # the first page's raw pagemap entry
    kpageflags: int | None
    kpagecount: int | None
    mapping: Mapping
    step: int = 0  # +1 ascending frames (or swap slots), -1 descending, 0 single

    @property
    def end(self) -> int:
        return self.vaddr + self.pages * self.page_size

    @property
    def last_pfn(self) -> int | None:
        """PFN of the run's last page (first + (pages - 1) * step)."""
        p = self.pfn
        return None if p is None else p + (self.pages - 1) * self.step

    @property
    def decoded(self) -> PagemapEntry:
        return decode_entry(self.entry, pfn_visible=None)

    @property
    def pfn(self) -> int | None:
        return self.decoded.pfn

    @property
    def flags(self) -> int:
        return expand_flags(self.kpageflags or 0, self.entry)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return flag_names(self.flags)

    @property
    def huge(self) -> str | None:
        """``THP`` or ``hugetlb`` when the frames belong to huge pages."""
        k = self.kpageflags or 0
        if k & _bit(L.KPF_HUGE):
            return "hugetlb"
        if k & _bit(L.KPF_THP):
            return "THP"
        return None


@lazy_dataclass(frozen=True)
class PageChunk:
    """Up to CHUNK_PAGES consecutive pages of one mapping, as parallel arrays (low-level)."""

    mapping: Mapping
    vaddr: int
    page_size: int
    entries: memoryview  # format 'Q': raw pagemap entries
    kpageflags: array | None  # array('Q'): raw kpageflags per page, 0 where no frame is known
    kpagecount: array | None  # array('Q')


@lazy_dataclass(frozen=True)
class FlagCount:
    """One row of a summary: how many pages carry exactly this flag word."""

    flags: int
    pages: int
    names: tuple[str, ...]
    symbolic: str


@lazy_dataclass()
class Summary:
    """Page counts by flag set over a scan (what ``page-types -p PID`` prints).

    ``raw`` maps ``kpageflags | (pagemap entry bits 55-63)`` to a page count for every present
    or swapped page; :meth:`rows` turns it into page-types' views.
    """

    pid: int
    process: str
    page_size: int
    ranges: list[tuple[int, int]]
    raw: dict[int, int]
    present: int
    swapped: int
    not_present: int
    pfns_hidden: bool
    kpageflags_read: bool
    notes: list[str]

    @property
    def total(self) -> int:
        return self.present + self.swapped

    def rows(self, view: str = "expanded") -> list[FlagCount]:
        """Counts by flag word, sorted by flags. ``view``: ``expanded`` (page-types -r plus
        uffd-wp/guard), ``well-known`` (page-types' default) or ``raw`` (kernel words)."""
        return [FlagCount(f, n, flag_names(f), symbolic_flags(f)) for f, n in summary_rows(self.raw, view)]

    def huge_pages(self) -> dict[str, int]:
        """Base pages that belong to transparent huge pages and to hugetlb pages."""
        return huge_page_counts(self.raw)

    def to_dict(self, view: str = "expanded") -> dict:
        from dataclasses import asdict

        return summary_json(asdict(self), view)


def summary_rows(raw: dict[int, int], view: str = "expanded") -> list[tuple[int, int]]:
    """``(flags, pages)`` sorted by flags, from :attr:`Summary.raw` in one of the views."""
    if view not in ("expanded", "well-known", "raw"):
        raise ValueError(f"unknown view {view!r}")
    out: dict[int, int] = {}
    for key, n in raw.items():
        kflags, pme = key & L.PM_PFRAME_MASK, key & L.PM_FLAGS_MASK
        if view == "expanded":
            f = expand_flags(kflags, pme)
        elif view == "well-known":
            f = well_known_flags(kflags)
        else:
            f = kflags
        out[f] = out.get(f, 0) + n
    return sorted(out.items())


def huge_page_counts(raw: dict[int, int]) -> dict[str, int]:
    """Base pages in transparent huge pages and in hugetlb pages, from :attr:`Summary.raw`."""
    thp = sum(n for k, n in raw.items() if k & _bit(L.KPF_THP))
    tlb = sum(n for k, n in raw.items() if k & _bit(L.KPF_HUGE))
    return {"THP": thp, "hugetlb": tlb}


def summary_json(d: dict, view: str = "expanded") -> dict:
    """JSON-ready form of :func:`summary_counts` data (or a :class:`Summary`'s fields)."""
    return {
        "pid": d["pid"],
        "process": d["process"],
        "page_size": d["page_size"],
        "ranges": [[hex(a), hex(b)] for a, b in d["ranges"]],
        "present": d["present"],
        "swapped": d["swapped"],
        "not_present": d["not_present"],
        "total": d["present"] + d["swapped"],
        "pfns_hidden": d["pfns_hidden"],
        "kpageflags_read": d["kpageflags_read"],
        "huge_pages": huge_page_counts(d["raw"]),
        "view": view,
        "rows": [
            {"flags": f"{f:#018x}", "pages": n, "symbolic": symbolic_flags(f), "names": list(flag_names(f))}
            for f, n in summary_rows(d["raw"], view)
        ],
        "notes": list(d["notes"]),
    }


class _PfnTable:
    """A sparse, PFN-indexed copy of /proc/kpageflags or /proc/kpagecount, filled on demand.

    Backed by a private anonymous mapping sized for the highest PFN seen: only the windows that
    were read occupy memory. Slot 0 stays 0: scans send every page without a known frame there.
    """

    def __init__(self, fd: int, name: str, wsh: int = _WSH):
        import mmap

        self._mmap_mod = mmap
        self.fd = fd
        self.name = name
        self.wsh = wsh  # log2 of the window: PFNs are read 2**wsh at a time
        self.npfn = 0
        self.map = None
        self.buf: memoryview | None = None
        self.view: memoryview | None = None
        self.done: set = set()  # windows read so far
        self.want = bytearray()  # scratch bitmap of windows to read, all zero between loads

    def _reserve(self, npfn: int) -> None:
        mmap = self._mmap_mod
        npfn = max(npfn + (npfn >> 2), 1 << 20)
        wsh = self.wsh
        npfn = (npfn + (1 << wsh) - 1) >> wsh << wsh
        if self.view is not None:
            self.view.release()
            self.buf.release()
        if self.map is None:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
            self.map = mmap.mmap(-1, npfn * 8, flags=flags)
        else:
            self.map.resize(npfn * 8)  # mremap: keeps what was loaded
        self.buf = memoryview(self.map)
        self.view = self.buf.cast("Q")
        self.want.extend(bytes((npfn >> wsh) - len(self.want)))
        self.npfn = npfn

    def load(self, windows: set) -> None:
        """Read every window in ``windows`` (window = PFN >> self.wsh) not read yet."""
        need = windows - self.done  # C-level set difference: most windows repeat across chunks
        if not need:
            return
        first, last = min(need), max(need)
        if last >= self.npfn >> self.wsh:
            self._reserve((last + 1) << self.wsh)
        want = self.want
        from collections import deque  # (not at the top: a one-address lookup never loads windows)

        deque(map(setitem, repeat(want), need, repeat(1)), 0)  # mark them in a bitmap, in C
        buf, fd, find, preadv = self.buf, self.fd, want.find, os.preadv
        shift = self.wsh + 3  # window number -> byte offset in the table (8 bytes per PFN)
        pos, end = first, last + 1
        try:
            while pos < end:
                a = find(1, pos, end)
                if a < 0:
                    break
                b = find(0, a, end)
                if b < 0:
                    b = end
                # one read per run of adjacent windows; a short read past the last PFN leaves
                # zeros, which is what a hole reads as
                preadv(fd, [buf[a << shift : b << shift]], a << shift)
                pos = b
        except OSError as err:
            raise from_oserror(err, f"cannot read /proc/{self.name}") from err
        want[first:end] = bytes(end - first)
        self.done |= need
        if first == 0:
            self.view[0] = 0

    def close(self) -> None:
        if self.view is not None:
            self.view.release()
            self.buf.release()
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


def _runs_of(sorted_ints: list[int]):
    """``(first, last + 1)`` for each run of consecutive integers."""
    i, n = 0, len(sorted_ints)
    while i < n:
        j = i
        while j + 1 < n and sorted_ints[j + 1] == sorted_ints[j] + 1:
            j += 1
        yield sorted_ints[i], sorted_ints[j] + 1
        i = j + 1


# Python has no vector instructions, but int.from_bytes() turns a chunk of pagemap entries into
# one big integer, and AND / shift / multiply on it run in C over the whole chunk. Each entry
# is a 64-bit lane; the operations below never carry from one lane into the next.
_LANE_CACHE: dict[tuple[int, int], int] = {}


def _lanes(value: int, m: int) -> int:
    """``value`` repeated in each of ``m`` 64-bit lanes."""
    key = (value, m)
    got = _LANE_CACHE.get(key)
    if got is None:
        got = int.from_bytes(value.to_bytes(8, "little") * m, "little")
        if len(_LANE_CACHE) > 64:
            _LANE_CACHE.clear()
        _LANE_CACHE[key] = got
    return got


def _pfn_lanes(data: bytes) -> int:
    """The chunk as lanes holding the PFN of each present entry and 0 for the others."""
    m = len(data) >> 3
    e = int.from_bytes(data, "little")
    present = (e >> 63) & _lanes(1, m)  # 1 in lanes whose bit 63 is set
    return e & (present * L.PM_PFRAME_MASK)  # 1 * mask fits in a lane: no carry


def _windows(pfns: int, nbytes: int, wsh: int = _WSH) -> set:
    """The set of kpageflags windows (PFN >> wsh) the lanes of ``pfns`` fall in."""
    w = (pfns >> wsh) & _lanes((1 << (64 - wsh)) - 1, nbytes >> 3)
    return set(memoryview(w.to_bytes(nbytes, "little")).cast("Q"))


class _Scan:
    """A process opened for scanning: its maps, pagemap and (when allowed) the PFN tables."""

    def __init__(self, process, *, kpageflags: bool = True, kpagecount: bool = False, whole: bool = True):
        self.pid, self.name = _resolve_raw(process)
        self.page_size = PAGE_SIZE
        self.rows = read_maps_rows(self.pid)  # tuples; Mapping objects only where records need them
        self._mappings: dict[int, Mapping] = {}
        self.fd = _open_pagemap(self.pid)
        self.notes: list[str] = []
        self.visible = pfns_visible()
        self.wsh = _WSH if whole else _WSH_RANGE
        self.flags_table = self.count_table = None
        if not self.visible:
            self.notes.append(
                "PFNs hidden: the kernel zeroes them for readers without CAP_SYS_ADMIN "
                "(pagemap.rst); kpageflags and kpagecount need a PFN -- run as root"
            )
        else:
            if kpageflags:
                fd, why = _open_table("kpageflags")
                if fd is None:
                    self.notes.append(f"kpageflags unavailable: {why}")
                else:
                    self.flags_table = _PfnTable(fd, "kpageflags", self.wsh)
            if kpagecount:
                fd, why = _open_table("kpagecount")
                if fd is None:
                    self.notes.append(f"kpagecount unavailable: {why}")
                else:
                    self.count_table = _PfnTable(fd, "kpagecount", self.wsh)

    def __enter__(self) -> _Scan:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for t in (self.flags_table, self.count_table):
            if t is not None:
                t.close()
        self.flags_table = self.count_table = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def mapping(self, i: int) -> Mapping:
        """The :class:`Mapping` of row ``i`` (one object per row, made on first use)."""
        m = self._mappings.get(i)
        if m is None:
            m = self._mappings[i] = Mapping(*self.rows[i])
        return m

    def pieces(self, start: int | None, end: int | None) -> list[tuple[int, int, int]]:
        """``(row, lo, hi)``: the mappings to walk, all of them or clipped to ``[start, end)``."""
        if start is None:
            return [(i, r[0], r[1]) for i, r in enumerate(self.rows)]
        parts = [
            (i, max(r[0], start), min(r[1], end)) for i, r in enumerate(self.rows) if max(r[0], start) < min(r[1], end)
        ]
        if not parts:
            raise _unmapped(self.pid, self.rows, start, f"range {start:#x}-{end:#x}")
        return parts

    def raw_chunks(self, start: int | None = None, end: int | None = None):
        """Yield ``(row, vaddr, bytes)``: pagemap entries, CHUNK_PAGES at a time."""
        ps = self.page_size
        for row, lo, hi in self.pieces(start, end):
            vpn, vend = lo // ps, (hi + ps - 1) // ps
            while vpn < vend:
                n = min(CHUNK_PAGES, vend - vpn)
                try:
                    data = os.pread(self.fd, n * 8, vpn * 8)
                except OSError as err:
                    raise from_oserror(err, f"cannot read /proc/{self.pid}/pagemap") from err
                if len(data) < 8:
                    # 0 bytes: the mm is gone (process exited) or we are past TASK_SIZE,
                    # where the kernel lists [vsyscall] but has no page tables for us
                    _ensure_alive(self.pid, "during the scan")
                    r = self.rows[row]
                    self.notes.append(
                        f"{r[6] or '[anon]'} at {r[0]:#x} lies above the user address space pagemap covers: skipped"
                    )
                    break
                if len(data) % 8:
                    data = data[: len(data) // 8 * 8]
                yield row, vpn * ps, data
                vpn += len(data) >> 3

    def chunks(self, start: int | None = None, end: int | None = None) -> Iterator[PageChunk]:
        """Yield :class:`PageChunk` with per-page kpageflags/kpagecount gathered."""
        from array import array

        ft, ct = self.flags_table, self.count_table
        for row, vaddr, data in self.raw_chunks(start, end):
            mapping = self.mapping(row)
            entries = memoryview(data).cast("Q")
            kf = kc = None
            if ft is not None or ct is not None:
                pfns = _pfn_lanes(data)
                wins = _windows(pfns, len(data), self.wsh)
                pmv = memoryview(pfns.to_bytes(len(data), "little")).cast("Q")
                if ft is not None:
                    ft.load(wins)
                    kf = array("Q", map(getitem, repeat(ft.view), pmv))
                if ct is not None:
                    ct.load(wins)
                    kc = array("Q", map(getitem, repeat(ct.view), pmv))
            yield PageChunk(mapping, vaddr, self.page_size, entries, kf, kc)


def _parse_process_and_range(start, end):
    if (start is None) != (end is None):
        raise UsageError("give both start and end, or neither (every mapping)")
    if start is not None:
        _check_user_address(start, "start")
        if end <= start:
            raise UsageError(f"empty or reversed range {start:#x}-{end:#x}", "END is exclusive and must be above START")
        if end > 1 << 64:
            raise UsageError(f"end {end:#x} is not a 64-bit address")


def scan_chunks(
    process, start: int | None = None, end: int | None = None, *, kpagecount: bool = False
) -> Iterator[PageChunk]:
    """Low-level scan: :class:`PageChunk` arrays for every mapping (or ``[start, end)``)."""
    _parse_process_and_range(start, end)
    with _Scan(process, kpagecount=kpagecount, whole=start is None) as s:
        yield from s.chunks(start, end)


def scan(
    process, start: int | None = None, end: int | None = None, *, kpagecount: bool = False
) -> Iterator[PageRecord]:
    """One :class:`PageRecord` per virtual page of every mapping (or of ``[start, end)``,
    END exclusive), lazily: iterate, or ``list()`` a small range."""
    for c in scan_chunks(process, start, end, kpagecount=kpagecount):
        kf, kc, m, ps = c.kpageflags, c.kpagecount, c.mapping, c.page_size
        for i, e in enumerate(c.entries):
            yield PageRecord(
                c.vaddr + i * ps,
                e,
                kf[i] if kf is not None and e >> 63 else None,
                kc[i] if kc is not None and e >> 63 else None,
                m,
            )


def runs(process, start: int | None = None, end: int | None = None, *, kpagecount: bool = False) -> Iterator[PageRun]:
    """:class:`PageRun` for each stretch of pages on consecutive frames (ascending, as
    page-types -l merges them, or descending, as the page allocator often hands them out), or
    consecutive swap slots, or with no page, with equal pagemap bits, kpageflags and kpagecount."""
    cur = None  # [vaddr, pages, entry, kflags, kcount, mapping, next vaddr, last frame, step]
    ps = PAGE_SIZE
    for c in scan_chunks(process, start, end, kpagecount=kpagecount):
        kf, kc, m = c.kpageflags, c.kpagecount, c.mapping
        ps = c.page_size
        va = c.vaddr
        for i, e in enumerate(c.entries):
            f = kf[i] if kf is not None and e >> 63 else None
            n = kc[i] if kc is not None and e >> 63 else None
            frame = e & L.PM_PFRAME_MASK
            # present frames count in PFNs, swap entries in offsets above the 5 type bits
            unit = 1 if e >> 63 else (1 << L.PM_SWAP_TYPE_BITS if e >> 62 else 0)
            if (
                cur is not None
                and cur[5] is m
                and cur[6] == va
                and cur[3] == f
                and cur[4] == n
                and (cur[2] ^ e) & L.PM_FLAGS_MASK == 0
            ):
                step = frame - cur[7]
                if unit == 0 or frame == 0 == cur[7]:
                    ok = True  # no page, or hidden frames: nothing to compare
                elif cur[1] == 1:
                    ok = step in (unit, -unit)
                else:
                    ok = step == cur[8]
                if ok:
                    cur[1] += 1
                    cur[6] = va + ps
                    cur[7] = frame
                    cur[8] = step
                    va += ps
                    continue
            if cur is not None:
                yield PageRun(cur[0], cur[1], ps, cur[2], cur[3], cur[4], cur[5], _step(cur[8], cur[2]))
            cur = [va, 1, e, f, n, m, va + ps, frame, 0]
            va += ps
    if cur is not None:
        yield PageRun(cur[0], cur[1], ps, cur[2], cur[3], cur[4], cur[5], _step(cur[8], cur[2]))


def _step(delta: int, entry: int) -> int:
    return 0 if delta == 0 else (1 if delta > 0 else -1)


def summarize(process, start: int | None = None, end: int | None = None) -> Summary:
    """Count pages by flag set over every mapping (or ``[start, end)``): ``page-types -p PID``.

    Does the same work page-types does (pagemap for every page, kpageflags for every present
    frame) without a Python object per page: chunks are decoded as big integers and counted
    with C-level iterators, kpageflags read in windows around the frames actually used.
    """
    return Summary(**summary_counts(process, start, end))


def summary_counts(process, start: int | None = None, end: int | None = None) -> dict:
    """:func:`summarize`'s answer as plain data (the fields of :class:`Summary`); the CLI
    formats it with :func:`summary_rows` without importing the dataclass machinery."""
    from collections import Counter

    _parse_process_and_range(start, end)
    with _Scan(process, whole=start is None) as s:
        summ = {
            "pid": s.pid,
            "process": s.name,
            "page_size": s.page_size,
            "ranges": [(start, end)] if start is not None else [(r[0], r[1]) for r in s.rows],
            "raw": {},
            "present": 0,
            "swapped": 0,
            "not_present": 0,
            "pfns_hidden": not s.visible,
            "kpageflags_read": s.flags_table is not None,
            "notes": [],
        }
        ft = s.flags_table
        counts: Counter = Counter()
        by_meta: Counter = Counter()
        chunks = _Loader(s, ft, start, end)
        try:
            _count_chunks(chunks, ft, counts, by_meta)
        finally:
            chunks.close()
        if _ALIASED in counts:
            del counts[_ALIASED]
            summ["notes"].append(
                "kpageflags words with bits 55-63 set were seen (no kernel defines them): "
                "they are merged with pagemap bits in this summary"
            )
        for g, n in by_meta.items():
            counts[_meta_to_pme(g)] += n
        for key, n in counts.items():
            if n <= 0:
                continue
            if key & L.PM_PRESENT:
                summ["present"] += n
            elif key & L.PM_SWAP:
                summ["swapped"] += n
            else:
                summ["not_present"] += n
                continue
            summ["raw"][key] = summ["raw"].get(key, 0) + n
        summ["notes"].extend(s.notes)
        return summ


_HIGH_BIT = bytes(128) + b"\x01" * 128  # 1 where bit 7 is set
_SOFT_DIRTY_TO_BIT3 = bytes(128) + b"\x08" * 128  # bit 7 -> bit 3
_BITS_59_60 = bytes((i >> 3 & 3) != 0 for i in range(256))  # 1 where bit 3 or 4 is set


def _select(g: int) -> bytes:
    """bytes.translate table: 1 for byte value ``g``, 0 for every other."""
    return b"\x00" * g + b"\x01" + b"\x00" * (255 - g)


def _meta_to_pme(g: int) -> int:
    """The meta byte of :func:`summarize` back to pagemap bits 55-63."""
    pme = (g & ~0x08) << 56
    if g & 0x08:
        pme |= L.PM_SOFT_DIRTY
    return pme


_ALIASED = -1  # marker key: a kpageflags word overlapped the pagemap bits 55-63


def _merge(counts, c, g: int) -> None:
    """Add kpageflags counts ``c`` of pages whose pagemap meta byte is ``g`` to ``counts``."""
    pme = _meta_to_pme(g)
    for k, n in c.items():
        if k & L.PM_FLAGS_MASK:
            counts[_ALIASED] = 1  # the summary keys would alias: note it (checked per distinct word)
        counts[k | pme] += n


def _count_chunks(chunks, ft, counts, by_meta) -> None:
    """The counting half of :func:`summary_counts`: ``chunks`` yields ``(data, pfns)`` with the
    kpageflags windows of ``pfns`` already loaded (``pfns`` None without kpageflags)."""
    from collections import Counter
    from itertools import compress

    for data, pfns in chunks:
        m = len(data) >> 3
        # the pagemap bits 55-63 of each entry, as one byte per page: bits 56-63 are byte 7;
        # soft-dirty (bit 55, top of byte 6) goes to bit 3 (entry bit 59, documented zero)
        hi = data[7::8]
        sd = data[6::8].translate(_SOFT_DIRTY_TO_BIT3)
        if hi.translate(_BITS_59_60).count(0) != m:
            # the kernel set bits documented as zero: count exactly, the slow way
            _count_slow(data, ft, counts)
            continue
        meta = (int.from_bytes(hi, "little") | int.from_bytes(sd, "little")).to_bytes(m, "little")
        groups = set(meta)
        present_groups = [g for g in groups if g & 0x80]
        for g in groups:
            if not g & 0x80:
                by_meta[g] += meta.count(g)
        if not present_groups:
            continue
        if ft is None:
            for g in present_groups:
                by_meta[g] += meta.count(g)
            continue
        lanes = memoryview(pfns.to_bytes(len(data), "little")).cast("Q")
        table = repeat(ft.view)
        if len(present_groups) == 1:
            # every lane without a frame reads slot 0, which is 0: take those out after
            g = present_groups[0]
            c = Counter(map(getitem, table, lanes))
            c[0] -= m - meta.count(g)
            _merge(counts, c, g)
        else:
            for g in present_groups:
                sel = meta.translate(_select(g))
                _merge(counts, Counter(map(getitem, table, compress(lanes, sel))), g)


class _Loader:
    """Feeds :func:`summary_counts`: pagemap is read chunk by chunk in a thread, up to two
    chunks ahead; the kpageflags windows of each chunk's frames are read as it is taken.

    pread releases the GIL, so the pagemap walk overlaps the counting on a second CPU. The
    kpageflags reads stay in the caller's thread: there are thousands of them, and a thread
    re-taking the GIL after each one convoyed behind the counting (measured: slower).
    Iterate for ``(data, pfns)``; errors in the thread are raised by the iteration. Call
    :meth:`close` before the scan's files are closed.
    """

    _END = object()

    def __init__(self, scan, ft, start, end):
        import queue
        import threading

        self._queue = queue.Queue(maxsize=2)
        self._full = queue.Full
        self._stop = False
        self._scan, self._ft, self._range = scan, ft, (start, end)
        self._thread = threading.Thread(target=self._run, name="pyphys-pagemap", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop:
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except self._full:
                continue
        return False

    def _run(self) -> None:
        try:
            for _row, _vaddr, data in self._scan.raw_chunks(*self._range):
                if not self._put((data, None)):
                    return
            self._put((self._END, None))
        except BaseException as err:  # raised in the consumer
            self._put((self._END, err))

    def __iter__(self):
        ft = self._ft
        while True:
            data, err = self._queue.get()
            if data is self._END:
                if err is not None:
                    raise err
                return
            if ft is None:
                yield data, None
                continue
            pfns = _pfn_lanes(data)
            ft.load(_windows(pfns, len(data), ft.wsh))
            yield data, pfns

    def close(self) -> None:
        self._stop = True
        self._thread.join()


def _count_slow(data: bytes, ft, counts) -> None:
    """Count one chunk entry by entry (used when pagemap sets bits documented as zero)."""
    view = None
    if ft is not None:
        pfns = _pfn_lanes(data)
        ft.load(_windows(pfns, len(data), ft.wsh))
        view = ft.view  # after load(): growing the table replaces the view
    for e in memoryview(data).cast("Q"):
        k = view[e & L.PM_PFRAME_MASK] if view is not None and e >> 63 else 0
        counts[k | (e & L.PM_FLAGS_MASK)] += 1


__all__ = [
    "CHUNK_PAGES",
    "PAGE_SIZE",
    "FlagCount",
    "HugePage",
    "PageChunk",
    "PageRecord",
    "PageRun",
    "PagemapEntry",
    "Summary",
    "Translation",
    "UnmappedAddressError",
    "decode_entry",
    "decode_fields",
    "entry_kind",
    "expand_flags",
    "flag_table",
    "FlagTable",
    "flag_bits",
    "flag_names",
    "huge_page_counts",
    "lookup",
    "lookup_json",
    "pfns_visible",
    "runs",
    "scan",
    "scan_chunks",
    "summarize",
    "summary_counts",
    "summary_json",
    "summary_rows",
    "symbolic_flags",
    "translate",
    "user_space_limit",
    "well_known_flags",
]
