"""``pyphys pci show`` on this machine's own PCI devices, judged by pciutils run alongside it:
``lspci -vvv`` (capability offsets and names, MSI-X table sizes, PCIe link speed and width,
BAR addresses and sizes, Control/Status), ``lspci -n -vvv`` (numeric subsystem IDs) and
``lspci -xxxx`` (the raw config bytes). Needs root, as lspci does for more than 64 bytes; the
last test drops to an unprivileged user to see the partial read lspci calls "access denied".
Nothing here writes to a device.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import lspci_compare
import pytest

pytestmark = pytest.mark.host_root

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_lspci():
    if os.geteuid() != 0:
        pytest.skip("needs root (lspci and pyphys read past the 64-byte header only as root)")
    if not shutil.which("lspci"):
        pytest.skip("pciutils' lspci is not installed (scripts/setup.sh installs it)")
    if not os.listdir("/sys/bus/pci/devices"):
        pytest.skip("this machine has no PCI devices")


def run(*argv: str, user: str | None = None) -> subprocess.CompletedProcess:
    cmd = list(argv)
    if user:
        cmd = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": TOP, "PYPHYS_PCI_IDS": ""}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def pyphys(*argv: str, user: str | None = None) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "pyphys", *argv, user=user)


def addresses() -> list[str]:
    return sorted(os.listdir("/sys/bus/pci/devices"))


def lspci(*flags: str, user: str | None = None) -> dict[str, dict]:
    res = run("lspci", "-D", *flags, user=user)
    assert res.returncode == 0, res
    return lspci_compare.parse(res.stdout)


def test_show_vv_agrees_with_lspci_vvv_on_every_device():
    truth = lspci("-vvv")
    assert sorted(truth) == addresses()
    problems, fields = [], {}
    for addr in addresses():
        res = pyphys("pci", "show", "-vv", addr)
        assert res.returncode == 0 and not res.stderr, res
        ours = next(iter(lspci_compare.parse(res.stdout).values()))
        problems += lspci_compare.compare(ours, truth[addr], addr)
        fields[addr] = (lspci_compare.key_fields(ours), lspci_compare.key_fields(truth[addr]))
    assert not problems, "\n".join(problems)
    for addr, (ours, ref) in fields.items():
        assert ours == ref, addr  # MSI-X table sizes, link speed/width, BAR sizes
    assert sum(len(v["caps"]) for v in truth.values()) > 0


def test_json_agrees_with_lspci_n_and_sysfs():
    truth = lspci("-n", "-vvv")
    for addr in addresses():
        doc = json.loads(pyphys("pci", "show", "--json", addr).stdout)
        ref = truth[addr]
        caps = doc["config"]["capabilities"]
        assert [int(c["offset"], 16) for c in caps] == [c["offset"] for c in ref["caps"]], addr
        sub = [x for x in ref["lines"] if x.startswith("Subsystem:")]
        if sub:
            sv, sd = (int(doc["config"][k], 16) for k in ("subsystem_vendor_id", "subsystem_device_id"))
            assert sub[0] == f"Subsystem: {sv:04x}:{sd:04x}", addr
        for cap in doc["config"]["capabilities"]:
            m = next((c for c in ref["caps"] if c["offset"] == int(cap["offset"], 16)), None)
            count = re.search(r"MSI-X: .*Count=(\d+)", m["text"]) if m else None
            if count:
                assert cap["fields"]["table_size"] == int(count.group(1)), addr
        sizes = {b["index"]: b["size"] for b in doc["config"]["bars"]}
        with open(f"/sys/bus/pci/devices/{addr}/resource") as f:
            rows = [tuple(int(x, 16) for x in line.split()) for line in f.read().splitlines()[:6]]
        want = {i: e - s + 1 for i, (s, e, fl) in enumerate(rows) if fl & 0x300 and e > s}
        assert {i: s for i, s in sizes.items() if s} == want, addr


def _lspci_bytes(text: str) -> bytes:
    out = bytearray()
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]{2,3}): ((?:[0-9a-f]{2} ?){16})$", line)
        if m:
            assert int(m.group(1), 16) == len(out), line
            out += bytes.fromhex(m.group(2))
    return bytes(out)


def test_raw_config_bytes_agree_with_lspci_xxxx():
    for addr in addresses():
        theirs = _lspci_bytes(run("lspci", "-xxxx", "-s", addr).stdout)
        res = pyphys("pci", "config", addr, "-x")
        ours = bytearray()
        squeezed = False
        for line in res.stdout.splitlines():  # hexdump -C: `*` stands for repeats of the line above
            if line.startswith("*"):
                squeezed = True
                continue
            fields = line.split("|")[0].split()
            offset = int(fields[0], 16)
            if squeezed:
                while len(ours) < offset:
                    ours += ours[-16:]
                squeezed = False
            assert len(ours) == offset, (addr, line)
            ours += bytes.fromhex("".join(fields[1:]))
        assert len(theirs) in (256, 4096), addr
        assert bytes(ours) == theirs, addr


def test_unprivileged_show_decodes_the_header_and_says_what_is_missing():
    """lspci as an unprivileged user prints `Capabilities: <access denied>`; pyphys decodes the
    same 64 bytes, prints the same header lines, and says on stderr which bytes it could not read."""
    truth = lspci("-vvv", user="65534")
    for addr in addresses():
        res = pyphys("pci", "show", "-vv", addr, user="65534")
        assert res.returncode == 0, res
        ours = next(iter(lspci_compare.parse(res.stdout).values()))
        ref = truth[addr]
        for prefix in ("Control:", "Status:", "Region"):
            assert [x for x in ours["lines"] if x.startswith(prefix)] == [
                x for x in ref["lines"] if x.startswith(prefix)
            ], addr
        if any("access denied" in x for x in ref["lines"]):
            assert "Capabilities: <access denied>" in res.stdout, addr
            assert "only 64 of" in res.stderr and "root" in res.stderr, res


@pytest.mark.parametrize(
    "option, value",
    [
        ("-s", "00:03.0"),
        ("-s", "03"),
        ("-s", "00:"),
        ("-s", ".0"),
        ("-s", "0000:00:01.0"),
        ("-s", "*:*.*"),
        ("-s", "1f"),
        ("-d", "1af4:"),
        ("-d", ":1041"),
        ("-d", "1af4:1041"),
        ("-d", "::0200"),
        ("-d", "*:*:ffff"),
        ("-d", "8086:"),
        ("-d", ":"),
        ("-d", "::0x00"),
        ("-d", "::06xx"),
        ("-d", "::x"),
        ("-d", "::0ffff"),
        ("-d", "1af4:*:*:00"),
        ("-d", "01af4:1041"),
        ("-d", "1af4:1041:0200:"),
    ],
)
def test_selection_means_what_it_means_to_lspci(option, value):
    """`pyphys pci list -s/-d` selects exactly the devices `lspci -D -s/-d` lists, and a
    positional DEVICE that is no address means what -d means."""
    ref = run("lspci", "-D", option, value)
    assert ref.returncode == 0 and not ref.stderr, ref
    want = sorted(line.split()[0] for line in ref.stdout.splitlines() if line.strip())
    for argv in [[option, value]] + ([[value]] if option == "-d" else []):
        res = pyphys("pci", "list", *argv, "--json")
        if not want:
            assert res.returncode == 1 and "no PCI device matches" in res.stderr, res
            continue
        assert res.returncode == 0, res
        assert sorted(d["slot"] for d in json.loads(res.stdout)["devices"]) == want, argv


@pytest.mark.parametrize("value", ["", "1af4", "1af4:1041:0200:00:", "::fffff", "zz:", "1af4:10000", "::0200:100"])
def test_selection_lspci_refuses_pyphys_refuses(value):
    """What `lspci -d` calls invalid (it prints `lspci: -d: ...`), pyphys refuses: one line, exit 2."""
    ref = run("lspci", "-D", "-d", value)
    assert ref.stderr.startswith("lspci: -d: ") and not ref.stdout, ref
    res = pyphys("pci", "list", "-d", value, "--json")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1 and not res.stdout, res


SETPCI_READS = [
    "VENDOR_ID", "DEVICE_ID", "COMMAND", "STATUS", "REVISION", "CLASS_DEVICE", "HEADER_TYPE",
    "CAPABILITIES", "04.w", "0x0e.b", "0.l", "CAP_PM+2.w", "CAP_MSI.w", "CAP_MSIX+2.w", "CAP_EXP+2.w",
    "CAP_VNDR.b", "ECAP_AER+4.l", "ECAP_DSN+4.l", "CAP_VNDR+3.b@0", "CAP_VNDR+3.b@1", "CAP_VNDR+3.b@4",
    "CAP_VNDR+3.b@9", "CAP_MSIX.w@1", "ECAP_AER+4.l@1",
]  # fmt: skip


def test_config_registers_read_what_setpci_reads():
    """`pyphys pci config DEV REG` against `setpci -s DEV REG` (read-only: no `=`) on every device.
    setpci reads numbers as hex, pyphys as decimal or 0x: the specs above read the same to both."""
    if not shutil.which("setpci"):
        pytest.skip("pciutils' setpci is not installed")
    compared = missing = 0
    for addr in addresses():
        for reg in SETPCI_READS:
            peer = run("setpci", "-s", addr, reg.replace("0x", ""))
            ours = pyphys("pci", "config", addr, reg)
            if peer.returncode != 0:  # the capability is not there: pyphys says so too
                assert ours.returncode != 0 and ours.stdout == "", (addr, reg, ours)
                assert "capability" in ours.stderr, (addr, reg, ours.stderr)
                missing += 1
                continue
            assert ours.returncode == 0, (addr, reg, ours.stderr)
            assert int(ours.stdout, 16) == int(peer.stdout, 16), (addr, reg, ours.stdout, peer.stdout)
            assert len(ours.stdout.strip()) - 2 == len(peer.stdout.strip()), (addr, reg)  # the same width
            compared += 1
    assert compared > 0 and missing > 0
