"""LiME v1 header layout against the bytes LiME's and AVML's sources define."""

from __future__ import annotations

import io
import struct

import pytest

from pyphys.layouts import lime

# AVML src/image.rs, test make_header(): lime_header(0x1000, 0x20000, 1) must be these bytes.
AVML_V1_0x1000_0x20000 = (
    b"\x45\x4d\x69\x4c\x01\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
)


def test_header_matches_avml_test_vector():
    assert lime.pack_header(0x1000, 0x20000) == AVML_V1_0x1000_0x20000


def test_header_fields_as_lime_h_declares_them():
    # lime.h: unsigned int magic, version; unsigned long long s_addr, e_addr; char reserved[8]; packed
    raw = lime.pack_header(0x100000, 0x3FFDFFFF)
    assert len(raw) == 32 == lime.HEADER_SIZE
    assert raw[:4] == b"EMiL"  # LIME_MAGIC 0x4C694D45 stored little-endian
    magic, version, s_addr, e_addr = struct.unpack_from("<IIQQ", raw)
    assert (magic, version, s_addr, e_addr) == (0x4C694D45, 1, 0x100000, 0x3FFDFFFF)
    assert raw[24:] == b"\0" * 8


def test_parse_round_trip():
    assert lime.parse_header(lime.pack_header(0x1000, 0x9FBFF)) == (0x1000, 0x9FBFF)


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"AVML" + AVML_V1_0x1000_0x20000[4:], "magic"),  # AVML v2 magic is not LiME v1
        (AVML_V1_0x1000_0x20000[:4] + b"\x02\0\0\0" + AVML_V1_0x1000_0x20000[8:], "version"),
        (AVML_V1_0x1000_0x20000[:20], "truncated"),
        (struct.pack("<IIQQ8s", lime.MAGIC, 1, 0x2000, 0x1000, b""), "ends before"),
    ],
)
def test_parse_rejects_bad_headers(raw, words):
    with pytest.raises(lime.LimeFormatError, match=words):
        lime.parse_header(raw, 0x40)


def test_pack_rejects_reversed_range():
    with pytest.raises(ValueError):
        lime.pack_header(0x2000, 0x1FFF)


def test_iter_ranges_walks_records():
    data = lime.pack_header(0x1000, 0x1FFF) + b"a" * 0x1000 + lime.pack_header(0x5000, 0x500F) + b"b" * 0x10
    recs = list(lime.iter_ranges(io.BytesIO(data)))
    assert [(r.start, r.end, r.header_offset, r.data_offset, r.length) for r in recs] == [
        (0x1000, 0x1FFF, 0, 32, 0x1000),
        (0x5000, 0x500F, 0x1020, 0x1040, 0x10),
    ]


def test_iter_ranges_reports_truncated_data():
    data = lime.pack_header(0x1000, 0x1FFF) + b"a" * 0x800
    with pytest.raises(lime.LimeFormatError, match="truncated"):
        list(lime.iter_ranges(io.BytesIO(data)))


def test_volatility3_reads_our_header():
    """An independent reader: volatility3's LimeLayer header check (if installed)."""
    lime_layer = pytest.importorskip("volatility3.framework.layers.lime")

    class Base:
        name = "base"

        def __init__(self, data):
            self.data = data

        def read(self, offset, length):
            return self.data[offset : offset + length]

    raw = lime.pack_header(0x100000, 0x1FFFFF)
    assert lime_layer.LimeLayer._check_header(Base(raw), 0) == (0x100000, 0x1FFFFF)
