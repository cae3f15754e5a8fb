"""Physical memory to a file: ``raw``, ``padded`` or ``lime``, buffered or O_DIRECT.

Formats (the three LiME defines in ``src/lime.h``: LIME_MODE_RAW, LIME_MODE_PADDED,
LIME_MODE_LIME; AVML writes the ``lime`` one):

``raw``
    the ranges back to back, in ascending address order.
``padded``
    file offset = physical address; the holes between ranges are left as file holes (sparse),
    so they read back as zeros, as LiME's padding does, without being written.
``lime``
    each range preceded by a 32-byte LiME v1 header (:mod:`pyphys.layouts.lime`).

Why a bounce buffer for O_DIRECT (seed 003): an O_DIRECT write pins the *source* user pages
with get_user_pages; a /dev/mem mmap is a remap_pfn_range() mapping, flagged
VM_IO|VM_PFNMAP (mm/memory.c), which mm/gup.c check_vma_flags() refuses with -EFAULT. So
the data is first copied out of physical memory (through :mod:`pyphys.physmem`, the one
place that opens /dev/mem) into ordinary anonymous memory, a page-aligned ``mmap`` bounce
buffer, and that buffer is what O_DIRECT writes. docs/dump.md has the whole story.

Guarantees: memory stays bounded (a few blocks of :data:`BLOCK_SIZE`, whatever the dump
size); the output is written under a temporary name in the target directory, made durable
(fsync) and renamed only when complete; any failure or interrupt removes the temporary file
and never touches an existing output; a ``sha256sum``-format sidecar is written next to it.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
import threading
import time

from pyphys import TYPE_CHECKING
from pyphys.errors import PyphysError, RegionError, UsageError, from_oserror
from pyphys.layouts import lime

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from typing import Callable

# No dataclasses, typing, secrets or (unless hashing) hashlib imports: in the TCG lab guest
# every module costs ~10 stats over 9p, seconds for a one-shot CLI (see physmem, iomem).

FORMATS = ("raw", "padded", "lime")
#: bytes read from physical memory and written per step, aligned in the physical address
#: space. Big enough that syscall overhead vanishes (in the lab guest dd moved /dev/mem at
#: 233 MB/s with bs=1M and 213 MB/s with bs=16M: LAB-NOTES), small enough that the blocks
#: in flight (read ahead, being written, queued for SHA-256: at most 7) stay far below the
#: 64 MiB RSS budget.
BLOCK_SIZE = 2 << 20
#: O_DIRECT alignment for file offsets, lengths and buffer addresses. open(2) NOTES: Linux
#: 2.6+ needs the logical block size of the device (512 or 4096); 4096 satisfies both and
#: is the page size, which is what an anonymous mmap is aligned to anyway.
DIRECT_ALIGN = 4096
#: blocks queued to the SHA-256 thread, and read ahead of the writer (bytes objects already
#: read); with the ones being read, written and hashed, at most 7 blocks are alive
_HASH_QUEUE = 2
_READ_AHEAD = 2
_ZERO_CHUNK = 1 << 20

ProgressFn = "Callable[[int, int], None]"


# -- ranges -------------------------------------------------------------------------------


class PhysRange:
    """Physical bytes ``start``..``end``, ``end`` INCLUSIVE (as /proc/iomem and LiME write them).

    Ordered by (start, end), hashable, immutable by convention.
    """

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start = start
        self.end = end

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def _key(self) -> tuple[int, int]:
        return (self.start, self.end)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhysRange) and self._key() == other._key()

    def __lt__(self, other: PhysRange) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"PhysRange({self.start:#x}, {self.end:#x})"

    def __str__(self) -> str:
        return f"{self.start:#x}-{self.end:#x}"


_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _number(text: str, what: str, spec: str, suffix_ok: bool = False) -> int:
    word = text.strip().replace("_", "")
    scale = 1
    if suffix_ok and word and word[-1].lower() in _SUFFIXES and not word.lower().startswith("0x"):
        scale = _SUFFIXES[word[-1].lower()]
        word = word[:-1]
    elif suffix_ok and len(word) > 2 and word[-1].lower() in "mgt" and word.lower().startswith("0x"):
        # 0x10M: hex digits never include m/g/t, so the suffix is unambiguous (k too, but
        # keep hex+k out: 0x1k reads like a typo)
        scale = _SUFFIXES[word[-1].lower()]
        word = word[:-1]
    try:
        value = int(word, 0)
    except ValueError:
        hint = " (/proc/iomem's bare hex needs a 0x prefix)" if all(c in "0123456789abcdefABCDEF" for c in word) else ""
        raise UsageError(f"range {spec!r}: {what} {text!r} is not a number: use decimal or 0x-hex{hint}") from None
    if value < 0:
        raise UsageError(f"range {spec!r}: {what} {text!r} is negative")
    return value * scale


def parse_range(text: str) -> PhysRange:
    """Parse ``START-END`` (END inclusive, as in /proc/iomem) or ``START+LENGTH``.

    LENGTH may end in K, M, G or T (binary units): ``0x100000+16M``. Raises UsageError for
    anything else, an empty range or a reversed one (END below START).
    """
    spec = text.strip()
    if "+" in spec:
        lo, _, hi = spec.partition("+")
        start = _number(lo, "START", spec)
        length = _number(hi, "LENGTH", spec, suffix_ok=True)
        if length == 0:
            raise UsageError(f"range {spec!r} is empty (LENGTH 0)")
        return PhysRange(start, start + length - 1)
    lo, dash, hi = spec.partition("-")
    if not dash or not lo or not hi:
        raise UsageError(f"range {spec!r} is not START-END (END inclusive, as in /proc/iomem) or START+LENGTH")
    start, end = _number(lo, "START", spec), _number(hi, "END", spec)
    if end < start:
        raise UsageError(f"range {spec!r} is reversed: END {end:#x} is below START {start:#x}")
    return PhysRange(start, end)


PAGE = mmap.PAGESIZE


def whole_pages(r: PhysRange) -> PhysRange | None:
    """``r`` shrunk to the whole pages inside it, or None if it holds no whole page."""
    start = -(-r.start // PAGE) * PAGE
    end = (r.end + 1) // PAGE * PAGE - 1
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
        r = whole_pages(PhysRange(region.start, region.end))
        if r:
            out.append(r)
    return out


def _first_not_ram(start: int, end: int, ram) -> int | None:
    """First address of ``start``..``end`` (inclusive) outside the union of ``ram``
    (regions sorted by start; adjacent ones join), or None if it is all RAM."""
    addr = start
    for region in ram:
        if region.start <= addr <= region.end:
            addr = region.end + 1
        if addr > end:
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

    out = sorted(ranges)
    if not out:
        raise UsageError("no ranges to dump")
    for a, b in zip(out, out[1:]):
        if b.start <= a.end:
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
        for page in {r.start - r.start % PAGE, r.end - r.end % PAGE}:
            addr = _first_not_ram(page, page + PAGE - 1, ram)
            if addr is not None:
                raise RegionError(
                    f"range {r}: page {page:#x} is only partly System RAM ({addr:#x} is in {tree.describe(addr)}); "
                    "read(2) of /dev/mem would make the kernel WARN (memremap of a mixed range)",
                    "keep to whole pages of RAM, or use --backend mmap",
                )
    return out


# -- layout -------------------------------------------------------------------------------


class Segment:
    """Where one range lands in the file: its data at ``file_offset`` (LiME header 32 bytes before)."""

    __slots__ = ("range", "file_offset")

    def __init__(self, range: PhysRange, file_offset: int):
        self.range = range
        self.file_offset = file_offset

    def __repr__(self) -> str:
        return f"Segment({self.range}, file_offset={self.file_offset:#x})"

    @property
    def header_offset(self) -> int:
        return self.file_offset - lime.HEADER_SIZE


class Layout:
    """The file a dump will produce: ``segments`` in file order, the final ``size``."""

    __slots__ = ("fmt", "segments", "size")

    def __init__(self, fmt: str, segments: tuple[Segment, ...], size: int):
        self.fmt = fmt
        self.segments = segments
        self.size = size

    @property
    def data_bytes(self) -> int:
        """Bytes of physical memory read (not counting LiME headers or padded holes)."""
        return sum(s.range.length for s in self.segments)

    @property
    def allocated_bytes(self) -> int:
        """Bytes the file occupies on disk (padded holes are sparse)."""
        headers = lime.HEADER_SIZE * len(self.segments) if self.fmt == "lime" else 0
        return self.data_bytes + headers


def layout(ranges: Sequence[PhysRange], fmt: str) -> Layout:
    """File layout of ``ranges`` (already checked and sorted) in format ``fmt``."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    segments = []
    pos = 0
    for r in ranges:
        if fmt == "padded":
            pos = r.start
        elif fmt == "lime":
            pos += lime.HEADER_SIZE
        segments.append(Segment(r, pos))
        pos += r.length
    return Layout(fmt, tuple(segments), pos)


