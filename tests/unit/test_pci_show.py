"""``pyphys pci show -vv`` against ``lspci -Dvv`` captured on the same machine at the same moment
(tests/fixtures/pci/*/: the guests' and the host's config space, sysfs and lspci's output);
corrupt capability lists and short reads built from those captures.
"""

from __future__ import annotations

import os
import shutil

import lspci_compare
import pytest

from pyphys import cli, journal, paths, pci_config, pci_devices, pci_show, pci_write
from pyphys.errors import UsageError

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci")
MACHINES = ("lab-guest", "stock-guest", "host")


@pytest.fixture(autouse=True)
def _no_pci_ids(monkeypatch):
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")


def use(machine: str, root: str | None = None):
    base = root or os.path.join(FIX, machine)
    return paths.set_roots(sys=os.path.join(base, "sys"), proc=os.path.join(base, "proc"))


@pytest.mark.parametrize("machine", MACHINES)
def test_show_vv_agrees_with_lspci_capture(machine):
    with open(os.path.join(FIX, machine, "lspci-Dvv.txt")) as f:
        truth = lspci_compare.parse(f.read())
    old = use(machine)
    try:
        devices = pci_devices.scan()
        problems, caps = [], 0
        for dev in devices:
            report = pci_show.show(dev, 2)
            ours = next(iter(lspci_compare.parse("\n".join(report.lines)).values()))
            problems += lspci_compare.compare(ours, truth[dev.address], f"{machine} {dev.address}")
            caps += len(ours["caps"])
    finally:
        paths.set_roots(**old)
    assert sorted(d.address for d in devices) == sorted(truth)
    assert caps == sum(len(d["caps"]) for d in truth.values()) > 0
    assert not problems, "\n".join(problems)


def _corrupt(tmp_path, machine: str, edit) -> pci_devices.PciDevice:
    root = tmp_path / machine
    shutil.copytree(os.path.join(FIX, machine), root, symlinks=True)
    use(machine, str(root))
    dev = next(d for d in pci_devices.scan() if d.vendor == 0x1AF4)
    cfg = root / "sys" / "bus" / "pci" / "devices" / dev.address / "config"
    data = bytearray(cfg.read_bytes())
    edit(data)
    cfg.write_bytes(bytes(data))
    return dev


def test_capability_loop_stops_and_says_where(tmp_path):
    old = paths.set_roots()
    try:

        def loop(data):
            first = data[0x34]
            second = data[first + 1]
            data[second + 1] = first  # the second capability points back to the first

        dev = _corrupt(tmp_path, "host", loop)
        report = pci_show.show(dev, 2)
    finally:
        paths.set_roots(**old)
    assert len(report.header.capabilities) == 2
    assert any("loops" in n and "points back to" in n for n in report.notes), report.notes


@pytest.mark.parametrize("pointer", [0x20, 0x3C])
def test_pointer_outside_capability_area(tmp_path, pointer):
    old = paths.set_roots()
    try:
        dev = _corrupt(tmp_path, "host", lambda data: data.__setitem__(0x34, pointer))
        report = pci_show.show(dev, 2)
    finally:
        paths.set_roots(**old)
    assert report.header.capabilities == ()
    assert any("the capabilities pointer at 0x34 points to" in n for n in report.notes), report.notes


def test_ext_capability_loop(tmp_path):
    data = bytearray(4096)
    data[0x06] = 0x10  # status: capability list
    data[0x34] = 0
    data[0x100:0x104] = (0x0001 | 1 << 16 | 0x140 << 20).to_bytes(4, "little")  # AER -> 0x140
    data[0x140:0x144] = (0x000F | 1 << 16 | 0x100 << 20).to_bytes(4, "little")  # ATS -> back to 0x100
    hdr = pci_config.decode_config(bytes(data))
    assert [(c.offset, c.cap_id) for c in hdr.capabilities] == [(0x100, 0x01), (0x140, 0x0F)]
    assert any("extended capability list loops" in n and "0x140" in n for n in hdr.notes), hdr.notes


def test_short_read_decodes_header_and_says_what_is_missing(tmp_path, capsys, monkeypatch):
    root = tmp_path / "host"
    shutil.copytree(os.path.join(FIX, "host"), root, symlinks=True)
    old = use("host", str(root))
    try:
        dev = next(d for d in pci_devices.scan() if d.vendor == 0x1AF4)
        cfg = root / "sys" / "bus" / "pci" / "devices" / dev.address / "config"
        full = cfg.read_bytes()
        real_read_all = pci_show.ConfigSpace.read_all
        # what a reader without CAP_SYS_ADMIN gets: the file says 256 bytes, a read returns 64
        monkeypatch.setattr(pci_show.ConfigSpace, "read_all", lambda self: real_read_all(self)[:64])
        rc = cli.main(["pci", "show", "-vv", dev.address])
        out, err = capsys.readouterr()
    finally:
        paths.set_roots(**old)
    assert rc == 0 and len(full) == 256
    assert "Region 0:" in out and "Capabilities: <access denied>" in out
    assert "only 64 of 256 bytes" in err and "0x40-0xff missing" in err and "root" in err


def test_bar_size_refused_while_decoding_then_sized_and_restored(tmp_path, lab_guest_copy):
    """Regular files stand in for config space: all ones read back as all ones (a 16-byte
    memory BAR), and the restore must leave the file as it was, with the entry undone."""
    root = lab_guest_copy
    edu = next(d for d in pci_devices.scan() if d.ids == "1234:11e8")
    cfg = root / "sys" / "bus" / "pci" / "devices" / edu.address / "config"
    before = cfg.read_bytes()
    assert before[4] & 2  # Mem+
    with pytest.raises(UsageError, match="decodes memory space"):
        pci_write.size_bar(edu, 0)
    assert cfg.read_bytes() == before and not (tmp_path / "journal.jsonl").exists()
    res = pci_write.size_bar(edu, 0, force=True)
    assert cfg.read_bytes() == before
    assert res.restored and res.readback == 0xFFFFFFFF and res.size == 0x10 and res.decoding
    (entry,) = journal.Journal().entries()
    assert entry.id == res.journal_id and entry.undone and entry.old == before[0x10:0x14]
    with pytest.raises(UsageError, match="upper half"):
        virtio = next(d for d in pci_devices.scan() if d.vendor == 0x1AF4 and any(b.is_64bit for b in d.bars))
        upper = next(b.index for b in virtio.bars if b.is_64bit) + 1
        pci_write.size_bar(virtio, upper, force=True)


def test_bar_size_json_follows_the_dialect(lab_guest_copy, capsys):
    """docs/schema/pci-bar-size.json: the device under slot, offset and register values as 0x
    strings of the BAR's width, the size an integer; the values are the config file's bytes."""
    import json
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from helpers import validate_json

    edu = next(d for d in pci_devices.scan() if d.ids == "1234:11e8")
    before = (lab_guest_copy / "sys" / "bus" / "pci" / "devices" / edu.address / "config").read_bytes()
    rc = cli.main(["pci", "bar-size", edu.address, "0", "--force", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    validate_json(doc, "pci-bar-size")
    reg = int.from_bytes(before[0x10:0x14], "little")
    assert (doc["slot"], doc["offset"], doc["width"]) == (edu.address, "0x10", 32)
    assert (doc["original"], doc["readback"], doc["after"]) == (f"0x{reg:08x}", "0xffffffff", f"0x{reg:08x}")
    assert doc["size"] == 0x10 and doc["restored"] is True
