"""Walk every mapped page of a process in one pass, and check each against pagemap.

:func:`walk_range` descends the page table over one virtual range, reading each table page
once (4 KiB through :class:`TableCache`, never entry by entry) and yielding the leaves: 4 KiB
PTEs, 2 MiB PMDs, 1 GiB PUDs, swap entries. :func:`compare` sets them beside the pagemap
entries of the same range (read in bulk by :mod:`pyphys.pagemap.scanner`), page by page.
Both are pure (``read_page(phys)`` gives a table's bytes), so unit tests walk tables of bytes.

A VM_PFNMAP or VM_IO mapping ([vvar], device memory) is walked but not checked: pagemap skips
such mappings (their frames have no struct page) and reports nothing, so those pages are
counted apart as "pfnmap, not checked". A disagreement is read once more, both sides, and kept
in the list either way, with what the second reading said.
"""

from __future__ import annotations

import os

from pyphys.dialect import json_raw
from pyphys.layouts import pagemap as PM
from pyphys.layouts import pagetable as L
from pyphys.record import Record
from pyphys.walk import decode, levels_of, memory_type, pat_index, swap_entry

PAGE = 1 << L.PAGE_SHIFT
#: leaf level -> the name the summary uses
LEVEL_NAMES = {"pte": "PTE 4K", "pmd": "PMD 2M", "pud": "PUD 1G"}
PFNMAP_FLAGS = ("pf", "io")  # smaps VmFlags of VM_PFNMAP and VM_IO
_PRESENT, _PS = 1 << L.P, 1 << L.PS


class TableCache:
    """Page-table pages read whole, once: ``entries(phys)`` is the table's 512 words."""

    def __init__(self, read_page) -> None:
        self.read_page = read_page
        self.tables: dict[int, memoryview] = {}

    def entries(self, phys: int) -> memoryview:
        t = self.tables.get(phys)
        if t is None:
            data = self.read_page(phys)
            if len(data) != PAGE:
                raise ValueError(f"page table at {phys:#x}: read {len(data)} bytes, not {PAGE}")
            t = self.tables[phys] = memoryview(bytes(data)).cast("Q")
        return t

    @property
    def bytes_read(self) -> int:
        return len(self.tables) * PAGE


class Leaf(Record):
    """One leaf entry of the walk, clipped to the range walked: ``vaddr`` its first virtual address
    inside the range, ``level`` "pte"/"pmd"/"pud", ``kind`` "page"/"PROT_NONE page"/"swap", ``pages``
    the 4 KiB pages of the range it covers, ``pfn`` the frame of ``vaddr`` (a huge leaf's head frame
    plus the offset), ``pat_index``, ``swap_type``, ``swap_offset``."""

    __slots__ = ("vaddr", "level", "raw", "kind", "pages", "pfn", "pat_index", "swap_type", "swap_offset")
    _frozen = True

    @property
    def page_size(self) -> int:
        return {"pte": PAGE, "pmd": 1 << 21, "pud": 1 << 30}[self.level]


def walk_range(cache: TableCache, top: int, levels: int, lo: int, hi: int):
    """Yield a :class:`Leaf` for every non-empty leaf entry covering ``[lo, hi)``."""
    lv = levels_of(levels)

    def descend(table: int, depth: int, lo: int, hi: int):
        level, shift = lv[depth]
        span, pte = 1 << shift, level == "pte"
        ents = cache.entries(table)
        first, last = (lo >> shift) & 511, ((hi - 1) >> shift) & 511
        base = lo & ~((span << L.INDEX_BITS) - 1)  # the virtual address of this table's entry 0
        for i in range(first, last + 1):
            raw = ents[i]
            if not raw:
                continue
            va = base + i * span
            a, b = max(lo, va), min(hi, va + span)
            if raw & _PRESENT and (pte or not raw & _PS):  # the common cases without decode()'s dict
                frame = raw & L.ADDR_MASK
                if not pte:
                    yield from descend(frame, depth + 1, a, b)
                    continue
                pat = (raw >> L.PAT_4K & 1) << 2 | (raw >> L.PWT) & 3  # PAT<<2 | PCD<<1 | PWT
                yield Leaf(a, level, raw, "page", 1, frame >> L.PAGE_SHIFT, pat, None, None)
                continue
            kind, bits, _size = decode(raw, level)
            if kind == "table":
                yield from descend(bits["frame"], depth + 1, a, b)
            elif kind == "not present":
                continue
            elif kind == "swap":
                t, off = swap_entry(raw)
                yield Leaf(a, level, raw, kind, (b - a) >> L.PAGE_SHIFT, None, None, t, off)
            else:
                pfn = (bits["frame"] + (a - va)) >> L.PAGE_SHIFT
                yield Leaf(a, level, raw, kind, (b - a) >> L.PAGE_SHIFT, pfn, pat_index(bits), None, None)

    yield from descend(top, 0, lo, hi)