# -- output sinks ---------------------------------------------------------------------------


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - pwrite raises instead on Linux
            raise OSError(errno.EIO, "pwrite wrote nothing")
        view = view[n:]
        offset += n


class _Hasher:
    """SHA-256 of the output stream, computed in a thread so it overlaps the copy.

    hashlib releases the GIL while hashing buffers larger than 2 KiB, so the digest runs in
    parallel with the next read and write; the queue bounds how many blocks wait (RSS).
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._hash = None
        if enabled:
            import hashlib  # here: OpenSSL's _hashlib is the slowest import of all in the guest

            self._hash = hashlib.sha256()
        self._queue: queue.Queue[object | None] = queue.Queue(maxsize=_HASH_QUEUE)
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="pyphys-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._hash.update(item)  # type: ignore[arg-type]

    def update(self, data: object) -> None:
        """Queue immutable ``data`` (bytes, or a view the caller will not reuse)."""
        if self.enabled:
            self._queue.put(data)

    def zeros(self, n: int) -> None:
        """Hash ``n`` zero bytes (a padded file's holes read back as zeros)."""
        if not self.enabled:
            return
        chunk = _zero_chunk()
        while n > 0:
            k = min(n, len(chunk))
            self._queue.put(chunk[:k])
            n -= k

    def hexdigest(self) -> str | None:
        if not self._thread:
            return None
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Stop the thread without finishing (error path): drop what is queued."""
        if not self._thread:
            return
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._thread = None


_ZERO: memoryview | None = None


def _zero_chunk() -> memoryview:
    global _ZERO
    if _ZERO is None:
        _ZERO = memoryview(bytes(_ZERO_CHUNK))
    return _ZERO


class _BufferedSink:
    """Page-cache writes at tracked offsets; holes are skipped (sparse)."""

    direct = False

    def __init__(self, fd: int, hasher: _Hasher):
        self.fd = fd
        self.hasher = hasher
        self.pos = 0

    def write(self, data: bytes) -> None:
        _pwrite_all(self.fd, memoryview(data), self.pos)
        self.hasher.update(data)
        self.pos += len(data)

    def skip(self, n: int) -> None:
        self.hasher.zeros(n)
        self.pos += n

    def close(self) -> None:
        # ftruncate: the true size, even when the file ends in a hole
        os.ftruncate(self.fd, self.pos)


class _DirectSink:
    """O_DIRECT writes through a page-aligned anonymous bounce buffer.

    The buffer is an anonymous ``mmap``: ordinary pages that get_user_pages can pin (unlike a
    /dev/mem mapping), aligned to the page size. Everything reaches the file in whole
    :data:`DIRECT_ALIGN` blocks at aligned offsets; the last block is zero-padded and the
    file then cut to its true size with ftruncate.
    """

    direct = True

    def __init__(self, fd: int, hasher: _Hasher, size: int):
        if size % DIRECT_ALIGN:
            raise ValueError("bounce buffer size must be a multiple of DIRECT_ALIGN")
        self.fd = fd
        self.hasher = hasher
        self.size = size
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.view = memoryview(self.buf)
        self.base = 0  # file offset of buf[0], always DIRECT_ALIGN-aligned
        self.fill = 0  # bytes of buf holding data (or leading zeros after a skip)

    @property
    def pos(self) -> int:
        return self.base + self.fill

    def _flush(self, nbytes: int) -> None:
        """Write buf[:nbytes] (a multiple of DIRECT_ALIGN) at ``base``."""
        _pwrite_all(self.fd, self.view[:nbytes], self.base)

    def _zero(self, lo: int, hi: int) -> None:
        if hi > lo:
            self.view[lo:hi] = bytes(hi - lo)

    def write(self, data: bytes) -> None:
        self.hasher.update(data)
        src = memoryview(data)
        while src:
            n = min(len(src), self.size - self.fill)
            self.view[self.fill : self.fill + n] = src[:n]
            self.fill += n
            src = src[n:]
            if self.fill == self.size:
                self._flush(self.size)
                self.base += self.size
                self.fill = 0

    def skip(self, n: int) -> None:
        self.hasher.zeros(n)
        target = self.pos + n
        if target - self.base <= self.size:
            self._zero(self.fill, target - self.base)
            self.fill = target - self.base
            if self.fill == self.size:
                self._flush(self.size)
                self.base += self.size
                self.fill = 0
            return
        if self.fill:
            end = -(-self.fill // DIRECT_ALIGN) * DIRECT_ALIGN
            self._zero(self.fill, end)
            self._flush(end)
        # the aligned blocks in between are never written: a hole, like the buffered sink's
        self.base = target - target % DIRECT_ALIGN
        self.fill = target - self.base
        self._zero(0, self.fill)

    def close(self) -> None:
        size = self.pos
        if self.fill:
            end = -(-self.fill // DIRECT_ALIGN) * DIRECT_ALIGN
            self._zero(self.fill, end)
            self._flush(end)
        os.ftruncate(self.fd, size)
        self.release()

    def release(self) -> None:
        if self.view is not None:
            self.view.release()
            self.view = None  # type: ignore[assignment]
            try:
                self.buf.close()
            except BufferError:
                pass  # a slice is still referenced by an in-flight traceback: freed with it


# -- reading ----------------------------------------------------------------------------------


def blocks(r: PhysRange, block_size: int) -> Iterator[tuple[int, int]]:
    """``(addr, length)`` pieces of ``r`` aligned to ``block_size`` in the physical address space."""
    addr = r.start
    while addr <= r.end:
        n = min(r.end + 1, addr - addr % block_size + block_size) - addr
        yield addr, n
        addr += n


class _Reader:
    """Reads the planned blocks in a thread, up to :data:`_READ_AHEAD` ahead of the writer.

    Reading (a copy out of physical memory in read(2)) and writing (a copy into the page
    cache, or DMA for O_DIRECT) then overlap, like two dd's in a pipe; both syscalls release
    the GIL. Errors raised while reading are re-raised in the caller by :meth:`next`.
    """

    def __init__(self, pm, segments: Sequence[Segment], block_size: int, fallback: Callable[[], object] | None = None):
        self._pm = pm
        self._segments = segments
        self._block_size = block_size
        self._fallback = fallback
        self._fallback_pm = None
        #: blocks read(2) refused and the fallback read instead: (addr, length, reason)
        self.fell_back: list[tuple[int, int, str]] = []
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyphys-read", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, addr: int, n: int) -> bytes:
        try:
            return self._pm.read(addr, n)
        except RegionError as err:
            # read(2) of /dev/mem fails with EFAULT where the kernel will not copy through its
            # own mapping: a page only partly RAM (x86's 0x9f000: RAM up to 0x9fbff, BIOS after
            # it) makes xlate_dev_mem_ptr()'s memremap() refuse a "mixed" range
            # (kernel/iomem.c), and pages missing from the direct map fail
            # copy_from_kernel_nofault(). A user mapping of the same frames still works.
            if self._fallback is None:
                raise
            if self._fallback_pm is None:
                self._fallback_pm = self._fallback()
            data = self._fallback_pm.read(addr, n)  # type: ignore[attr-defined]
            self.fell_back.append((addr, n, err.message))
            return data

    def _run(self) -> None:
        try:
            for seg in self._segments:
                for addr, n in blocks(seg.range, self._block_size):
                    if self._stop.is_set() or not self._put(self._read(addr, n)):
                        return
        except BaseException as err:  # handed to the writer, which raises it
            self._put(_ReadFailed(err))

    def next(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, _ReadFailed):
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)
        if self._fallback_pm is not None and not self._thread.is_alive():
            self._fallback_pm.close()  # type: ignore[attr-defined]
            self._fallback_pm = None


class _ReadFailed:
    def __init__(self, error: BaseException):
        self.error = error


def open_source(backend: str, probe: int | None = None):
    """Open physical memory for a dump: ``(PhysMem, reason, fallback)``.

    ``backend="auto"`` prefers read(2) on /dev/mem ("rw"): a dump is one long sequential
    read, and read_mem() copies from the kernel's cached direct map, where physmem's mmap
    windows are opened O_SYNC, which x86 maps uncached (arch/x86/mm/pat/memtype.c,
    phys_mem_access_prot_allowed) and which cost an mmap/munmap per window. ``probe`` (a RAM
    address, ideally above 1 MiB where STRICT_DEVMEM refuses rather than shows zeros) is
    read once; if /dev/mem refuses, the module's /dev/pyphys_mem is used when loaded.
    ``fallback`` (auto with read(2) only) opens physmem's mmap backend, for the few blocks
    read(2) cannot copy (:meth:`_Reader._read`); otherwise None.
    """
    from pyphys import physmem
    from pyphys.errors import DevMemBlockedError, ModuleNotLoadedError, NotFoundError, PermissionDeniedError

    if backend != "auto":
        return physmem.open_physmem(backend=backend), f"--backend {backend}", None
    pm = None
    try:
        pm = physmem.open_physmem(backend="rw")
        if probe is not None:
            pm.read(probe, 1)
        return (
            pm,
            "auto: read(2) of /dev/mem (one copy from the kernel's cached mapping)",
            lambda: physmem.open_physmem(backend="mmap"),
        )
    except (DevMemBlockedError, PermissionDeniedError, NotFoundError) as err:
        if pm is not None:
            pm.close()
        try:
            module = physmem.open_physmem(backend="module")
        except ModuleNotLoadedError:
            raise err from None
        return module, f"auto: /dev/mem refused ({err.message}); using /dev/pyphys_mem", None


# -- the dump -------------------------------------------------------------------------------


class DumpResult:
    """What :func:`dump` wrote: ``path``, its ``layout``, the ``sha256`` hex digest and
    ``sidecar`` path (None with ``sha256=False``), ``seconds`` taken, ``direct``, the
    ``backend`` that read memory and why (``backend_reason``), and ``warnings``."""

    def __init__(
        self,
        path: str,
        layout: Layout,
        sha256: str | None,
        sidecar: str | None,
        seconds: float,
        direct: bool,
        backend: str,
        backend_reason: str = "",
        warnings: list[str] | None = None,
    ):
        self.path = path
        self.layout = layout
        self.sha256 = sha256
        self.sidecar = sidecar
        self.seconds = seconds
        self.direct = direct
        self.backend = backend
        self.backend_reason = backend_reason
        self.warnings = warnings if warnings is not None else []

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def rate(self) -> float:
        """Physical memory bytes read per second."""
        return self.layout.data_bytes / self.seconds if self.seconds > 0 else 0.0


def _temp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.urandom(4).hex()}.pyphys-tmp")


def _check_target(path: str, force: bool) -> None:
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory (give a file name with -o)")
    if os.path.lexists(path) and not force:
        raise UsageError(f"{path} exists (use --force to overwrite it)")


def _check_space(directory: str, needed: int) -> None:
    try:
        st = os.statvfs(directory)
    except OSError as err:
        raise from_oserror(err, f"statvfs {directory}") from err
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise PyphysError(
            f"not enough space in {directory}: the dump needs {_size(needed)}, {_size(free)} free",
            "free some space or write elsewhere with -o",
        )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _install(tmp: str, path: str, force: bool) -> None:
    """Move the finished ``tmp`` to ``path``; without ``force`` never replace a file that
    appeared meanwhile (link(2) fails with EEXIST, where rename(2) would silently replace)."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(f"{path} appeared while dumping (use --force to overwrite it)") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # filesystems without hard links (vfat, some FUSE): check, then rename
        if os.path.lexists(path):
            raise UsageError(f"{path} appeared while dumping (use --force to overwrite it)") from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (9p, FUSE) refuse fsync on a directory: the rename still happened
    finally:
        os.close(fd)


def _open_output(tmp: str, direct: bool, directory: str) -> int:
    # 0600: a RAM image holds every secret the machine had in memory
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    if direct:
        flags |= os.O_DIRECT
    try:
        return os.open(tmp, flags, 0o600)
    except OSError as err:
        if direct and err.errno == errno.EINVAL:
            raise PyphysError(
                f"{directory} does not support O_DIRECT (open: Invalid argument)",
                "drop --direct, or write to a filesystem that has it (ext4, xfs, btrfs, 9p; tmpfs only "
                "since Linux 6.6)",
            ) from err
        raise from_oserror(err, f"cannot create a file in {directory}") from err


def dump(
    path: str,
    ranges: Sequence[PhysRange] | None = None,
    fmt: str = "lime",
    *,
    direct: bool = False,
    force: bool = False,
    backend: str = "auto",
    sha256: bool = True,
    block_size: int = BLOCK_SIZE,
    progress: ProgressFn | None = None,
    on_write: Callable[[int, int], None] | None = None,
    iomem_tree=None,
) -> DumpResult:
    """Dump physical ``ranges`` (default: all System RAM) to ``path`` in format ``fmt``.

    ``direct`` writes with O_DIRECT through a page-aligned bounce buffer; ``backend`` picks
    how physical memory is read (:func:`open_source`). ``progress(done, total)`` is called after
    every block with bytes of memory read so far; ``on_write(fd, done)`` likewise, with the
    output's file descriptor (tests check its O_DIRECT flag there). ``iomem_tree`` replaces
    the running kernel's /proc/iomem (tests).

    Returns a :class:`DumpResult`. Raises UsageError (bad ranges, existing output without
    ``force``), RegionError (a range outside System RAM), and PyphysError for I/O failures:
    ENOSPC, EFBIG, a refused /dev/mem. On any failure, and on KeyboardInterrupt (re-raised),
    the temporary file is removed and ``path`` is left as it was.
    """
    from pyphys import iomem

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if block_size <= 0 or block_size % DIRECT_ALIGN:
        raise UsageError(f"block size {block_size} is not a positive multiple of {DIRECT_ALIGN}")
    tree = iomem_tree if iomem_tree is not None else iomem.require_visible(iomem.load())
    if ranges is None:
        ranges = system_ram(tree)
        if not ranges:
            raise RegionError("/proc/iomem lists no System RAM")
    plan = layout(check_ranges(ranges, tree, backend), fmt)

    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    sidecar = path + ".sha256" if sha256 else None
    _check_target(path, force)
    # FILE.sha256 is checked even with --no-sha256: left next to a new FILE it would describe
    # the old one (with --force it is removed once the new FILE is in place)
    _check_target(path + ".sha256", force)
    if not os.path.isdir(directory):
        raise from_oserror(FileNotFoundError(errno.ENOENT, "no such directory"), f"cannot write to {directory}")

    tmp = _temp_name(path)
    tmp_sidecar: str | None = None
    installed: list[str] = []
    fd = -1
    hasher = _Hasher(sha256)
    sink: object | None = None
    done = 0
    total = plan.data_bytes
    warnings: list[str] = []
    started = time.monotonic()
    pm = None
    reader: _Reader | None = None
    try:
        # create first: an unwritable directory is reported as such, not as "no space"
        fd = _open_output(tmp, direct, directory)
        _check_space(directory, plan.allocated_bytes)
        probe = next((max(r.range.start, 1 << 20) for r in plan.segments if r.range.end >= 1 << 20), None)
        pm, reason, fallback = open_source(backend, probe)
        from pyphys import physmem  # loaded by open_source already

        sink = _DirectSink(fd, hasher, block_size) if direct else _BufferedSink(fd, hasher)
        all_zero = True
        reader = _Reader(pm, plan.segments, block_size, fallback)
        if progress:
            progress(0, total)
        for seg in plan.segments:
            r = seg.range
            if fmt == "lime":
                sink.write(lime.pack_header(r.start, r.end))
            elif fmt == "padded" and seg.file_offset > sink.pos:
                sink.skip(seg.file_offset - sink.pos)
            left = r.length
            while left:
                data = reader.next()
                if all_zero and not physmem.all_zero(data):
                    all_zero = False
                sink.write(data)
                left -= len(data)
                done += len(data)
                del data
                if on_write:
                    on_write(fd, done)
                if progress:
                    progress(done, total)
        sink.close()
        os.fsync(fd)
        os.close(fd)
        fd = -1
        digest = hasher.hexdigest()
        if sidecar:
            tmp_sidecar = _temp_name(sidecar)
            sfd = os.open(tmp_sidecar, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                # sha256sum's format: "HEX  NAME" (two spaces: text mode), NAME relative so that
                # `sha256sum -c FILE.sha256` works in the dump's directory
                os.write(sfd, f"{digest}  {os.path.basename(path)}\n".encode())
                os.fsync(sfd)
            finally:
                os.close(sfd)
        _install(tmp, path, force)
        installed.append(path)
        if sidecar and tmp_sidecar:
            _install(tmp_sidecar, sidecar, force)
            tmp_sidecar = None
        elif os.path.lexists(path + ".sha256"):
            os.unlink(path + ".sha256")  # stale: it described the FILE just replaced
        _fsync_dir(directory)
        if reader.fell_back:
            spots = ", ".join(f"{a:#x}+{n:#x}" for a, n, _ in reader.fell_back[:4])
            more = f" and {len(reader.fell_back) - 4} more" if len(reader.fell_back) > 4 else ""
            reason += f"; read(2) refused {spots}{more} ({reader.fell_back[0][2]}): read through mmap instead"
        if all_zero and total:
            warnings.append(
                f"every byte read was zero: {pm.path} may be returning zeros for RAM it hides "
                "(CONFIG_STRICT_DEVMEM, drivers/char/mem.c read_mem); check with `pyphys doctor`, "
                "or load pyphys.ko mem_device=1 and use --backend module"
            )
        return DumpResult(path, plan, digest, sidecar, time.monotonic() - started, direct, pm.backend, reason, warnings)
    except BaseException as exc:
        if reader is not None:
            reader.close()
        hasher.abort()
        if isinstance(sink, _DirectSink):
            sink.release()
        if fd >= 0:
            os.close(fd)
        for name in (tmp, tmp_sidecar, *installed):
            if name:
                try:
                    os.unlink(name)
                except OSError:
                    pass
        if isinstance(exc, OSError):
            raise _explain_write(exc, path, done, total) from exc
        raise
    finally:
        if reader is not None:
            reader.close()
        if pm is not None:
            pm.close()


def _explain_write(err: OSError, path: str, done: int, total: int) -> PyphysError:
    progress = f"after {_size(done)} of {_size(total)}"
    cleanup = f"the partial file was removed; {os.path.basename(path)} was not written"
    if err.errno == errno.ENOSPC:
        return PyphysError(f"writing {path}: no space left on device {progress}", cleanup)
    if err.errno == errno.EFBIG:
        return PyphysError(f"writing {path}: file too large (EFBIG: ulimit -f or filesystem limit) {progress}", cleanup)
    if err.errno == errno.EDQUOT:
        return PyphysError(f"writing {path}: disk quota exceeded {progress}", cleanup)
    return from_oserror(err, f"writing {path} {progress}", cleanup)
