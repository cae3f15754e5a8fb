"""pyphys.pci_* on canned trees captured from real machines (tests/fixtures/pci/*/, capture.py).

Ground truth from outside the code under test: each capture holds `lspci -Dnmm` (pciutils)
run on the same machine at the same moment, /proc/iomem, and the devices' own config space.
"""

from __future__ import annotations

import errno
import os
import re
import shutil

import pytest

from pyphys import paths, pci_access, pci_config, pci_devices, pci_ids, pci_select
from pyphys.errors import DevMemBlockedError, NotFoundError, PermissionDeniedError, PyphysError, RegionError, UsageError
from pyphys.layouts import pci as L

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci")
MACHINES = ("lab-guest", "stock-guest", "host")


@pytest.fixture(autouse=True)
def _no_pci_ids(monkeypatch):
    # names from the host's pci.ids would make outputs depend on the machine running the tests
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")


def use(machine: str):
    root = os.path.join(FIX, machine)
    return paths.set_roots(sys=os.path.join(root, "sys"), proc=os.path.join(root, "proc"))


@pytest.fixture
def machine(request):
    old = use(request.param)
    yield request.param
    paths.set_roots(**old)


def lspci_rows(machine: str) -> dict[str, dict]:
    """Parse `lspci -Dnmm`: slot "class" "vendor" "device" [-rXX] [-pXX] "svendor" "sdevice"."""
    rows = {}
    with open(os.path.join(FIX, machine, "lspci-Dnmm.txt")) as f:
        for line in f:
            m = re.match(r'(\S+) "(\w+)" "(\w+)" "(\w+)"(?: -r(\w+))?(?: -p(\w+))? "(\w*)" "(\w*)"', line)
            assert m, line
            slot, cls, ven, dev, rev, prog, sv, sd = m.groups()
            rows[slot] = {
                "class": int(cls, 16),
                "vendor": int(ven, 16),
                "device": int(dev, 16),
                "rev": int(rev, 16) if rev else 0,
                "prog": int(prog, 16) if prog else 0,
                "sv": int(sv, 16) if sv else 0,
                "sd": int(sd, 16) if sd else 0,
            }
    return rows


def by_ids(devices, vendor, device):
    found = [d for d in devices if (d.vendor, d.device) == (vendor, device)]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------
# scanning agrees with lspci (pciutils) captured on the same machine
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("machine", MACHINES, indirect=True)
@pytest.mark.parametrize("source", ["sysfs", "procfs"])
def test_scan_agrees_with_lspci(machine, source):
    devices = pci_devices.scan(source)
    truth = lspci_rows(machine)
    assert [d.address for d in devices] == sorted(truth)
    for d in devices:
        t = truth[d.address]
        assert (d.vendor, d.device) == (t["vendor"], t["device"])
        assert d.class_code >> 8 == t["class"] and d.class_code & 0xFF == t["prog"]
        assert d.revision == t["rev"]
        assert (d.subsystem_vendor, d.subsystem_device) == (t["sv"], t["sd"])
        assert d.source == source


@pytest.mark.parametrize("machine", MACHINES, indirect=True)
def test_procfs_fallback_matches_sysfs(machine):
    sysfs = pci_devices.scan("sysfs")
    procfs = pci_devices.scan("procfs")
    assert [(d.address, d.ids, d.driver, d.bars) for d in sysfs] == [
        (d.address, d.ids, d.driver, d.bars) for d in procfs
    ]


@pytest.mark.parametrize("machine", MACHINES, indirect=True)
def test_bars_agree_with_config_registers(machine):
    """The kernel's resource starts equal what the devices' BAR registers hold (x86: bus = CPU address)."""
    for d in pci_devices.scan("sysfs"):
        with open(os.path.join(FIX, machine, "sys/bus/pci/devices", d.address, "config"), "rb") as f:
            hdr = pci_config.decode_config(f.read())
        regs = {b.index: b for b in hdr.bars}
        for bar in d.bars:
            reg = regs[bar.index]
            assert (reg.kind, reg.address) == (bar.kind, bar.start), (d.address, bar)
            assert reg.is_64bit == bar.is_64bit and reg.prefetchable == bar.prefetchable


