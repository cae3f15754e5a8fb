"""PCI BARs without a driver, for real, on both kernels (issue 5, seed 002).

Judges from outside pyphys: QEMU's documented device behaviour (docs/specs/edu.rst: ID
0x010000ed, liveness = bitwise NOT, factorial), the ivshmem backing file on the HOST, guest
sysfs read with the shell, pciutils' lspci / busybox lspci, busybox devmem, the AHCI driver's
sysfs and the virtio core's sysfs; for `pci show` and `pci bar-size`, the guest's own
pciutils (`lspci -vvv`) and the config bytes and `resource` file read by the shell. Device
addresses are never hard-coded (they move between boots): devices are found by vendor:device.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
import time

import lspci_compare
import pytest

pytestmark = pytest.mark.vm

EDU, IVSHMEM, AHCI = "1234:11e8", "1af4:1110", "8086:2922"
SEED = bytes([68, 117, 110, 105, 97, 44, 118, 105, 112, 105, 63, 13])  # seed 002's DARRAY, "Dunia,vipi?\r"
JOURNAL = "/tmp/pyphys-pci-vm-journal.jsonl"


@pytest.fixture(params=["lab", "stock"])
def vm(request):
    """Each kernel in turn (booted once per session by tests/vm/conftest.py)."""
    return request.getfixturevalue(f"{request.param}_vm")


def kernel_of(vm) -> str:
    return getattr(vm, "kernel_label", None) or vm.kernel


def pp(vm, *args: str):
    """`python -m pyphys ARGS` in the guest with a journal of its own."""
    argv = " ".join(shlex.quote(str(a)) for a in args)
    return vm.run(f"PYPHYS_JOURNAL={JOURNAL} {shlex.quote(sys.executable)} -m pyphys {argv}")


def ok(res) -> str:
    assert res.rc == 0, res
    return res.out


def shell_resources(vm) -> dict[str, dict[int, tuple[int, int]]]:
    """Every device's assigned BARs from sysfs `resource`, read by the shell: {address: {bar: (start, size)}}."""
    out = ok(vm.run('for d in /sys/bus/pci/devices/*; do echo "DEV ${d##*/}"; head -n 6 $d/resource; done'))
    bars: dict[str, dict[int, tuple[int, int]]] = {}
    for line in out.splitlines():
        if line.startswith("DEV "):
            cur = bars[line.split()[1]] = {}
            index = 0
            continue
        start, end, flags = (int(x, 16) for x in line.split())
        if flags & 0x300 and end > start:  # IORESOURCE_IO | IORESOURCE_MEM
            cur[index] = (start, end - start + 1)
        index += 1
    return bars


_LISTS: dict[int, list] = {}


def listing(vm) -> list[dict]:
    """`pyphys pci list --json`, once per guest (addresses do not move while it runs)."""
    if id(vm) not in _LISTS:
        _LISTS[id(vm)] = json.loads(ok(pp(vm, "pci", "list", "--json")))["devices"]
    return _LISTS[id(vm)]


def ids_of(d: dict) -> tuple:
    """(class, vendor, device, subsystem vendor, subsystem device) of a listed device, as integers
    (docs/json.md writes them as 0x strings; null where the source has none)."""
    keys = ("class", "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id")
    return tuple(None if d[k] is None else int(d[k], 16) for k in keys)


def find(vm, ids: str) -> dict:
    found = [d for d in listing(vm) if f"{d['vendor_id'][2:]}:{d['device_id'][2:]}" == ids]
    assert len(found) == 1, (ids, listing(vm))
    return found[0]


def bar_start(dev: dict, index: int) -> int:
    return next(int(b["start"], 16) for b in dev["bars"] if b["index"] == index)


def devmem(vm, addr: int, width: int = 32, value: int | None = None) -> str:
    """busybox devmem: the peer for MMIO reads (works on both kernels for unclaimed BARs)."""
    cmd = f"busybox devmem {addr:#x} {width}" + (f" {value:#x}" if value is not None else "")
    return ok(vm.run(cmd)).strip()


