"""The populated parts of an address space, without handling every empty pagemap entry.

A process with a 64 GiB ``MAP_NORESERVE`` mapping and a few thousand touched pages has 16 Mi
pagemap entries, nearly all zero. Two ways to skip them, chosen by ``PYPHYS_PAGEMAP_SCAN``:

* ``ioctl``: the PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7, include/uapi/linux/fs.h)
  returns the ranges whose pages are present or swapped (or guard regions, where the kernel
  accepts that category: probed once, as CRIU probes); only those entries are read.
* ``read``: pagemap is read in chunks, as page-types reads it, and the stretches with neither
  the present nor the swap bit are dropped with bytes operations (``translate``/``find``, in C).
* ``auto`` (the default): ``ioctl`` where the kernel has it, else ``read``.

Either way the caller gets blobs of real pagemap entries (possibly from several places: only
counting uses this) and the number of pages left out, which are all "not present".
"""

from __future__ import annotations

import errno
import os
import struct

from pyphys import paths
from pyphys.errors import PyphysError, UsageError, from_oserror
from pyphys.layouts import pagemap as L

MODES = ("auto", "ioctl", "read")
BLOB_PAGES = 1 << 16  # entries per blob handed to the counting (as scanner.CHUNK_PAGES)
_VEC_LEN = 1 << 15  # page_region slots per ioctl call (768 KiB): 16 Ki scattered pages in one call

_ARG = struct.Struct(L.PM_SCAN_ARG_FORMAT)
_REGION = struct.Struct(L.PAGE_REGION_FORMAT)
# byte 7 of an entry holds bits 56-63: 1 where bit 62 (swap) or 63 (present) is set
_POPULATED = bytes((i >> 6) != 0 for i in range(256))
_categories: dict[str, int | None] = {}  # procfs root -> PAGE_IS_* bits its kernel accepts


def scan_mode() -> str:
    """``PYPHYS_PAGEMAP_SCAN`` (``auto``, ``ioctl`` or ``read``); UsageError otherwise."""
    mode = os.environ.get("PYPHYS_PAGEMAP_SCAN", "auto") or "auto"
    if mode not in MODES:
        raise UsageError(f"PYPHYS_PAGEMAP_SCAN={mode!r} is not one of {', '.join(MODES)}")
    return mode


def scan_categories(fd: int) -> int | None:
    """The PAGE_IS_* categories PAGEMAP_SCAN accepts here (present, swapped, guard), or None
    when the kernel has no PAGEMAP_SCAN (before 6.7: ENOTTY). An empty range (start = end)
    makes each call a pure check of the arguments (pagemap_scan_get_args: EINVAL for a
    category the kernel does not know)."""
    root = paths.proc()
    if root in _categories:
        return _categories[root]
    import fcntl

    accepted = 0
    for bit in (L.PAGE_IS_PRESENT, L.PAGE_IS_SWAPPED, L.PAGE_IS_GUARD):
        arg = bytearray(_ARG.pack(L.PM_SCAN_ARG_BYTES, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, bit))
        try:
            fcntl.ioctl(fd, L.PAGEMAP_SCAN, arg)
        except OSError as err:
            if err.errno == errno.EINVAL:
                continue
            if err.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
                accepted = None
                break
            raise from_oserror(err, "PAGEMAP_SCAN ioctl on pagemap") from err
        accepted |= bit
    if accepted is not None and not accepted & L.PAGE_IS_PRESENT:
        accepted = None
    _categories[root] = accepted
    return accepted


