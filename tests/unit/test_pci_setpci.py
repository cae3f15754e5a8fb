"""setpci(8)'s value lists and numbered capabilities in ``pyphys pci config``.

Ground truth is pciutils' setpci.c: parse_register() reads the digits after ``CAP``/``ECAP`` with
parse_x32() (strtoul base 16, so always hex, 0x allowed), accepts a classic ID below 0x100 and an
extended one below 0x1000, and parse_op() says "Missing width" for them without ``.W``;
parse_op() refuses a list whose end ``addr + width * n`` passes 0x1000, and exec_op() writes
value i at ``addr + i * width``, each ``(read & ~mask) | value`` when it has a mask. The config
space is a copy of the lab guest's capture (a regular file), read back here byte by byte
without pyphys; the expected bytes are packed by hand with int.to_bytes.
"""

from __future__ import annotations

import errno
import json

import pytest
from helpers import pci_cli, pci_config_path, pci_journal

from pyphys import cli, pci_access, pci_regs
from pyphys.errors import UsageError, from_oserror

EDU = "1234:11e8"  # one MSI capability at 0x40, 256 bytes of config space


# -- parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, cap_id, extended, offset, width",
    [
        ("CAP10.w", 0x10, False, 0, 16),  # 10 is hex: PCI Express, never decimal 10
        ("CAP10+2.w", 0x10, False, 2, 16),
        ("cap5.b", 0x05, False, 0, 8),  # names and CAP compare case-insensitively (strncasecmp)
        ("CAP0x11.l", 0x11, False, 0, 32),  # strtoul base 16 skips a 0x
        ("CAPff.w", 0xFF, False, 0, 16),
        ("CAPa.b", 0x0A, False, 0, 8),
        ("ECAP001.l", 0x001, True, 0, 32),  # AER
        ("ECAP1+4.l", 0x001, True, 4, 32),
        ("ECAPfff.w", 0xFFF, True, 0, 16),
        ("ECAP0x0b+0x8.b", 0x00B, True, 8, 8),
    ],
)
def test_numbered_capabilities_parse_as_setpci(text, cap_id, extended, offset, width):
    reg = pci_regs.parse_register(text)
    assert (reg.cap_id, reg.extended, reg.offset, reg.width) == (cap_id, extended, offset, width)
    assert reg.setpci_form and reg.instance == 0


def test_numbered_capability_takes_an_instance():
    reg = pci_regs.parse_register("CAP9+3.b@1")
    assert (reg.cap_id, reg.offset, reg.width, reg.instance) == (0x09, 3, 8, 1)
    named = pci_regs.parse_register("CAP_VNDR+3.b@1")
    assert (named.cap_id, named.extended, named.offset, named.instance) == (reg.cap_id, False, 3, 1)


@pytest.mark.parametrize(
    "text, words",
    [
        ("CAP10", "no natural width"),  # setpci: "Missing width"
        ("ECAP001+4", "no natural width"),
        ("CAP100.w", "too big"),  # setpci: cap < 0x100
        ("ECAP1000.w", "too big"),  # setpci: cap < 0x1000
        ("CAP.w", "unknown register"),
        ("CAPZZ.w", "unknown register"),
        ("ECAPg.w", "unknown register"),
        ("CAP1_0.w", "unknown register"),  # int() would take the underscore; parse_x32 would not
        ("CAP10+10.w", "ambiguous"),  # the offset is pyphys's number; only the ID is always hex
    ],
)
def test_numbered_capability_refusals(text, words):
    with pytest.raises(UsageError, match=words):
        pci_regs.parse_register(text)


def test_names_still_win_over_numbers():
    """setpci looks names up first: CAPABILITIES is the 0x34 register, not capability 0xABILITIES."""
    reg = pci_regs.parse_register("CAPABILITIES")
    assert (reg.cap, reg.offset, reg.width) == (None, 0x34, 8)
    assert pci_regs.parse_register("CAP_EXP.w").cap == "CAP_EXP"


@pytest.mark.parametrize(
    "text, width, want",
    [
        ("1", 16, [(1, 0xFFFF)]),
        ("1,2,3", 8, [(1, 0xFF), (2, 0xFF), (3, 0xFF)]),
        ("0x1234,0xff00:0xf000", 16, [(0x1234, 0xFFFF), (0xF000, 0xF000)]),  # value &= mask, as setpci
        ("0:0x2, 0x4", 16, [(0, 0x2), (4, 0xFFFF)]),
    ],
)
def test_value_lists(text, width, want):
    assert pci_regs.parse_values(text, width) == want


