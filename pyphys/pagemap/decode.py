"""Decoding: one /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst, the bit
positions from :data:`pyphys.layouts.pagemap.PAGEMAP_BITS`), and kpageflags words expanded and
named as the kernel's own page-types does, per release (:data:`~pyphys.layouts.pagemap.PAGE_FLAG_NAMES`;
:func:`flag_table` picks the running kernel's)."""

from __future__ import annotations

import os

from pyphys import paths
from pyphys.dialect import json_raw
from pyphys.errors import UsageError
from pyphys.layouts import pagemap as L
from pyphys.record import Record


class PagemapEntry(Record):
    """One decoded /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).

    Fields: ``raw``; the one-bit fields of :data:`~pyphys.layouts.pagemap.PAGEMAP_BITS`, in
    bit order (``soft_dirty``, ``exclusive`` "page exclusively mapped" since 4.2, ``uffd_wp``
    since 5.13, ``guard_region`` since 6.15, ``file_or_shared_anon`` since 3.5, ``swapped``,
    ``present``); ``pfn`` (present and visible, else None); ``pfn_hidden`` (the kernel zeroed
    the frame field: the reader lacks CAP_SYS_ADMIN); ``swap_type`` and ``swap_offset``
    (swapped and visible, else None); ``unknown_bits`` (bits 59-60, documented as zero)."""

    __slots__ = (
        "raw", *(name for _bit, name, _doc in L.PAGEMAP_BITS), "pfn", "pfn_hidden", "swap_type", "swap_offset",
        "unknown_bits",
    )  # fmt: skip
    _frozen = True

    @property
    def kind(self) -> str:
        """``present``, ``guard region``, ``swapped`` or ``not present``."""
        return entry_kind(self.raw)

    def to_json(self) -> dict:
        """The fields by docs/json.md: ``raw`` and ``unknown_bits`` 16-digit hex words, ``pfn`` an
        integer, ``swap_offset`` a 0x string (an offset), plus ``kind``."""
        out = {f: getattr(self, f) for f in self._fields}
        out["raw"] = json_raw(self.raw)
        out["unknown_bits"] = json_raw(self.unknown_bits)
        out["swap_offset"] = None if self.swap_offset is None else f"{self.swap_offset:#x}"
        out["kind"] = entry_kind(self.raw)
        return out


def entry_kind(raw: int) -> str:
    """``present``, ``guard region``, ``swapped`` or ``not present`` for a raw entry."""
    if raw & L.PM_PRESENT:
        return "present"
    if raw & L.PM_GUARD_REGION:
        return "guard region"  # a PTE marker, which the kernel reports with the swap bit set
    if raw & L.PM_SWAP:
        return "swapped"
    return "not present"


# (attribute, mask) of each one-bit field, from the layout's table
_BIT_FIELDS = tuple((name, 1 << bit) for bit, name, _doc in L.PAGEMAP_BITS)
_ZERO_BITS = sum(1 << b for b in L.PM_ZERO_BITS)


def decode_entry(raw: int, *, pfn_visible: bool | None = None) -> PagemapEntry:
    """Decode a 64-bit pagemap entry.

    ``pfn_visible``: whether the reader had CAP_SYS_ADMIN. ``None`` infers it from the entry:
    a present page (or swap entry) whose frame field is 0 was zeroed by the kernel (user pages
    never live in frame 0 on x86; swap offset 0 is the swap header).
    """
    if not 0 <= raw < 1 << 64:
        raise ValueError(f"pagemap entry {raw!r} is not a 64-bit value")
    values: list = [raw]
    values += [bool(raw & mask) for _name, mask in _BIT_FIELDS]
    present, swapped = bool(raw & L.PM_PRESENT), bool(raw & L.PM_SWAP)
    frame = raw & L.PM_PFRAME_MASK
    hidden = (present or swapped) and (pfn_visible is False or (frame == 0 and not pfn_visible))
    swap_type = frame & L.PM_SWAP_TYPE_MASK if swapped and not present and not hidden else None
    swap_offset = frame >> L.PM_SWAP_TYPE_BITS if swap_type is not None else None
    values += [frame if present and not hidden else None, hidden, swap_type, swap_offset, raw & _ZERO_BITS]
    return PagemapEntry(*values)


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
