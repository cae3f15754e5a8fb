"""BAR access, journaling and undo, and the pci CLI's list/show/read/write, on a copy of a
captured tree (config space and setpci's register syntax: test_pci_config_access.py).

Regular files stand in for sysfs resourceN/config and for /dev/mem: the real pci, physmem and
journal code runs on them, and every check reads the files directly (not through pyphys).
Exact-width behaviour on real hardware is covered by tests/vm/test_pci_vm.py. The ``pci_tree``
fixture is in tests/unit/conftest.py, the helpers in tests/helpers.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from helpers import file_bytes, pci_cli, pci_config_bytes, pci_journal

from pyphys import journal, pci_access, pci_write
from pyphys.errors import NotFoundError, RegionError, UsageError

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci", "lab-guest")
SEED = bytes([68, 117, 110, 105, 97, 44, 118, 105, 112, 105, 63, 13])  # seed 002's DARRAY without the 0


# ---------------------------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------------------------
def test_register_write_is_journaled_and_undone(pci_tree):
    edu = pci_tree.dev("1234:11e8")
    rec = pci_write.write_bar(edu, 0, 4, (0x12345678).to_bytes(4, "little"), width=32)
    assert file_bytes(pci_tree.files[("1234:11e8", 0)], 4, 4) == bytes.fromhex("78563412")
    assert rec.old == b"\0" * 4 and rec.after == rec.new
    (entry,) = pci_journal(pci_tree)
    assert entry.kind == "pci" and entry.addr == 4 and entry.target["bar"] == 0
    results = journal.Journal(str(pci_tree.journal)).undo()
    assert [r.status for r in results] == ["restored"]
    assert file_bytes(pci_tree.files[("1234:11e8", 0)], 4, 4) == b"\0" * 4


def test_seed_string_in_one_call_and_undo(pci_tree):
    ivshmem = pci_tree.dev("1af4:1110")
    pci_write.write_bar(ivshmem, 2, 0, SEED)
    assert file_bytes(pci_tree.files[("1af4:1110", 2)], 0, 16) == SEED + b"\0" * 4
    assert len(pci_journal(pci_tree)) == 1  # one call, one journal entry: not a shell loop
    journal.Journal(str(pci_tree.journal)).undo()
    assert file_bytes(pci_tree.files[("1af4:1110", 2)], 0, 16) == b"\0" * 16


def test_read_back_difference_is_recorded_not_fatal(pci_tree, monkeypatch):
    """edu's liveness register reads back ~value: the journal keeps it as 'actual', the write stands."""
    edu = pci_tree.dev("1234:11e8")
    real_write = pci_access.BarAccess.write

    def inverting_write(self, off, data):
        real_write(self, off, bytes(b ^ 0xFF for b in data))

    monkeypatch.setattr(pci_access.BarAccess, "write", inverting_write)
    rec = pci_write.write_bar(edu, 0, 4, (0x12345678).to_bytes(4, "little"), width=32)
    assert int.from_bytes(rec.after, "little") == 0xEDCBA987
    (entry,) = pci_journal(pci_tree)
    assert entry.actual == rec.after


def test_undo_refuses_when_the_device_changed(pci_tree):
    edu = pci_tree.dev("1234:11e8")
    pci_write.write_bar(edu, 0, 4, b"\1\0\0\0", width=32)
    (pci_tree.root / "sys/bus/pci/devices" / edu.address / "device").write_text("0x11e9\n")
    with pytest.raises(NotFoundError, match="re-enumerated|not the"):
        journal.Journal(str(pci_tree.journal)).undo()
    assert file_bytes(pci_tree.files[("1234:11e8", 0)], 4, 4) == b"\1\0\0\0"