class Disagreement(Record):
    """Walk and pagemap differ at ``vaddr``: ``walk`` says "frame 0x..", "swap 1/0x.." or "not
    present", ``pagemap`` its own answer from ``pagemap_raw``; ``recheck``: what reading both once more said."""

    __slots__ = ("vaddr", "level", "walk", "pagemap", "pagemap_raw", "recheck")
    _defaults = {"recheck": ""}

    def to_json(self) -> dict:
        return {
            "virt": hex(self.vaddr),
            "level": self.level,
            "walk": self.walk,
            "pagemap": self.pagemap,
            "raw": json_raw(self.pagemap_raw),
            "recheck": self.recheck,
        }


class Result(Record):
    """The whole-process walk: counts, every disagreement, the leaves. ``pages``: 4 KiB pages of all
    mappings walked; ``unchecked``: present but pagemap hides the frame; ``pfnmap``: (start, end,
    path, pages present); ``leaves``: (Leaf, check)."""

    __slots__ = ("pid", "levels", "top", "pat", "vmas", "pages", "present", "swap", "none", "agree",
                 "unchecked", "by_level", "by_type", "pfnmap", "disagreements", "leaves", "tables_read",
                 "notes")  # fmt: skip
    _defaults = {
        "vmas": 0, "pages": 0, "present": 0, "swap": 0, "none": 0, "agree": 0, "unchecked": 0,
        "by_level": None, "by_type": {}, "pfnmap": [], "disagreements": [], "leaves": [], "tables_read": 0,
        "notes": [],
    }  # fmt: skip

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if self.by_level is None:  # one fresh counter pair per level (a shared default would leak)
            self.by_level = {k: {"leaves": 0, "pages": 0} for k in LEVEL_NAMES}

    @property
    def pfnmap_pages(self) -> int:
        return sum(p[3] for p in self.pfnmap)

    def to_json(self, leaves: bool = True) -> dict:
        d = {
            "pid": self.pid,
            "levels": self.levels,
            "top": hex(self.top),
            "pat_msr": json_raw(self.pat),
            "vmas": self.vmas,
            "pages": self.pages,
            "present": self.present,
            "swap": self.swap,
            "none": self.none,
            "agree": self.agree,
            "disagree": len(self.disagreements),
            "unchecked": self.unchecked,
            "pfnmap_pages": self.pfnmap_pages,
            "by_level": {k: dict(v) for k, v in self.by_level.items()},
            "by_memory_type": dict(self.by_type),
            "tables_read": self.tables_read,
            "disagreements": [x.to_json() for x in self.disagreements],
            "pfnmap": [{"start": hex(a), "end": hex(b), "path": p or None, "present": n} for a, b, p, n in self.pfnmap],
            "notes": list(self.notes),
        }
        if leaves:
            d["leaves"] = [_leaf_json(lf, check, self.pat) for lf, check in self.leaves]
        return d


def _leaf_json(lf: Leaf, check: str, pat: int | None) -> dict:
    return {
        "virt": hex(lf.vaddr),
        "level": lf.level,
        "page_size": lf.page_size,
        "count": lf.pages,
        "kind": lf.kind,
        "raw": json_raw(lf.raw),
        "pfn": lf.pfn,
        "memory_type": None if lf.pat_index is None else memory_type(pat, lf.pat_index),
        "swap_type": lf.swap_type,
        "swap_offset": None if lf.swap_offset is None else hex(lf.swap_offset),
        "check": check,
    }


