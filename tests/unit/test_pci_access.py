"""BAR and config-space access, journaling and undo, and the CLI, on a copy of a captured tree.

Regular files stand in for sysfs resourceN/config and for /dev/mem: the real pci, physmem and
journal code runs on them, and every check reads the files directly (not through pyphys).
Exact-width behaviour on real hardware is covered by tests/vm/test_pci_vm.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from pyphys import cli, journal, paths, pci_access, pci_config, pci_devices, pci_write
from pyphys.errors import NotFoundError, PyphysError, RegionError, UsageError

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci", "lab-guest")
SEED = bytes([68, 117, 110, 105, 97, 44, 118, 105, 112, 105, 63, 13])  # seed 002's DARRAY without the 0


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A writable copy of the lab guest's tree with 'device memory' files of the BARs' sizes."""
    root = tmp_path / "m"
    shutil.copytree(FIX, root, symlinks=True)
    old = paths.set_roots(sys=str(root / "sys"), proc=str(root / "proc"), dev=str(root / "dev"))
    monkeypatch.setenv("PYPHYS_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    devices = pci_devices.scan()
    files = {}
    for d in devices:
        for b in d.bars:
            path = root / "sys/bus/pci/devices" / d.address / f"resource{b.index}"
            with open(path, "wb") as f:
                f.truncate(b.size)
            files[(d.ids, b.index)] = path
    edu = files[("1234:11e8", 0)]
    with open(edu, "r+b") as f:
        f.write((0x010000ED).to_bytes(4, "little"))  # edu.rst: identification register
    ns = type("Tree", (), {})()
    ns.root, ns.files, ns.devices, ns.journal = root, files, devices, tmp_path / "journal.jsonl"
    ns.dev = lambda ids: next(d for d in devices if d.ids == ids)
    yield ns
    paths.set_roots(**old)


def content(path, off=0, n=None) -> bytes:
    with open(path, "rb") as f:
        f.seek(off)
        return f.read() if n is None else f.read(n)


def journal_entries(ns) -> list:
    return journal.Journal(str(ns.journal)).entries() if ns.journal.exists() else []


# ---------------------------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------------------------
def test_register_write_is_journaled_and_undone(tree):
    edu = tree.dev("1234:11e8")
    rec = pci_write.write_bar(edu, 0, 4, (0x12345678).to_bytes(4, "little"), width=32)
    assert content(tree.files[("1234:11e8", 0)], 4, 4) == bytes.fromhex("78563412")
    assert rec.old == b"\0" * 4 and rec.after == rec.new
    (entry,) = journal_entries(tree)
    assert entry.kind == "pci" and entry.addr == 4 and entry.target["bar"] == 0
    results = journal.Journal(str(tree.journal)).undo()
    assert [r.status for r in results] == ["restored"]
    assert content(tree.files[("1234:11e8", 0)], 4, 4) == b"\0" * 4


def test_seed_string_in_one_call_and_undo(tree):
    ivshmem = tree.dev("1af4:1110")
    pci_write.write_bar(ivshmem, 2, 0, SEED)
    assert content(tree.files[("1af4:1110", 2)], 0, 16) == SEED + b"\0" * 4
    assert len(journal_entries(tree)) == 1  # one call, one journal entry: not a shell loop
    journal.Journal(str(tree.journal)).undo()
    assert content(tree.files[("1af4:1110", 2)], 0, 16) == b"\0" * 16


def test_read_back_difference_is_recorded_not_fatal(tree, monkeypatch):
    """edu's liveness register reads back ~value: the journal keeps it as 'actual', the write stands."""
    edu = tree.dev("1234:11e8")
    real_write = pci_access.BarAccess.write

    def inverting_write(self, off, data):
        real_write(self, off, bytes(b ^ 0xFF for b in data))

    monkeypatch.setattr(pci_access.BarAccess, "write", inverting_write)
    rec = pci_write.write_bar(edu, 0, 4, (0x12345678).to_bytes(4, "little"), width=32)
    assert int.from_bytes(rec.after, "little") == 0xEDCBA987
    (entry,) = journal_entries(tree)
    assert entry.actual == rec.after


def test_undo_refuses_when_the_device_changed(tree):
    edu = tree.dev("1234:11e8")
    pci_write.write_bar(edu, 0, 4, b"\1\0\0\0", width=32)
    (tree.root / "sys/bus/pci/devices" / edu.address / "device").write_text("0x11e9\n")
    with pytest.raises(NotFoundError, match="re-enumerated|not the"):
        journal.Journal(str(tree.journal)).undo()
    assert content(tree.files[("1234:11e8", 0)], 4, 4) == b"\1\0\0\0"


@pytest.mark.parametrize(
    "offset, width, value, error",
    [(0x100000, 32, 1, RegionError), (0xFFFFE, 32, 1, RegionError), (2, 32, 1, UsageError), (0, 8, 0x100, UsageError)],
)
def test_bad_bar_writes_write_nothing(tree, offset, width, value, error):
    edu = tree.dev("1234:11e8")
    before = content(tree.files[("1234:11e8", 0)])
    with pytest.raises(error):
        data = value.to_bytes(max(width // 8, (value.bit_length() + 7) // 8), "little")
        pci_write.write_bar(edu, 0, offset, data, width=width)
    assert content(tree.files[("1234:11e8", 0)]) == before
    assert journal_entries(tree) == []


def test_string_past_the_end_writes_nothing(tree):
    ivshmem = tree.dev("1af4:1110")
    with pytest.raises(RegionError):
        pci_write.write_bar(ivshmem, 2, (1 << 20) - 4, SEED)
    assert content(tree.files[("1af4:1110", 2)]) == b"\0" * (1 << 20)
    assert journal_entries(tree) == []


def test_io_bar_accesses_are_exact_width(tree, monkeypatch):
    """Each I/O access is one pread/pwrite of exactly its size (the kernel does one in/out per call)."""
    ahci = tree.dev("8086:2922")
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


def test_io_bar_through_devmem_is_refused_clearly(tree):
    with pytest.raises(UsageError, match="I/O-port BAR"):
        pci_access.open_bar(tree.dev("8086:2922"), 4, via="devmem")


def test_sub_page_bar_through_its_resource_file(tree):
    """ivshmem's BAR0 is 256 bytes: sysfs gives resource0 that size and CPython will not map
    past it, so the window is the file's size (the kernel maps the whole page anyway)."""
    path = tree.files[("1af4:1110", 0)]
    assert os.path.getsize(path) == 256
    with pci_access.open_bar(tree.dev("1af4:1110"), 0, writable=True) as bar:
        bar.write_word(0xFC, 32, 0x11223344)
        assert bar.read_word(0xFC, 32) == 0x11223344
        with pytest.raises(RegionError):
            bar.read_word(0x100, 32)
    with open(path, "rb") as f:
        f.seek(0xFC)
        assert f.read(4) == bytes.fromhex("44332211")


def test_read_only_open_refuses_writes(tree):
    with pci_access.open_bar(tree.dev("1234:11e8"), 0) as bar:
        assert bar.read_word(0, 32) == 0x010000ED
        with pytest.raises(UsageError):
            bar.write(4, b"\0\0\0\0")


def test_range_read(tree):
    with open(tree.files[("1af4:1110", 2)], "r+b") as f:
        f.write(SEED)
    assert pci_access.read_bar_range(tree.dev("1af4:1110"), 2, 0, 16, 32) == SEED + b"\0" * 4
    with pytest.raises(UsageError, match="aligned"):
        pci_access.read_bar_range(tree.dev("1af4:1110"), 2, 0, 6, 32)


def test_via_devmem_goes_to_the_bar_address(tree):
    """--via devmem: the physmem layer maps /dev/mem at BAR start + offset (a sparse stand-in file)."""
    edu = tree.dev("1234:11e8")
    (tree.root / "dev").mkdir()
    mem = tree.root / "dev" / "mem"
    with open(mem, "wb") as f:
        f.truncate(edu.bar(0).end + 1)
    pci_write.write_bar(edu, 0, 8, (5).to_bytes(4, "little"), width=32, via="devmem")
    assert content(mem, edu.bar(0).start + 8, 4) == b"\5\0\0\0"
    (entry,) = journal_entries(tree)
    assert entry.target["via"] == "devmem"
    journal.Journal(str(tree.journal)).undo()
    assert content(mem, edu.bar(0).start + 8, 4) == b"\0\0\0\0"


def test_config_write_needs_force_and_is_undoable(tree):
    edu = tree.dev("1234:11e8")
    cfg = tree.root / "sys/bus/pci/devices" / edu.address / "config"
    before = content(cfg)
    with pytest.raises(UsageError, match="--force"):
        pci_write.write_config(edu, 0x3C, 8, 5)
    assert content(cfg) == before and journal_entries(tree) == []
    pci_write.write_config(edu, 0x3C, 8, 5, force=True)
    assert content(cfg, 0x3C, 1) == b"\5"
    journal.Journal(str(tree.journal)).undo()
    assert content(cfg) == before


def test_config_read_word(tree):
    edu = tree.dev("1234:11e8")
    assert pci_access.read_config_word(edu, 0, 32) == 0x11E81234
    with pytest.raises(UsageError):
        pci_access.read_config_word(edu, 2, 32)
    with pytest.raises(RegionError):
        pci_access.read_config_word(edu, 0x100, 8)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["pci", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_list_and_json(tree, capsys):
    rc, out, _ = run(capsys, "list")
    assert rc == 0
    for d in tree.devices:
        assert d.short_address in out and f"[{d.ids}]" in out
    rc, out, _ = run(capsys, "list", "--json")
    assert [d["slot"] for d in json.loads(out)["devices"]] == [d.address for d in tree.devices]
    rc, out, _ = run(capsys, "list", "--source", "procfs", "1af4:1110")
    assert rc == 0 and "BAR2  mem 64-bit prefetchable" in out


def _lspci_nmm() -> dict[str, tuple[str, ...]]:
    """The fixture's `lspci -Dnmm` (captured in the guest): slot -> (class, vendor, device, subsystem IDs)."""
    rows = {}
    with open(os.path.join(FIX, "lspci-Dnmm.txt")) as f:
        for line in f:
            m = re.match(r'(\S+) "(\w+)" "(\w+)" "(\w+)"(?: -r\w+)?(?: -p\w+)? "(\w*)" "(\w*)"', line)
            rows[m.group(1)] = m.group(2, 3, 4, 5, 6)
    return rows


def test_cli_list_and_show_json_agree_with_lspci(tree, capsys):
    """docs/json.md: `slot`, IDs as 0x strings, the devices under `devices`; the values are what
    lspci -Dnmm printed in the guest the fixture was captured in."""
    from helpers import validate_json

    rc, out, _ = run(capsys, "list", "--json")
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
    rc, out, _ = run(capsys, "show", "1234:11e8", "--json")
    show = json.loads(out)
    validate_json(show, "pci-show")
    listed = next(d for d in doc["devices"] if d["device_id"] == "0x11e8")
    assert {k: show[k] for k in listed if k not in ("bars", "source")} == {
        k: v for k, v in listed.items() if k not in ("bars", "source")
    }
    assert [(b["index"], b["start"], b["size"]) for b in show["config"]["bars"]] == [
        (b["index"], b["start"], b["size"]) for b in listed["bars"]
    ]


def test_cli_read_write_seed_flags(tree, capsys):
    assert run(capsys, "read", "1234:11e8", "0", "0")[1] == "0x010000ED\n"
    rc, out, _ = run(
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
    assert content(tree.files[("1af4:1110", 2)], 0, 12) == SEED
    assert run(capsys, "read", "-V", "1af4", "-D", "1110", "2", "0", "8")[1] == "0x44\n"
    # lspci's -d VENDOR:DEVICE and -s [[domain:]bus:]slot.func name the same device
    assert run(capsys, "read", "-d", "1af4:1110", "2", "0", "8")[1] == "0x44\n"
    ivshmem = next(d for d in tree.devices if d.ids == "1af4:1110")
    assert run(capsys, "read", "-s", ivshmem.short_address, "2", "0", "8")[1] == "0x44\n"


def test_cli_hexdump_matches_hexdump_C(tree, capsys):
    if not shutil.which("hexdump"):
        pytest.skip("hexdump (bsdextrautils) not installed: it is the peer for the layout")
    data = SEED + bytes(range(20))
    with open(tree.files[("1af4:1110", 2)], "r+b") as f:
        f.write(data)
    rc, out, _ = run(capsys, "read", "1af4:1110", "2", "0", "8", "-l", str(len(data)))
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
def test_cli_bad_input_one_line_nothing_written(tree, capsys, argv, words):
    before = {k: content(p) for k, p in tree.files.items() if k[0] in ("1234:11e8", "1af4:1110")}
    cfg = tree.root / "sys/bus/pci/devices" / tree.dev("1234:11e8").address / "config"
    cfg_before = content(cfg)
    rc, out, err = run(capsys, *argv)
    assert rc != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert words in err
    assert {k: content(p) for k, p in tree.files.items() if k in before} == before
    assert content(cfg) == cfg_before
    assert journal_entries(tree) == []


def test_decode_string():
    # pci write --string decodes with the one decoder devmem uses too
    from pyphys.dialect import decode_escapes as decode_string

    assert decode_string(r"Dunia,vipi?\r") == SEED
    assert decode_string(r"a\0b\x41\101\\") == b"a\0bAA\\"
    for bad in ("\\", r"\xZ1", r"\q", r"\777"):
        with pytest.raises(UsageError):
            decode_string(bad)


def test_unprivileged_config_read_is_explained(tree):
    """A 64-byte config file (what sysfs gives non-root) makes deeper reads fail with the reason."""
    edu = tree.dev("1234:11e8")
    cfg = tree.root / "sys/bus/pci/devices" / edu.address / "config"
    data = content(cfg)
    with open(cfg, "wb") as f:
        f.write(data[:64])
    hdr = pci_config.decode_config(pci_access.read_config(edu))
    assert hdr.length == 64 and any("CAP_SYS_ADMIN" in n for n in hdr.notes)
    with pytest.raises(PyphysError):
        pci_access.read_config_word(edu, 0x40, 8)


def test_all_ones_with_memory_decoding_off_is_explained(tree, capsys):
    """A device whose command register has Memory Space off answers every read with ~0 (master abort)."""
    edu = tree.dev("1234:11e8")
    cfg = tree.root / "sys/bus/pci/devices" / edu.address / "config"
    with open(cfg, "r+b") as f:
        f.seek(4)
        f.write(b"\x00\x00")  # command: I/O, Mem, BusMaster all off
    with open(tree.files[("1234:11e8", 0)], "r+b") as f:
        f.write(b"\xff" * 4)
    rc, out, err = run(capsys, "read", "1234:11e8", "0", "0")
    assert rc == 0 and out == "0xFFFFFFFF\n"
    assert "memory decoding off" in err and f"/sys/bus/pci/devices/{edu.address}/enable" in err
    with open(cfg, "r+b") as f:
        f.seek(4)
        f.write(b"\x03\x01")
    rc, out, err = run(capsys, "read", "1234:11e8", "0", "0")
    assert rc == 0 and err == ""


def test_cli_length_is_a_size(tree, capsys):
    # -l takes the dialect's sizes, as dump and devmem --range do: 1K is 1024 bytes
    data = bytes(range(256)) * 4
    with open(tree.files[("1af4:1110", 2)], "r+b") as f:
        f.write(data)
    rc, out, _ = run(capsys, "read", "1af4:1110", "2", "0", "8", "-l", "1K")
    want = run(capsys, "read", "1af4:1110", "2", "0", "8", "-l", "1024")[1]
    assert rc == 0 and out == want and want.splitlines()[-1] == "00000400"


def _cfg_bytes(tree, ids) -> bytes:
    return content(tree.root / "sys/bus/pci/devices" / tree.dev(ids).address / "config")


def test_cli_widths_are_setpci_letters(tree, capsys):
    """pci config/read take setpci's letters (b=8, w=16, l=32), as `setpci -s DEV 04.w` means them."""
    cfg = _cfg_bytes(tree, "1234:11e8")
    command = int.from_bytes(cfg[4:6], "little")  # the command register, read from the file itself
    assert run(capsys, "config", "1234:11e8", "4", "w")[1] == f"0x{command:04X}\n"
    assert run(capsys, "config", "1234:11e8", "0", "l")[1] == f"0x{int.from_bytes(cfg[0:4], 'little'):08X}\n"
    assert run(capsys, "config", "1234:11e8", "0", "b")[1] == f"0x{cfg[0]:02X}\n"
    assert run(capsys, "read", "1234:11e8", "0", "0", "w")[1] == "0x00ED\n"  # 16 bits of 0x010000ED
    assert run(capsys, "read", "1234:11e8", "0", "0", "l")[1] == "0x010000ED\n"
    for bad in ("q", "h", "u16"):  # not setpci's letters
        rc, out, err = run(capsys, "read", "1234:11e8", "0", "0", bad)
        assert rc == 2 and out == "" and "b=8, w=16, l=32" in err


def _walk(cfg: bytes) -> dict:
    """The classic capability list walked here, independently of pyphys: {cap id: offset} (first)."""
    found = {}
    pos = cfg[0x34] & ~3 if cfg[6] & 0x10 else 0
    while pos:
        found.setdefault(cfg[pos], pos)
        pos = cfg[pos + 1] & ~3
    return found


def test_cli_setpci_register_syntax(tree, capsys):
    """`REG.w`, setpci's names with their natural width, and CAP_xxx+OFF as setpci(8) means them."""
    ids = "00:02.0"  # virtio 9p: MSI-X and vendor-specific capabilities
    cfg = content(tree.root / "sys/bus/pci/devices/0000:00:02.0/config")
    le = lambda off, n: int.from_bytes(cfg[off : off + n], "little")  # noqa: E731
    command = f"0x{le(4, 2):04X}\n"
    assert run(capsys, "config", ids, "04.w")[1] == command
    assert run(capsys, "config", ids, "4.w")[1] == command
    assert run(capsys, "config", ids, "COMMAND")[1] == command
    assert run(capsys, "config", ids, "command")[1] == command  # setpci compares names case-insensitively
    assert run(capsys, "config", ids, "STATUS")[1] == f"0x{le(6, 2):04X}\n"
    assert run(capsys, "config", ids, "VENDOR_ID")[1] == f"0x{le(0, 2):04X}\n"
    assert run(capsys, "config", ids, "DEVICE_ID")[1] == f"0x{le(2, 2):04X}\n"
    assert run(capsys, "config", ids, "CLASS_DEVICE")[1] == f"0x{le(0xA, 2):04X}\n"
    assert run(capsys, "config", ids, "HEADER_TYPE")[1] == f"0x{cfg[0xE]:02X}\n"
    assert run(capsys, "config", ids, "BASE_ADDRESS_2")[1] == f"0x{le(0x10 + 8, 4):08X}\n"
    assert run(capsys, "config", ids, "SUBSYSTEM_VENDOR_ID")[1] == f"0x{le(0x2C, 2):04X}\n"
    assert run(capsys, "config", ids, "INTERRUPT_LINE")[1] == f"0x{cfg[0x3C]:02X}\n"
    assert run(capsys, "config", ids, "CAPABILITIES")[1] == f"0x{cfg[0x34]:02X}\n"
    assert run(capsys, "config", ids, "CAPABILITY_LIST")[1] == f"0x{cfg[0x34]:02X}\n"
    assert run(capsys, "config", ids, "COMMAND.b")[1] == f"0x{cfg[4]:02X}\n"
    caps = _walk(cfg)
    msix, vndr = caps[0x11], caps[0x09]
    assert run(capsys, "config", ids, "CAP_MSIX.w")[1] == f"0x{le(msix, 2):04X}\n"
    assert run(capsys, "config", ids, "CAP_MSIX+0x2.w")[1] == f"0x{le(msix + 2, 2):04X}\n"
    assert run(capsys, "config", ids, "CAP_MSIX+4")[1] == f"0x{le(msix + 4, 4):08X}\n"  # no width: 32
    assert run(capsys, "config", ids, "cap_vndr.b")[1] == f"0x{cfg[vndr]:02X}\n"
    rc, out, err = run(capsys, "config", ids, "CAP_EXP+0x10.w")
    assert (rc, out) == (1, "") and "device has no CAP_EXP capability" in err
    rc, out, err = run(capsys, "config", ids, "ECAP_AER")
    assert rc == 1 and "device has no ECAP_AER capability" in err


def test_cli_cap_exp_found_in_the_list(tree, capsys):
    """A PCI Express capability appended to the list: CAP_EXP+OFF lands where the list puts it."""
    ids = "1234:11e8"
    path = tree.root / "sys/bus/pci/devices" / tree.dev(ids).address / "config"
    cfg = bytearray(content(path))
    last = max(_walk(bytes(cfg)).values())
    exp = 0xC0
    cfg[last + 1] = exp
    cfg[exp : exp + 4] = bytes([0x10, 0x00, 0x02, 0x00])  # ID, next, PCIe capabilities register
    cfg[exp + 0x10 : exp + 0x12] = (0x2810).to_bytes(2, "little")  # device control
    path.write_bytes(bytes(cfg))
    assert _walk(bytes(cfg))[0x10] == exp
    assert run(capsys, "config", ids, "CAP_EXP+0x10.w")[1] == "0x2810\n"
    assert run(capsys, "config", ids, "CAP_EXP+0x2.w")[1] == "0x0002\n"
    assert run(capsys, "config", ids, "CAP_EXP.b")[1] == "0x10\n"


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
def test_cli_setpci_register_refusals(tree, capsys, spec, words):
    rc, out, err = run(capsys, "config", "1234:11e8", spec)
    assert rc != 0 and out == "" and words in err and len(err.strip().splitlines()) <= 2


def test_cli_setpci_register_write(tree, capsys):
    path = tree.root / "sys/bus/pci/devices" / tree.dev("1234:11e8").address / "config"
    assert run(capsys, "config", "1234:11e8", "INTERRUPT_LINE=0x5")[0] == 2  # no --force
    assert run(capsys, "config", "1234:11e8", "INTERRUPT_LINE=0x5", "--force")[0] == 0
    assert content(path, 0x3C, 1) == b"\x05"
    assert run(capsys, "config", "1234:11e8", "3c.b", "7", "--force")[0] == 2  # ambiguous 3c: bare hex
    assert run(capsys, "config", "1234:11e8", "0x3c.b", "7", "--force")[0] == 0
    assert content(path, 0x3C, 1) == b"\x07"


def test_cli_json_follows_the_conventions(tree, capsys):
    """docs/json.md: the device under `slot`, IDs and offsets/values as 0x strings, blobs as `data`."""
    from helpers import validate_json

    edu = tree.dev("1234:11e8")
    cfg = _cfg_bytes(tree, "1234:11e8")
    rc, out, _ = run(capsys, "config", "1234:11e8", "--json")
    doc = json.loads(out)
    validate_json(doc, "pci-config")
    assert doc["slot"] == edu.address == "0000:00:0a.0"
    assert int(doc["vendor_id"], 16) == int.from_bytes(cfg[0:2], "little")
    assert int(doc["device_id"], 16) == int.from_bytes(cfg[2:4], "little")
    assert "device" not in doc and "vendor" not in doc
    doc = json.loads(run(capsys, "config", "1234:11e8", "COMMAND", "--json")[1])
    validate_json(doc, "pci-config")
    assert doc == {
        "slot": edu.address,
        "offset": "0x4",
        "width": 16,
        "value": f"0x{int.from_bytes(cfg[4:6], 'little'):04x}",
    }
    doc = json.loads(run(capsys, "read", "1234:11e8", "0", "0", "--json")[1])
    validate_json(doc, "pci-read")
    assert (doc["slot"], doc["offset"], doc["width"], doc["value"]) == (edu.address, "0x0", 32, "0x010000ed")
    doc = json.loads(run(capsys, "read", "1234:11e8", "0", "0", "8", "-l", "4", "--json")[1])
    validate_json(doc, "pci-read")
    assert doc["data"] == content(tree.files[("1234:11e8", 0)], 0, 4).hex() == "ed000001"
    doc = json.loads(run(capsys, "write", "1234:11e8", "0", "4", "w", "0xbeef", "--json")[1])
    validate_json(doc, "pci-write")
    assert (doc["old"], doc["new"], doc["readback"], doc["width"]) == ("0x0000", "0xbeef", "0xbeef", 16)
    doc = json.loads(run(capsys, "write", "1af4:1110", "2", "0", "--string", "Hi", "--json")[1])
    validate_json(doc, "pci-write")
    assert (doc["data"], doc["width"]) == (b"Hi".hex(), None)
    doc = json.loads(run(capsys, "config", "1234:11e8", "0x3c.b", "9", "--force", "--json")[1])
    validate_json(doc, "pci-config")
    assert (doc["old"], doc["new"], doc["offset"]) == (f"0x{cfg[0x3C]:02x}", "0x09", "0x3c")


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
def test_cli_masked_config_write_changes_the_mask_bits_alone_and_undoes(tree, capsys, argv, offset, size, value, mask):
    """setpci.c exec_op(): x = (read & ~mask) | (value & mask), written whole; undo puts back the old register."""
    path = tree.root / "sys/bus/pci/devices" / tree.dev("1234:11e8").address / "config"
    before = content(path)
    old = int.from_bytes(before[offset : offset + size], "little")
    want = (old & ~mask & (1 << 8 * size) - 1) | (value & mask)
    assert want != old  # the write changes the register ...
    assert want != value or mask == (1 << 8 * size) - 1  # ... and, with a partial mask, not to VALUE alone
    rc, out, err = run(capsys, "config", "1234:11e8", *argv, "--force", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert (doc["old"], doc["new"]) == (f"0x{old:0{2 * size}x}", f"0x{want:0{2 * size}x}")
    after = content(path)
    assert after[offset : offset + size] == want.to_bytes(size, "little")
    assert after[:offset] + after[offset + size :] == before[:offset] + before[offset + size :]
    (entry,) = journal_entries(tree)
    assert (entry.addr, entry.old, entry.new) == (offset, before[offset : offset + size], want.to_bytes(size, "little"))
    journal.Journal(str(tree.journal)).undo()
    assert content(path) == before


def _vendor_caps(cfg: bytes) -> list[int]:
    """The offsets of the CAP_VNDR (0x09) capabilities, walked by hand from the raw bytes."""
    found, pos = [], cfg[0x34] & ~3
    while pos:
        if cfg[pos] == 0x09:
            found.append(pos)
        pos = cfg[pos + 1] & ~3
    return found


def test_cli_capability_instances_count_from_zero(tree, capsys):
    """setpci's CAP_xxx@N: the N-th capability of that ID in list order, from 0 (pci_find_cap_nr)."""
    dev = next(d for d in tree.devices if len(_vendor_caps(_cfg_bytes(tree, d.ids))) > 1)
    cfg = _cfg_bytes(tree, dev.ids)
    caps = _vendor_caps(cfg)
    for n, pos in enumerate(caps):
        rc, out, _ = run(capsys, "config", dev.address, f"CAP_VNDR+3.b@{n}")
        assert rc == 0 and int(out, 16) == cfg[pos + 3], n
    assert (
        run(capsys, "config", dev.address, "CAP_VNDR+3.b")[1] == run(capsys, "config", dev.address, "CAP_VNDR+3.b@0")[1]
    )
    rc, _, err = run(capsys, "config", dev.address, f"CAP_VNDR.b@{len(caps)}")
    assert rc == 1 and f"it has {len(caps)}" in err and len(err.splitlines()) == 1
    # a masked write into the second instance, and its undo
    path = tree.root / "sys/bus/pci/devices" / dev.address / "config"
    pos = caps[1] + 3
    rc, _, err = run(capsys, "config", dev.address, "CAP_VNDR+3.b@1=0x80:0x80", "--force")
    assert rc == 0, err
    assert content(path, pos, 1) == bytes([cfg[pos] | 0x80]) and content(path)[:pos] == cfg[:pos]
    journal.Journal(str(tree.journal)).undo()
    assert content(path) == cfg
