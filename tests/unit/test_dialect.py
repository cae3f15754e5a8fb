"""pyphys.dialect: the one parser of numbers, sizes, ranges, widths and bytes, and the one
formatter of addresses, values and hexdumps. Ground truth: Python's own int() for what must
parse, busybox devmem's and setpci's documented widths, and `hexdump -C` run on the same bytes."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyphys import dialect as d
from pyphys.errors import UsageError


@pytest.mark.parametrize(
    "text, want", [("0", 0), ("4096", 4096), ("0x1000", 4096), ("0X1F", 31), (" 0xffffffffffffffff ", (1 << 64) - 1)]
)
def test_numbers(text, want):
    assert d.parse_number(text) == want


@pytest.mark.parametrize(
    "text, hint",
    [
        ("١", "ASCII"),
        ("١٠٤٨٥٧٦", "ASCII"),
        ("1__0", None),
        ("1_000", None),
        ("0o17", None),
        ("0b101", None),
        ("7f3a00000000", "did you mean 0x7f3a00000000?"),
        ("000a0000", "did you mean 0x000a0000?"),
        ("0010", "leading zero"),
        ("-1", "negative"),
        ("0x-1", None),
        ("", None),
        ("0x", None),
        ("1e3", "0x1e3"),
        ("0x10000000000000000", None),
        ("+5", None),
        ("12k", None),
    ],
)
def test_not_numbers(text, hint):
    with pytest.raises(UsageError) as exc:
        d.parse_number(text, "address")
    assert "address" in str(exc.value) and repr(text) in str(exc.value)
    if hint:
        assert hint in str(exc.value)


def test_number_bounds_name_the_limit():
    with pytest.raises(UsageError, match="above the maximum 0xff$"):
        d.parse_number("0x100", "byte", maximum=255)
    with pytest.raises(UsageError, match="above the maximum 255$"):  # in the base the user wrote
        d.parse_number("256", "byte", maximum=255)
    with pytest.raises(UsageError, match="below the minimum 1$"):
        d.parse_number("0", "length", minimum=1)


@pytest.mark.parametrize(
    "text, want",
    [
        ("4096", 4096),
        ("4K", 4096),
        ("4k", 4096),
        ("64KiB", 65536),
        ("2M", 2 << 20),
        ("1G", 1 << 30),
        ("1T", 1 << 40),
        ("0x10", 16),
        ("0x1000K", 0x1000 << 10),
        ("16MB", 16 << 20),
    ],
)
def test_sizes(text, want):
    assert d.parse_size(text) == want


@pytest.mark.parametrize("text", ["4X", "K", "-4K", "١K", "0", "1.5M", "0xK"])
def test_not_sizes(text):
    with pytest.raises(UsageError):
        d.parse_size(text)


def test_hex_ending_in_a_suffix_letter_is_a_number_not_a_size():
    # 0x1b: 27, not 1 byte-suffixed; sizes with suffixes are written in decimal or as 0xN plus K/M/G/T
    assert d.parse_size("0x1b") == 0x1B


@pytest.mark.parametrize(
    "text, want",
    [
        ("0x1000+4K", (0x1000, 0x2000)),
        ("0x1000-0x3000", (0x1000, 0x3000)),
        ("4096+1", (4096, 4097)),
        ("0-0x10", (0, 16)),
    ],
)
def test_ranges(text, want):
    assert d.parse_range(text) == want


@pytest.mark.parametrize(
    "text, words",
    [
        ("0x3000-0x1000", "ends before"),
        ("0x1000-0x1000", "ends before"),
        ("0x1000", "START+LENGTH"),
        ("0xffffffffffffffff+2", "runs past"),
        ("0x1000+0", "below the minimum"),
        ("0x1000+", "not a size"),
    ],
)
def test_bad_ranges(text, words):
    with pytest.raises(UsageError) as exc:
        d.parse_range(text)
    assert words in str(exc.value)


def test_bare_start_with_a_default_length():
    assert d.parse_range("0x1000", length=16) == (0x1000, 0x1010)


def test_ranges_print_and_parse_back():
    for start, end in [(0, 1), (0x1000, 0x3000), ((1 << 64) - 16, 1 << 64)]:
        assert d.parse_range(d.fmt_range(start, end)) == (start, end)
        assert d.parse_number(d.fmt_addr(start)) == start


def test_widths_as_busybox_and_setpci_mean_them():
    assert [d.parse_width(w) for w in "bhwl"] == [8, 16, 32, 64]  # busybox devmem on x86-64
    assert [d.parse_width(w, d.SETPCI_WIDTHS) for w in "bwl"] == [8, 16, 32]  # setpci REG.b/.w/.l
    assert d.parse_width(None) == 32 and d.parse_width("64") == 64
    for bad in ("q", "12", "u32", "W "):
        if bad.strip().lower() in d.BUSYBOX_WIDTHS:
            continue
        with pytest.raises(UsageError):
            d.parse_width(bad)
    with pytest.raises(UsageError, match="b=8, w=16, l=32"):
        d.parse_width("h", d.SETPCI_WIDTHS)


def test_values_fit_their_width():
    assert d.parse_value("0xff", 8) == 255
    with pytest.raises(UsageError, match="does not fit in 8 bits"):
        d.parse_value("0x100", 8)


@pytest.mark.parametrize(
    "text, want",
    [
        (r"Dunia,vipi?\r", b"Dunia,vipi?\r"),
        (r"a\x00b\0", b"a\x00b\x00"),
        (r"\101\\", b"A\\"),
        ("é", "é".encode()),
        (r"\t\n", b"\t\n"),
    ],
)
def test_escapes(text, want):
    assert d.decode_escapes(text) == want


@pytest.mark.parametrize("text", [r"\x4", r"\q", "\\", r"\777", ""])
def test_bad_escapes(text):
    with pytest.raises(UsageError):
        d.decode_escapes(text)


@pytest.mark.parametrize(
    "text, want",
    [
        ("de ad be ef", b"\xde\xad\xbe\xef"),
        ("deadbeef", b"\xde\xad\xbe\xef"),
        ("0xdead", b"\xde\xad"),
        ("de:ad", b"\xde\xad"),
    ],
)
def test_hex_bytes(text, want):
    assert d.decode_hex(text) == want


@pytest.mark.parametrize("text", ["abc", "zz", "", "١٢"])
def test_bad_hex_bytes(text):
    with pytest.raises(UsageError):
        d.decode_hex(text)


def test_value_format_is_busybox_devmem():
    assert (
        d.fmt_value(0xED, 32) == "0x000000ED" and d.fmt_value(1, 8) == "0x01" and d.fmt_value(0, 64) == "0x" + "0" * 16
    )


def test_sizes_for_people():
    assert [d.fmt_size(n) for n in (512, 4096, 1536 << 10, 3 << 30)] == ["512", "4K", "1.5M", "3G"]


@pytest.mark.skipif(not shutil.which("hexdump"), reason="hexdump (bsdextrautils) not installed")
@pytest.mark.parametrize(
    "data", [b"", b"AB", bytes(range(256)), b"\0" * 100 + b"tail", b"x" * 33, b"Hello, world!\n" * 3]
)
def test_hexdump_is_hexdump_minus_c(data):
    want = subprocess.run(["hexdump", "-C"], input=data, capture_output=True, check=True).stdout.decode()
    assert (d.hexdump(data) + "\n" if data else d.hexdump(data)) == want


def test_fmt_size_exact_is_lspci_show_size():
    """lspci prints a BAR size in the largest unit that divides it (pciutils' show_size)."""
    from pyphys.dialect import fmt_size

    cases = {4096: "4K", 1536 << 10: "1536K", 16 << 20: "16M", 3 << 30: "3G", 1024 << 40: "1024T", 100: "100"}
    assert {n: fmt_size(n, exact=True) for n in cases} == cases
    assert fmt_size(1536 << 10) == "1.5M"  # for people, not lspci