@pytest.mark.parametrize(
    "text, words",
    [
        ("1,,2", "element 2 is empty"),
        (",1", "element 1 is empty"),
        ("1,2,", "after the last comma"),
        ("1, ,2", "element 2 is empty"),
        ("1,0x100", "too wide"),
        ("1,zz", "not a number"),
        ("1,0x4:", "VALUE:MASK"),
        ("1,0x4:0x100", "too wide"),
    ],
)
def test_value_list_refusals(text, words):
    with pytest.raises(UsageError, match=words):
        pci_regs.parse_values(text, 8)


# -- writing a list -----------------------------------------------------------------------------
def test_list_writes_consecutive_registers_byte_by_byte_and_undo_restores_all(pci_tree, capsys):
    path = pci_config_path(pci_tree, EDU)
    before = path.read_bytes()
    # three 16-bit registers from 0x48 (past edu's MSI capability), the last with a mask
    rc, out, err = pci_cli(capsys, "config", EDU, "0x48.w=0x1234,0x5,0xab00:0xff00", "--force")
    assert rc == 0, err
    after = path.read_bytes()
    third = (int.from_bytes(before[0x4C:0x4E], "little") & 0x00FF) | 0xAB00
    want = bytearray(before)
    want[0x48:0x4E] = (0x1234).to_bytes(2, "little") + (5).to_bytes(2, "little") + third.to_bytes(2, "little")
    assert after == bytes(want)
    assert [i for i in range(len(before)) if before[i] != after[i]] == [
        i for i in range(0x48, 0x4E) if before[i] != want[i]
    ]
    lines = out.splitlines()
    assert len(lines) == 3 and all(
        ln.startswith(f"00:0a.0 config+{o:#x}: ") for o, ln in zip((0x48, 0x4A, 0x4C), lines)
    )
    assert "-> 0x1234" in lines[0] and "-> 0x0005" in lines[1] and f"-> 0x{third:04X}" in lines[2]
    assert "one group" in err and "`pyphys undo`" in err
    es = pci_journal(pci_tree)
    assert [e.addr for e in es] == [0x48, 0x4A, 0x4C] and len({e.group for e in es}) == 1
    assert [e.old for e in es] == [before[0x48:0x4A], before[0x4A:0x4C], before[0x4C:0x4E]]
    # one `pyphys undo` puts every register back, the last written first
    assert cli.main(["undo"]) == 0
    undo_out = capsys.readouterr().out.splitlines()
    assert [int(ln.split()[0][1:]) for ln in undo_out] == [es[2].id, es[1].id, es[0].id]
    assert path.read_bytes() == before
    assert all(e.undone for e in pci_journal(pci_tree))


def test_undo_takes_the_whole_group_and_nothing_older(pci_tree, capsys):
    path = pci_config_path(pci_tree, EDU)
    before = path.read_bytes()
    assert pci_cli(capsys, "config", EDU, "0x50.b=0x11", "--force")[0] == 0  # a single write first
    single = path.read_bytes()
    assert pci_cli(capsys, "config", EDU, "0x54.l=1,2", "--force")[0] == 0
    assert pci_cli(capsys, "config", EDU, "0x60.b=0x22", "--force")[0] == 0  # and one after the list
    assert cli.main(["undo"]) == 0  # the 0x60 write alone
    assert path.read_bytes()[0x54:0x5C] == (1).to_bytes(4, "little") + (2).to_bytes(4, "little")
    assert cli.main(["undo"]) == 0  # the list, both registers
    assert path.read_bytes() == single
    assert cli.main(["undo"]) == 0  # then the single write
    assert path.read_bytes() == before
    capsys.readouterr()