def read(vm, ids: str, bar: int, offset: int, width: int = 32, via: str = "resource") -> int:
    out = ok(pp(vm, "pci", "read", ids, str(bar), hex(offset), str(width), "--via", via)).strip()
    assert re.fullmatch(r"0x[0-9A-F]+", out), out
    return int(out, 16)


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------
def test_list_agrees_with_sysfs(vm):
    listed = {d["slot"]: d for d in json.loads(ok(pp(vm, "pci", "list", "--json")))["devices"]}
    script = (
        "for d in /sys/bus/pci/devices/*; do "
        "printf '%s %s %s %s %s %s |%s\\n' ${d##*/} $(cat $d/vendor $d/device $d/class $d/subsystem_vendor "
        '$d/subsystem_device) "$(basename "$(readlink $d/driver)" 2>/dev/null)"; done'
    )
    shell = {}
    for line in ok(vm.run(script)).splitlines():
        fields, driver = line.split("|", 1)
        addr, ven, dev, cls, sv, sd = fields.split()
        shell[addr] = (int(ven, 16), int(dev, 16), int(cls, 16), int(sv, 16), int(sd, 16), driver.strip() or None)
    assert sorted(listed) == sorted(shell)
    resources = shell_resources(vm)
    for addr, d in listed.items():
        cls, ven, dev, sv, sd = ids_of(d)
        assert (ven, dev, cls, sv, sd, d["driver"]) == shell[addr]
        assert {b["index"]: (int(b["start"], 16), b["size"]) for b in d["bars"]} == resources[addr], addr
        assert all(int(b["end"], 16) == int(b["start"], 16) + b["size"] for b in d["bars"]), addr


def test_list_agrees_with_lspci(vm):
    """busybox lspci when the busybox build has the applet (Debian's busybox-static 1.35 has not),
    else pciutils' lspci — both read the devices independently of pyphys."""
    listed = {d["slot"]: d for d in listing(vm)}
    bb = vm.run("busybox lspci -mk")
    if bb.rc == 0 and bb.out.strip():
        # PCI_SLOT_NAME "Class CCCC" "VVVV" "DDDD" "SVVV" "SDDD" ["driver"]
        rows = {}
        for line in bb.out.splitlines():
            m = re.match(r'(\S+) "Class (\w+)" "(\w+)" "(\w+)" "(\w+)" "(\w+)"(?: "([^"]*)")?', line)
            assert m, line
            rows[m.group(1)] = tuple(int(x, 16) for x in m.group(2, 3, 4, 5, 6)) + (m.group(7) or None,)
        for addr, d in listed.items():
            cls, *rest = ids_of(d)
            assert rows[addr] == (cls >> 8, *rest, d["driver"])
        assert sorted(rows) == sorted(listed)
        return
    lspci = vm.run("lspci -Dnmm")
    if lspci.rc != 0:
        pytest.skip("neither `busybox lspci` (applet not built in) nor pciutils' lspci in the guest")
    rows = {}
    for line in lspci.out.splitlines():
        m = re.match(r'(\S+) "(\w+)" "(\w+)" "(\w+)"(?: -r(\w+))?(?: -p(\w+))? "(\w*)" "(\w*)"', line)
        assert m, line
        addr, cls, ven, dev, rev, prog, sv, sd = m.groups()
        rows[addr] = (int(cls, 16), int(ven, 16), int(dev, 16), int(sv or "0", 16), int(sd or "0", 16))
    assert sorted(rows) == sorted(listed)
    for addr, d in listed.items():
        cls, *rest = ids_of(d)
        assert rows[addr] == (cls >> 8, *rest)


