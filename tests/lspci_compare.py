"""``lspci -vv`` text as data, and the comparison of ``pyphys pci show -vv`` with it.

Used by the fixture test (captures in tests/fixtures/pci/*/lspci-Dvv.txt), the host test
(`lspci -vvv` run live) and the guest test (the guest's lspci). lspci reads config space and
sysfs itself (pciutils), so it is ground truth outside pyphys. What is compared, per device:

- the capability list: every ``Capabilities: [OFF]`` (``[OFF vN]`` for extended ones), in order;
- each capability's first line where pyphys decodes it (PM, MSI, MSI-X, PCI Express) exactly,
  the others by the name before the first colon (lspci names virtio's vendor capabilities,
  pyphys shows them as raw bytes);
- MSI-X vector table and PBA, MSI address/data, PCIe link capabilities and status (speed,
  width), exactly as lspci prints them;
- every ``Region N:`` line's address and size, and the Control and Status lines.
"""

from __future__ import annotations

import re

CAP_RE = re.compile(r"^\tCapabilities: \[([0-9a-f]+)(?: v(\d+))?\] (.*)$")
REGION_RE = re.compile(r"^\tRegion (\d+): (?:Memory at|I/O ports at) ([0-9a-f]+|<\w+>).*?(?:\[size=(\w+)\])?$")
EXACT_PREFIXES = ("Power Management version", "MSI:", "MSI-X:", "Express ")
DETAIL_PREFIXES = ("Vector table:", "PBA:", "Address:", "Masking:", "LnkCap:", "LnkSta:")


def parse(text: str) -> dict[str, dict]:
    """``lspci -vv`` (or ``-Dvv``) output -> {short or full address: {caps, regions, lines}}."""
    devices: dict[str, dict] = {}
    cur: dict | None = None
    cap: dict | None = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            addr = line.split()[0]
            cur = devices[addr] = {"title": line, "caps": [], "regions": {}, "lines": []}
            cap = None
            continue
        if cur is None or not line.strip():
            continue
        m = CAP_RE.match(line)
        if m:
            cap = {"offset": int(m.group(1), 16), "version": m.group(2), "text": m.group(3), "details": []}
            cur["caps"].append(cap)
            continue
        if line.startswith("\t\t") and cap is not None:
            cap["details"].append(line.strip())
            continue
        cap = None
        m = REGION_RE.match(line)
        if m:
            cur["regions"][int(m.group(1))] = (m.group(2), m.group(3))
        cur["lines"].append(line.strip())
    return devices


def _name(text: str) -> str:
    return re.split(r"[:<]", text, maxsplit=1)[0].strip()


def compare(ours: dict, theirs: dict, label: str) -> list[str]:
    """Differences between one device of :func:`parse` for pyphys's text and for lspci's."""
    problems = []
    where = [(c["offset"], c["version"]) for c in theirs["caps"]]
    have = [(c["offset"], c["version"]) for c in ours["caps"]]
    if where != have:
        return [f"{label}: capabilities at {have}, lspci has {where}"]
    for mine, ref in zip(ours["caps"], theirs["caps"]):
        at = f"{label} [{ref['offset']:x}]"
        if ref["text"].startswith(EXACT_PREFIXES):
            if mine["text"] != ref["text"]:
                problems.append(f"{at}: {mine['text']!r} != lspci's {ref['text']!r}")
        elif not ref["text"].startswith("Subsystem:") and _name(mine["text"]) != _name(ref["text"]):
            problems.append(f"{at}: named {mine['text']!r}, lspci {ref['text']!r}")
        for detail in ref["details"]:
            if detail.startswith(DETAIL_PREFIXES) and detail not in mine["details"]:
                problems.append(f"{at}: lspci's {detail!r} is not among {mine['details']}")
    if ours["regions"] != theirs["regions"]:
        problems.append(f"{label}: regions {ours['regions']}, lspci {theirs['regions']}")
    for prefix in ("Control:", "Status:"):
        mine = [x for x in ours["lines"] if x.startswith(prefix)]
        ref = [x for x in theirs["lines"] if x.startswith(prefix)]
        if mine != ref:
            problems.append(f"{label}: {mine} != lspci's {ref}")
    return problems


def key_fields(device: dict) -> dict:
    """The fields the tests report: MSI-X table sizes, PCIe link speed/width, BAR sizes."""
    out: dict = {"msix": [], "link": [], "sizes": {i: s for i, (_a, s) in device["regions"].items()}}
    for cap in device["caps"]:
        m = re.search(r"MSI-X: .*Count=(\d+)", cap["text"])
        if m:
            out["msix"].append(int(m.group(1)))
        for d in cap["details"]:
            m = re.match(r"Lnk(Cap|Sta):\s+(?:Port #\d+, )?Speed ([^ ,]+).*?Width (x\d+)", d)
            if m:
                out["link"].append((m.group(1), m.group(2), m.group(3)))
    return out