def test_every_register_is_read_before_any_is_written(pci_tree, capsys, monkeypatch):
    log = []
    real_read, real_write = pci_access.ConfigSpace.read, pci_access.ConfigSpace.write

    def read(self, off, n):
        log.append(("r", off))
        return real_read(self, off, n)

    def write(self, off, data):
        log.append(("w", off))
        return real_write(self, off, data)

    monkeypatch.setattr(pci_access.ConfigSpace, "read", read)
    monkeypatch.setattr(pci_access.ConfigSpace, "write", write)
    assert pci_cli(capsys, "config", EDU, "0x70.b=1,2,3,4", "--force")[0] == 0
    first_write = log.index(("w", 0x70))
    assert {("r", off) for off in range(0x70, 0x74)} <= set(log[:first_write])
    assert [op for op in log if op[0] == "w"] == [("w", off) for off in range(0x70, 0x74)]


def test_a_write_failing_midway_leaves_the_rest_aborted_and_undo_restores_what_was_written(
    pci_tree, capsys, monkeypatch
):
    path = pci_config_path(pci_tree, EDU)
    before = path.read_bytes()
    real_write = pci_access.ConfigSpace.write

    def write(self, off, data):
        if off == 0x72:  # what ConfigSpace.write raises for the kernel's EIO
            raise from_oserror(OSError(errno.EIO, "Input/output error"), f"write config at {off:#x}")
        return real_write(self, off, data)

    monkeypatch.setattr(pci_access.ConfigSpace, "write", write)
    rc, out, err = pci_cli(capsys, "config", EDU, "0x70.b=1,2,3", "--force")
    assert rc != 0 and out == "" and len(err.splitlines()) == 1
    es = pci_journal(pci_tree)
    assert [(e.addr, e.active, e.aborted) for e in es] == [
        (0x70, True, False),
        (0x71, True, False),
        (0x72, False, True),
    ]
    assert path.read_bytes()[0x70:0x73] == bytes([1, 2, before[0x72]])
    monkeypatch.setattr(pci_access.ConfigSpace, "write", real_write)
    assert cli.main(["undo"]) == 0
    capsys.readouterr()
    assert path.read_bytes() == before


def test_a_list_must_end_inside_config_space(pci_tree, capsys):
    """setpci: addr + width * n > 0x1000 is out of range; a 256-byte device ends at 0x100."""
    path = pci_config_path(pci_tree, EDU)
    before = path.read_bytes()
    rc, out, err = pci_cli(capsys, "config", EDU, "0xfc.l=1,2", "--force")
    assert rc != 0 and out == "" and "nothing written" in err
    assert path.read_bytes() == before and pci_journal(pci_tree) == []
    assert pci_cli(capsys, "config", EDU, "0xf8.l=1,2", "--force")[0] == 0  # ends exactly at 0x100
    assert path.read_bytes()[0xF8:] == (1).to_bytes(4, "little") + (2).to_bytes(4, "little")


def test_a_list_crossing_0x1000_is_refused_with_nothing_written(pci_tree, capsys):
    path = pci_config_path(pci_tree, EDU)
    path.write_bytes(path.read_bytes() + bytes(4096 - 256))  # a PCI Express-sized config space
    before = path.read_bytes()
    for spec in ("0xffc.l=1,2", "0xffe.w=1,2", "0xff0.b=" + ",".join(["1"] * 17)):
        rc, out, err = pci_cli(capsys, "config", EDU, spec, "--force")
        assert rc != 0 and out == "" and "0x1000" in err and "nothing written" in err, spec
        assert len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before and pci_journal(pci_tree) == []
    assert pci_cli(capsys, "config", EDU, "0xff8.l=0x11223344,0x55667788", "--force")[0] == 0  # ends at 0x1000
    assert path.read_bytes()[0xFF8:] == bytes.fromhex("4433221188776655")


