"""Shared mappings of physical memory (or any mmap-able device file) with exact-width accesses.

:class:`MappedWindow` performs every 8/16/32/64-bit access as ONE aligned load or store of that
width through ``memoryview.cast`` (CPython's ``unpack_single`` / ``pack_single`` copy a
fixed-size native integer, which compiles to one move), never as bytes. A range read or write
over non-RAM (MMIO) goes through 32-bit accesses; over RAM it is a plain copy. :mod:`pyphys.physmem`
maps /dev/mem with it and :mod:`pyphys.pci_access` a BAR's sysfs resource file.
"""

from __future__ import annotations

import mmap
import os
import stat

from pyphys import TYPE_CHECKING
from pyphys.errors import PyphysError, RegionError, UsageError, from_oserror

if TYPE_CHECKING:
    from typing import Callable

PAGE_SIZE = mmap.PAGESIZE
#: access width in bits -> memoryview format (native byte order, like busybox devmem)
WIDTH_FORMATS = {8: "B", 16: "H", 32: "I", 64: "Q"}


def page_base(addr: int) -> int:
    """``addr`` rounded down to a page boundary."""
    return addr - addr % PAGE_SIZE


def check_width(width: int) -> int:
    """Return the access size in bytes for ``width`` bits; UsageError unless 8/16/32/64."""
    if width not in WIDTH_FORMATS:
        raise UsageError(f"width {width} is not one of 8, 16, 32, 64 (bits)")
    return width // 8


def check_value(value: int, width: int) -> None:
    """UsageError if ``value`` does not fit in ``width`` bits (or is negative)."""
    if value < 0:
        raise UsageError(f"value {value} is negative")
    if value >> width:
        raise UsageError(f"value {value:#x} is wider than {width} bits")


_zeros = b""


def all_zero(data: bytes) -> bool:
    """Whether every byte of ``data`` is 0: one memcmp against a calloc'd block.

    ``not any(data)`` walks the bytes as Python ints: 13 ms per 2 MiB natively, and most of a
    dump's time under TCG, where most of a guest's RAM is zeros. The block is allocated
    lazily and calloc'd, so it maps the shared zero page and costs no RSS.
    """
    global _zeros
    if len(data) > len(_zeros):
        _zeros = bytes(len(data))
    return _zeros.startswith(data)