@pytest.mark.parametrize("machine", ["lab-guest", "stock-guest"], indirect=True)
def test_qemu_lab_devices(machine):
    devices = pci_devices.scan()
    edu = by_ids(devices, 0x1234, 0x11E8)
    assert [(b.index, b.kind, b.is_64bit, b.prefetchable, b.size) for b in edu.bars] == [
        (0, "mem", False, False, 1 << 20)
    ]
    assert edu.driver is None
    ivshmem = by_ids(devices, 0x1AF4, 0x1110)
    # seed 002: lspci -s 00:04.0 -m -n -v shows SVendor 1af4 SDevice 1100
    assert ivshmem.subsystem_ids == "1af4:1100"
    assert [(b.index, b.kind, b.is_64bit, b.prefetchable, b.size) for b in ivshmem.bars] == [
        (0, "mem", False, False, 256),
        (2, "mem", True, True, 1 << 20),
    ]
    ahci = by_ids(devices, 0x8086, 0x2922)
    assert ahci.bar(4).kind == "io" and ahci.bar(4).size == 0x20
    assert ahci.driver == ("ahci" if machine == "stock-guest" else None)
    virtio = [d for d in devices if d.ids == "1af4:1003"]
    assert virtio and all(d.driver == "virtio-pci" for d in virtio)


def test_resource_parser_rejects_garbage():
    with pytest.raises(PyphysError, match="expected 3"):
        pci_devices.parse_resource("0x1 0x2\n")
    with pytest.raises(PyphysError, match="not hexadecimal"):
        pci_devices.parse_resource("0x1 0x2 zz\n")


def test_proc_devices_parser_rejects_garbage():
    with pytest.raises(PyphysError, match="fields"):
        pci_devices.parse_proc_devices("0048\t123411e8\ta\n")


def test_proc_devices_decodes_flag_bits():
    line = "\t".join(
        [
            "0050",
            "1af41110",
            "0",
            "fe908000",
            "0",
            "fea0000c",
            "0",
            "0",
            "0",
            "0",
            "100",
            "0",
            "100000",
            "0",
            "0",
            "0",
            "0",
            "",
        ]
    )
    (entry,) = pci_devices.parse_proc_devices(line + "\n")
    assert entry.address == "0000:00:0a.0"
    assert entry.bars == (
        pci_devices.Bar(0, "mem", False, False, 0xFE908000, 0x100),
        pci_devices.Bar(2, "mem", True, True, 0xFEA00000, 0x100000),
    )
    assert entry.driver is None


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("machine", ["lab-guest"], indirect=True)
def test_select_by_address_ids_and_seed_flags(machine):
    devices = pci_devices.scan()
    edu = by_ids(devices, 0x1234, 0x11E8)
    short = edu.short_address
    for text in (edu.address, short, "1234:11e8", "1234:"):
        assert pci_select.select_device(pci_select.parse_selector(text), devices) is edu
    # seed 002: ne_upci_rw -D 0x1110 -V 0x1af4 -d 0x1100 -v 0x1af4
    sel = pci_select.parse_selector(
        None, vendor=0x1AF4, device=0x1110, subsystem_vendor=0x1AF4, subsystem_device=0x1100
    )
    assert pci_select.select_device(sel, devices).ids == "1af4:1110"


@pytest.mark.parametrize("machine", ["lab-guest"], indirect=True)
def test_no_match_lists_what_exists(machine):
    with pytest.raises(NotFoundError) as err:
        pci_select.select_device(pci_select.parse_selector("dead:beef"))
    assert "no PCI device matches dead:beef" in err.value.message
    assert "1234:11e8" in err.value.hint and "1af4:1110" in err.value.hint


@pytest.mark.parametrize("machine", ["lab-guest"], indirect=True)
def test_several_matches_list_them(machine):
    with pytest.raises(UsageError) as err:
        pci_select.select_device(pci_select.parse_selector(":1003"))
    consoles = [d.short_address for d in pci_devices.scan() if d.device == 0x1003]
    assert len(consoles) > 1
    assert f"{len(consoles)} PCI devices match" in err.value.message
    assert all(c in err.value.message for c in consoles)


def _lspci_nmm(machine: str) -> dict[str, tuple[int, int, int, int]]:
    """The fixture's `lspci -Dnmm`: slot -> (vendor, device, class 16 bits, prog-if)."""
    rows = {}
    with open(os.path.join(FIX, machine, "lspci-Dnmm.txt")) as f:
        for line in f:
            m = re.match(r'(\S+) "(\w+)" "(\w+)" "(\w+)"(?: -r\w+)?(?: -p(\w+))?', line)
            rows[m.group(1)] = (
                int(m.group(3), 16),
                int(m.group(4), 16),
                int(m.group(2), 16),
                int(m.group(5) or "0", 16),
            )
    return rows


