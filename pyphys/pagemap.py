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
from dataclasses import dataclass, field

from pyphys import paths
from pyphys.errors import (
    NotFoundError,
    PermissionDeniedError,
    ProcessGoneError,
    PyphysError,
    RegionError,
    UsageError,
    from_oserror,
)
from pyphys.layouts import pagemap as L
from pyphys.procmaps import (
    Mapping,
    ProcessInfo,
    find_mapping,
    mappings_in,
    neighbours,
    process_info,
    read_maps,
    require_address_space,
    resolve_process,
)

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from array import array
    from collections.abc import Iterator

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# pagemap entries per pread: 64 Ki entries = 512 KiB. page-types reads the same batch size;
# big reads amortise the syscall and keep memory bounded per chunk.
CHUNK_PAGES = 1 << 16

# kpageflags/kpagecount are read in windows of 2**_WSH PFNs (512 bytes), only the windows some
# page of the scan falls in: a 4 GiB process's pages are spread over a wider PFN range shared
# with other processes, and the kernel spends ~0.2 us per PFN it reports.
_WSH = 6

CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h


class UnmappedAddressError(RegionError):
    """The address (or range) lies in no mapping; ``below``/``above`` are the nearest ones."""

    def __init__(self, message: str, hint: str | None = None, below: Mapping | None = None,
                 above: Mapping | None = None):
        super().__init__(message, hint)
        self.below = below
        self.above = above


# ---------------------------------------------------------------------------------------
# Decoding one pagemap entry and flag words
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PagemapEntry:
    """One decoded /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst)."""

    raw: int
    present: bool
    swapped: bool
    soft_dirty: bool
    exclusive: bool             # "page exclusively mapped" (since 4.2)
    uffd_wp: bool               # "pte is uffd-wp write-protected" (since 5.13)
    guard_region: bool          # "pte is a guard region" (since 6.15)
    file_or_shared_anon: bool   # "page is file-page or shared-anon" (since 3.5)
    pfn: int | None             # present and visible, else None
    pfn_hidden: bool            # the kernel zeroed the frame field (reader lacks CAP_SYS_ADMIN)
    swap_type: int | None       # swapped and visible
    swap_offset: int | None
    unknown_bits: int           # bits 59-60, documented as zero

    @property
    def kind(self) -> str:
        """``present``, ``guard region``, ``swapped`` or ``not present``."""
        if self.present:
            return "present"
        if self.guard_region:
            return "guard region"  # a PTE marker, which the kernel reports with the swap bit
        if self.swapped:
            return "swapped"
        return "not present"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["raw"] = f"{self.raw:#018x}"
        d["kind"] = self.kind
        return d


def decode_entry(raw: int, *, pfn_visible: bool | None = None) -> PagemapEntry:
    """Decode a 64-bit pagemap entry.

    ``pfn_visible``: whether the reader had CAP_SYS_ADMIN. ``None`` infers it from the entry:
    a present page (or swap entry) whose frame field is 0 was zeroed by the kernel (user pages
    never live in frame 0 on x86; swap offset 0 is the swap header).
    """
    if not 0 <= raw < 1 << 64:
        raise ValueError(f"pagemap entry {raw!r} is not a 64-bit value")
    present = bool(raw & L.PM_PRESENT)
    swapped = bool(raw & L.PM_SWAP)
    frame = raw & L.PM_PFRAME_MASK
    hidden = (present or swapped) and frame == 0 and not pfn_visible
    if pfn_visible is False and (present or swapped):
        hidden = True
    pfn = frame if present and not hidden else None
    swap_type = frame & L.PM_SWAP_TYPE_MASK if swapped and not present and not hidden else None
    swap_offset = frame >> L.PM_SWAP_TYPE_BITS if swap_type is not None else None
    return PagemapEntry(
        raw=raw,
        present=present,
        swapped=swapped,
        soft_dirty=bool(raw & L.PM_SOFT_DIRTY),
        exclusive=bool(raw & L.PM_MMAP_EXCLUSIVE),
        uffd_wp=bool(raw & L.PM_UFFD_WP),
        guard_region=bool(raw & L.PM_GUARD_REGION),
        file_or_shared_anon=bool(raw & L.PM_FILE),
        pfn=pfn,
        pfn_hidden=hidden,
        swap_type=swap_type,
        swap_offset=swap_offset,
        unknown_bits=raw & sum(1 << b for b in L.PM_ZERO_BITS),
    )


