"""AVML's compressed LiME (``avml --compress``): a LiME-like header, snappy frames, a length.

Source: AVML ``src/image.rs`` and ``src/io/snappy.rs``. Each record is

* a 32-byte header laid out as LiME's (:mod:`pyphys.layouts.lime`) but with magic
  ``0x4C4D5641`` (the bytes ``b"AVML"``) and version 2: start, end (inclusive), a zero u64;
* the range's bytes in the snappy *framing* format (google/snappy ``framing_format.txt``: a
  stream identifier chunk, then chunks of at most 64 KiB of input, each compressed or stored,
  with a masked CRC-32C), as the ``snap`` crate's ``FrameEncoder`` writes them;
* the number of compressed bytes just written, a little-endian u64, so a reader can skip a
  record without decompressing it.

volatility3's ``AVMLLayer`` reads this (with the system's libsnappy); AVML's ``avml-convert``
turns it back into plain LiME, record for record. The compression itself is the maintained
``cramjam`` binding (the ``forensics`` extra): its framed ``Compressor`` emits exactly these
chunks, so blocks fed to it one after another make one continuous stream.
"""

from __future__ import annotations

import struct

from pyphys.errors import PyphysError

MAGIC = 0x4C4D5641  # AVML_MAGIC in image.rs; b"AVML" on disk
VERSION = 2
HEADER = struct.Struct("<IIQQQ")
HEADER_SIZE = HEADER.size  # 32
TRAILER = struct.Struct("<Q")
#: the stream identifier chunk (framing_format.txt 4.1) that starts every record's stream
STREAM_ID = b"\xff\x06\x00\x00sNaPpY"
#: framing_format.txt: a chunk holds at most 65536 bytes of input; blocks that are multiples
#: of it compress to the same chunks whether fed whole or in pieces (which resume relies on)
FRAME_INPUT = 1 << 16
EXTRA = "forensics"


def pack_header(start: int, end: int) -> bytes:
    """The 32-byte AVML v2 header of physical ``start``..``end`` (``end`` inclusive)."""
    if not 0 <= start <= end < 1 << 64:
        raise ValueError(f"bad AVML range {start:#x}-{end:#x}")
    return HEADER.pack(MAGIC, VERSION, start, end, 0)


def _cramjam():
    try:
        import cramjam
    except ImportError:
        raise PyphysError(
            "the avml format needs the snappy binding cramjam, which is not installed",
            f"install pyphys's {EXTRA} extra: pip install 'pyphys[{EXTRA}]' (or pip install cramjam)",
        ) from None
    return cramjam


def require() -> None:
    """Fail now, before anything is written, when the snappy binding is missing."""
    _cramjam()


class RecordCompressor:
    """The snappy frames of one record, fed block by block; :meth:`finish` adds the trailer.

    ``resumed`` (bytes of compressed output already in the file for this record) continues a
    record cut short at a block boundary: the stream identifier is not repeated and the
    trailer counts the earlier bytes too.
    """

    __slots__ = ("_c", "count", "_first")

    def __init__(self, resumed: int = 0):
        self._c = _cramjam().snappy.Compressor()
        self.count = resumed
        self._first = resumed > 0

    def compress(self, data) -> bytes:
        """The frames for ``data`` (complete: nothing is held back between calls)."""
        self._c.compress(data)
        out = bytes(self._c.flush())
        if self._first and out.startswith(STREAM_ID):
            out = out[len(STREAM_ID) :]
        self._first = False
        self.count += len(out)
        return out

    def finish(self) -> bytes:
        """The trailer: the record's compressed length as a little-endian u64."""
        return TRAILER.pack(self.count)


def decode_frames(chunks):
    """The uncompressed bytes of a snappy framed stream given as pieces (``chunks``), frame by
    frame: compressed (type 0) and stored (type 1) chunks are returned, the stream identifier
    and skippable chunks (0x80-0xfe) passed over. CRCs are not checked (the dump's SHA-256s
    are what vouch for the bytes)."""
    raw = _cramjam().snappy.decompress_raw
    buf = b""
    for piece in chunks:
        buf += piece
        off = 0
        while off + 4 <= len(buf):
            kind = buf[off]
            size = int.from_bytes(buf[off + 1 : off + 4], "little")
            if off + 4 + size > len(buf):
                break
            body = buf[off + 8 : off + 4 + size]
            if kind == 0:
                yield bytes(raw(body))
            elif kind == 1:
                yield body
            elif kind < 0x80:
                raise ValueError(f"unskippable snappy chunk type {kind:#x}")
            off += 4 + size
        buf = buf[off:]
    if buf:
        raise ValueError(f"snappy stream ends inside a chunk ({len(buf)} bytes left)")