def test_procfs_fallback_agrees_with_proc_file(vm):
    """upci's source: /proc/bus/pci/devices, parsed here by awk-free shell splitting."""
    listed = json.loads(ok(pp(vm, "pci", "list", "--json", "--source", "procfs")))["devices"]
    lines = ok(vm.run("cat /proc/bus/pci/devices")).splitlines()
    assert len(lines) == len(listed)
    for line, d in zip(lines, listed):
        f = line.split("\t")
        bus, devfn = int(f[0][:2], 16), int(f[0][2:], 16)
        assert d["slot"] == f"0000:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
        assert int(f[1], 16) == int(d["vendor_id"], 16) << 16 | int(d["device_id"], 16)
        sizes = {i: int(f[10 + i].strip(), 16) for i in range(6) if int(f[10 + i].strip(), 16)}
        assert {b["index"]: b["size"] for b in d["bars"]} == sizes


# ---------------------------------------------------------------------------------------------
# edu (docs/specs/edu.rst)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["resource", "devmem"])
def test_edu_identification(vm, via):
    assert read(vm, EDU, 0, 0, via=via) == 0x010000ED
    assert devmem(vm, bar_start(find(vm, EDU), 0)) == "0x010000ED"


@pytest.mark.parametrize("via", ["resource", "devmem"])
def test_edu_liveness_is_bitwise_not(vm, via):
    base = bar_start(find(vm, EDU), 0)
    for value in (0x12345678, 0xCAFEF00D if via == "resource" else 0x0F0F0F0F):
        out = ok(pp(vm, "pci", "write", EDU, "0", "0x4", "32", hex(value), "--via", via))
        assert "journal entry" in out
        assert read(vm, EDU, 0, 4, via=via) == value ^ 0xFFFFFFFF
        assert int(devmem(vm, base + 4), 16) == value ^ 0xFFFFFFFF  # busybox agrees
    # undo writes back what was read before the last write (NOT of the first value); the
    # device then reads NOT of that, i.e. the first value -- and undo says it is a register
    first = 0x12345678
    res = pp(vm, "undo")
    assert res.rc == 0 and "Traceback" not in res.err, res
    assert f"restored {(first ^ 0xFFFFFFFF).to_bytes(4, 'little').hex()}" in res.out and "register" in res.out, res.out
    assert int(devmem(vm, base + 4), 16) == first


def test_edu_factorial(vm):
    """Write n to 0x08; when status (0x20) bit 0 clears, 0x08 holds n! (edu.rst)."""
    base = bar_start(find(vm, EDU), 0)
    for n in (5, 12):
        ok(pp(vm, "pci", "write", "-q", EDU, "0", "0x8", str(n)))
        deadline = time.monotonic() + 60
        while read(vm, EDU, 0, 0x20) & 1:
            assert time.monotonic() < deadline, "edu kept computing"
        assert read(vm, EDU, 0, 0x8) == math.factorial(n) & 0xFFFFFFFF
        assert int(devmem(vm, base + 8), 16) == math.factorial(n) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# ivshmem-plain (seed 002): guest BAR2 <-> host backing file
# ---------------------------------------------------------------------------------------------
def host_bytes(vm, off: int, n: int) -> bytes:
    with open(vm.shm_path, "rb") as f:
        f.seek(off)
        return f.read(n)


@pytest.mark.parametrize("via", ["resource", "devmem"])
def test_ivshmem_register_bar_smaller_than_a_page(vm, via):
    """BAR0 is 256 bytes of registers (ivshmem-spec.rst): Interrupt Mask at 0x0 is read/write,
    IVPosition at 0x8 is read-only. resource0 is 256 bytes, smaller than the page mmap maps."""
    base = bar_start(find(vm, IVSHMEM), 0)
    assert next(b["size"] for b in find(vm, IVSHMEM)["bars"] if b["index"] == 0) == 256
    position = int(devmem(vm, base + 8), 16)
    assert read(vm, IVSHMEM, 0, 8, via=via) == position
    value = 0x5A5A5A5A if via == "resource" else 0xA5A5A5A5
    out = ok(pp(vm, "pci", "write", IVSHMEM, "0", "0x0", "32", hex(value), "--via", via))
    assert "journal entry" in out
    assert int(devmem(vm, base), 16) == value  # busybox sees the register hold it
    assert read(vm, IVSHMEM, 0, 0, via=via) == value
    ok(pp(vm, "undo"))
    assert int(devmem(vm, base), 16) == 0  # its reset value, restored
    res = pp(vm, "pci", "read", IVSHMEM, "0", "0x100", "--via", via)
    assert res.rc != 0 and "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1, res


