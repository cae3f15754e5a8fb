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
        skipped = _count_in_two(s, ft, s.pieces(start, end), counts, by_meta)
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
        summ["not_present"] += skipped  # entries the sparse reader never handed over
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


# a scan this big (pages of the mappings walked) is split between this process and a forked
# one; below it the fork (a few ms) costs more than it saves
FORK_MIN_PAGES = 1 << 16


def _count_in_two(scan, ft, pieces, counts, by_meta) -> int:
    """Count ``pieces`` into ``counts``/``by_meta``; the pages the sparse reader skipped.

    On a machine with two CPUs a big scan is split in halves by pages, and a forked child
    counts the second half: the counting is Python holding the GIL (measured on a 4 GiB
    process: two threads were slower than one), so a second process is what keeps two CPUs
    busy. Its counts come back through a pipe (in marshal's format: pickle would import re).
    If the child fails, its half is counted here, which raises the real error. Forking is
    skipped in a process with other threads."""
    import marshal
    import signal
    import threading

    halves = _halves(pieces, scan.page_size)
    if halves is None or ft is None or len(os.sched_getaffinity(0)) < 2 or threading.active_count() > 1:
        return _count_part(scan, ft, pieces, counts, by_meta)
    mine, theirs = halves
    pid, r, hold = _fork_counter(scan, ft, theirs)
    status = None
    try:
        skipped = _count_part(scan, ft, mine, counts, by_meta)
        data = _read_all(r)
        os.close(hold)  # both halves are counted: the child may exit now
        hold = None
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(r)
        if hold is not None:
            os.close(hold)
        if status is None:  # this half failed (or was interrupted): the child's is not wanted
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        return skipped + _count_part(scan, ft, theirs, counts, by_meta)
    c, b, their_skipped, notes = marshal.loads(data)
    counts.update(c)
    by_meta.update(b)
    scan.notes.extend(notes)
    return skipped + their_skipped


def _count_part(scan, ft, pieces, counts, by_meta) -> int:
    _count_chunks(populated(scan, pieces), ft, counts, by_meta)
    return scan.skipped


def _halves(pieces, ps: int, min_pages: int | None = None):
    """``pieces`` cut in two with about as many pages each; None below ``min_pages``
    (:data:`FORK_MIN_PAGES`)."""
    total = sum((hi - lo) // ps for _row, lo, hi in pieces)
    if total < (FORK_MIN_PAGES if min_pages is None else min_pages):
        return None
    want = total // 2
    first: list = []
    for i, (row, lo, hi) in enumerate(pieces):
        n = (hi - lo) // ps
        if n < want:
            first.append((row, lo, hi))
            want -= n
            continue
        cut = lo + want * ps
        if cut > lo:
            first.append((row, lo, cut))
        rest = [(row, cut, hi)] if cut < hi else []
        return first, rest + list(pieces[i + 1 :])
    return None


def _fork_counter(scan, ft, pieces) -> tuple[int, int, int]:
    """Fork a child that counts ``pieces`` and writes its result to a pipe: ``(pid, read end,
    hold)``. The child exits only once ``hold`` is closed: a process exit changes what
    kpageflags says of pages the process maps (the kernel marks them referenced: on 6.18
    each exit flips that bit on the vDSO's page), and none should happen while this process
    is still counting."""
    import marshal
    from collections import Counter

    r, w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(r)
            os.close(hold_w)
            c, b, n = Counter(), Counter(), len(scan.notes)
            skipped = _count_part(scan, ft, pieces, c, b)
            data = marshal.dumps((dict(c), dict(b), skipped, scan.notes[n:]))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
            os.close(w)
            os.read(hold_r, 1)  # end of file once the parent is done (or gone)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(hold_r)
    return pid, r, hold_w


def _read_all(fd: int) -> bytes:
    parts = []
    while part := os.read(fd, 1 << 20):
        parts.append(part)
    return b"".join(parts)


def _count_chunks(chunks, ft, counts, by_meta) -> None:
    """The counting half of :func:`summarize`: ``chunks`` yields blobs of pagemap entries.
    Frames in runs are counted by run (:mod:`pyphys.pagemap._pfnruns`); scattered ones through
    the PFN-indexed kpageflags table."""
    from pyphys.pagemap._pfnruns import count_by_runs

    for data in chunks:
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
        by_run = count_by_runs(data, ft.fd)
        if by_run is not None:
            for g, c in by_run.items():
                _merge(counts, c, g)
            continue
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
