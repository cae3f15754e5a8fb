"""Config-space access through the pci CLI and library: reads, --force writes and undo, setpci's
width letters, register names, CAP_xxx+OFF, VALUE:MASK writes and CAP_xxx@N instances, on a
copy of a captured tree (BAR access: test_pci_access.py).

A regular file stands in for sysfs config: the real pci and journal code runs on it, and every
check reads the file directly, capability lists walked here by hand (not through pyphys). The
``pci_tree`` fixture is in tests/unit/conftest.py, the helpers in tests/helpers.py.
"""

from __future__ import annotations

import json

import pytest
from helpers import file_bytes, pci_cli, pci_config_bytes, pci_journal

from pyphys import journal, pci_access, pci_config, pci_write
from pyphys.errors import PyphysError, RegionError, UsageError


# ---------------------------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------------------------
def test_config_write_needs_force_and_is_undoable(pci_tree):
    edu = pci_tree.dev("1234:11e8")
    cfg = pci_tree.root / "sys/bus/pci/devices" / edu.address / "config"
    before = file_bytes(cfg)
    with pytest.raises(UsageError, match="--force"):
        pci_write.write_config(edu, 0x3C, 8, 5)
    assert file_bytes(cfg) == before and pci_journal(pci_tree) == []
    pci_write.write_config(edu, 0x3C, 8, 5, force=True)
    assert file_bytes(cfg, 0x3C, 1) == b"\5"
    journal.Journal(str(pci_tree.journal)).undo()
    assert file_bytes(cfg) == before


def test_config_read_word(pci_tree):
    edu = pci_tree.dev("1234:11e8")
    assert pci_access.read_config_word(edu, 0, 32) == 0x11E81234
    with pytest.raises(UsageError):
        pci_access.read_config_word(edu, 2, 32)
    with pytest.raises(RegionError):
        pci_access.read_config_word(edu, 0x100, 8)


def test_unprivileged_config_read_is_explained(pci_tree):
    """A 64-byte config file (what sysfs gives non-root) makes deeper reads fail with the reason."""
    edu = pci_tree.dev("1234:11e8")
    cfg = pci_tree.root / "sys/bus/pci/devices" / edu.address / "config"
    data = file_bytes(cfg)
    with open(cfg, "wb") as f:
        f.write(data[:64])
    hdr = pci_config.decode_config(pci_access.read_config(edu))
    assert hdr.length == 64 and any("CAP_SYS_ADMIN" in n for n in hdr.notes)
    with pytest.raises(PyphysError):
        pci_access.read_config_word(edu, 0x40, 8)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_widths_are_setpci_letters(pci_tree, capsys):
    """pci config/read take setpci's letters (b=8, w=16, l=32), as `setpci -s DEV 04.w` means them."""
    cfg = pci_config_bytes(pci_tree, "1234:11e8")
    command = int.from_bytes(cfg[4:6], "little")  # the command register, read from the file itself
    assert pci_cli(capsys, "config", "1234:11e8", "4", "w")[1] == f"0x{command:04X}\n"
    assert pci_cli(capsys, "config", "1234:11e8", "0", "l")[1] == f"0x{int.from_bytes(cfg[0:4], 'little'):08X}\n"
    assert pci_cli(capsys, "config", "1234:11e8", "0", "b")[1] == f"0x{cfg[0]:02X}\n"
    assert pci_cli(capsys, "read", "1234:11e8", "0", "0", "w")[1] == "0x00ED\n"  # 16 bits of 0x010000ED
    assert pci_cli(capsys, "read", "1234:11e8", "0", "0", "l")[1] == "0x010000ED\n"
    for bad in ("q", "h", "u16"):  # not setpci's letters
        rc, out, err = pci_cli(capsys, "read", "1234:11e8", "0", "0", bad)
        assert rc == 2 and out == "" and "b=8, w=16, l=32" in err


def _walk(cfg: bytes) -> dict:
    """The classic capability list walked here, independently of pyphys: {cap id: offset} (first)."""
    found = {}
    pos = cfg[0x34] & ~3 if cfg[6] & 0x10 else 0
    while pos:
        found.setdefault(cfg[pos], pos)
        pos = cfg[pos + 1] & ~3
    return found