@pytest.mark.parametrize("via, offset", [("resource", 0x0), ("devmem", 0x400)])
def test_ivshmem_guest_string_reaches_host_file(vm, via, offset):
    before = host_bytes(vm, offset, 16)
    res = pp(
        vm,
        "pci",
        "write",
        "-D",
        "0x1110",
        "-V",
        "0x1af4",
        "--subsystem-device",
        "0x1100",
        "--subsystem-vendor",
        "0x1af4",
        "2",
        hex(offset),
        "--string",
        r"Dunia,vipi?\r",
        "--via",
        via,
    )
    out = ok(res)
    assert "wrote 12 bytes" in out
    try:
        assert host_bytes(vm, offset, 12) == SEED  # byte for byte, as `hd /dev/shm/ivshmem` in the seed
        assert host_bytes(vm, offset + 12, 4) == before[12:]
        dump = ok(pp(vm, "pci", "read", IVSHMEM, "2", hex(offset), "8", "-l", "16", "--via", via))
        assert "|Dunia,vipi?." in dump
    finally:
        undo = pp(vm, "undo")
    assert undo.rc == 0, undo
    assert host_bytes(vm, offset, 16) == before


@pytest.mark.parametrize("via", ["resource", "devmem"])
def test_ivshmem_host_bytes_reach_guest(vm, via):
    payload = os.urandom(64)
    offset = 0x8000 if via == "resource" else 0x9000
    with open(vm.shm_path, "r+b") as f:
        f.seek(offset)
        f.write(payload)
        f.flush()
    try:
        out = ok(pp(vm, "pci", "read", IVSHMEM, "2", hex(offset), "8", "-l", str(len(payload)), "--json", "--via", via))
        assert bytes.fromhex(json.loads(out)["data"]) == payload
        assert read(vm, IVSHMEM, 2, offset + 8, 64, via=via) == int.from_bytes(payload[8:16], "little")
    finally:
        with open(vm.shm_path, "r+b") as f:
            f.seek(offset)
            f.write(b"\0" * len(payload))


# ---------------------------------------------------------------------------------------------
# I/O-port BARs through resourceN read/write
# ---------------------------------------------------------------------------------------------
def test_io_bar_ahci_index_data_pair(vm):
    """ICH9 AHCI BAR4 (I/O) has an index/data pair at 0x10/0x14 onto the AHCI registers (QEMU
    hw/ide/ich.c ICH9_IDP_INDEX): index 0 -> data = CAP, which the MMIO BAR5 also shows."""
    ok(pp(vm, "pci", "write", "-q", AHCI, "4", "0x10", "32", "0x8"))
    assert read(vm, AHCI, 4, 0x10) == 0x8  # the index register keeps what was written
    ok(pp(vm, "pci", "write", "-q", AHCI, "4", "0x10", "32", "0x0"))
    cap = read(vm, AHCI, 4, 0x14)
    ahci = find(vm, AHCI)
    if ahci["driver"] == "ahci":
        caps = ok(vm.run("cat /sys/class/scsi_host/host*/ahci_host_caps")).split()
        assert f"{cap:x}" in caps  # libahci's own copy of CAP
    else:
        assert int(devmem(vm, bar_start(ahci, 5)), 16) == cap