def _lspci_d(rows: dict, text: str) -> list[str]:
    """What `lspci -d TEXT` lists, by pciutils' lib/filter.c read by hand: every part empty or *
    is any; an x digit of the class matches any; the fourth part is the prog-if."""
    parts = (text.split(":") + ["", "", ""])[:4]

    def ok(part: str, have: int, width: int) -> bool:
        if part in ("", "*"):
            return True
        part = part.rjust(width, "0")[-width:]
        return all(c == "x" or int(c, 16) == (have >> (4 * (width - 1 - i))) & 0xF for i, c in enumerate(part))

    return sorted(
        slot
        for slot, (ven, dev, cls, prog) in rows.items()
        if ok(parts[0], ven, 4) and ok(parts[1], dev, 4) and ok(parts[2], cls, 4) and ok(parts[3], prog, 2)
    )


@pytest.mark.parametrize("machine", ["lab-guest"], indirect=True)
@pytest.mark.parametrize(
    "text",
    ["1234:", "1af4:", ":1003", ":", "*:*", "::0780", "::06xx", "::x", "8086::0601", "1af4:*:*:00", "01af4:1003"],
)
def test_device_text_means_what_lspci_d_means(machine, text):
    """A positional DEVICE and -d select what `lspci -d` would in the captured guest."""
    devices = pci_devices.scan()
    want = _lspci_d(_lspci_nmm("lab-guest"), text)
    assert want  # every case matches something in the guest
    for sel in (pci_select.parse_selector(text), pci_select.parse_selector(None, ids=text)):
        assert sorted(d.address for d in pci_select.find_devices(sel, devices)) == want, (text, str(sel))


@pytest.mark.parametrize(
    "text", ["zz", "12345:1", "00:20.0", "00:04.8", "1:2:3:4:5", "1:2:3:100", "1:2:fffff", "1:g", "1:2:3:4:"]
)
def test_bad_selector_text(text):
    with pytest.raises(UsageError):
        pci_select.parse_selector(text)


def test_selector_contradiction():
    with pytest.raises(UsageError, match="contradicts"):
        pci_select.parse_selector("1af4:1110", device=0x1000)


def test_normalize_address():
    assert pci_devices.normalize_address("4.0") is None  # lspci's bare slot.func is ambiguous here: require bus
    assert pci_devices.normalize_address("0:4.0") == "0000:00:04.0"
    assert pci_devices.normalize_address("0001:0a:1f.7") == "0001:0a:1f.7"


# ---------------------------------------------------------------------------------------------
# config space
# ---------------------------------------------------------------------------------------------
def config_of(machine: str, vendor: int, device: int) -> bytes:
    old = use(machine)
    try:
        dev = by_ids(pci_devices.scan(), vendor, device)
        with open(os.path.join(FIX, machine, "sys/bus/pci/devices", dev.address, "config"), "rb") as f:
            return f.read()
    finally:
        paths.set_roots(**old)


def test_decode_edu_header():
    hdr = pci_config.decode_config(config_of("lab-guest", 0x1234, 0x11E8))
    assert (hdr.vendor, hdr.device, hdr.revision) == (0x1234, 0x11E8, 0x10)
    assert hdr.class_code == 0x00FF00 and hdr.header_type == 0
    assert "Mem" in hdr.command_flags and "Cap" in hdr.status_flags
    assert [(c.offset, c.name) for c in hdr.capabilities] == [(0x40, "MSI")]
    assert (hdr.subsystem_vendor, hdr.subsystem_device) == (0x1AF4, 0x1100)
    assert hdr.interrupt_pin == 1


def test_decode_virtio_capability_chain():
    data = config_of("host", 0x1AF4, 0x1045)
    hdr = pci_config.decode_config(data)
    # the chain as the raw bytes encode it (id, next) — hand-checked against `lspci -vv` on the host
    assert [(c.offset, c.cap_id) for c in hdr.capabilities] == [
        (0x40, 0x09),
        (0x50, 0x09),
        (0x60, 0x09),
        (0x70, 0x09),
        (0x84, 0x09),
        (0x98, 0x11),
    ]
    assert hdr.bars[0].is_64bit and hdr.bars[0].address == 0x4000000000


