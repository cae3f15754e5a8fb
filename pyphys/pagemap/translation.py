"""One virtual address: everything pagemap, kpageflags and kpagecount say about it; and what
every reader of a process needs: opening its pagemap and the PFN tables, who may see PFNs,
where user space ends."""

from __future__ import annotations

import os

from pyphys import paths
from pyphys.dialect import json_raw
from pyphys.errors import (
    NO_ADMIN,
    PTRACE_CHECK,
    NotFoundError,
    PermissionDeniedError,
    ProcessGoneError,
    RegionError,
    UsageError,
    from_oserror,
    root_hint,
)
from pyphys.layouts import pagemap as L
from pyphys.pagemap.decode import (
    _bit,
    decode_entry,
    expand_flags,
    flag_names,
    flag_table,
)
from pyphys.procmaps import (
    Mapping,
    ProcessInfo,
    check_address_space,
    find_mapping,
    neighbours,
    read_maps_rows,
    require_address_space,
    resolve_pid,
    stat_of,
)
from pyphys.record import Record, encode

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# fs/proc/page.c stable_page_flags() in 6.12 reads folio->flags (6.1 read page->flags)
TAIL_PAGE_NOTE = (
    "a tail page of a large folio: this kernel reports the folio's (head page's) flags for it, "
    "except mmap, compound_tail and hwpoison"
)

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
    """``(pid, name)`` of a process with an address space (no ProcessInfo is built)."""
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
            root_hint(PTRACE_CHECK, "reading another user's page tables needs root (ptrace read access)"),
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


class HugePage(Record):
    """The compound page a frame belongs to: a transparent huge page or a hugetlb page.

    ``kind`` "THP" or "hugetlb", ``head_pfn``, ``pages`` (base pages in it), ``index`` (which
    of them this frame is), ``size`` (bytes)."""

    __slots__ = ("kind", "head_pfn", "pages", "index", "size")
    _frozen = True


class Translation(Record):
    """Everything pagemap, kpageflags and kpagecount say about one virtual address.

    ``pid``, ``process`` (its name), ``vaddr``, ``page_size``, ``entry`` (:class:`PagemapEntry`),
    ``mapping`` (:class:`~pyphys.procmaps.Mapping`), ``phys_addr`` (pfn * page_size + offset,
    when the PFN is known), ``kpageflags`` (the kernel's raw word), ``flags`` (expanded as
    page-types -r does, see :func:`expand_flags`), ``kpagecount``, ``huge`` (:class:`HugePage`
    or None), ``notes`` (tuple of strings)."""

    __slots__ = (
        "pid", "process", "vaddr", "page_size", "entry", "mapping", "phys_addr", "kpageflags", "flags", "kpagecount",
        "huge", "notes",
    )  # fmt: skip
    _frozen = True

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

    def to_json(self) -> dict:
        """The JSON form (docs/json.md, schema/pagemap.json): addresses and offsets as 0x strings,
        ``pfn`` an integer, ``flags`` the list of names, ``flags_raw`` the expanded flags word and
        ``kpageflags`` the kernel's, both 16-digit words; plus the derived ``vpage`` and ``offset``."""
        return {
            "pid": self.pid,
            "process": self.process,
            "virt": encode(self.vaddr, "hex"),
            "vpage": encode(self.vpage, "hex"),
            "offset": encode(self.offset, "hex"),
            "page_size": self.page_size,
            "entry": self.entry.to_json(),
            "pfn": self.pfn,
            "phys": encode(self.phys_addr, "hex"),
            "kpageflags": json_raw(self.kpageflags),
            "flags": list(self.flag_names),
            "flags_raw": json_raw(self.flags),
            "kpagecount": self.kpagecount,
            "huge": encode(self.huge),
            "mapping": self.mapping.to_json(),
            "notes": list(self.notes),
        }


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
    e = decode_entry(raw, pfn_visible=pfns_visible() if raw & L.PM_PFRAME_MASK == 0 else None)
    if e.pfn_hidden:
        notes.append(
            "PFN hidden: the kernel zeroes it for readers without CAP_SYS_ADMIN (pagemap.rst); "
            + root_hint(NO_ADMIN, "run as root")
        )
    if e.unknown_bits:
        notes.append(f"bits 59-60 are set ({e.unknown_bits:#x}); pagemap.rst documents them as zero")
    pfn = e.pfn
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
                    if kflags & _bit(L.KPF_COMPOUND_TAIL) and flag_table().release >= (6, 12):
                        notes.append(TAIL_PAGE_NOTE)
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
    elif e.swap_type is not None and not e.guard_region:
        areas = _swap_areas()
        if areas is not None and e.swap_type >= areas:
            notes.append(
                f"swap type {e.swap_type} is not one of the {areas} swap areas in /proc/swaps: "
                "a special entry (migration, hwpoison, device-private or a PTE marker such as uffd-wp)"
            )
    elif not e.present and not e.swapped:
        notes.append("no page: never touched, or dropped (file pages) -- touch it and ask again")
    return Translation(pid, name, vaddr, page_size, e, Mapping(*row), phys, kflags, flags, count, huge, tuple(notes))
