"""/proc/iomem parser on real captures (the lab guest's stock kernel, this host) and hand-made edge cases."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pyphys import iomem, paths
from pyphys.errors import PyphysError, UsageError

FIX = Path(__file__).resolve().parents[1] / "fixtures"
HOST = FIX / "iomem" / "host-firecracker-6.18.txt"
STOCK = FIX / "doctor" / "stock-debian-6.1" / "proc" / "iomem"


def load(path: Path) -> iomem.IomemTree:
    with open(path) as f:
        return iomem.parse(f)


def test_host_tree_shape():
    tree = load(HOST)
    assert not tree.hidden
    assert [r.name for r in tree.ram_regions()] == ["System RAM"] * 3
    ram = tree.ram_regions()[1]
    assert (ram.start, ram.end) == (0x100000, 0xBFFFFFFF)
    assert [c.name for c in ram.children] == ["Kernel code", "Kernel rodata", "Kernel data", "Kernel bss"]
    assert tree.ram_end == 0x640000000


@pytest.mark.parametrize(
    "addr,text",
    [
        (0x3000010, "System RAM > Kernel data"),
        (0x1000, "System RAM"),
        (0xC0000000, "a hole (no region in /proc/iomem)"),  # between RAM and the PCI window (starts c0001000)
        (0xEEC00040, "Reserved > PCI ECAM 0000 [bus 00-00] > PCI Bus 0000:00"),
        (0x4000080010, "PCI Bus 0000:00 > 0000:00:02.0 > virtio-pci-modern"),
        (0x10000000000, "a hole (no region in /proc/iomem)"),
    ],
)
def test_host_region_of(addr, text):
    assert load(HOST).describe(addr) == text


def test_stock_guest_names_devices_and_kernel():
    tree = load(STOCK)
    assert tree.describe(0xFE90A010) == "PCI Bus 0000:00 > 0000:00:1f.2 > ahci"
    assert tree.find("Kernel code")[0].start == 0x20C00000
    assert tree.is_ram(0x227FB041, 65)
    assert not tree.is_ram(0x3FFDF000)
    assert tree.first_ram_page(4096, above=1 << 20) == 0x100000


def test_holes_stock():
    tree = load(STOCK)
    assert tree.holes(0x1000, 0x100) == []
    # fec003ff is the IOAPIC's last byte; fed00000 starts the HPET
    assert tree.holes(0xFEC003F0, 0x20) == [(0xFEC00400, 0xFEC0040F)]


def test_holes_exact():
    tree = iomem.parse(io.StringIO("00001000-00001fff : System RAM\n00003000-00003fff : System RAM\n"))
    assert tree.holes(0x1800, 0x2000) == [(0x2000, 0x2FFF)]
    assert tree.holes(0x3800, 0x1000) == [(0x4000, 0x47FF)]
    assert tree.holes(0x0, 0x10) == [(0x0, 0xF)]


def test_nonroot_zeros_are_hidden_not_address_zero():
    text = HOST.read_text()
    zeroed = "\n".join(
        line[: len(line) - len(line.lstrip())] + "00000000-00000000 : " + line.split(" : ", 1)[1]
        for line in text.splitlines()
    )
    tree = iomem.parse(io.StringIO(zeroed))
    assert tree.hidden
    assert "hidden" in tree.describe(0x1000)
    with pytest.raises(PyphysError, match="CAP_SYS_ADMIN"):
        iomem.require_visible(tree)


@pytest.mark.parametrize(
    "line", ["garbage\n", "0000-zzzz : x\n", "00002000-00001000 : backwards\n", "00001000 : no dash\n"]
)
def test_malformed_lines(line):
    with pytest.raises(UsageError, match="/proc/iomem"):
        iomem.parse(io.StringIO("00000000-00000fff : Reserved\n" + line))


def test_load_through_paths(tmp_path):
    (tmp_path / "iomem").write_text(HOST.read_text())
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert iomem.load().ram_end == 0x640000000
    finally:
        paths.set_roots(**old)


def test_cli_tree_and_lookup(tmp_path, capsys):
    from pyphys import cli

    (tmp_path / "iomem").write_text(STOCK.read_text())
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert cli.main(["iomem", "0x22600010", "0x9000000000"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out == ["0x22600010: System RAM > Kernel data", "0x9000000000: a hole (no region in /proc/iomem)"]
        assert cli.main(["iomem"]) == 0
        out = capsys.readouterr().out
        # /proc/iomem's "fe90a000-fe90afff : 0000:00:1f.2": 0x hex, END exclusive
        assert "  0x000fe90a000-0x000fe90b000      4K  0000:00:1f.2\n" in out
        assert out.splitlines()[-1].startswith("System RAM: ")
        assert cli.main(["iomem", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
    finally:
        paths.set_roots(**old)
    regions = doc["regions"] if isinstance(doc, dict) else doc
    found = []

    def walk(rs, depth):
        for r in rs:
            assert list(r) == ["start", "end", "size", "name", "children"]  # depth is the nesting
            found.append((depth, r["start"], r["end"], r["name"]))
            walk(r["children"], depth + 1)

    walk(regions, 0)
    # the same region the text tree shows indented one level (the capture's own line)
    assert (1, "0xfe90a000", "0xfe90b000", "0000:00:1f.2") in found
    assert len(found) == sum(1 for line in STOCK.read_text().splitlines() if line.strip())


def test_cli_tree_sizes_are_the_regions_inclusive_spans(tmp_path, capsys):
    """Each tree line's size is END-START+1 of /proc/iomem's own line: exact when printed
    without a fraction (parse_size reads it back), else to the printed tenth of its unit."""
    import re

    from pyphys import cli
    from pyphys.dialect import SIZE_SHIFTS, parse_size

    (tmp_path / "iomem").write_text(HOST.read_text())
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert cli.main(["iomem"]) == 0
        out = capsys.readouterr().out
    finally:
        paths.set_roots(**old)
    rows = re.findall(r"^ *0x([0-9a-f]+)-0x([0-9a-f]+) +(\S+)  ", out, re.M)
    lines = [ln.strip().split(" : ")[0].split("-") for ln in HOST.read_text().splitlines() if ln.strip()]
    assert len(rows) == len(lines)
    for (start, end, text), (lo, hi) in zip(rows, lines):
        # printed END is exclusive: one past /proc/iomem's inclusive END
        assert (int(start, 16), int(end, 16)) == (int(lo, 16), int(hi, 16) + 1)
        span = int(end, 16) - int(start, 16)
        if "." in text:
            unit = 1 << SIZE_SHIFTS[text[-1].lower()]
            assert abs(float(text[:-1]) * unit - span) <= unit / 20, (start, text)
        else:
            assert parse_size(text, minimum=0) == span, (start, text)


def test_non_utf8_names_do_not_stop_commands(tmp_path, capsys):
    """A driver's name with a byte that is not UTF-8 (\\xff): iomem, lookups and devmem's
    region check still work, the name shown with U+FFFD for the byte."""
    from pyphys import cli

    (tmp_path / "iomem").write_bytes(b"00000000-00000fff : Res\xffved\n" + STOCK.read_bytes().split(b"\n", 1)[1])
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert iomem.load().regions[0].name == "Res\ufffdved"
        assert cli.main(["iomem"]) == 0
        out, err = capsys.readouterr()
        assert "Res\ufffdved" in out and "Traceback" not in err
        assert cli.main(["iomem", "0x10"]) == 0
        assert capsys.readouterr().out == "0x10: Res\ufffdved\n"
    finally:
        paths.set_roots(**old)


def test_control_characters_in_names_are_escaped_in_text(tmp_path, capsys):
    """A device name is whatever its driver passed the kernel: ESC, CR, NUL, DEL, a backslash.
    Text output writes them C-style (\\xNN, \\\\) so nothing reaches the terminal raw; the tree
    parses the line whole (the CR does not end it); JSON keeps the name, JSON-escaped."""
    from pyphys import cli

    evil = b"ev\x1b[2Jil\rdev\x00ice\x7f\\x"
    (tmp_path / "iomem").write_bytes(b"00000000-00000fff : " + evil + b"\n" + STOCK.read_bytes().split(b"\n", 1)[1])
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert iomem.load().regions[0].name == evil.decode()
        assert cli.main(["iomem"]) == 0
        out, err = capsys.readouterr()
        first = out.splitlines()[0]
        assert first.endswith("  ev\\x1b[2Jil\\x0ddev\\x00ice\\x7f\\\\x"), first
        assert not any(c in out for c in "\x1b\r\x00\x7f") and "Traceback" not in err
        assert cli.main(["iomem", "0x10"]) == 0
        assert capsys.readouterr().out == "0x10: ev\\x1b[2Jil\\x0ddev\\x00ice\\x7f\\\\x\n"
        assert cli.main(["iomem", "--json"]) == 0
        out = capsys.readouterr().out
        assert json.loads(out)["regions"][0]["name"] == evil.decode() and "\x1b" not in out
        assert cli.main(["iomem", "0x10", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["results"][0]["region"] == doc["results"][0]["chain"][0]["name"] == evil.decode()
    finally:
        paths.set_roots(**old)


def test_printable_reads_back_through_decode_escapes():
    from pyphys.dialect import decode_escapes, printable

    name = "a\x1b[31mb\rc\x00d\\e\x85f\u202eg"
    shown = printable(name)
    assert shown.isprintable() and shown == "a\\x1b[31mb\\x0dc\\x00d\\\\e\\x85f\\u202eg"
    assert printable("PCI Bus 0000:00 Res\ufffdved") == "PCI Bus 0000:00 Res\ufffdved"  # as is
    assert decode_escapes(printable("a\x1b\r\x00\\")) == b"a\x1b\r\x00\\"


def test_cli_ram_filters_json_as_text(tmp_path, capsys):
    """--ram keeps the top-level System RAM regions (with their children) in --json as in text:
    the stock guest's /proc/iomem has two of them."""
    import json

    from pyphys import cli

    (tmp_path / "iomem").write_text(STOCK.read_text())
    want = [ln for ln in STOCK.read_text().splitlines() if ln.endswith(" : System RAM") and not ln.startswith(" ")]
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert cli.main(["iomem", "--ram", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert [r["name"] for r in doc["regions"]] == ["System RAM"] * len(want) and len(want) == 2
        assert cli.main(["iomem", "--ram"]) == 0
        tops = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("0x")]
        assert len(tops) == len(doc["regions"])
    finally:
        paths.set_roots(**old)