def test_truncated_config_names_the_privilege():
    """Without CAP_SYS_ADMIN sysfs returns 64 bytes (pci_read_config): say so, don't guess."""
    hdr = pci_config.decode_config(config_of("lab-guest", 0x1234, 0x11E8)[:64])
    assert hdr.capabilities == ()
    assert any("CAP_SYS_ADMIN" in n for n in hdr.notes)


def test_capability_loop_is_bounded():
    data = bytearray(256)
    data[L.PCI_STATUS] = L.PCI_STATUS_CAP_LIST
    data[L.PCI_CAPABILITY_LIST] = 0x40
    data[0x40:0x42] = bytes([0x05, 0x50])
    data[0x50:0x52] = bytes([0x11, 0x40])  # points back
    hdr = pci_config.decode_config(bytes(data))
    assert [c.offset for c in hdr.capabilities] == [0x40, 0x50]
    assert any("loops" in n for n in hdr.notes)


def test_extended_capabilities_and_bridge_header():
    data = bytearray(4096)
    data[L.PCI_HEADER_TYPE] = 0x81  # bridge, multi-function
    data[L.PCI_PRIMARY_BUS : L.PCI_SUBORDINATE_BUS + 1] = bytes([0, 1, 3])
    data[0x100:0x104] = (0x01 | 1 << 16 | 0x140 << 20).to_bytes(4, "little")  # AER v1 -> 0x140
    data[0x140:0x144] = (0x03 | 1 << 16).to_bytes(4, "little")  # DSN, end
    hdr = pci_config.decode_config(bytes(data))
    assert hdr.header_type == 1 and hdr.multifunction and hdr.bridge_buses == (0, 1, 3)
    assert hdr.subsystem_vendor is None
    assert [(c.offset, c.name, c.extended) for c in hdr.capabilities] == [
        (0x100, "Advanced Error Reporting", True),
        (0x140, "Device Serial Number", True),
    ]


def test_short_config_is_an_error():
    with pytest.raises(PyphysError, match="64"):
        pci_config.decode_config(b"\0" * 10)


# ---------------------------------------------------------------------------------------------
# access checks (all run before any I/O)
# ---------------------------------------------------------------------------------------------
def test_check_access():
    assert pci_access.check_access("BAR0", 0x100000, 0x8, 32, 5) == 4
    with pytest.raises(RegionError, match="past the end"):
        pci_access.check_access("BAR0", 0x100000, 0x100000, 32)
    with pytest.raises(RegionError):
        pci_access.check_access("BAR0", 0x100, 0xFE, 32)
    with pytest.raises(UsageError, match="not aligned"):
        pci_access.check_access("BAR0", 0x100000, 0x2, 32)
    with pytest.raises(UsageError, match="too wide"):
        pci_access.check_access("BAR0", 0x100000, 0x0, 8, 0x100)
    with pytest.raises(UsageError, match="width"):
        pci_access.check_access("BAR4", 0x20, 0, 64, widths=(8, 16, 32))


def test_pieces_are_naturally_aligned():
    assert pci_access._pieces(1, 12, 4) == [(1, 1), (2, 2), (4, 4), (8, 4), (12, 1)]


# ---------------------------------------------------------------------------------------------
# refusals explained
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("machine", ["stock-guest"], indirect=True)
def test_einval_on_claimed_bar_names_driver_and_ways_out(machine):
    ahci = by_ids(pci_devices.scan(), 0x8086, 0x2922)
    err = pci_access.explain_bar_error(
        OSError(errno.EINVAL, "Invalid argument"), ahci, ahci.bar(5), "mmap", "resource5"
    )
    assert isinstance(err, DevMemBlockedError)
    assert "'ahci'" in err.message and "IO_STRICT_DEVMEM" in err.message
    assert "iomem=relaxed" in err.hint and "/sys/bus/pci/drivers/ahci/unbind" in err.hint


@pytest.mark.parametrize("machine", ["stock-guest"], indirect=True)
def test_einval_on_unclaimed_bar_points_at_pat(machine):
    edu = by_ids(pci_devices.scan(), 0x1234, 0x11E8)
    err = pci_access.explain_bar_error(OSError(errno.EINVAL, "Invalid argument"), edu, edu.bar(0), "mmap", "resource0")
    assert "PAT" in err.hint and "no driver" in err.message