def _bit(n: int) -> int:
    return 1 << n


def expand_flags(kpageflags: int, pme: int = 0) -> int:
    """kpageflags as page-types -r shows them, plus the pagemap bits it folds in.

    Port of expand_overloaded_flags() in tools/vm/page-types.c: PG_mappedtodisk on an
    anonymous page means anon_exclusive; slab pages reuse private/active/error; PG_reclaim
    without writeback is readahead. From the pagemap entry ``pme``: soft-dirty (bit 40),
    file (61), swap (62), mmap_exclusive (63); pyphys adds uffd-wp (57) and guard region (58),
    which postdate page-types.
    """
    f = kpageflags
    if f & _bit(L.KPF_ANON) and f & _bit(L.KPF_MAPPEDTODISK):
        f ^= _bit(L.KPF_MAPPEDTODISK) | _bit(L.KPF_ANON_EXCLUSIVE)
    if f & _bit(L.KPF_SLAB):
        if f & _bit(L.KPF_PRIVATE):
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


_LONG_NAMES = {bit: name[2:] for bit, name in L.PAGE_TYPES_NAMES}
_LONG_NAMES.update(dict(L.PYPHYS_EXTRA_NAMES))
_LETTERS = tuple((bit, name[0]) for bit, name in sorted(L.PAGE_TYPES_NAMES))


def flag_names(flags: int) -> tuple[str, ...]:
    """Long names of the set bits, lowest first; unnamed bits as ``bitN``."""
    return tuple(_LONG_NAMES.get(b, f"bit{b}") for b in range(64) if flags >> b & 1)


def symbolic_flags(flags: int) -> str:
    """page-types' symbolic-flags column: one letter per named bit, ``_`` when clear."""
    return "".join(letter if flags >> bit & 1 else "_" for bit, letter in _LETTERS)


def flag_bits(names: str) -> int:
    """Bits for a comma-separated list of long names (or ``bitN``); UsageError on unknown."""
    by_name = {v: k for k, v in _LONG_NAMES.items()}
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


def _check_user_address(addr: int, what: str = "address", maps: list[Mapping] | None = None) -> None:
    if addr < 0 or addr >= 1 << 64:
        raise UsageError(f"{what} {addr:#x} is not a 64-bit address")
    if addr >= 1 << 47:  # only then is it worth reading cpuinfo
        limit = user_space_limit()
        if limit is not None and addr >= limit:
            mapping = find_mapping(maps, addr) if maps else None
            if mapping is not None:
                raise RegionError(f"{what} {addr:#x} is in {mapping.label}, which the kernel maps into "
                                  f"every process above the user-space limit {limit - PAGE_SIZE:#x}: "
                                  "pagemap has no entry for it", "it is the kernel's page, not the process's")
            raise UsageError(f"{what} {addr:#x} is above the user-space limit {limit - PAGE_SIZE:#x}: "
                             "pagemap only covers user space",
                             "for a kernel address, try `pyphys ksym`")


# ---------------------------------------------------------------------------------------
# Opening a process
# ---------------------------------------------------------------------------------------
def _resolve(process: int | str | ProcessInfo) -> ProcessInfo:
    info = process if isinstance(process, ProcessInfo) else resolve_process(process)
    require_address_space(info)
    return info


def _open_pagemap(pid: int) -> int:
    path = paths.proc(pid, "pagemap")
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise ProcessGoneError(f"process {pid} no longer exists ({path})") from err
    except PermissionError as err:
        raise PermissionDeniedError(
            f"cannot read {path}: {os.strerror(err.errno)}",
            "reading another user's page tables needs root (ptrace read access)") from err
    except OSError as err:
        raise from_oserror(err, f"cannot open {path}") from err


