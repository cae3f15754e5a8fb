"""LiME v1 range header: the 32 bytes that precede every memory range in a ``.lime`` file.

Sources (the two writers this layout must match byte for byte):

* LiME, ``src/lime.h``::

      typedef struct {
          unsigned int magic;          // LIME_MAGIC 0x4C694D45
          unsigned int version;        // 1
          unsigned long long s_addr;   // first physical address of the range
          unsigned long long e_addr;   // LAST physical address (inclusive): res->end
          unsigned char reserved[8];   // zero (memset)
      } __attribute__ ((__packed__)) lime_mem_range_header;

  ``src/main.c`` ``write_lime_header()`` fills it from a ``struct resource`` (``s_addr =
  res->start``, ``e_addr = res->end``, both inclusive as in /proc/iomem) and writes it in
  host byte order, i.e. little-endian on every platform LiME reads back.
* AVML, ``src/image.rs`` ``lime_header()``: magic = the bytes ``b"EMiL"`` read as a
  little-endian u32 (= 0x4C694D45), version 1, then ``start``, ``end = start + size - 1``
  and a zero u64, all little-endian; its unit test pins the bytes for (0x1000, 0x20000).

A file is a sequence of ``header, (e_addr - s_addr + 1) bytes of memory`` with no padding
between records; volatility3's LimeLayer additionally requires ascending, non-overlapping
ranges.
"""

from __future__ import annotations

import struct

from pyphys import TYPE_CHECKING
from pyphys.errors import PyphysError
from pyphys.record import Record

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

MAGIC = 0x4C694D45  # LIME_MAGIC in lime.h; the bytes b"EMiL" on disk (little-endian)
MAGIC_BYTES = b"EMiL"
VERSION = 1  # lime_mem_range_header.version as LiME and AVML (format v1) write it

# magic u32, version u32, s_addr u64, e_addr u64 (inclusive), reserved[8]; packed, LE.
HEADER = struct.Struct("<IIQQ8s")
HEADER_SIZE = HEADER.size  # 32
RESERVED = b"\0" * 8

assert HEADER_SIZE == 32


class LimeFormatError(PyphysError):
    """Bytes that are not a valid LiME v1 file (bad magic, version, or truncated range)."""


class LimeRange(Record):
    """One record of a LiME file: physical ``start``..``end`` (inclusive) stored at ``data_offset``."""

    __slots__ = ("start", "end", "header_offset", "data_offset")
    _json = {"start": "hex", "end": "hex", "header_offset": "hex", "data_offset": "hex"}

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def pack_header(start: int, end: int) -> bytes:
    """The 32-byte header for physical range ``start``..``end`` (``end`` inclusive)."""
    if not 0 <= start <= end < 1 << 64:
        raise ValueError(f"bad LiME range {start:#x}-{end:#x}")
    return HEADER.pack(MAGIC, VERSION, start, end, RESERVED)


def parse_header(data: bytes, offset: int = 0) -> tuple[int, int]:
    """``(s_addr, e_addr)`` of the header in ``data``; LimeFormatError if it is not one.

    ``offset`` is only used in the error message (where in the file the header sat).
    """
    if len(data) != HEADER_SIZE:
        raise LimeFormatError(f"truncated LiME header at file offset {offset:#x}: {len(data)} of {HEADER_SIZE} bytes")
    magic, version, start, end, _reserved = HEADER.unpack(data)
    if magic != MAGIC:
        raise LimeFormatError(
            f"bad LiME magic {magic:#010x} at file offset {offset:#x} (expected {MAGIC:#010x}, b'EMiL')"
        )
    if version != VERSION:
        raise LimeFormatError(f"unsupported LiME version {version} at file offset {offset:#x} (only v1)")
    if end < start:
        raise LimeFormatError(f"LiME range {start:#x}-{end:#x} at file offset {offset:#x} ends before it starts")
    return start, end


def iter_ranges(stream: BinaryIO) -> Iterator[LimeRange]:
    """Walk a LiME v1 file from offset 0, yielding each range without reading its data.

    ``stream`` must be seekable. Raises LimeFormatError on a bad header or a range that runs
    past the end of the file.
    """
    stream.seek(0, 2)
    size = stream.tell()
    offset = 0
    while offset < size:
        stream.seek(offset)
        start, end = parse_header(stream.read(HEADER_SIZE), offset)
        record = LimeRange(start, end, offset, offset + HEADER_SIZE)
        if record.data_offset + record.length > size:
            raise LimeFormatError(
                f"LiME range {start:#x}-{end:#x} at file offset {offset:#x} is truncated: "
                f"{size - record.data_offset} of {record.length} bytes present"
            )
        yield record
        offset = record.data_offset + record.length