def _regions(fd: int, lo: int, hi: int, categories: int, vec, addr: int):
    """``(start, end)`` of the ranges in ``[lo, hi)`` with any of ``categories``, adjacent ones
    merged. ``vec``: array('Q') of 3 * _VEC_LEN words at ``addr``, for the page_region slots."""
    import fcntl

    pack, unpack, code = _ARG.pack, _ARG.unpack, L.PAGEMAP_SCAN
    out: list[tuple[int, int]] = []
    pos = done = lo
    while pos < hi:
        arg = bytearray(pack(L.PM_SCAN_ARG_BYTES, 0, pos, hi, 0, addr, _VEC_LEN, 0, 0, 0, categories, categories))
        try:
            n = fcntl.ioctl(fd, code, arg)
        except OSError as err:
            raise from_oserror(err, "PAGEMAP_SCAN ioctl on pagemap") from err
        for start, end in zip(vec[0 : 3 * n : 3], vec[1 : 3 * n : 3]):
            start = max(start, done)
            if start < end:
                if out and out[-1][1] == start:
                    out[-1] = (out[-1][0], end)  # present next to swapped: one read
                else:
                    out.append((start, end))
                done = end
        # With the vector full, 6.18 was seen to report regions past the walk_end it wrote
        # back (a 64 GiB walk: walk_end 0x...4054e00000, last region ending 0x...40d4a01000),
        # and the next call from walk_end repeats them: continue after both, never twice.
        walk_end = max(unpack(arg)[L.PM_SCAN_WALK_END], done)
        if walk_end <= pos:
            break
        pos = walk_end
    return out


def populated(scan, pieces, mode: str | None = None):
    """Yield blobs (bytes) of the pagemap entries of ``pieces`` (``(row, lo, hi)`` from the
    scan) that are present or swapped; ``scan.skipped`` counts the pages left out. ``mode``:
    as ``PYPHYS_PAGEMAP_SCAN``."""
    mode = mode or scan_mode()
    categories = scan_categories(scan.fd) if mode != "read" else None
    if mode == "ioctl" and categories is None:
        raise PyphysError(
            "PYPHYS_PAGEMAP_SCAN=ioctl, but this kernel has no PAGEMAP_SCAN ioctl (Linux 6.7 added it)",
            "unset PYPHYS_PAGEMAP_SCAN, or set it to read",
        )
    scan.skipped = 0
    if categories is None:
        yield from _by_reading(scan, pieces)
    else:
        yield from _by_ioctl(scan, pieces, categories)


def _by_ioctl(scan, pieces, categories: int):
    from array import array

    vec = array("Q", bytes(_VEC_LEN * L.PAGE_REGION_BYTES))  # (no ctypes: buffer_info has the address)
    addr = vec.buffer_info()[0]
    ps, fd, pread = scan.page_size, scan.fd, os.pread
    shift = ps.bit_length() - 1 - 3  # address -> offset of its entry in pagemap
    blob: list[bytes] = []
    size = 0
    for row, lo, hi in pieces:
        lo -= lo % ps
        hi += -hi % ps
        if hi > scan.user_limit:
            # [vsyscall]: listed in maps but above what pagemap (and the ioctl) covers
            yield from _by_reading(scan, [(row, lo, hi)])
            continue
        got = size
        try:
            for start, end in _regions(fd, lo, hi, categories, vec, addr):
                # a big region in blobs of BLOB_PAGES entries, counted one by one
                pos, stop = start >> shift, end >> shift
                while pos < stop:
                    n = min(stop - pos, BLOB_PAGES * 8 - size)
                    data = pread(fd, n, pos)
                    if not data:
                        break  # the mapping went away during the scan: not present
                    pos += len(data)
                    blob.append(data)
                    size += len(data)
                    if size >= BLOB_PAGES * 8:
                        got -= size
                        yield b"".join(blob)
                        blob, size = [], 0
        except OSError as err:
            raise from_oserror(err, f"cannot read /proc/{scan.pid}/pagemap") from err
        scan.skipped += (hi - lo) // ps - ((size - got) >> 3)
    if blob:
        yield b"".join(blob)


def _by_reading(scan, pieces):
    blob: list[bytes] = []
    size = 0
    for _row, _vaddr, data in scan.raw_chunks(pieces=pieces):
        m = len(data) >> 3
        sel = data[7::8].translate(_POPULATED)
        kept = sel.count(1)
        scan.skipped += m - kept
        if kept == 0:
            continue
        if kept == m:
            blob.append(data)
        else:
            find, pos = sel.find, 0
            while True:
                a = find(1, pos)
                if a < 0:
                    break
                b = find(0, a)
                if b < 0:
                    b = m
                blob.append(data[a * 8 : b * 8])
                pos = b
        size += kept * 8
        if size >= BLOB_PAGES * 8:
            yield b"".join(blob)
            blob, size = [], 0
    if blob:
        yield b"".join(blob)
