"""Independent readers of pyphys's dump formats for the tests, written from the formats'
documentation, not from pyphys.layouts (the code under test):

* LiME v1: the struct of LiME's lime.h;
* AVML v2: AVML's image.rs header, google/snappy's framing_format.txt, decompressed with the
  system's libsnappy (Google's C++ implementation, through ctypes, as volatility3 does; pyphys
  compresses with cramjam's Rust one);
* ELF cores: pyelftools.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

LIME_V1 = struct.Struct("<4sIQQ8s")  # lime.h lime_mem_range_header, little-endian, packed
AVML_V2 = struct.Struct("<4sIQQQ")  # image.rs: magic b"AVML", version 2, start, end (inclusive), 0


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


def libsnappy():
    """The system's libsnappy (Debian libsnappy1v5), or None."""
    name = ctypes.util.find_library("snappy") or "libsnappy.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def snappy_raw_decompress(lib, block: bytes) -> bytes:
    n = ctypes.c_size_t(0)
    assert lib.snappy_uncompressed_length(block, len(block), ctypes.byref(n)) == 0
    out = ctypes.create_string_buffer(n.value)
    assert lib.snappy_uncompress(block, len(block), out, ctypes.byref(n)) == 0
    return out.raw[: n.value]


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bitwise: slow, but only test-sized inputs come here."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def unframe(lib, stream: bytes, check_crc: bool = False) -> bytes:
    """Decode a snappy framed stream (framing_format.txt): stream identifier, compressed (0)
    and uncompressed (1) chunks with a masked CRC-32C of the uncompressed data."""
    out, off = [], 0
    while off < len(stream):
        kind, size = stream[off], int.from_bytes(stream[off + 1 : off + 4], "little")
        body = stream[off + 4 : off + 4 + size]
        assert len(body) == size, "truncated chunk"
        if kind == 0xFF:
            assert body == b"sNaPpY"
        elif kind in (0, 1):
            data = snappy_raw_decompress(lib, body[4:]) if kind == 0 else body[4:]
            if check_crc:
                c = crc32c(data)
                masked = (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
                assert int.from_bytes(body[:4], "little") == masked, "bad CRC"
            out.append(data)
        else:
            assert kind >= 0x80, f"unskippable chunk {kind:#x}"
        off += 4 + size
    return b"".join(out)


def avml_records(data: bytes, lib=None, check_crc: bool = False) -> list[tuple[int, int, bytes]]:
    """``(start, end inclusive, bytes)`` for each record of an AVML v2 (compressed) file; the
    u64 after each record's frames must equal their length (image.rs SnapCountWriter)."""
    lib = lib or libsnappy()
    recs, off = [], 0
    while off < len(data):
        magic, version, s, e, pad = AVML_V2.unpack_from(data, off)
        assert (magic, version, pad) == (b"AVML", 2, 0), (magic, version, pad)
        off += AVML_V2.size
        # the frames end where the 8-byte count says; find it by walking the chunks
        end = off
        got = 0
        while got < e - s + 1:
            kind, size = data[end], int.from_bytes(data[end + 1 : end + 4], "little")
            if kind in (0, 1):
                body = data[end + 8 : end + 4 + size]
                got += len(snappy_raw_decompress(lib, body)) if kind == 0 else len(body)
            end += 4 + size
        (count,) = struct.unpack_from("<Q", data, end)
        assert count == end - off, (count, end - off)
        recs.append((s, e, unframe(lib, data[off:end], check_crc)))
        off = end + 8
    return recs


def avml_to_lime(data: bytes) -> bytes:
    """What avml-convert makes of an AVML v2 file: each record as a LiME v1 record."""
    return b"".join(LIME_V1.pack(b"EMiL", 1, s, e, b"\0" * 8) + d for s, e, d in avml_records(data))


def elf_core(path: str) -> tuple[dict, list[dict], list[tuple[str, int, bytes]]]:
    """(ELF header, PT_LOAD headers, notes as (name, type, desc)) of a core file, by pyelftools."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        header = dict(elf.header)
        header["e_ident"] = dict(header["e_ident"])
        loads, notes = [], []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                loads.append(dict(seg.header))
            elif seg["p_type"] == "PT_NOTE":
                for n in seg.iter_notes():
                    desc = n["n_descdata"]
                    notes.append(
                        (n["n_name"], n["n_type"], desc if isinstance(desc, bytes) else desc.encode("latin-1"))
                    )
    return header, loads, notes