def test_eperm_under_lockdown(tmp_path):
    shutil.copytree(os.path.join(FIX, "lab-guest"), tmp_path, dirs_exist_ok=True, symlinks=True)
    (tmp_path / "sys/kernel/security").mkdir(parents=True)
    (tmp_path / "sys/kernel/security/lockdown").write_text("none [integrity] confidentiality\n")
    old = paths.set_roots(sys=str(tmp_path / "sys"), proc=str(tmp_path / "proc"))
    try:
        edu = by_ids(pci_devices.scan(), 0x1234, 0x11E8)
        err = pci_access.explain_bar_error(OSError(errno.EPERM, "x"), edu, edu.bar(0), "mmap", "resource0")
    finally:
        paths.set_roots(**old)
    assert isinstance(err, DevMemBlockedError) and "lockdown" in err.message and "integrity" in err.message


def test_eacces_means_root():
    dev = pci_devices.PciDevice(
        "0000:00:01.0",
        1,
        2,
        0,
        0,
        0,
        0,
        None,
        None,
        (pci_devices.Bar(0, "mem", False, False, 0x1000, 0x1000),),
        "sysfs",
    )
    err = pci_access.explain_bar_error(OSError(errno.EACCES, "x"), dev, dev.bars[0], "open", "resource0")
    assert isinstance(err, PermissionDeniedError) and "root" in err.hint


def test_bar_lookup_lists_existing_bars():
    dev = pci_devices.PciDevice(
        "0000:00:01.0", 1, 2, 0, 0, 0, 0, None, None, (pci_devices.Bar(2, "mem", True, True, 0x1000, 0x1000),), "sysfs"
    )
    with pytest.raises(NotFoundError) as err:
        dev.bar(0)
    assert "BAR2" in err.value.hint
    with pytest.raises(UsageError):
        dev.bar(6)


# ---------------------------------------------------------------------------------------------
# pci.ids names (optional)
# ---------------------------------------------------------------------------------------------
IDS = """\
# comment
1234  Technical Corp.
1af4  Red Hat, Inc.
\t1000  Virtio network device
\t1110  Inter-VM shared memory
\t\t1af4 1100  QEMU Virtual Machine
8086  Intel Corporation
C 05  Memory controller
\t00  RAM memory
C ff  Unassigned class
"""


def test_pci_ids_lookup():
    ids = pci_ids.PciIds(IDS)
    assert ids.names(0x1AF4, 0x1110) == ("Red Hat, Inc.", "Inter-VM shared memory")
    assert ids.names(0x1234, 0x11E8) == ("Technical Corp.", None)
    assert ids.names(0xDEAD, 0x1) == (None, None)
    assert ids.class_name(0x05, 0x00) == "RAM memory"
    assert ids.class_name(0x05, 0x80) == "Memory controller"
    assert ids.class_name(0x0C, 0x03) is None


def test_class_name_without_pci_ids():
    assert pci_ids.class_name(0x050000) == "RAM memory"
    assert pci_ids.class_name(0x00FF00) == "Unclassified device"
    assert pci_ids.class_name(0x543200) == "Class 5432"


# ---------------------------------------------------------------------------------------------
# lspci -vv (pciutils, captured on the same machine) as the peer for BARs, driver, config decoding
# ---------------------------------------------------------------------------------------------
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
LSPCI_CAP_IDS = {
    "MSI": 0x05,
    "MSI-X": 0x11,
    "Vendor Specific Information": 0x09,
    "Power Management": 0x01,
    "Express": 0x10,
    "SATA HBA": 0x12,
}