def test_io_bar_owned_by_a_driver_virtio_legacy_status(vm):
    """A transitional virtio device's legacy I/O BAR0 has device status at 0x12 (8 bits), the
    same value the virtio core shows in sysfs; port access is allowed even with the driver bound."""
    devices = listing(vm)
    legacy = [
        d
        for d in devices
        if d["vendor_id"] == "0x1af4"
        and d["driver"] == "virtio-pci"
        and any(b["index"] == 0 and b["type"] == "io" for b in d["bars"])
    ]
    assert legacy, devices
    addr = legacy[0]["slot"]
    status = ok(vm.run(f"cat /sys/bus/pci/devices/{addr}/virtio*/status")).strip()
    assert read(vm, addr, 0, 0x12, 8) == int(status, 16) & 0xFF


# ---------------------------------------------------------------------------------------------
# a BAR a driver owns: what each path does on each kernel
# ---------------------------------------------------------------------------------------------
def _claimed_bar(vm):
    """A memory BAR busy in /proc/iomem under a driver's name (virtio-pci-modern in both guests)."""
    iomem = ok(vm.run("cat /proc/iomem"))
    m = re.search(
        r"\n  ([0-9a-f]+)-[0-9a-f]+ : ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])"
        r"\n    \1-[0-9a-f]+ : virtio-pci-modern",
        iomem,
    )
    assert m, iomem
    start, addr = int(m.group(1), 16), m.group(2)
    index = next(i for i, (s, _size) in shell_resources(vm)[addr].items() if s == start)
    return addr, index, start


@pytest.mark.parametrize("via", ["resource", "devmem"])
def test_claimed_bar_per_kernel(vm, via):
    addr, index, start = _claimed_bar(vm)
    res = pp(vm, "pci", "read", addr, str(index), "0", "--via", via)
    if kernel_of(vm) == "lab":
        # STRICT_DEVMEM off: kernel/resource.c strict_iomem_checks = 0, nothing is exclusive
        assert res.rc == 0, res
        assert res.out.strip() == devmem(vm, start)
    else:
        # IO_STRICT_DEVMEM=y: resourceN mmap -> EINVAL, /dev/mem mmap -> EPERM; both explained
        assert res.rc != 0
        line = res.err.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line
        assert ("EINVAL" if via == "resource" else "EPERM") in line
        assert "virtio-pci-modern" in line and "iomem=relaxed" in line and "unbind" in line


# ---------------------------------------------------------------------------------------------
# config space
# ---------------------------------------------------------------------------------------------
def test_config_decode_and_forced_write_undo(vm):
    edu = find(vm, EDU)
    cfg = json.loads(ok(pp(vm, "pci", "config", EDU, "--json")))
    sysfs = ok(vm.run(f"cd /sys/bus/pci/devices/{edu['slot']} && cat vendor device")).split()
    assert (int(cfg["vendor_id"], 16), int(cfg["device_id"], 16)) == (int(sysfs[0], 16), int(sysfs[1], 16))
    assert cfg["slot"] == edu["slot"]
    assert [int(c["id"], 16) for c in cfg["capabilities"]] == [0x05]  # edu: MSI only
    assert int(cfg["bars"][0]["address"], 16) == bar_start(edu, 0)
    command = config_dwords(vm, edu["slot"], 0x4, 1)[0] & 0xFFFF  # read by od, not by pyphys
    assert cfg["command"]["value"] == f"0x{command:04x}"
    assert ("memory" in cfg["command"]["flags"]) == bool(command & 0x2)

    def line_byte() -> int:
        out = ok(vm.run(f"busybox hexdump -s 60 -n 1 -e '1/1 \"%u\"' /sys/bus/pci/devices/{edu['slot']}/config"))
        return int(out)

    before = line_byte()
    new = 7 if before != 7 else 9
    refused = pp(vm, "pci", "config", EDU, "0x3c", "8", str(new))
    assert refused.rc != 0 and "--force" in refused.err and line_byte() == before
    ok(pp(vm, "pci", "config", EDU, "0x3c", "8", str(new), "--force"))
    assert line_byte() == new
    ok(pp(vm, "undo"))
    assert line_byte() == before


