"""Physical memory to a file or a stream: ``raw``, ``padded``, ``lime``, ``avml`` or ``elf``.

Formats (LiME's three modes in ``src/lime.h``, AVML's compressed one, and a kdump-style core):

``raw``
    the ranges back to back, in ascending address order.
``padded``
    file offset = physical address; the holes between ranges are left as file holes (sparse),
    so they read back as zeros, as LiME's padding does, without being written.
``lime``
    each range preceded by a 32-byte LiME v1 header (:mod:`pyphys.layouts.lime`).
``avml``
    ``avml --compress``'s format: an AVML v2 header, the range in snappy frames, its
    compressed length (:mod:`pyphys.layouts.avml`); decompressed, record for record, it is
    the ``lime`` file of the same ranges.
``elf``
    an ELF core with one PT_LOAD per range and the kernel's VMCOREINFO note
    (:mod:`pyphys.layouts.elf`): drgn and crash open it with the kernel's vmlinux.

Guarantees: memory stays bounded (a few blocks of :data:`BLOCK_SIZE`, whatever the dump
size); a file is written under one partial name next to it (``.FILE.pyphys-partial``),
checkpointed, made durable (fsync) and renamed only when complete; an interrupted dump is
resumed (``resume=True``) or replaced by the next run into the same path, never left under
the final name. Next to the file: ``FILE.sha256`` (sha256sum format) and ``FILE.json``, the
metadata (:mod:`pyphys.dump_meta`). ``path="-"`` streams to standard output.
"""

from __future__ import annotations

import mmap
import os

from pyphys import TYPE_CHECKING
from pyphys.dump_io import DIRECT_ALIGN
from pyphys.errors import RegionError, UsageError
from pyphys.layouts import avml, lime
from pyphys.record import Record

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from typing import Callable

FORMATS = ("raw", "padded", "lime", "avml", "elf")
STREAMABLE = ("raw", "lime", "avml", "elf")
#: bytes read from physical memory and written per step, aligned in the physical address
#: space. Big enough that syscall overhead vanishes (in the lab guest dd moved /dev/mem at
#: 233 MB/s with bs=1M and 213 MB/s with bs=16M), small enough that the blocks in flight
#: stay far below the 64 MiB RSS budget.
BLOCK_SIZE = 2 << 20
#: memory bytes between two checkpoints (fsync + state file): what an interrupted dump loses
CHECKPOINT = 128 << 20
PAGE = mmap.PAGESIZE


class PhysRange(Record):
    """Physical bytes ``start``..``end``, END exclusive (pyphys's dialect, docs/json.md)."""

    __slots__ = ("start", "end")
    _json = {"start": "hex", "end": "hex"}

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def last(self) -> int:
        """The last byte (inclusive), as /proc/iomem and the LiME/AVML headers write it."""
        return self.end - 1

    def __str__(self) -> str:
        from pyphys.dialect import fmt_range

        return fmt_range(self.start, self.end)


def parse_range(text: str) -> PhysRange:
    """``START+LENGTH`` or ``START-END`` (END exclusive), as :func:`pyphys.dialect.parse_range`."""
    from pyphys.dialect import parse_range as parse

    return PhysRange(*parse(text, "range"))