class MappedWindow:
    """A shared mapping of ``length`` bytes at ``offset`` of any mmap-able fd (/dev/mem, PCI resourceN).

    Offsets given to the methods are relative to ``offset`` (the mapping itself is widened to
    page boundaries). ``mmio=True`` makes :meth:`read`/:meth:`write` use 32-bit accesses for
    the aligned part, as device registers expect. ``explain(err, offset)`` turns an ``OSError``
    from mmap into a PyphysError (default: :func:`~pyphys.errors.from_oserror`).
    """

    def __init__(
        self,
        fd: int,
        offset: int,
        length: int,
        writable: bool,
        *,
        mmio: bool = False,
        what: str = "memory",
        explain: Callable[[OSError, int], PyphysError] | None = None,
    ):
        if length <= 0:
            raise UsageError(f"cannot map {length} bytes of {what}")
        self.offset = offset
        self.length = length
        self.writable = writable
        self.mmio = mmio
        self.what = what
        base = page_base(offset)
        self._delta = offset - base
        size = -(-(self._delta + length) // PAGE_SIZE) * PAGE_SIZE
        if self._delta + length < size:
            # CPython refuses to map past a regular file's st_size, and sysfs gives a PCI
            # resourceN file its BAR's size (pci_create_attr()), which may be under a page.
            # The kernel maps whole pages anyway (pci_mmap_fits() rounds the BAR up), so map
            # just as much as the file claims when the window fits in it.
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and base + self._delta + length <= st.st_size < base + size:
                size = st.st_size - base
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:
            self._mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot, offset=base)
        except OSError as err:
            if explain is not None:
                raise explain(err, offset) from err
            raise from_oserror(err, f"mmap of {what} at {offset:#x}") from err
        except ValueError as err:
            # CPython checks regular files against their size (the unit tests' stand-in /dev/mem)
            raise RegionError(f"{what}: {offset:#x}+{length:#x} is past its end ({err})") from None
        self._view = memoryview(self._mm)
        self._casts: dict[int, memoryview] = {}

    # -- exact-width accesses -------------------------------------------------------------
    def _index(self, off: int, width: int) -> tuple[memoryview, int]:
        size = check_width(width)
        if (self._delta + off) % size:
            raise UsageError(f"{self.what}: {self.offset + off:#x} is not aligned to {width} bits")
        if off < 0 or off + size > self.length:
            raise RegionError(f"{self.what}: offset {off:#x} is outside the {self.length:#x}-byte window")
        view = self._casts.get(width)
        if view is None:
            whole = len(self._view) - len(self._view) % (width // 8)  # a file-sized map may end mid-word
            view = self._casts[width] = self._view[:whole].cast(WIDTH_FORMATS[width])
        return view, (self._delta + off) // size

    def read_word(self, off: int, width: int) -> int:
        """One aligned load of exactly ``width`` bits at ``off``; UsageError if unaligned."""
        view, index = self._index(off, width)
        return view[index]

    def write_word(self, off: int, width: int, value: int) -> None:
        """One aligned store of exactly ``width`` bits at ``off``; UsageError if unaligned or too wide."""
        if not self.writable:
            raise UsageError(f"{self.what} is mapped read-only")
        check_value(value, width)
        view, index = self._index(off, width)
        view[index] = value

    # -- byte ranges ----------------------------------------------------------------------
    def _check_range(self, off: int, n: int) -> None:
        if off < 0 or n < 0 or off + n > self.length:
            raise RegionError(f"{self.what}: {off:#x}+{n:#x} is outside the {self.length:#x}-byte window")

    def read(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``: one exact access for 1/2/4/8 aligned bytes, 32-bit loads if mmio."""
        self._check_range(off, n)
        if _single_access(n, self._delta + off, self.mmio):
            return self.read_word(off, n * 8).to_bytes(n, "little")
        start = self._delta + off
        if not self.mmio:
            return bytes(self._view[start : start + n])
        # Device registers: read the aligned 32-bit words covering the range, never bytes.
        lo = start - start % 4
        hi = -(-(start + n) // 4) * 4
        base = lo - self._delta
        raw = b"".join(self.read_word(base + i, 32).to_bytes(4, "little") for i in range(0, hi - lo, 4))
        return raw[start - lo : start - lo + n]

    def write(self, off: int, data: bytes) -> None:
        """Store ``data`` at ``off``: exact stores for 1/2/4/8 aligned bytes, 32-bit stores if mmio."""
        if not self.writable:
            raise UsageError(f"{self.what} is mapped read-only")
        n = len(data)
        self._check_range(off, n)
        if _single_access(n, self._delta + off, self.mmio):
            self.write_word(off, n * 8, int.from_bytes(data, "little"))
            return
        if not self.mmio:
            start = self._delta + off
            self._view[start : start + n] = data
            return
        # MMIO: narrow stores only for an unaligned head/tail, 32-bit stores for the rest.
        pos = 0
        while pos < n:
            here = off + pos
            left = n - pos
            if here % 4 == 0 and left >= 4:
                size = 4
            elif here % 2 == 0 and left >= 2:
                size = 2
            else:
                size = 1
            self.write_word(here, size * 8, int.from_bytes(data[pos : pos + size], "little"))
            pos += size

    def close(self) -> None:
        """Unmap (views are released first, else mmap.close raises BufferError)."""
        for view in self._casts.values():
            view.release()
        self._casts.clear()
        if self._view is not None:
            self._view.release()
            self._view = None  # type: ignore[assignment]
        self._mm.close()

    def __enter__(self) -> MappedWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _single_access(n: int, addr: int, mmio: bool) -> bool:
    """Can ``n`` bytes at ``addr`` be one exact access? On MMIO a byte range is never one 64-bit
    access: devices such as QEMU's edu answer only 32-bit accesses to their registers."""
    return n in ((1, 2, 4) if mmio else (1, 2, 4, 8)) and addr % n == 0