def test_list_json_is_one_document_with_a_write_per_register(pci_tree, capsys):
    from helpers import validate_json

    path = pci_config_path(pci_tree, EDU)
    before = path.read_bytes()
    rc, out, err = pci_cli(capsys, "config", EDU, "0x44", "16", "0xbeef,0x1:0x1", "--force", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    validate_json(doc, "pci-config")
    old0, old1 = (int.from_bytes(before[o : o + 2], "little") for o in (0x44, 0x46))
    new1 = (old1 & ~1 & 0xFFFF) | 1
    assert doc["slot"] == "0000:00:0a.0" and doc["width"] == 16
    assert [(w["offset"], w["old"], w["new"], w["readback"]) for w in doc["writes"]] == [
        ("0x44", f"0x{old0:04x}", "0xbeef", "0xbeef"),
        ("0x46", f"0x{old1:04x}", f"0x{new1:04x}", f"0x{new1:04x}"),
    ]
    assert [w["journal_id"] for w in doc["writes"]] == [e.id for e in pci_journal(pci_tree)]


# -- numbered capabilities on a device ----------------------------------------------------------
def _add_express_and_aer(path) -> tuple[int, int]:
    """Append a PCI Express capability to edu's list at 0xc0 and give it an extended list (AER at
    0x100, then a vendor-specific one at 0x148) in a 4096-byte config space; their offsets."""
    cfg = bytearray(path.read_bytes() + bytes(4096 - 256))
    pos = cfg[0x34]
    while cfg[pos + 1]:
        pos = cfg[pos + 1]
    cfg[pos + 1] = 0xC0
    cfg[0xC0:0xC4] = bytes([0x10, 0x00, 0x02, 0x00])  # ID 0x10, end of list, PCIe capabilities
    cfg[0xC0 + 0x10 : 0xC0 + 0x14] = bytes.fromhex("102a3b4c")
    cfg[0x100:0x104] = (0x0001 | 2 << 16 | 0x148 << 20).to_bytes(4, "little")  # AER v2, next 0x148
    cfg[0x104:0x108] = bytes.fromhex("deadbeef")
    cfg[0x148:0x14C] = (0x000B | 1 << 16).to_bytes(4, "little")  # vendor-specific, end of list
    path.write_bytes(bytes(cfg))
    return 0xC0, 0x100


def test_cap10_reads_the_bytes_cap_exp_reads(pci_tree, capsys):
    path = pci_config_path(pci_tree, EDU)
    exp, aer = _add_express_and_aer(path)
    cfg = path.read_bytes()
    for spec, off, n in [("+2.w", 2, 2), ("+0x10.w", 0x10, 2), ("+0x12.b", 0x12, 1), ("+0x10.l", 0x10, 4)]:
        numbered, named = (pci_cli(capsys, "config", EDU, base + spec) for base in ("CAP10", "CAP_EXP"))
        assert numbered[0] == named[0] == 0, (numbered, named)
        assert numbered[1] == named[1] == f"0x{int.from_bytes(cfg[exp + off : exp + off + n], 'little'):0{2 * n}X}\n"
    assert pci_cli(capsys, "config", EDU, "cap0x10+2.w")[1] == pci_cli(capsys, "config", EDU, "CAP_EXP+2.w")[1]
    assert pci_cli(capsys, "config", EDU, "CAP5.b")[1] == "0x05\n"  # edu's MSI, ID 5
    assert (
        pci_cli(capsys, "config", EDU, "ECAP001+4.l")[1]
        == pci_cli(capsys, "config", EDU, "ECAP_AER+4.l")[1]
        == "0xEFBEADDE\n"
    )
    assert (
        pci_cli(capsys, "config", EDU, "ECAPb.w")[1] == pci_cli(capsys, "config", EDU, "ECAP_VNDR.w")[1] == "0x000B\n"
    )
    assert pci_cli(capsys, "config", EDU, "ECAP001.w")[1] == f"0x{int.from_bytes(cfg[aer : aer + 2], 'little'):04X}\n"


def test_numbered_capability_write_and_refusals(pci_tree, capsys):
    path = pci_config_path(pci_tree, EDU)
    exp, _ = _add_express_and_aer(path)
    before = path.read_bytes()
    assert pci_cli(capsys, "config", EDU, "CAP10+0x10.w=0x0:0x10", "--force")[0] == 0  # clear bit 4 of device control
    assert path.read_bytes()[exp + 0x10] == before[exp + 0x10] & ~0x10
    rc, out, err = pci_cli(capsys, "config", EDU, "CAP10+0x10")
    assert (rc, out) == (2, "") and "no natural width" in err
    rc, out, err = pci_cli(capsys, "config", EDU, "CAP10.w@1")
    assert rc == 1 and "CAP10 (CAP_EXP) capability @1: it has 1" in err
    rc, out, err = pci_cli(capsys, "config", EDU, "CAP11.w")
    assert rc == 1 and "no CAP11 (CAP_MSIX) capability" in err
    capsys.readouterr()