def test_config_masked_write_changes_the_mask_bits_alone_and_undo_restores(vm):
    """setpci's VALUE:MASK: COMMAND=0x400:0x400 sets INTx Disable (bit 10) alone; the shell's od
    reads the register before and after; undo puts the whole old register back."""
    edu = find(vm, EDU)

    def command() -> int:
        return config_dwords(vm, edu["slot"], 0x4, 1)[0] & 0xFFFF

    before = command()
    value = 0 if before & 0x400 else 0x400
    ok(pp(vm, "pci", "config", EDU, f"COMMAND={value:#x}:0x400", "--force"))
    assert command() == (before & ~0x400) | value
    ok(pp(vm, "undo"))
    assert command() == before


def test_config_value_list_writes_consecutive_registers_and_one_undo_restores_them(vm):
    """setpci's REG.b=V1,V2: 0x3c.b=V,0x7 writes INTERRUPT_LINE (a scratch byte the kernel keeps
    for drivers) and INTERRUPT_PIN, which the PCI spec makes read-only (edu: INTA, 1). The shell's
    od is the peer; one `pyphys undo` puts the line back, as the journal group promises."""
    edu = find(vm, EDU)

    def line_pin() -> tuple[int, int]:
        word = config_dwords(vm, edu["slot"], 0x3C, 1)[0]
        return word & 0xFF, (word >> 8) & 0xFF

    line, pin = line_pin()
    new = 0x0B if line != 0x0B else 0x0C
    doc = json.loads(ok(pp(vm, "pci", "config", EDU, f"0x3c.b={new:#x},0x7", "--force", "--json")))
    assert doc["slot"] == edu["slot"] and doc["width"] == 8
    got = [(w["offset"], w["old"], w["new"], w["readback"]) for w in doc["writes"]]
    assert got == [
        ("0x3c", f"0x{line:02x}", f"0x{new:02x}", f"0x{new:02x}"),
        ("0x3d", f"0x{pin:02x}", "0x07", f"0x{pin:02x}"),  # read-only: reads back what it was
    ]
    assert line_pin() == (new, pin)
    ok(pp(vm, "undo"))
    assert line_pin() == (line, pin)


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit != 0, nothing written
# ---------------------------------------------------------------------------------------------
BAD = [
    (["write", "dead:beef", "0", "0x4", "1"], "no PCI device matches"),
    (["write", EDU, "3", "0x4", "1"], "has no BAR3"),
    (["write", EDU, "0", "0x100000", "1"], "past the end"),
    (["write", EDU, "0", "0x6", "32", "1"], "not aligned"),
    (["write", EDU, "0", "0x4", "8", "0x1ff"], "too wide"),
    (["write", IVSHMEM, "2", "0xffff8", "--string", "Dunia,vipi?"], "past the end"),
    (["read", EDU, "0", "0x100000"], "past the end"),
]


def test_bad_input_one_line_nothing_written(vm):
    base = bar_start(find(vm, EDU), 0)
    ok(pp(vm, "pci", "write", "-q", EDU, "0", "0x4", "32", "0x5a5a5a5a"))
    live = devmem(vm, base + 4)
    shm = host_bytes(vm, 0xFFFF0, 16)
    for argv, words in BAD:
        res = pp(vm, "pci", *argv)
        assert res.rc != 0, (argv, res)
        assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err, (argv, res)
        assert words in res.err, (argv, res)
        assert devmem(vm, base + 4) == live, argv
        assert host_bytes(vm, 0xFFFF0, 16) == shm, argv


# ---------------------------------------------------------------------------------------------
# pci show -vv against the guest's lspci -vvv; bar-size against sysfs resource
# ---------------------------------------------------------------------------------------------
def guest_lspci(vm, *flags: str) -> dict[str, dict]:
    """pciutils' lspci in the guest (the host's own /usr/bin over the 9p root, as root there)."""
    res = vm.run("lspci " + " ".join(flags))
    assert res.rc == 0 and res.out.strip(), ("the guest has no working lspci (scripts/setup.sh installs pciutils)", res)
    return lspci_compare.parse(res.out)