def whole_pages(r: PhysRange) -> PhysRange | None:
    """``r`` shrunk to the whole pages inside it, or None if it holds no whole page."""
    start = -(-r.start // PAGE) * PAGE
    end = r.end // PAGE * PAGE
    return PhysRange(start, end) if end > start else None


def system_ram(tree=None) -> list[PhysRange]:
    """The whole pages of every top-level "System RAM" range of /proc/iomem.

    The ranges LiME walks (``iomem_resource`` children named "System RAM"), cut to whole
    pages as AVML does (``image.rs``: ``size = (size >> 12) << 12``): on x86 the first range
    ends mid-page (0x9fbff, the BIOS's EBDA follows), the kernel never uses that page, and
    LiME itself writes zeros there instead of memory (``write_range``: "We can't map partial
    pages"). ``tree`` is an :class:`iomem.IomemTree` (default: the running kernel's); raises
    PyphysError when /proc/iomem is unreadable or hidden (not root).
    """
    from pyphys import iomem

    if tree is None:
        tree = iomem.require_visible(iomem.load())
    out = []
    for region in tree.ram_regions():
        r = whole_pages(PhysRange(region.start, region.end + 1))
        if r:
            out.append(r)
    return out


def _first_not_ram(start: int, end: int, ram) -> int | None:
    """First address of ``start``..``end`` (exclusive) outside the union of ``ram`` (iomem
    regions, inclusive ends, sorted by start; adjacent ones join), or None if all RAM."""
    addr = start
    for region in ram:
        if region.start <= addr <= region.end:
            addr = region.end + 1
        if addr >= end:
            return None
    return addr


def check_ranges(ranges: Iterable[PhysRange], tree=None, backend: str = "auto") -> list[PhysRange]:
    """Sorted copy of ``ranges``; UsageError if two overlap, RegionError if one leaves RAM.

    A range may span adjacent System RAM regions (the kernel splits RAM at firmware
    boundaries); it may not touch a byte outside them: reading MMIO through /dev/mem can have
    side effects, and holes have no backing at all. With read(2) of /dev/mem (``backend``
    auto or rw) a range may not reach into a page that is only partly RAM either:
    read_mem() maps each page with memremap(), which refuses a page mixing RAM and
    non-RAM with a kernel WARN ("memremap attempted on mixed range", kernel/iomem.c). ``tree``
    is an :class:`iomem.IomemTree` (default: the running kernel's).
    """
    from pyphys import iomem

    out = sorted(ranges, key=lambda r: (r.start, r.end))
    if not out:
        raise UsageError("no ranges to dump")
    for a, b in zip(out, out[1:]):
        if b.start < a.end:
            raise UsageError(f"ranges {a} and {b} overlap (each byte may be dumped once)")
    if tree is None:
        tree = iomem.require_visible(iomem.load())
    ram = sorted(tree.ram_regions(), key=lambda x: x.start)
    for r in out:
        addr = _first_not_ram(r.start, r.end, ram)
        if addr is not None:
            raise RegionError(
                f"range {r} is not all System RAM: {addr:#x} is in {tree.describe(addr)}",
                "dump System RAM only: see `pyphys iomem`",
            )
        if backend not in ("auto", "rw"):
            continue
        for page in {r.start - r.start % PAGE, r.last - r.last % PAGE}:
            addr = _first_not_ram(page, page + PAGE, ram)
            if addr is not None:
                raise RegionError(
                    f"range {r}: page {page:#x} is only partly System RAM ({addr:#x} is in {tree.describe(addr)}); "
                    "read(2) of /dev/mem would make the kernel WARN (memremap of a mixed range)",
                    "keep to whole pages of RAM, or use --backend mmap",
                )
    return out


# -- layout -------------------------------------------------------------------------------------


class Segment(Record):
    """One range in the file: its ``header`` bytes, then its data at ``file_offset`` (None for
    avml until written: compressed sizes are known only then), ``virt`` its direct-map address."""

    __slots__ = ("range", "header", "file_offset", "virt")
    _defaults = {"header": b"", "virt": None}


class Layout(Record):
    """The file a dump will produce: ``prefix`` (the ELF header), ``segments`` in file order,
    the final ``size`` (None for avml: compressed)."""

    __slots__ = ("fmt", "prefix", "segments", "size")

    @property
    def data_bytes(self) -> int:
        """Bytes of physical memory read (not counting headers or padded holes)."""
        return sum(s.range.length for s in self.segments)

    @property
    def allocated_bytes(self) -> int:
        """Bytes the file occupies on disk at most (padded holes are sparse; avml's bound is
        the data plus snappy's framing of incompressible input: 8 bytes per 64 KiB)."""
        headers = len(self.prefix) + sum(len(s.header) for s in self.segments)
        extra = self.data_bytes // avml.FRAME_INPUT * 8 + 64 * len(self.segments) if self.fmt == "avml" else 0
        return self.data_bytes + headers + extra


def layout(ranges: Sequence[PhysRange], fmt: str, notes: bytes = b"", direct_map: int | None = None) -> Layout:
    """File layout of ``ranges`` (already checked and sorted) in format ``fmt``; ``notes`` and
    ``direct_map`` (the kernel's direct-map base) are the ELF format's."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    virt = [direct_map + r.start if direct_map is not None else None for r in ranges]
    if fmt == "elf":
        from pyphys.layouts import elf

        prefix, offsets = elf.header([(r.start, v or 0, r.length) for r, v in zip(ranges, virt)], notes)
        segs = tuple(Segment(r, b"", off, v) for r, off, v in zip(ranges, offsets, virt))
        return Layout(fmt, prefix, segs, offsets[-1] + ranges[-1].length)
    if fmt == "avml":
        segs = tuple(Segment(r, avml.pack_header(r.start, r.last), None, v) for r, v in zip(ranges, virt))
        return Layout(fmt, b"", segs, None)
    segments = []
    pos = 0
    for r, v in zip(ranges, virt):
        header = lime.pack_header(r.start, r.last) if fmt == "lime" else b""
        pos = r.start if fmt == "padded" else pos + len(header)
        segments.append(Segment(r, header, pos, v))
        pos += r.length
    return Layout(fmt, b"", tuple(segments), pos)


def blocks(r: PhysRange, block_size: int, done: int = 0) -> Iterator[tuple[int, int]]:
    """``(addr, length)`` pieces of ``r`` from ``r.start + done``, aligned to ``block_size``
    in the physical address space."""
    addr = r.start + done
    while addr < r.end:
        n = min(r.end, addr - addr % block_size + block_size) - addr
        yield addr, n
        addr += n


# -- the dump -----------------------------------------------------------------------------------


def _sources(pm, tree, fmt: str):
    """VMCOREINFO and KASLR facts for the metadata (and the ELF note), warnings included."""
    from pyphys import dump_meta

    info, why = dump_meta.vmcoreinfo(pm)
    warnings = []
    if info is None and fmt == "elf":
        warnings.append(
            f"no VMCOREINFO ({why}): the ELF has no VMCOREINFO note, so drgn and crash will not take it "
            "for a kernel core (they need its KERNELOFFSET and page-table root); see docs/dump.md"
        )
    kaslr = dump_meta.kaslr(pm, info, tree)
    if info is None:
        kaslr.note = "; ".join(x for x in (f"no VMCOREINFO: {why}", kaslr.note) if x)
    if kaslr.agree is False:
        warnings.append(f"KASLR offset: {kaslr.note}")
    return info, kaslr, warnings


def dump(
    path: str,
    ranges: Sequence[PhysRange] | None = None,
    fmt: str = "lime",
    *,
    direct: bool = False,
    force: bool = False,
    backend: str = "auto",
    sha256: bool = True,
    meta: str | bool = True,
    resume: bool = False,
    block_size: int = BLOCK_SIZE,
    progress: Callable[[int, int], None] | None = None,
    on_write: Callable[[int, int], None] | None = None,
    note: Callable[[str], None] | None = None,
    iomem_tree=None,
):
    """Dump physical ``ranges`` (default: all System RAM) to ``path`` (``"-"``: standard
    output) in format ``fmt``; returns the :class:`pyphys.dump_meta.Metadata` it also writes
    to ``FILE.json`` (``meta``: True for that name, a path, or False for none).

    ``direct`` writes with O_DIRECT through a page-aligned bounce buffer; ``backend`` picks
    how physical memory is read (:func:`pyphys.dump_io.open_source`). ``resume`` continues
    the interrupted dump of ``path`` (:mod:`pyphys.dump_resume`). ``progress(done, total)``
    is called after every block with bytes of memory read so far; ``on_write(fd, done)``
    likewise, with the output's descriptor; ``note(text)`` gets what to tell the user now.
    ``iomem_tree`` replaces the running kernel's /proc/iomem (tests).

    Raises UsageError (bad ranges or options, an existing output without ``force``),
    RegionError (a range outside System RAM), and PyphysError for I/O failures. On any
    failure the final name is left as it was; on KeyboardInterrupt (re-raised) and write
    errors after a checkpoint the partial file is kept for ``resume``, else removed.
    """
    from pyphys import dump_io, dump_job, dump_meta, iomem

    note = note or (lambda text: None)
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if block_size <= 0 or block_size % DIRECT_ALIGN:
        raise UsageError(f"block size {block_size} is not a positive multiple of {DIRECT_ALIGN}")
    if fmt == "avml":
        if block_size % avml.FRAME_INPUT:
            raise UsageError(f"the avml format needs a block size that is a multiple of {avml.FRAME_INPUT >> 10}K")
        avml.require()
    if path == "-":
        _check_stream(fmt, direct, resume)
    tree = iomem_tree if iomem_tree is not None else iomem.require_visible(iomem.load())
    explicit = ranges is not None
    if ranges is None:
        ranges = system_ram(tree)
        if not ranges:
            raise RegionError("/proc/iomem lists no System RAM")
    ranges = check_ranges(ranges, tree, backend)
    target = dump_job.Target(
        path, file_hash=sha256 and fmt != "padded", meta=meta, force=force, resume=resume, note=note
    )
    probe = next((max(r.start, 1 << 20) for r in ranges if r.end > 1 << 20), None)
    pm, reason, fallback = dump_io.open_source(backend, probe)
    try:
        kernel = dump_meta.kernel_facts()
        info, kaslr, warnings = _sources(pm, tree, fmt)
        notes = b""
        if fmt == "elf" and info is not None:
            from pyphys.layouts import elf

            notes = elf.note(elf.VMCOREINFO_NAME, 0, info.text.encode())
        plan = layout(ranges, fmt, notes, kaslr.direct_map)
        opts = {
            "direct": direct,
            "block_size": block_size,
            "sha256": sha256,
            "progress": progress,
            "on_write": on_write,
            "checkpoint": CHECKPOINT,
        }
        job = dump_job.Job(target, plan, explicit, tree, opts)
        return job.run(pm, reason, fallback, (kernel, info, kaslr, warnings))
    finally:
        pm.close()


def _check_stream(fmt: str, direct: bool, resume: bool) -> None:
    if fmt not in STREAMABLE:
        raise UsageError(
            f"-o - cannot stream the {fmt} format (its holes need a seekable file)", "use -f raw, lime, avml or elf"
        )
    if direct or resume:
        raise UsageError(f"-o - cannot be combined with {'--direct' if direct else '--resume'} (a pipe is not a file)")
    if os.isatty(1):
        raise UsageError(
            "-o - would write binary memory to a terminal", "redirect it (-o - > FILE) or pipe it (-o - | nc HOST PORT)"
        )