def _ensure_alive(pid: int, during: str) -> None:
    """Raise ProcessGoneError if ``pid`` exited (or is a zombie) -- used after a short read."""
    try:
        info = process_info(pid)
    except NotFoundError:
        raise ProcessGoneError(f"process {pid} exited {during}") from None
    if info.zombie:
        raise ProcessGoneError(f"process {pid} ({info.name}) exited {during}: it is a zombie now")


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
@dataclass(frozen=True)
class HugePage:
    """The compound page a frame belongs to: a transparent huge page or a hugetlb page."""

    kind: str        # "THP" or "hugetlb"
    head_pfn: int
    pages: int       # base pages in it
    index: int       # which of them this frame is
    size: int        # bytes


@dataclass(frozen=True)
class Translation:
    """Everything pagemap, kpageflags and kpagecount say about one virtual address."""

    pid: int
    process: str
    vaddr: int
    page_size: int
    entry: PagemapEntry
    mapping: Mapping
    phys_addr: int | None            # pfn * page_size + offset, when the PFN is known
    kpageflags: int | None           # the kernel's raw word
    flags: int | None                # expanded as page-types -r does (see expand_flags)
    kpagecount: int | None
    huge: HugePage | None
    notes: tuple[str, ...] = ()

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
        if self.flags is None:
            return flag_names(expand_flags(0, self.entry.raw))
        return flag_names(self.flags)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (addresses as hex strings)."""
        m = self.mapping
        return {
            "pid": self.pid,
            "process": self.process,
            "vaddr": hex(self.vaddr),
            "vpage": hex(self.vpage),
            "offset": hex(self.offset),
            "page_size": self.page_size,
            "entry": self.entry.to_dict(),
            "pfn": None if self.pfn is None else hex(self.pfn),
            "phys_addr": None if self.phys_addr is None else hex(self.phys_addr),
            "kpageflags": None if self.kpageflags is None else hex(self.kpageflags),
            "flags": None if self.flags is None else hex(self.flags),
            "flag_names": list(self.flag_names),
            "kpagecount": self.kpagecount,
            "huge": None if self.huge is None else {
                "kind": self.huge.kind, "head_pfn": hex(self.huge.head_pfn), "pages": self.huge.pages,
                "index": self.huge.index, "size": self.huge.size},
            "mapping": {"start": hex(m.start), "end": hex(m.end), "perms": m.perms,
                        "offset": hex(m.offset), "dev": m.dev, "inode": m.inode, "path": m.path},
            "notes": list(self.notes),
        }


def _unmapped(pid: int, maps: list[Mapping], addr: int, what: str) -> UnmappedAddressError:
    below, above = neighbours(maps, addr)
    parts = []
    if below is not None:
        parts.append(f"below: {below.describe()} (ends {addr - below.end:#x} bytes before)")
    if above is not None:
        parts.append(f"above: {above.describe()} (starts {above.start - addr:#x} bytes after)")
    near = "; ".join(parts) if parts else "the process has no mappings"
    return UnmappedAddressError(f"{what} is not mapped in process {pid}; nearest mappings: {near}",
                                f"see /proc/{pid}/maps", below, above)


def _huge_page(fd: int, pfn: int, kflags: int, page_size: int) -> HugePage | None:
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
    return HugePage(kind, head_pfn, pages, pfn - head_pfn, pages * page_size)


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
    if not 0 <= vaddr < 1 << 64:
        raise UsageError(f"address {vaddr:#x} is not a 64-bit address")
    info = _resolve(process)
    pid, page_size = info.pid, PAGE_SIZE
    maps = read_maps(pid)
    _check_user_address(vaddr, maps=maps)
    mapping = find_mapping(maps, vaddr)
    if mapping is None:
        raise _unmapped(pid, maps, vaddr, f"address {vaddr:#x}")
    fd = _open_pagemap(pid)
    notes: list[str] = []
    try:
        raw = _read_u64(fd, vaddr // page_size, f"/proc/{pid}/pagemap")
    finally:
        os.close(fd)
    if raw is None:
        _ensure_alive(pid, "while pyphys read its pagemap")
        raise RegionError(f"address {vaddr:#x} ({mapping.label}) lies outside the user address space the "
                          "kernel's pagemap covers", "the [vsyscall] page is the kernel's, not the process's")
    visible = pfns_visible()
    entry = decode_entry(raw, pfn_visible=visible if raw & L.PM_PFRAME_MASK == 0 else None)
    if entry.pfn_hidden:
        notes.append("PFN hidden: the kernel zeroes it for readers without CAP_SYS_ADMIN "
                     "(pagemap.rst); run as root")
    if entry.unknown_bits:
        notes.append(f"bits 59-60 are set ({entry.unknown_bits:#x}); pagemap.rst documents them as zero")
    phys = kflags = flags = count = None
    huge = None
    if entry.pfn is not None:
        phys = entry.pfn * page_size + vaddr % page_size
        kfd, why = _open_table("kpageflags")
        if kfd is None:
            notes.append(f"kpageflags unavailable: {why}")
        else:
            try:
                kflags = _read_u64(kfd, entry.pfn, "/proc/kpageflags")
                if kflags is not None:
                    flags = expand_flags(kflags, raw)
                    huge = _huge_page(kfd, entry.pfn, kflags, page_size)
            finally:
                os.close(kfd)
        cfd, why = _open_table("kpagecount")
        if cfd is None:
            notes.append(f"kpagecount unavailable: {why}")
        else:
            try:
                count = _read_u64(cfd, entry.pfn, "/proc/kpagecount")
            finally:
                os.close(cfd)
    elif entry.swap_type is not None and not entry.guard_region:
        areas = _swap_areas()
        if areas is not None and entry.swap_type >= areas:
            notes.append(f"swap type {entry.swap_type} is not one of the {areas} swap areas in /proc/swaps: "
                         "a special entry (migration, hwpoison, device-private or a PTE marker such as uffd-wp)")
    elif not entry.present and not entry.swapped:
        notes.append("no page: never touched, or dropped (file pages) -- touch it and ask again")
    return Translation(pid, info.name, vaddr, page_size, entry, mapping, phys, kflags, flags, count,
                       huge, tuple(notes))


# ---------------------------------------------------------------------------------------
# Ranges and whole processes
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageRecord:
    """One virtual page of a scan."""

    vaddr: int
    entry: int                      # raw pagemap entry
    kpageflags: int | None          # raw kernel word (None: not present, hidden, unreadable)
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


@dataclass(frozen=True)
class PageRun:
    """Consecutive virtual pages on consecutive frames (or consecutive swap slots, or all not
    present) with the same pagemap bits, kpageflags and (if read) kpagecount."""

    vaddr: int
    pages: int
    page_size: int
    entry: int                      # the first page's raw pagemap entry
    kpageflags: int | None
    kpagecount: int | None
    mapping: Mapping
    step: int = 0                   # +1 ascending frames (or swap slots), -1 descending, 0 single

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


@dataclass(frozen=True)
class PageChunk:
    """Up to CHUNK_PAGES consecutive pages of one mapping, as parallel arrays (low-level)."""

    mapping: Mapping
    vaddr: int
    page_size: int
    entries: memoryview             # format 'Q': raw pagemap entries
    kpageflags: array | None        # array('Q'): raw kpageflags per page, 0 where no frame is known
    kpagecount: array | None        # array('Q')


@dataclass(frozen=True)
class FlagCount:
    """One row of a summary: how many pages carry exactly this flag word."""

    flags: int
    pages: int
    names: tuple[str, ...]
    symbolic: str


@dataclass
class Summary:
    """Page counts by flag set over a scan (what ``page-types -p PID`` prints).

    ``raw`` maps ``kpageflags | (pagemap entry bits 55-63)`` to a page count for every present
    or swapped page; :meth:`rows` turns it into page-types' views.
    """

    pid: int
    process: str
    page_size: int
    ranges: list[tuple[int, int]]
    raw: dict[int, int] = field(default_factory=dict)
    present: int = 0
    swapped: int = 0
    not_present: int = 0
    pfns_hidden: bool = False
    kpageflags_read: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.present + self.swapped

    def rows(self, view: str = "expanded") -> list[FlagCount]:
        """Counts by flag word, sorted by flags. ``view``: ``expanded`` (page-types -r plus
        uffd-wp/guard), ``well-known`` (page-types' default) or ``raw`` (kernel words)."""
        if view not in ("expanded", "well-known", "raw"):
            raise ValueError(f"unknown view {view!r}")
        out: dict[int, int] = {}
        for key, n in self.raw.items():
            kflags, pme = key & L.PM_PFRAME_MASK, key & L.PM_FLAGS_MASK
            if view == "expanded":
                f = expand_flags(kflags, pme)
            elif view == "well-known":
                f = well_known_flags(kflags)
            else:
                f = kflags
            out[f] = out.get(f, 0) + n
        return [FlagCount(f, n, flag_names(f), symbolic_flags(f)) for f, n in sorted(out.items())]

    def huge_pages(self) -> dict[str, int]:
        """Base pages that belong to transparent huge pages and to hugetlb pages."""
        thp = sum(n for k, n in self.raw.items() if k & _bit(L.KPF_THP))
        tlb = sum(n for k, n in self.raw.items() if k & _bit(L.KPF_HUGE))
        return {"THP": thp, "hugetlb": tlb}

    def to_dict(self, view: str = "expanded") -> dict:
        return {
            "pid": self.pid, "process": self.process, "page_size": self.page_size,
            "ranges": [[hex(a), hex(b)] for a, b in self.ranges],
            "present": self.present, "swapped": self.swapped, "not_present": self.not_present,
            "total": self.total, "pfns_hidden": self.pfns_hidden, "kpageflags_read": self.kpageflags_read,
            "huge_pages": self.huge_pages(), "view": view,
            "rows": [{"flags": f"{r.flags:#018x}", "pages": r.pages, "symbolic": r.symbolic,
                      "names": list(r.names)} for r in self.rows(view)],
            "notes": list(self.notes),
        }


class _PfnTable:
    """A sparse, PFN-indexed copy of /proc/kpageflags or /proc/kpagecount, filled on demand.

    Backed by a private anonymous mapping sized for the highest PFN seen: only the windows that
    were read occupy memory. Slot 0 stays 0: scans send every page without a known frame there.
    """

    def __init__(self, fd: int, name: str):
        import mmap

        self._mmap_mod = mmap
        self.fd = fd
        self.name = name
        self.npfn = 0
        self.map = None
        self.buf: memoryview | None = None
        self.view: memoryview | None = None
        self.loaded = bytearray()

    def _reserve(self, npfn: int) -> None:
        mmap = self._mmap_mod
        npfn = max(npfn + (npfn >> 2), 1 << 20)
        npfn = (npfn + (1 << _WSH) - 1) >> _WSH << _WSH
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
        self.loaded.extend(bytes((npfn >> _WSH) - len(self.loaded)))
        self.npfn = npfn

    def load(self, windows) -> None:
        """Read every not yet loaded window in ``windows`` (window = PFN >> _WSH)."""
        loaded = self.loaded
        nwin = len(loaded)
        need = sorted(w for w in windows if w >= nwin or not loaded[w])
        if not need:
            return
        if need[-1] >= nwin:
            self._reserve((need[-1] + 1) << _WSH)
            loaded = self.loaded
        buf, fd = self.buf, self.fd
        i, n = 0, len(need)
        while i < n:
            j = i
            while j + 1 < n and need[j + 1] == need[j] + 1:
                j += 1
            lo, hi = need[i] << _WSH, (need[j] + 1) << _WSH
            try:
                # a short read past the last PFN leaves zeros, which is what a hole reads as
                os.preadv(fd, [buf[lo * 8:hi * 8]], lo * 8)
            except OSError as err:
                raise from_oserror(err, f"cannot read /proc/{self.name}") from err
            loaded[need[i]:need[j] + 1] = b"\x01" * (j - i + 1)
            i = j + 1
        if need[0] == 0:
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
    present = (e >> 63) & _lanes(1, m)          # 1 in lanes whose bit 63 is set
    return e & (present * L.PM_PFRAME_MASK)     # 1 * mask fits in a lane: no carry


def _windows(pfns: int, nbytes: int) -> set:
    """The set of kpageflags windows (PFN >> _WSH) the lanes of ``pfns`` fall in."""
    w = (pfns >> _WSH) & _lanes((1 << (64 - _WSH)) - 1, nbytes >> 3)
    return set(memoryview(w.to_bytes(nbytes, "little")).cast("Q"))


class _Scan:
    """A process opened for scanning: its maps, pagemap and (when allowed) the PFN tables."""

    def __init__(self, process, *, kpageflags: bool = True, kpagecount: bool = False):
        self.info = _resolve(process)
        self.pid = self.info.pid
        self.page_size = PAGE_SIZE
        self.maps = read_maps(self.pid)
        self.fd = _open_pagemap(self.pid)
        self.notes: list[str] = []
        self.visible = pfns_visible()
        self.flags_table = self.count_table = None
        if not self.visible:
            self.notes.append("PFNs hidden: the kernel zeroes them for readers without CAP_SYS_ADMIN "
                              "(pagemap.rst); kpageflags and kpagecount need a PFN -- run as root")
        else:
            if kpageflags:
                fd, why = _open_table("kpageflags")
                if fd is None:
                    self.notes.append(f"kpageflags unavailable: {why}")
                else:
                    self.flags_table = _PfnTable(fd, "kpageflags")
            if kpagecount:
                fd, why = _open_table("kpagecount")
                if fd is None:
                    self.notes.append(f"kpagecount unavailable: {why}")
                else:
                    self.count_table = _PfnTable(fd, "kpagecount")

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

    def pieces(self, start: int | None, end: int | None) -> list[tuple[Mapping, int, int]]:
        """The parts of mappings to walk: all of them, or those overlapping ``[start, end)``."""
        if start is None:
            return [(m, m.start, m.end) for m in self.maps]
        parts = mappings_in(self.maps, start, end)
        if not parts:
            raise _unmapped(self.pid, self.maps, start, f"range {start:#x}-{end:#x}")
        return parts

    def raw_chunks(self, start: int | None = None, end: int | None = None):
        """Yield ``(mapping, vaddr, bytes)``: pagemap entries, CHUNK_PAGES at a time."""
        ps = self.page_size
        for mapping, lo, hi in self.pieces(start, end):
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
                    self.notes.append(f"{mapping.label} at {mapping.start:#x} lies above the user address "
                                      "space pagemap covers: skipped")
                    break
                if len(data) % 8:
                    data = data[: len(data) // 8 * 8]
                yield mapping, vpn * ps, data
                vpn += len(data) >> 3

    def chunks(self, start: int | None = None, end: int | None = None) -> Iterator[PageChunk]:
        """Yield :class:`PageChunk` with per-page kpageflags/kpagecount gathered."""
        from array import array

        ft, ct = self.flags_table, self.count_table
        for mapping, vaddr, data in self.raw_chunks(start, end):
            entries = memoryview(data).cast("Q")
            kf = kc = None
            if ft is not None or ct is not None:
                pfns = _pfn_lanes(data)
                wins = _windows(pfns, len(data))
                pmv = memoryview(pfns.to_bytes(len(data), "little")).cast("Q")
                if ft is not None:
                    ft.load(wins)
                    kf = array("Q", map(ft.view.__getitem__, pmv))
                if ct is not None:
                    ct.load(wins)
                    kc = array("Q", map(ct.view.__getitem__, pmv))
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


def scan_chunks(process, start: int | None = None, end: int | None = None, *,
                kpagecount: bool = False) -> Iterator[PageChunk]:
    """Low-level scan: :class:`PageChunk` arrays for every mapping (or ``[start, end)``)."""
    _parse_process_and_range(start, end)
    with _Scan(process, kpagecount=kpagecount) as s:
        yield from s.chunks(start, end)


def scan(process, start: int | None = None, end: int | None = None, *,
         kpagecount: bool = False) -> Iterator[PageRecord]:
    """One :class:`PageRecord` per virtual page of every mapping (or of ``[start, end)``,
    END exclusive), lazily: iterate, or ``list()`` a small range."""
    for c in scan_chunks(process, start, end, kpagecount=kpagecount):
        kf, kc, m, ps = c.kpageflags, c.kpagecount, c.mapping, c.page_size
        for i, e in enumerate(c.entries):
            yield PageRecord(c.vaddr + i * ps, e,
                             kf[i] if kf is not None and e >> 63 else None,
                             kc[i] if kc is not None and e >> 63 else None, m)


def runs(process, start: int | None = None, end: int | None = None, *,
         kpagecount: bool = False) -> Iterator[PageRun]:
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
            if (cur is not None and cur[5] is m and cur[6] == va and cur[3] == f and cur[4] == n
                    and (cur[2] ^ e) & L.PM_FLAGS_MASK == 0):
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
    from collections import Counter
    from itertools import compress

    _parse_process_and_range(start, end)
    with _Scan(process) as s:
        summ = Summary(s.pid, s.info.name, s.page_size,
                       [(start, end)] if start is not None else [(m.start, m.end) for m in s.maps],
                       pfns_hidden=not s.visible, kpageflags_read=s.flags_table is not None)
        ft = s.flags_table
        counts: Counter = Counter()
        by_meta: Counter = Counter()
        for _mapping, _vaddr, data in s.raw_chunks(start, end):
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
            pfns = _pfn_lanes(data)
            ft.load(_windows(pfns, len(data)))
            lanes = memoryview(pfns.to_bytes(len(data), "little")).cast("Q")
            get = ft.view.__getitem__
            if len(present_groups) == 1:
                # every lane without a frame reads slot 0, which is 0: take those out after
                g = present_groups[0]
                c = Counter(map(get, lanes))
                c[0] -= m - meta.count(g)
                _merge(counts, c, g)
            else:
                for g in present_groups:
                    sel = meta.translate(_select(g))
                    _merge(counts, Counter(map(get, compress(lanes, sel))), g)
        if _ALIASED in counts:
            del counts[_ALIASED]
            summ.notes.append("kpageflags words with bits 55-63 set were seen (no kernel defines them): "
                              "they are merged with pagemap bits in this summary")
        for g, n in by_meta.items():
            counts[_meta_to_pme(g)] += n
        for key, n in counts.items():
            if n <= 0:
                continue
            if key & L.PM_PRESENT:
                summ.present += n
            elif key & L.PM_SWAP:
                summ.swapped += n
            else:
                summ.not_present += n
                continue
            summ.raw[key] = summ.raw.get(key, 0) + n
        summ.notes.extend(s.notes)
        return summ


_HIGH_BIT = bytes(128) + b"\x01" * 128                      # 1 where bit 7 is set
_SOFT_DIRTY_TO_BIT3 = bytes(128) + b"\x08" * 128            # bit 7 -> bit 3
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


def _count_slow(data: bytes, ft, counts) -> None:
    view = ft.view if ft is not None else None
    if ft is not None:
        pfns = _pfn_lanes(data)
        ft.load(_windows(pfns, len(data)))
    for e in memoryview(data).cast("Q"):
        k = view[e & L.PM_PFRAME_MASK] if view is not None and e >> 63 else 0
        counts[k | (e & L.PM_FLAGS_MASK)] += 1


def read_process_info(process) -> ProcessInfo:
    """Resolve ``process`` (pid, ``self``, name) and check it has an address space."""
    return _resolve(process)


__all__ = [
    "CHUNK_PAGES", "PAGE_SIZE", "FlagCount", "HugePage", "PageChunk", "PageRecord", "PageRun",
    "PagemapEntry", "PyphysError", "Summary", "Translation", "UnmappedAddressError", "decode_entry",
    "expand_flags", "flag_bits", "flag_names", "pfns_visible", "read_process_info", "runs", "scan",
    "scan_chunks", "summarize", "symbolic_flags", "translate", "user_space_limit", "well_known_flags",
]