def _pm_text(e: int) -> str:
    if e >> PM.PM_PRESENT_BIT & 1:
        f = e & PM.PM_PFRAME_MASK
        return f"frame {f:#x}" if f else "present, frame hidden"
    if e >> PM.PM_SWAP_BIT & 1:
        f = e & PM.PM_PFRAME_MASK
        return f"swap {f & PM.PM_SWAP_TYPE_MASK}/{f >> PM.PM_SWAP_TYPE_BITS:#x}"
    return "not present"


def _walk_text(lf: Leaf | None, vaddr: int) -> str:
    if lf is None:
        return "not present"
    if lf.pfn is not None:
        return f"frame {lf.pfn + ((vaddr - lf.vaddr) >> L.PAGE_SHIFT):#x}"
    return f"swap {lf.swap_type}/{lf.swap_offset:#x}"


def _page_check(lf: Leaf | None, i: int, e: int) -> str:
    """``agree``, ``hidden`` or ``disagree`` for page ``i`` of leaf ``lf`` (None: nothing mapped)
    against pagemap entry ``e``."""
    present, swapped, frame = e >> 63 & 1, e >> 62 & 1, e & PM.PM_PFRAME_MASK
    if lf is None:
        return "agree" if not present and not swapped else "disagree"
    if lf.pfn is not None:
        if not present:
            return "disagree"
        if frame == 0:
            return "hidden"
        return "agree" if frame == lf.pfn + i else "disagree"
    if present or not swapped:
        return "disagree"
    return (
        "agree"
        if (frame & PM.PM_SWAP_TYPE_MASK, frame >> PM.PM_SWAP_TYPE_BITS) == (lf.swap_type, lf.swap_offset)
        else "disagree"
    )


def compare(res: Result, leaves: list[Leaf], lo: int, entries, pfnmap: bool, recheck=None) -> None:
    """Count ``leaves`` of the range starting at ``lo`` against its pagemap ``entries`` (one
    64-bit word per 4 KiB page), into ``res``. ``recheck(vaddr)`` -> (leaf or None, entry)
    reads one page again, both sides, for a disagreement."""
    n = len(entries)
    res.pages += n
    covered = 0
    for lf in leaves:
        start = (lf.vaddr - lo) >> L.PAGE_SHIFT
        covered += lf.pages
        if lf.pfn is not None:
            res.present += lf.pages
            if lf.level in res.by_level:
                res.by_level[lf.level]["leaves"] += 1
                res.by_level[lf.level]["pages"] += lf.pages
            mt = memory_type(res.pat, lf.pat_index) or f"PAT index {lf.pat_index}"
            res.by_type[mt] = res.by_type.get(mt, 0) + lf.pages
        else:
            res.swap += lf.pages
        if pfnmap and lf.pfn is not None:
            res.leaves.append((lf, "pfnmap, not checked"))
            continue
        worst = "agree"
        for i in range(lf.pages):
            c = _page_check(lf, i, entries[start + i])
            if c == "disagree":
                _disagree(res, lf, lo + ((start + i) << L.PAGE_SHIFT), entries[start + i], recheck)
                worst = "disagree"
            elif c == "hidden":
                res.unchecked += 1
                worst = "hidden" if worst == "agree" else worst
            else:
                res.agree += 1
        res.leaves.append((lf, worst))
    res.none += n - covered
    # pages the walk found nothing for: pagemap must say the same
    if covered < n:
        mapped = bytearray(n)
        for lf in leaves:
            s = (lf.vaddr - lo) >> L.PAGE_SHIFT
            mapped[s : s + lf.pages] = b"\1" * lf.pages
        for i in range(n):
            if not mapped[i]:
                if entries[i] >> 62:  # present or swapped
                    _disagree(res, None, lo + (i << L.PAGE_SHIFT), entries[i], recheck)
                else:
                    res.agree += 1