def lspci_vv(machine: str) -> dict[str, dict]:
    devices: dict[str, dict] = {}
    cur: dict = {}
    with open(os.path.join(FIX, machine, "lspci-Dvv.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            head = re.match(r"^([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", line)
            if head:
                cur = devices.setdefault(
                    head.group(1), {"regions": {}, "caps": [], "driver": None, "control": {}, "status": {}}
                )
                continue
            m = re.match(
                r"^\tRegion (\d): Memory at ([0-9a-f]+) \((32|64)-bit, (non-)?prefetchable\) \[size=(\d+)([KMG]?)\]",
                line,
            )
            if m:
                cur["regions"][int(m.group(1))] = (
                    "mem",
                    int(m.group(2), 16),
                    m.group(3) == "64",
                    m.group(4) is None,
                    int(m.group(5)) * SIZE_UNITS[m.group(6)],
                )
                continue
            m = re.match(r"^\tRegion (\d): I/O ports at ([0-9a-f]+) \[size=(\d+)([KMG]?)\]", line)
            if m:
                cur["regions"][int(m.group(1))] = (
                    "io",
                    int(m.group(2), 16),
                    False,
                    False,
                    int(m.group(3)) * SIZE_UNITS[m.group(4)],
                )
                continue
            m = re.match(r"^\tCapabilities: \[([0-9a-f]+)\] ([^:]+?)(?: version \d+)?(?::|$)", line)
            if m:
                cur["caps"].append((int(m.group(1), 16), m.group(2)))
                continue
            m = re.match(r"^\tKernel driver in use: (.+)$", line)
            if m:
                cur["driver"] = m.group(1)
                continue
            for key in ("Control", "Status"):
                if line.startswith(f"\t{key}: "):
                    for word in line.split(": ", 1)[1].split():
                        if word[-1] in "+-":
                            cur[key.lower()][word[:-1]] = word[-1] == "+"
    return devices


@pytest.mark.parametrize("machine", MACHINES, indirect=True)
def test_bars_and_driver_agree_with_lspci_vv(machine):
    truth = lspci_vv(machine)
    for d in pci_devices.scan():
        t = truth[d.address]
        assert {b.index: (b.kind, b.start, b.is_64bit, b.prefetchable, b.size) for b in d.bars} == t["regions"], (
            d.address
        )
        assert d.driver == t["driver"], d.address


@pytest.mark.parametrize("machine", MACHINES, indirect=True)
def test_config_decoding_agrees_with_lspci_vv(machine):
    truth = lspci_vv(machine)
    for d in pci_devices.scan():
        t = truth[d.address]
        with open(os.path.join(FIX, machine, "sys/bus/pci/devices", d.address, "config"), "rb") as f:
            hdr = pci_config.decode_config(f.read())
        classic = [c for c in hdr.capabilities if not c.extended]
        assert [c.offset for c in classic] == [off for off, _name in t["caps"]], d.address
        for cap, (_off, name) in zip(classic, t["caps"]):
            if name in LSPCI_CAP_IDS:
                assert cap.cap_id == LSPCI_CAP_IDS[name], (d.address, name)
        for word, on in t["control"].items():
            assert (word in hdr.command_flags) == on, (d.address, word)
        for word in ("Cap", "66MHz", "UDF", "FastB2B", "ParErr", ">TAbort", "<TAbort", "<MAbort", ">SERR", "INTx"):
            if word in t["status"]:
                assert (word in hdr.status_flags) == t["status"][word], (d.address, word)


@pytest.mark.parametrize("machine", MACHINES, indirect=True)
def test_list_sizes_read_back_as_lspci_vv_sizes(machine):
    """`pyphys pci list` prints each BAR's size in hex and as dialect sizes; both are lspci -vv's."""
    from pyphys.commands.pci import format_device
    from pyphys.dialect import parse_size

    truth = lspci_vv(machine)
    seen = 0
    for d in pci_devices.scan():
        for m in re.finditer(r"BAR(\d)\s.*size (0x[0-9a-f]+) \((\S+)\)", format_device(d)):
            want = truth[d.address]["regions"][int(m[1])][4]
            assert int(m[2], 16) == parse_size(m[3]) == want, (d.address, m[0])
            seen += 1
    assert seen


def test_config_header_is_declared_once():
    """layouts.pci.CONFIG_HEADER names the decoded header's fields, their JSON keys and the layout
    fields they are read from: the record's fields and its JSON keys are exactly those."""
    decl = L.CONFIG_HEADER
    assert pci_config.ConfigHeader._fields == tuple(a for a, _k, form, _s, _d in decl if form != "derived")
    layouts = (L.HEADER_NORMAL, L.HEADER_BRIDGE, L.HEADER_CARDBUS)
    assert all(any(src in lay.names for lay in layouts) for _a, _k, _f, src, _d in decl if src)
    hdr = pci_config.decode_config(config_of("lab-guest", 0x1234, 0x11E8))
    raw = config_of("lab-guest", 0x1234, 0x11E8)
    assert list(hdr.to_json()) == [k for _a, k, _f, _s, _d in decl]
    # values read straight from the layout are the bytes at the kernel's offsets (pci_regs.h)
    assert hdr.vendor == int.from_bytes(raw[0:2], "little") and hdr.interrupt_pin == raw[0x3D]
    assert hdr.to_json()["subsystem_device_id"] == f"0x{int.from_bytes(raw[0x2E:0x30], 'little'):04x}"
