"""Page counts by flag set over a scan: what ``page-types -p PID`` prints."""

from __future__ import annotations

import os
from itertools import repeat
from operator import getitem

from pyphys.layouts import pagemap as L
from pyphys.pagemap.decode import _bit, expand_flags, flag_names, symbolic_flags, well_known_flags
from pyphys.pagemap.scanner import _parse_process_and_range, _pfn_lanes, _Scan, _windows
from pyphys.pagemap.sparse import populated, scan_mode
from pyphys.record import Record


class FlagCount(Record):
    """One row of a summary: how many ``pages`` carry exactly the flag word ``flags``, with
    its long ``names`` and ``symbolic`` letters."""

    __slots__ = ("flags", "pages", "names", "symbolic")
    _frozen = True

    def to_json(self) -> dict:
        return {
            "flags": f"{self.flags:#018x}",
            "pages": self.pages,
            "symbolic": self.symbolic,
            "names": list(self.names),
        }


class Summary(Record):
    """Page counts by flag set over a scan (what ``page-types -p PID`` prints).

    ``pid``, ``process``, ``page_size``, ``ranges`` (list of ``(start, end)``), ``raw``,
    ``present``, ``swapped``, ``not_present``, ``pfns_hidden``, ``kpageflags_read``, ``notes``.
    ``raw`` maps ``kpageflags | (pagemap entry bits 55-63)`` to a page count for every present
    or swapped page; :meth:`rows` turns it into page-types' views.
    """

    __slots__ = (
        "pid", "process", "page_size", "ranges", "raw", "present", "swapped", "not_present", "pfns_hidden",
        "kpageflags_read", "notes",
    )  # fmt: skip

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

    def to_json(self, view: str = "expanded") -> dict:
        """The JSON form (docs/json.md), its ``rows`` in ``view`` (see :meth:`rows`)."""
        return {
            "pid": self.pid,
            "process": self.process,
            "page_size": self.page_size,
            "ranges": [[hex(a), hex(b)] for a, b in self.ranges],
            "present": self.present,
            "swapped": self.swapped,
            "not_present": self.not_present,
            "total": self.total,
            "pfns_hidden": self.pfns_hidden,
            "kpageflags_read": self.kpageflags_read,
            "huge_pages": self.huge_pages(),
            "view": view,
            "rows": [r.to_json() for r in self.rows(view)],
            "notes": list(self.notes),
        }


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


def summarize(process, start: int | None = None, end: int | None = None) -> Summary:
    """Count pages by flag set over every mapping (or ``[start, end)``): ``page-types -p PID``.

    Does the same work page-types does (pagemap for every page, kpageflags for every present
    frame) without a Python object per page: chunks are decoded as big integers and counted
    with C-level iterators, kpageflags read in windows around the frames actually used.
    """
    from collections import Counter

    _parse_process_and_range(start, end)
    scan_mode()  # a bad PYPHYS_PAGEMAP_SCAN is a usage error before anything is opened
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
            _count_in_parallel(chunks, ft, counts, by_meta)
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
        summ["not_present"] += s.skipped  # entries the sparse reader never handed over
        summ["notes"].extend(s.notes)
        return Summary(**summ)


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


class _NoLock:
    """A lock for one thread: nothing to wait for."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


_NO_LOCK = _NoLock()


def _count_in_parallel(loader, ft, counts, by_meta) -> None:
    """:func:`_count_chunks` in this thread and, on a machine with several CPUs, one more: the
    kernel's kpageflags work (most of a dense scan) runs in pread, without the GIL, so two
    counters keep two CPUs busy. Each counts into its own Counters, added up at the end."""
    import threading
    from collections import Counter

    if (os.cpu_count() or 1) < 2 or ft is None:
        _count_chunks(iter(loader), ft, counts, by_meta)
        return
    lock = threading.Lock()  # the PFN table (scattered frames) is filled by one thread at a time
    theirs: tuple[Counter, Counter] = (Counter(), Counter())
    failed: list[BaseException] = []

    def other() -> None:
        try:
            _count_chunks(iter(loader), ft, *theirs, lock)
        except BaseException as err:  # raised here, in the caller's thread
            failed.append(err)
            loader._stop = True  # the caller's counter ends too

    t = threading.Thread(target=other, name="pyphys-pagemap-count", daemon=True)
    t.start()
    try:
        _count_chunks(iter(loader), ft, counts, by_meta, lock)
    finally:
        t.join()
    if failed:
        raise failed[0]
    counts.update(theirs[0])
    by_meta.update(theirs[1])


def _count_chunks(chunks, ft, counts, by_meta, lock=None) -> None:
    """The counting half of :func:`summarize`: ``chunks`` yields blobs of pagemap entries.
    Frames in runs are counted by run (:mod:`pyphys.pagemap._pfnruns`); scattered ones through
    the PFN-indexed kpageflags table."""
    from pyphys.pagemap._pfnruns import count_by_runs

    lock = lock or _NO_LOCK
    for data in chunks:
        m = len(data) >> 3
        # the pagemap bits 55-63 of each entry, as one byte per page: bits 56-63 are byte 7;
        # soft-dirty (bit 55, top of byte 6) goes to bit 3 (entry bit 59, documented zero)
        hi = data[7::8]
        sd = data[6::8].translate(_SOFT_DIRTY_TO_BIT3)
        if hi.translate(_BITS_59_60).count(0) != m:
            # the kernel set bits documented as zero: count exactly, the slow way
            with lock:
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
        by_run = count_by_runs(data, ft.fd)
        if by_run is not None:
            for g, c in by_run.items():
                _merge(counts, c, g)
            continue
        with lock:
            _count_in_table(data, meta, m, present_groups, ft, counts)


def _count_in_table(data: bytes, meta: bytes, m: int, present_groups: list, ft, counts) -> None:
    """Count a blob's present pages through the PFN-indexed kpageflags table."""
    from collections import Counter
    from itertools import compress

    pfns = _pfn_lanes(data)
    ft.load(_windows(pfns, len(data), ft.wsh))
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
    """Feeds :func:`summarize`: pagemap is read chunk by chunk in a thread, up to two
    chunks ahead; the counting reads the kpageflags of each chunk's frames as it takes it.

    pread releases the GIL, so the pagemap walk overlaps the counting on a second CPU. The
    kpageflags reads stay in the caller's thread: there are thousands of them, and a thread
    re-taking the GIL after each one convoyed behind the counting (measured: slower).
    Iterate for blobs of entries; errors in the thread are raised by the iteration. Call
    :meth:`close` before the scan's files are closed.
    """

    _END = object()

    def __init__(self, scan, ft, start, end):
        import queue
        import threading

        self._queue = queue.Queue(maxsize=2)
        self._full = queue.Full
        self._empty = queue.Empty
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
            for data in populated(self._scan, self._scan.pieces(*self._range)):
                if not self._put((data, None)):
                    return
            self._put((self._END, None))
        except BaseException as err:  # raised in the consumer
            self._put((self._END, err))

    def __iter__(self):
        """The blobs; several threads may iterate at once, each taking different blobs."""
        empty = self._empty
        while True:
            try:
                data, err = self._queue.get(timeout=0.1)
            except empty:
                if self._stop:
                    return  # closed while counting (another counter failed)
                continue
            if data is self._END:
                self._queue.put((data, err))  # for the other counters (a slot is free: just taken)
                if err is not None:
                    raise err
                return
            yield data

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