def _disagree(res: Result, lf: Leaf | None, vaddr: int, e: int, recheck) -> None:
    d = Disagreement(vaddr, lf.level if lf else "-", _walk_text(lf, vaddr), _pm_text(e), e)
    if recheck is not None:
        lf2, e2 = recheck(vaddr)
        i = 0 if lf2 is None else (vaddr - lf2.vaddr) >> L.PAGE_SHIFT
        again = _page_check(lf2, i, e2)
        d.recheck = f"read again: walk {_walk_text(lf2, vaddr)}, pagemap {_pm_text(e2)}" + (
            " (agree now: the page changed during the walk)" if again == "agree" else ""
        )
    res.disagreements.append(d)


# -- a live process ----------------------------------------------------------------------------
def _pfnmap_vmas(pid: int) -> set[int]:
    """Start addresses of the VM_PFNMAP/VM_IO mappings (smaps VmFlags ``pf``, ``io``)."""
    from pyphys import paths

    out, start = set(), None
    try:
        with open(paths.proc(pid, "smaps")) as f:
            for line in f:
                if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    start = int(line.split("-", 1)[0], 16)
                elif line.startswith("VmFlags:") and start is not None:
                    if set(line.split()[1:]) & set(PFNMAP_FLAGS):
                        out.add(start)
    except OSError:
        return out
    return out


def walk_process_all(process: int | str, backend: str = "auto") -> Result:
    """Walk every mapping of ``process`` and check every page against pagemap.

    Raises what :func:`pyphys.walk.walk_process` raises: ModuleNotLoadedError,
    PermissionDeniedError, ProcessGoneError (also when the process exits during the walk)."""
    from pyphys.pagemap.scanner import _Scan
    from pyphys.pagemap.translation import _ensure_alive
    from pyphys.procmaps import check_address_space, resolve_pid, stat_of
    from pyphys.walk import _open_memory, read_start

    pid, name, state, kthread = stat_of(resolve_pid(process))
    check_address_space(pid, name, state, kthread)
    start = read_start(pid)
    top = start.user_pgd_phys if start.user_pgd_phys is not None else start.pgd_phys
    res = Result(pid, start.levels, top, start.pat)
    if start.user_pgd_phys is not None:
        res.notes.append("KPTI is on: walked the user half, the table the CPU uses in user mode")
    with _Scan(pid, kpageflags=False) as scan, _open_memory(backend) as pm:
        cache = TableCache(lambda phys: pm.read(phys, PAGE))
        limit = scan.user_limit
        pfnmap_starts: set[int] | None = None

        def recheck(vaddr: int):
            fresh = TableCache(cache.read_page)
            found = list(walk_range(fresh, top, start.levels, vaddr, vaddr + PAGE))
            data = os.pread(scan.fd, 8, (vaddr >> L.PAGE_SHIFT) * 8)
            return (found[0] if found else None), int.from_bytes(data.ljust(8, b"\0"), "little")

        for row, lo, hi in scan.pieces(None, None):
            if lo >= limit:
                continue  # [vsyscall]: above the user space pagemap covers (the scanner notes it)
            leaves = list(walk_range(cache, top, start.levels, lo, hi))
            entries = bytearray()
            for _row, _va, data in scan.raw_chunks(pieces=[(row, lo, hi)]):
                entries += data
            ents = memoryview(bytes(entries)).cast("Q")
            if len(ents) < (hi - lo) >> L.PAGE_SHIFT:
                continue  # the scanner said why (in its notes)
            pfnmap = False
            if any(lf.pfn is not None for lf in leaves) and not any(ents[(lf.vaddr - lo) >> 12] >> 62 for lf in leaves):
                # present in the walk, nothing in pagemap: pagemap skips VM_PFNMAP/VM_IO mappings
                if pfnmap_starts is None:
                    pfnmap_starts = _pfnmap_vmas(pid)
                pfnmap = lo in pfnmap_starts
            res.vmas += 1
            compare(res, leaves, lo, ents, pfnmap, recheck)
            if pfnmap:
                r = scan.rows[row]
                res.pfnmap.append((lo, hi, r[6], sum(lf.pages for lf in leaves if lf.pfn is not None)))
        res.tables_read = len(cache.tables)
        res.notes.extend(scan.notes)
        _ensure_alive(pid, "during the walk")
    return res