def test_show_vv_agrees_with_guest_lspci(any_vm):
    """Every device of the q35 guest, the PCIe root port and the virtio device behind it with its
    extended capabilities included: capability offsets and names, MSI/MSI-X, link, BARs."""
    truth = guest_lspci(any_vm, "-vvv")
    addrs = sorted(truth)
    # one guest process runs the CLI once per device (Python start-up is seconds under TCG)
    code = (
        "import sys\nfrom pyphys import cli\n"
        "for a in sys.argv[1:]:\n    assert cli.main(['pci', 'show', '-vv', a]) == 0\n"
    )
    res = any_vm.run(f"PYPHYS_PCI_IDS= {shlex.quote(sys.executable)} -c {shlex.quote(code)} {' '.join(addrs)}")
    assert res.rc == 0 and not res.err, res
    ours = lspci_compare.parse(res.out)
    assert sorted(ours) == addrs
    problems = []
    for addr in addrs:
        problems += lspci_compare.compare(ours[addr], truth[addr], f"{kernel_of(any_vm)} {addr}")
        assert lspci_compare.key_fields(ours[addr]) == lspci_compare.key_fields(truth[addr]), addr
    assert not problems, "\n".join(problems)
    ext = [c for d in truth.values() for c in d["caps"] if c["version"]]
    express = [c for d in truth.values() for c in d["caps"] if c["text"].startswith("Express")]
    assert ext and express, "the guest should have PCI Express and extended capabilities (q35 root port)"


def config_dwords(vm, address: str, offset: int, count: int) -> list[int]:
    """Config dwords read by the shell (od), not by pyphys."""
    out = ok(vm.run(f"od -A n -t x4 -j {offset} -N {4 * count} /sys/bus/pci/devices/{address}/config"))
    return [int(x, 16) for x in out.split()]


@pytest.mark.parametrize("ids, bar", [(EDU, 0), (IVSHMEM, 2)])
def test_bar_size_matches_sysfs_and_restores_the_register(any_vm, ids, bar):
    dev = find(any_vm, ids)
    addr = dev["slot"]
    info = next(b for b in dev["bars"] if b["index"] == bar)
    n = 2 if info["bits"] == 64 else 1
    before = config_dwords(any_vm, addr, 0x10 + 4 * bar, n)
    command = config_dwords(any_vm, addr, 0x4, 1)[0] & 0xFFFF
    assert command & 0x2, "firmware left memory decoding on"
    refused = pp(any_vm, "pci", "bar-size", addr, str(bar))
    assert refused.rc == 2 and "decodes memory space" in refused.err and len(refused.err.splitlines()) == 1
    assert config_dwords(any_vm, addr, 0x10 + 4 * bar, n) == before
    ok(pp(any_vm, "pci", "config", addr, "0x4", "16", hex(command & ~0x2), "--force"))
    try:
        res = json.loads(ok(pp(any_vm, "pci", "bar-size", addr, str(bar), "--json")))
    finally:
        ok(pp(any_vm, "undo"))  # the command register write: memory decoding back on
    assert config_dwords(any_vm, addr, 0x4, 1)[0] & 0xFFFF == command
    resource = shell_resources(any_vm)[addr][bar]
    assert res["size"] == resource[1] == info["size"]
    assert res["is_64bit"] == (n == 2) and res["restored"]
    assert config_dwords(any_vm, addr, 0x10 + 4 * bar, n) == before  # the register, restored
    assert int(res["original"], 16) == sum(d << (32 * i) for i, d in enumerate(before))
    assert res["offset"] == hex(0x10 + 4 * bar) and res["slot"] == addr
    entries = ok(pp(any_vm, "journal", "--all", "--json"))
    sizing = [e for e in json.loads(entries) if e.get("id") == res["journal_id"]]
    assert sizing and sizing[0].get("undone"), entries
