"""Ranges and whole processes, page by page or run by run, streaming: pagemap read in chunks,
kpageflags and kpagecount in windows around the frames actually used."""

from __future__ import annotations

import os
from itertools import repeat
from operator import getitem, setitem  # vectorcall: cheaper per element than bound __getitem__

from pyphys import TYPE_CHECKING
from pyphys.errors import NO_ADMIN, UsageError, from_oserror, root_hint
from pyphys.layouts import pagemap as L
from pyphys.pagemap.decode import PagemapEntry, _bit, decode_entry, expand_flags, flag_names
from pyphys.pagemap.translation import (
    PAGE_SIZE,
    _check_user_address,
    _ensure_alive,
    _open_pagemap,
    _open_table,
    _resolve_raw,
    _unmapped,
    pfns_visible,
    user_space_limit,
)
from pyphys.procmaps import Mapping, read_maps_rows
from pyphys.record import Record

if TYPE_CHECKING:
    from array import array
    from collections.abc import Iterator


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


class _Decoded:
    """What a page and a run derive from their raw ``entry`` and ``kpageflags``."""

    __slots__ = ()
    entry: int
    kpageflags: int | None

    @property
    def decoded(self) -> PagemapEntry:
        return decode_entry(self.entry, pfn_visible=None)

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


class PageRecord(_Decoded, Record):
    """One virtual page of a scan."""

    __slots__ = ("vaddr", "entry", "kpageflags", "kpagecount", "mapping")
    _frozen = True

    vaddr: int
    entry: int  # raw pagemap entry
    kpageflags: int | None  # raw kernel word (None: not present, hidden, unreadable)
    kpagecount: int | None
    mapping: Mapping

    @property
    def present(self) -> bool:
        return bool(self.entry & L.PM_PRESENT)


class PageRun(_Decoded, Record):
    """Consecutive virtual pages on consecutive frames (or consecutive swap slots, or all not
    present) with the same pagemap bits, kpageflags and (if read) kpagecount."""

    __slots__ = ("vaddr", "pages", "page_size", "entry", "kpageflags", "kpagecount", "mapping", "step")
    _frozen = True
    _defaults = {"step": 0}

    vaddr: int
    pages: int
    page_size: int
    entry: int  # the first page's raw pagemap entry
    kpageflags: int | None
    kpagecount: int | None
    mapping: Mapping
    step: int  # +1 ascending frames (or swap slots), -1 descending, 0 single

    @property
    def end(self) -> int:
        return self.vaddr + self.pages * self.page_size

    @property
    def last_pfn(self) -> int | None:
        """PFN of the run's last page (first + (pages - 1) * step)."""
        p = self.pfn
        return None if p is None else p + (self.pages - 1) * self.step

    @property
    def huge(self) -> str | None:
        """``THP`` or ``hugetlb`` when the frames belong to huge pages."""
        k = self.kpageflags or 0
        if k & _bit(L.KPF_HUGE):
            return "hugetlb"
        if k & _bit(L.KPF_THP):
            return "THP"
        return None


class PageChunk(Record):
    """Up to CHUNK_PAGES consecutive pages of one mapping, as parallel arrays (low-level)."""

    __slots__ = ("mapping", "vaddr", "page_size", "entries", "kpageflags", "kpagecount")
    _frozen = True

    mapping: Mapping
    vaddr: int
    page_size: int
    entries: memoryview  # format 'Q': raw pagemap entries
    kpageflags: array | None  # array('Q'): raw kpageflags per page, 0 where no frame is known
    kpagecount: array | None  # array('Q')


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
        self.skipped = 0  # pages the sparse reader left out (pyphys.pagemap.sparse)
        self.visible = pfns_visible()
        self.wsh = _WSH if whole else _WSH_RANGE
        self.flags_table = self.count_table = None
        if not self.visible:
            self.notes.append(
                "PFNs hidden: the kernel zeroes them for readers without CAP_SYS_ADMIN "
                "(pagemap.rst); kpageflags and kpagecount need a PFN -- " + root_hint(NO_ADMIN, "run as root")
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

    @property
    def user_limit(self) -> int:
        """First address above the user space pagemap covers (2**64 where unknown)."""
        limit = user_space_limit()
        return 1 << 64 if limit is None else limit

    def raw_chunks(self, start: int | None = None, end: int | None = None, *, pieces=None):
        """Yield ``(row, vaddr, bytes)``: pagemap entries, CHUNK_PAGES at a time, of every
        mapping, of ``[start, end)``, or of the ``(row, lo, hi)`` ``pieces``."""
        ps = self.page_size
        for row, lo, hi in self.pieces(start, end) if pieces is None else pieces:
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
    yield from _records_of(scan_chunks(process, start, end, kpagecount=kpagecount))


class PageScan(Record):
    """A scan opened by :func:`scan_pages`: the process, the ranges it covers (every mapping,
    or ``[start, end)``), and ``items``, an iterator of :class:`PageRecord` (or :class:`PageRun`)
    to consume once; ``notes`` grows while it runs."""

    __slots__ = ("pid", "process", "page_size", "ranges", "pfns_hidden", "items", "notes")


def scan_pages(
    process, start: int | None = None, end: int | None = None, *, kpagecount: bool = False, runs: bool = False
) -> PageScan:
    """:func:`scan` (or, with ``runs``, :func:`runs`) with what a document about it says first:
    the process is opened and the range checked now, so a bad one raises before any page."""
    _parse_process_and_range(start, end)
    s = _Scan(process, kpagecount=kpagecount, whole=start is None)
    try:
        s.pieces(start, end)  # an unmapped range raises here
    except BaseException:
        s.close()
        raise
    ranges = [(start, end)] if start is not None else [(r[0], r[1]) for r in s.rows]
    items = (_runs_of if runs else _records_of)(_closing_chunks(s, start, end))
    return PageScan(s.pid, s.name, s.page_size, ranges, not s.visible, items, s.notes)


def _closing_chunks(s: _Scan, start: int | None, end: int | None) -> Iterator[PageChunk]:
    with s:
        yield from s.chunks(start, end)


def _records_of(chunks) -> Iterator[PageRecord]:
    for c in chunks:
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
    yield from _runs_of(scan_chunks(process, start, end, kpagecount=kpagecount))


def _runs_of(chunks) -> Iterator[PageRun]:
    cur = None  # [vaddr, pages, entry, kflags, kcount, mapping, next vaddr, last frame, step]
    ps = PAGE_SIZE
    for c in chunks:
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