@pytest.mark.parametrize(
    "offset, width, value, error",
    [(0x100000, 32, 1, RegionError), (0xFFFFE, 32, 1, RegionError), (2, 32, 1, UsageError), (0, 8, 0x100, UsageError)],
)
def test_bad_bar_writes_write_nothing(pci_tree, offset, width, value, error):
    edu = pci_tree.dev("1234:11e8")
    before = file_bytes(pci_tree.files[("1234:11e8", 0)])
    with pytest.raises(error):
        data = value.to_bytes(max(width // 8, (value.bit_length() + 7) // 8), "little")
        pci_write.write_bar(edu, 0, offset, data, width=width)
    assert file_bytes(pci_tree.files[("1234:11e8", 0)]) == before
    assert pci_journal(pci_tree) == []


def test_string_past_the_end_writes_nothing(pci_tree):
    ivshmem = pci_tree.dev("1af4:1110")
    with pytest.raises(RegionError):
        pci_write.write_bar(ivshmem, 2, (1 << 20) - 4, SEED)
    assert file_bytes(pci_tree.files[("1af4:1110", 2)]) == b"\0" * (1 << 20)
    assert pci_journal(pci_tree) == []


def test_io_bar_accesses_are_exact_width(pci_tree, monkeypatch):
    """Each I/O access is one pread/pwrite of exactly its size (the kernel does one in/out per call)."""
    ahci = pci_tree.dev("8086:2922")
    calls = []
    real_pread, real_pwrite = os.pread, os.pwrite

    def pread(fd, n, off):
        calls.append(("r", n, off))
        return real_pread(fd, n, off)

    def pwrite(fd, data, off):
        calls.append(("w", len(data), off))
        return real_pwrite(fd, data, off)

    with pci_access.open_bar(ahci, 4, writable=True) as bar:
        monkeypatch.setattr(os, "pread", pread)
        monkeypatch.setattr(os, "pwrite", pwrite)
        bar.write_word(0x10, 32, 0x8)
        assert bar.read_word(0x10, 32) == 0x8
        bar.write(1, b"abc")
        bar.read_word(0x14, 16)
        monkeypatch.undo()
    assert calls == [("w", 4, 0x10), ("r", 4, 0x10), ("w", 1, 1), ("w", 2, 2), ("r", 2, 0x14)]
    with pytest.raises(UsageError, match="width"):
        with pci_access.open_bar(ahci, 4) as bar:
            bar.read_word(0, 64)


def test_io_bar_through_devmem_is_refused_clearly(pci_tree):
    with pytest.raises(UsageError, match="I/O-port BAR"):
        pci_access.open_bar(pci_tree.dev("8086:2922"), 4, via="devmem")


def test_sub_page_bar_through_its_resource_file(pci_tree):
    """ivshmem's BAR0 is 256 bytes: sysfs gives resource0 that size and CPython will not map
    past it, so the window is the file's size (the kernel maps the whole page anyway)."""
    path = pci_tree.files[("1af4:1110", 0)]
    assert os.path.getsize(path) == 256
    with pci_access.open_bar(pci_tree.dev("1af4:1110"), 0, writable=True) as bar:
        bar.write_word(0xFC, 32, 0x11223344)
        assert bar.read_word(0xFC, 32) == 0x11223344
        with pytest.raises(RegionError):
            bar.read_word(0x100, 32)
    with open(path, "rb") as f:
        f.seek(0xFC)
        assert f.read(4) == bytes.fromhex("44332211")


def test_read_only_open_refuses_writes(pci_tree):
    with pci_access.open_bar(pci_tree.dev("1234:11e8"), 0) as bar:
        assert bar.read_word(0, 32) == 0x010000ED
        with pytest.raises(UsageError):
            bar.write(4, b"\0\0\0\0")


def test_range_read(pci_tree):
    with open(pci_tree.files[("1af4:1110", 2)], "r+b") as f:
        f.write(SEED)
    assert pci_access.read_bar_range(pci_tree.dev("1af4:1110"), 2, 0, 16, 32) == SEED + b"\0" * 4
    with pytest.raises(UsageError, match="aligned"):
        pci_access.read_bar_range(pci_tree.dev("1af4:1110"), 2, 0, 6, 32)


def test_via_devmem_goes_to_the_bar_address(pci_tree):
    """--via devmem: the physmem layer maps /dev/mem at BAR start + offset (a sparse stand-in file)."""
    edu = pci_tree.dev("1234:11e8")
    (pci_tree.root / "dev").mkdir()
    mem = pci_tree.root / "dev" / "mem"
    with open(mem, "wb") as f:
        f.truncate(edu.bar(0).end + 1)
    pci_write.write_bar(edu, 0, 8, (5).to_bytes(4, "little"), width=32, via="devmem")
    assert file_bytes(mem, edu.bar(0).start + 8, 4) == b"\5\0\0\0"
    (entry,) = pci_journal(pci_tree)
    assert entry.target["via"] == "devmem"
    journal.Journal(str(pci_tree.journal)).undo()
    assert file_bytes(mem, edu.bar(0).start + 8, 4) == b"\0\0\0\0"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_list_and_json(pci_tree, capsys):
    rc, out, _ = pci_cli(capsys, "list")
    assert rc == 0
    for d in pci_tree.devices:
        assert d.short_address in out and f"[{d.ids}]" in out
    rc, out, _ = pci_cli(capsys, "list", "--json")
    assert [d["slot"] for d in json.loads(out)["devices"]] == [d.address for d in pci_tree.devices]
    rc, out, _ = pci_cli(capsys, "list", "--source", "procfs", "1af4:1110")
    assert rc == 0 and "BAR2  mem 64-bit prefetchable" in out


def _lspci_nmm() -> dict[str, tuple[str, ...]]:
    """The fixture's `lspci -Dnmm` (captured in the guest): slot -> (class, vendor, device, subsystem IDs)."""
    rows = {}
    with open(os.path.join(FIX, "lspci-Dnmm.txt")) as f:
        for line in f:
            m = re.match(r'(\S+) "(\w+)" "(\w+)" "(\w+)"(?: -r\w+)?(?: -p\w+)? "(\w*)" "(\w*)"', line)
            rows[m.group(1)] = m.group(2, 3, 4, 5, 6)
    return rows


def test_cli_list_and_show_json_agree_with_lspci(pci_tree, capsys):
    """docs/json.md: `slot`, IDs as 0x strings, the devices under `devices`; the values are what
    lspci -Dnmm printed in the guest the fixture was captured in."""
    from helpers import validate_json

    rc, out, _ = pci_cli(capsys, "list", "--json")
    doc = json.loads(out)
    validate_json(doc, "pci-list")
    truth = _lspci_nmm()
    assert rc == 0 and sorted(d["slot"] for d in doc["devices"]) == sorted(truth)
    for d in doc["devices"]:
        cls, ven, dev, sv, sd = truth[d["slot"]]
        assert (d["vendor_id"], d["device_id"]) == (f"0x{ven}", f"0x{dev}")
        assert d["class"][:6] == f"0x{cls}" and len(d["class"]) == 8
        assert (d["subsystem_vendor_id"], d["subsystem_device_id"]) == (f"0x{sv}", f"0x{sd}")
        assert not {"address", "vendor", "device", "subsystem_vendor"} & set(d)
        for b in d["bars"]:
            assert int(b["end"], 16) - int(b["start"], 16) == b["size"]  # END exclusive
    rc, out, _ = pci_cli(capsys, "show", "1234:11e8", "--json")
    show = json.loads(out)
    validate_json(show, "pci-show")
    listed = next(d for d in doc["devices"] if d["device_id"] == "0x11e8")
    assert {k: show[k] for k in listed if k not in ("bars", "source")} == {
        k: v for k, v in listed.items() if k not in ("bars", "source")
    }
    assert [(b["index"], b["start"], b["size"]) for b in show["config"]["bars"]] == [
        (b["index"], b["start"], b["size"]) for b in listed["bars"]
    ]


def test_cli_read_write_seed_flags(pci_tree, capsys):
    assert pci_cli(capsys, "read", "1234:11e8", "0", "0")[1] == "0x010000ED\n"
    rc, out, _ = pci_cli(
        capsys,
        "write",
        "-V",
        "0x1af4",
        "-D",
        "0x1110",
        "--subsystem-vendor",
        "0x1af4",
        "--subsystem-device",
        "0x1100",
        "2",
        "0",
        "--string",
        r"Dunia,vipi?\r",
    )
    assert rc == 0 and "journal entry 1" in out
    assert file_bytes(pci_tree.files[("1af4:1110", 2)], 0, 12) == SEED
    assert pci_cli(capsys, "read", "-V", "1af4", "-D", "1110", "2", "0", "8")[1] == "0x44\n"
    # lspci's -d VENDOR:DEVICE and -s [[domain:]bus:]slot.func name the same device
    assert pci_cli(capsys, "read", "-d", "1af4:1110", "2", "0", "8")[1] == "0x44\n"
    ivshmem = next(d for d in pci_tree.devices if d.ids == "1af4:1110")
    assert pci_cli(capsys, "read", "-s", ivshmem.short_address, "2", "0", "8")[1] == "0x44\n"


def test_cli_hexdump_matches_hexdump_C(pci_tree, capsys):
    if not shutil.which("hexdump"):
        pytest.skip("hexdump (bsdextrautils) not installed: it is the peer for the layout")
    data = SEED + bytes(range(20))
    with open(pci_tree.files[("1af4:1110", 2)], "r+b") as f:
        f.write(data)
    rc, out, _ = pci_cli(capsys, "read", "1af4:1110", "2", "0", "8", "-l", str(len(data)))
    peer = subprocess.run(["hexdump", "-C"], input=data, stdout=subprocess.PIPE, check=True).stdout.decode()
    assert rc == 0
    assert out.splitlines() == peer.splitlines()  # the same layout, down to the closing length line


BAD = [
    (["read", "dead:beef", "0", "0"], "no PCI device matches"),
    (["read", "1234:11e8", "3", "0"], "has no BAR3"),
    (["read", "1234:11e8", "0", "0x100000"], "past the end"),
    (["write", "1234:11e8", "0", "0x100000", "1"], "past the end"),
    (["write", "1234:11e8", "0", "2", "32", "1"], "not aligned"),
    (["write", "1234:11e8", "0", "4", "8", "0x100"], "too wide"),
    (["write", "1234:11e8", "0", "4", "12", "1"], "width"),
    (["write", "1234:11e8", "0", "4", "-1"], "not a number"),
    (["write", "1af4:1110", "2", "0xffffc", "--string", "Dunia"], "past the end"),
    (["write", "1af4:1110", "2", "0", "--string", r"caf\q"], "unknown escape"),
    (["write", "1af4:", "2", "0", "1"], "devices match"),
    (["write", "1234:11e8", "7", "0", "1"], "BAR index"),
    (["config", "1234:11e8", "0x3c", "8", "5"], "--force"),
    (["read", "2", "0"], "name a device"),
    (["read", "zz:qq", "0", "0"], "neither an address"),
]


@pytest.mark.parametrize("argv, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_cli_bad_input_one_line_nothing_written(pci_tree, capsys, argv, words):
    before = {k: file_bytes(p) for k, p in pci_tree.files.items() if k[0] in ("1234:11e8", "1af4:1110")}
    cfg = pci_tree.root / "sys/bus/pci/devices" / pci_tree.dev("1234:11e8").address / "config"
    cfg_before = file_bytes(cfg)
    rc, out, err = pci_cli(capsys, *argv)
    assert rc != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert words in err
    assert {k: file_bytes(p) for k, p in pci_tree.files.items() if k in before} == before
    assert file_bytes(cfg) == cfg_before
    assert pci_journal(pci_tree) == []


def test_decode_string():
    # pci write --string decodes with the one decoder devmem uses too
    from pyphys.dialect import decode_escapes as decode_string

    assert decode_string(r"Dunia,vipi?\r") == SEED
    assert decode_string(r"a\0b\x41\101\\") == b"a\0bAA\\"
    for bad in ("\\", r"\xZ1", r"\q", r"\777"):
        with pytest.raises(UsageError):
            decode_string(bad)


def test_all_ones_with_memory_decoding_off_is_explained(pci_tree, capsys):
    """A device whose command register has Memory Space off answers every read with ~0 (master abort)."""
    edu = pci_tree.dev("1234:11e8")
    cfg = pci_tree.root / "sys/bus/pci/devices" / edu.address / "config"
    with open(cfg, "r+b") as f:
        f.seek(4)
        f.write(b"\x00\x00")  # command: I/O, Mem, BusMaster all off
    with open(pci_tree.files[("1234:11e8", 0)], "r+b") as f:
        f.write(b"\xff" * 4)
    rc, out, err = pci_cli(capsys, "read", "1234:11e8", "0", "0")
    assert rc == 0 and out == "0xFFFFFFFF\n"
    assert "memory decoding off" in err and f"/sys/bus/pci/devices/{edu.address}/enable" in err
    with open(cfg, "r+b") as f:
        f.seek(4)
        f.write(b"\x03\x01")
    rc, out, err = pci_cli(capsys, "read", "1234:11e8", "0", "0")
    assert rc == 0 and err == ""


def test_cli_length_is_a_size(pci_tree, capsys):
    # -l takes the dialect's sizes, as dump and devmem --range do: 1K is 1024 bytes
    data = bytes(range(256)) * 4
    with open(pci_tree.files[("1af4:1110", 2)], "r+b") as f:
        f.write(data)
    rc, out, _ = pci_cli(capsys, "read", "1af4:1110", "2", "0", "8", "-l", "1K")
    want = pci_cli(capsys, "read", "1af4:1110", "2", "0", "8", "-l", "1024")[1]
    assert rc == 0 and out == want and want.splitlines()[-1] == "00000400"


def test_cli_json_follows_the_conventions(pci_tree, capsys):
    """docs/json.md: the device under `slot`, IDs and offsets/values as 0x strings, blobs as `data`."""
    from helpers import validate_json

    edu = pci_tree.dev("1234:11e8")
    cfg = pci_config_bytes(pci_tree, "1234:11e8")
    rc, out, _ = pci_cli(capsys, "config", "1234:11e8", "--json")
    doc = json.loads(out)
    validate_json(doc, "pci-config")
    assert doc["slot"] == edu.address == "0000:00:0a.0"
    assert int(doc["vendor_id"], 16) == int.from_bytes(cfg[0:2], "little")
    assert int(doc["device_id"], 16) == int.from_bytes(cfg[2:4], "little")
    assert "device" not in doc and "vendor" not in doc
    doc = json.loads(pci_cli(capsys, "config", "1234:11e8", "COMMAND", "--json")[1])
    validate_json(doc, "pci-config")
    assert doc == {
        "slot": edu.address,
        "offset": "0x4",
        "width": 16,
        "value": f"0x{int.from_bytes(cfg[4:6], 'little'):04x}",
    }
    doc = json.loads(pci_cli(capsys, "read", "1234:11e8", "0", "0", "--json")[1])
    validate_json(doc, "pci-read")
    assert (doc["slot"], doc["offset"], doc["width"], doc["value"]) == (edu.address, "0x0", 32, "0x010000ed")
    doc = json.loads(pci_cli(capsys, "read", "1234:11e8", "0", "0", "8", "-l", "4", "--json")[1])
    validate_json(doc, "pci-read")
    assert doc["data"] == file_bytes(pci_tree.files[("1234:11e8", 0)], 0, 4).hex() == "ed000001"
    doc = json.loads(pci_cli(capsys, "write", "1234:11e8", "0", "4", "w", "0xbeef", "--json")[1])
    validate_json(doc, "pci-write")
    assert (doc["old"], doc["new"], doc["readback"], doc["width"]) == ("0x0000", "0xbeef", "0xbeef", 16)
    doc = json.loads(pci_cli(capsys, "write", "1af4:1110", "2", "0", "--string", "Hi", "--json")[1])
    validate_json(doc, "pci-write")
    assert (doc["data"], doc["width"]) == (b"Hi".hex(), None)
    doc = json.loads(pci_cli(capsys, "config", "1234:11e8", "0x3c.b", "9", "--force", "--json")[1])
    validate_json(doc, "pci-config")
    assert (doc["old"], doc["new"], doc["offset"]) == (f"0x{cfg[0x3C]:02x}", "0x09", "0x3c")
