"""An independent LiME reader for the dump tests: the struct from LiME's lime.h, written
from its documentation, not from pyphys.layouts.lime (the code under test)."""

from __future__ import annotations

import struct

LIME_V1 = struct.Struct("<4sIQQ8s")  # lime.h lime_mem_range_header, little-endian, packed


def lime_records(data: bytes) -> list[tuple[int, int, bytes]]:
    """``(start, end inclusive, bytes)`` for each range of a LiME v1 file."""
    recs, off = [], 0
    while off < len(data):
        magic, version, s, e, reserved = LIME_V1.unpack_from(data, off)
        assert (magic, version, reserved) == (b"EMiL", 1, b"\0" * 8)
        off += LIME_V1.size
        recs.append((s, e, data[off : off + e - s + 1]))
        off += e - s + 1
    return recs