def test_cli_setpci_register_syntax(pci_tree, capsys):
    """`REG.w`, setpci's names with their natural width, and CAP_xxx+OFF as setpci(8) means them."""
    ids = "00:02.0"  # virtio 9p: MSI-X and vendor-specific capabilities
    cfg = file_bytes(pci_tree.root / "sys/bus/pci/devices/0000:00:02.0/config")
    le = lambda off, n: int.from_bytes(cfg[off : off + n], "little")  # noqa: E731
    command = f"0x{le(4, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "04.w")[1] == command
    assert pci_cli(capsys, "config", ids, "4.w")[1] == command
    assert pci_cli(capsys, "config", ids, "COMMAND")[1] == command
    assert pci_cli(capsys, "config", ids, "command")[1] == command  # setpci compares names case-insensitively
    assert pci_cli(capsys, "config", ids, "STATUS")[1] == f"0x{le(6, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "VENDOR_ID")[1] == f"0x{le(0, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "DEVICE_ID")[1] == f"0x{le(2, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "CLASS_DEVICE")[1] == f"0x{le(0xA, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "HEADER_TYPE")[1] == f"0x{cfg[0xE]:02X}\n"
    assert pci_cli(capsys, "config", ids, "BASE_ADDRESS_2")[1] == f"0x{le(0x10 + 8, 4):08X}\n"
    assert pci_cli(capsys, "config", ids, "SUBSYSTEM_VENDOR_ID")[1] == f"0x{le(0x2C, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "INTERRUPT_LINE")[1] == f"0x{cfg[0x3C]:02X}\n"
    assert pci_cli(capsys, "config", ids, "CAPABILITIES")[1] == f"0x{cfg[0x34]:02X}\n"
    assert pci_cli(capsys, "config", ids, "CAPABILITY_LIST")[1] == f"0x{cfg[0x34]:02X}\n"
    assert pci_cli(capsys, "config", ids, "COMMAND.b")[1] == f"0x{cfg[4]:02X}\n"
    caps = _walk(cfg)
    msix, vndr = caps[0x11], caps[0x09]
    assert pci_cli(capsys, "config", ids, "CAP_MSIX.w")[1] == f"0x{le(msix, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "CAP_MSIX+0x2.w")[1] == f"0x{le(msix + 2, 2):04X}\n"
    assert pci_cli(capsys, "config", ids, "CAP_MSIX+4")[1] == f"0x{le(msix + 4, 4):08X}\n"  # no width: 32
    assert pci_cli(capsys, "config", ids, "cap_vndr.b")[1] == f"0x{cfg[vndr]:02X}\n"
    rc, out, err = pci_cli(capsys, "config", ids, "CAP_EXP+0x10.w")
    assert (rc, out) == (1, "") and "device has no CAP_EXP capability" in err
    rc, out, err = pci_cli(capsys, "config", ids, "ECAP_AER")
    assert rc == 1 and "device has no ECAP_AER capability" in err


def test_cli_cap_exp_found_in_the_list(pci_tree, capsys):
    """A PCI Express capability appended to the list: CAP_EXP+OFF lands where the list puts it."""
    ids = "1234:11e8"
    path = pci_tree.root / "sys/bus/pci/devices" / pci_tree.dev(ids).address / "config"
    cfg = bytearray(file_bytes(path))
    last = max(_walk(bytes(cfg)).values())
    exp = 0xC0
    cfg[last + 1] = exp
    cfg[exp : exp + 4] = bytes([0x10, 0x00, 0x02, 0x00])  # ID, next, PCIe capabilities register
    cfg[exp + 0x10 : exp + 0x12] = (0x2810).to_bytes(2, "little")  # device control
    path.write_bytes(bytes(cfg))
    assert _walk(bytes(cfg))[0x10] == exp
    assert pci_cli(capsys, "config", ids, "CAP_EXP+0x10.w")[1] == "0x2810\n"
    assert pci_cli(capsys, "config", ids, "CAP_EXP+0x2.w")[1] == "0x0002\n"
    assert pci_cli(capsys, "config", ids, "CAP_EXP.b")[1] == "0x10\n"


@pytest.mark.parametrize(
    "spec,words",
    [
        ("10.l", "ambiguous"),  # setpci: 0x10; pyphys: 10
        ("CAP_EXP+10.w", "ambiguous"),
        ("04.q", "not setpci's"),
        ("NO_SUCH_REG", "unknown register"),
        ("CAP_NOPE", "unknown capability"),
        ("COMMAND+2", "+OFFSET goes after a capability"),
        ("PRIMARY_BUS", "not in this device's header"),
    ],
)
def test_cli_setpci_register_refusals(pci_tree, capsys, spec, words):
    rc, out, err = pci_cli(capsys, "config", "1234:11e8", spec)
    assert rc != 0 and out == "" and words in err and len(err.strip().splitlines()) <= 2


def test_cli_setpci_register_write(pci_tree, capsys):
    path = pci_tree.root / "sys/bus/pci/devices" / pci_tree.dev("1234:11e8").address / "config"
    assert pci_cli(capsys, "config", "1234:11e8", "INTERRUPT_LINE=0x5")[0] == 2  # no --force
    assert pci_cli(capsys, "config", "1234:11e8", "INTERRUPT_LINE=0x5", "--force")[0] == 0
    assert file_bytes(path, 0x3C, 1) == b"\x05"
    assert pci_cli(capsys, "config", "1234:11e8", "3c.b", "7", "--force")[0] == 2  # ambiguous 3c: bare hex
    assert pci_cli(capsys, "config", "1234:11e8", "0x3c.b", "7", "--force")[0] == 0
    assert file_bytes(path, 0x3C, 1) == b"\x07"


# ---------------------------------------------------------------------------------------------
# setpci's VALUE:MASK writes and CAP_xxx@N instances
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, offset, size, value, mask",
    [
        (["COMMAND=0x404:0x404"], 0x04, 2, 0x404, 0x404),  # set bits 2 and 10 alone
        (["COMMAND=0:0x2"], 0x04, 2, 0, 0x2),  # clear memory decoding alone
        (["0x4", "16", "0xffff:0x400"], 0x04, 2, 0x400, 0x400),  # VALUE outside MASK is dropped, as setpci
        (["0x3c.b=0x5a:0xf0"], 0x3C, 1, 0x50, 0xF0),
        (["BASE_ADDRESS_0=0xffffffff:0xffffffff"], 0x10, 4, 0xFFFFFFFF, 0xFFFFFFFF),  # a full mask: plain write
    ],
)
def test_cli_masked_config_write_changes_the_mask_bits_alone_and_undoes(
    pci_tree, capsys, argv, offset, size, value, mask
):
    """setpci.c exec_op(): x = (read & ~mask) | (value & mask), written whole; undo puts back the old register."""
    path = pci_tree.root / "sys/bus/pci/devices" / pci_tree.dev("1234:11e8").address / "config"
    before = file_bytes(path)
    old = int.from_bytes(before[offset : offset + size], "little")
    want = (old & ~mask & (1 << 8 * size) - 1) | (value & mask)
    assert want != old  # the write changes the register ...
    assert want != value or mask == (1 << 8 * size) - 1  # ... and, with a partial mask, not to VALUE alone
    rc, out, err = pci_cli(capsys, "config", "1234:11e8", *argv, "--force", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert (doc["old"], doc["new"]) == (f"0x{old:0{2 * size}x}", f"0x{want:0{2 * size}x}")
    after = file_bytes(path)
    assert after[offset : offset + size] == want.to_bytes(size, "little")
    assert after[:offset] + after[offset + size :] == before[:offset] + before[offset + size :]
    (entry,) = pci_journal(pci_tree)
    assert (entry.addr, entry.old, entry.new) == (offset, before[offset : offset + size], want.to_bytes(size, "little"))
    journal.Journal(str(pci_tree.journal)).undo()
    assert file_bytes(path) == before


def _vendor_caps(cfg: bytes) -> list[int]:
    """The offsets of the CAP_VNDR (0x09) capabilities, walked by hand from the raw bytes."""
    found, pos = [], cfg[0x34] & ~3
    while pos:
        if cfg[pos] == 0x09:
            found.append(pos)
        pos = cfg[pos + 1] & ~3
    return found


def test_cli_capability_instances_count_from_zero(pci_tree, capsys):
    """setpci's CAP_xxx@N: the N-th capability of that ID in list order, from 0 (pci_find_cap_nr)."""
    dev = next(d for d in pci_tree.devices if len(_vendor_caps(pci_config_bytes(pci_tree, d.ids))) > 1)
    cfg = pci_config_bytes(pci_tree, dev.ids)
    caps = _vendor_caps(cfg)
    for n, pos in enumerate(caps):
        rc, out, _ = pci_cli(capsys, "config", dev.address, f"CAP_VNDR+3.b@{n}")
        assert rc == 0 and int(out, 16) == cfg[pos + 3], n
    assert (
        pci_cli(capsys, "config", dev.address, "CAP_VNDR+3.b")[1]
        == pci_cli(capsys, "config", dev.address, "CAP_VNDR+3.b@0")[1]
    )
    rc, _, err = pci_cli(capsys, "config", dev.address, f"CAP_VNDR.b@{len(caps)}")
    assert rc == 1 and f"it has {len(caps)}" in err and len(err.splitlines()) == 1
    # a masked write into the second instance, and its undo
    path = pci_tree.root / "sys/bus/pci/devices" / dev.address / "config"
    pos = caps[1] + 3
    rc, _, err = pci_cli(capsys, "config", dev.address, "CAP_VNDR+3.b@1=0x80:0x80", "--force")
    assert rc == 0, err
    assert file_bytes(path, pos, 1) == bytes([cfg[pos] | 0x80]) and file_bytes(path)[:pos] == cfg[:pos]
    journal.Journal(str(pci_tree.journal)).undo()
    assert file_bytes(path) == cfg
