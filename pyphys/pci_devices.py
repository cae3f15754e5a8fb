"""PCI devices as the kernel lists them: sysfs ``/sys/bus/pci/devices``, or ``/proc/bus/pci``.

- sysfs ``/sys/bus/pci/devices/<domain:bus:dev.fn>/`` (Documentation/PCI/sysfs-pci.rst,
  drivers/pci/pci-sysfs.c): IDs, class, driver, and the BARs from ``resource``.
- ``/proc/bus/pci/devices`` (drivers/pci/proc.c) is the fallback, completed by the 64
  world-readable header bytes in ``/proc/bus/pci/BB/DD.F``.

Parsers take text and return data, so tests feed them fixtures. Library functions raise
:class:`~pyphys.errors.PyphysError`; they never print.
"""

from __future__ import annotations

import os
import re

from pyphys import paths
from pyphys.dialect import json_id
from pyphys.errors import NotFoundError, PyphysError, UsageError, from_oserror
from pyphys.layouts import pci as L
from pyphys.record import Record

SOURCES = ("auto", "sysfs", "procfs")

_BDF_RE = re.compile(r"^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
class Bar(Record):
    """One base address register as the kernel assigned it."""

    __slots__ = ("index", "kind", "is_64bit", "prefetchable", "start", "size")
    _frozen = True

    index: int
    kind: str  # "mem" or "io"
    is_64bit: bool
    prefetchable: bool
    start: int  # bus address (CPU physical address on x86) or I/O port
    size: int

    @property
    def end(self) -> int:
        """Last address of the BAR (inclusive)."""
        return self.start + self.size - 1

    @property
    def type_text(self) -> str:
        """``mem 64-bit prefetchable`` / ``mem 32-bit`` / ``io``."""
        if self.kind == "io":
            return "io"
        text = f"mem {'64' if self.is_64bit else '32'}-bit"
        return text + (" prefetchable" if self.prefetchable else "")

    def to_json(self) -> dict:
        """docs/json.md: ``start``/``end`` as ``0x`` strings (END exclusive), ``size`` in bytes."""
        return {
            "index": self.index,
            "type": self.kind,
            "bits": None if self.kind == "io" else (64 if self.is_64bit else 32),
            "prefetchable": self.prefetchable,
            "start": f"{self.start:#x}",
            "end": f"{self.start + self.size:#x}",
            "size": self.size,
        }


class PciDevice(Record):
    """A PCI function: identity, bound driver and BARs. Fields read from sysfs are never guessed:
    a value the source does not provide is None (procfs has no class without the config file)."""

    __slots__ = (
        "address",
        "vendor",
        "device",
        "class_code",
        "revision",
        "subsystem_vendor",
        "subsystem_device",
        "driver",
        "irq",
        "bars",
        "source",
    )
    _frozen = True

    address: str  # "0000:00:04.0"
    vendor: int
    device: int
    class_code: int | None  # 24 bits: base class, subclass, programming interface
    revision: int | None
    subsystem_vendor: int | None
    subsystem_device: int | None
    driver: str | None
    irq: int | None
    bars: tuple[Bar, ...]
    source: str  # "sysfs" or "procfs"

    @property
    def short_address(self) -> str:
        """``00:04.0`` for domain 0 (as lspci prints it), the full address otherwise."""
        return self.address[5:] if self.address.startswith("0000:") else self.address

    @property
    def bus(self) -> int:
        return int(self.address.split(":")[1], 16)

    @property
    def slot(self) -> int:
        return int(self.address.split(":")[2].split(".")[0], 16)

    @property
    def function(self) -> int:
        return int(self.address.rsplit(".", 1)[1])

    @property
    def ids(self) -> str:
        """``vvvv:dddd``."""
        return f"{self.vendor:04x}:{self.device:04x}"

    @property
    def subsystem_ids(self) -> str | None:
        if self.subsystem_vendor is None or self.subsystem_device is None:
            return None
        return f"{self.subsystem_vendor:04x}:{self.subsystem_device:04x}"

    def summary(self) -> str:
        """One short identification: ``00:04.0 1af4:1110 (sub 1af4:1100)``."""
        sub = f" (sub {self.subsystem_ids})" if self.subsystem_ids else ""
        return f"{self.short_address} {self.ids}{sub}"

    def bar(self, index: int) -> Bar:
        """The BAR with this index; NotFoundError naming the BARs the device has."""
        if not 0 <= index < L.PCI_STD_NUM_BARS:
            raise UsageError(f"BAR index {index} is out of range (a device has BARs 0-5)")
        for bar in self.bars:
            if bar.index == index:
                return bar
        have = ", ".join(f"BAR{b.index} ({b.type_text}, {b.size:#x} bytes)" for b in self.bars) or "none"
        raise NotFoundError(f"{self.short_address} ({self.ids}) has no BAR{index}", f"its BARs: {have}")

    def to_json(self) -> dict:
        """docs/json.md: the address under ``slot``, IDs, revision and class as ``0x`` strings (as
        ``pci config --json`` writes them), null where the source does not say."""
        return {
            "slot": self.address,
            "vendor_id": json_id(self.vendor),
            "device_id": json_id(self.device),
            "class": json_id(self.class_code, 24),
            "revision": json_id(self.revision, 8),
            "subsystem_vendor_id": json_id(self.subsystem_vendor),
            "subsystem_device_id": json_id(self.subsystem_device),
            "driver": self.driver,
            "irq": self.irq,
            "bars": [b.to_json() for b in self.bars],
            "source": self.source,
        }


# ----------------------------------------------------------------------------------------------
# parsers (text in, data out: tests feed them fixtures)
# ----------------------------------------------------------------------------------------------
def normalize_address(text: str) -> str | None:
    """``[[domain:]bus:]slot.func`` -> ``dddd:bb:ss.f``; None if ``text`` is not such an address."""
    m = _BDF_RE.match(text.strip())
    if not m:
        return None
    domain = int(m.group(1) or "0", 16)
    bus, slot, func = int(m.group(2), 16), int(m.group(3), 16), int(m.group(4))
    if slot > 0x1F:
        return None
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{func}"


def parse_resource(text: str) -> list[tuple[int, int, int]]:
    """sysfs ``resource``: (start, end, flags) per line; PyphysError on a malformed line."""
    rows = []
    for n, line in enumerate(text.splitlines()):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != L.SYSFS_RESOURCE_FIELDS:
            raise PyphysError(f"sysfs resource line {n + 1} has {len(parts)} fields, expected 3: {line!r}")
        try:
            rows.append((int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)))
        except ValueError:
            raise PyphysError(f"sysfs resource line {n + 1} is not hexadecimal: {line!r}") from None
    return rows


def bars_from_resource(rows: list[tuple[int, int, int]]) -> tuple[Bar, ...]:
    """The assigned BARs among the first six resource rows (ROM and bridge windows skipped).

    The upper half of a 64-bit BAR has an empty resource, so it is skipped too.
    """
    bars = []
    for index, (start, end, flags) in enumerate(rows[: L.PCI_STD_NUM_BARS]):
        if not flags & (L.IORESOURCE_IO | L.IORESOURCE_MEM) or end <= start:
            continue
        io = bool(flags & L.IORESOURCE_IO)
        bars.append(
            Bar(
                index=index,
                kind="io" if io else "mem",
                is_64bit=not io and bool(flags & L.IORESOURCE_MEM_64),
                prefetchable=not io and bool(flags & L.IORESOURCE_PREFETCH),
                start=start,
                size=end - start + 1,
            )
        )
    return tuple(bars)


class ProcDeviceLine(Record):
    """One line of /proc/bus/pci/devices."""

    __slots__ = ("bus", "devfn", "vendor", "device", "irq", "bars", "driver")
    _frozen = True

    bus: int
    devfn: int
    vendor: int
    device: int
    irq: int
    bars: tuple[Bar, ...]
    driver: str | None

    @property
    def address(self) -> str:
        # /proc/bus/pci/devices has no domain column: it is domain 0 on every PC it was made for
        return f"0000:{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7}"


def parse_proc_devices(text: str) -> list[ProcDeviceLine]:
    """Parse /proc/bus/pci/devices (drivers/pci/proc.c show_device()).

    Each resource start has the BAR's low flag bits ORed in (PCI_REGION_FLAG_MASK): bit 0 = I/O,
    bits 1-2 = memory type (0b10 = 64-bit), bit 3 = prefetchable.
    """
    out = []
    n = L.PROC_DEVICES_RESOURCES
    for lineno, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3 + 2 * n:
            raise PyphysError(
                f"/proc/bus/pci/devices line {lineno + 1} has {len(fields)} fields, expected {3 + 2 * n}+"
            )
        try:
            busdevfn = int(fields[0], 16)
            ids = int(fields[1], 16)
            irq = int(fields[2], 16)
            starts = [int(f.strip() or "0", 16) for f in fields[3 : 3 + n]]
            sizes = [int(f.strip() or "0", 16) for f in fields[3 + n : 3 + 2 * n]]
        except ValueError:
            raise PyphysError(f"/proc/bus/pci/devices line {lineno + 1} is not hexadecimal: {line!r}") from None
        driver = fields[3 + 2 * n].strip() if len(fields) > 3 + 2 * n else ""
        bars = []
        for index in range(L.PCI_STD_NUM_BARS):
            raw, size = starts[index], sizes[index]
            if not size:
                continue
            io = bool(raw & L.PCI_BASE_ADDRESS_SPACE_IO)
            mem_type = raw & L.PCI_BASE_ADDRESS_MEM_TYPE_MASK
            bars.append(
                Bar(
                    index=index,
                    kind="io" if io else "mem",
                    is_64bit=not io and mem_type == L.PCI_BASE_ADDRESS_MEM_TYPE_64,
                    prefetchable=not io and bool(raw & L.PCI_BASE_ADDRESS_MEM_PREFETCH),
                    start=raw & (L.PCI_BASE_ADDRESS_IO_MASK if io else L.PCI_BASE_ADDRESS_MEM_MASK),
                    size=size,
                )
            )
        out.append(
            ProcDeviceLine(
                bus=busdevfn >> 8,
                devfn=busdevfn & 0xFF,
                vendor=ids >> 16,
                device=ids & 0xFFFF,
                irq=irq,
                bars=tuple(bars),
                driver=driver or None,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------
# scanning
# ----------------------------------------------------------------------------------------------
def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise from_oserror(err, f"read {path}") from err


def _hex_or_none(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text, 0)
    except ValueError:
        return None


def sysfs_devices_dir() -> str:
    return paths.sys("bus", "pci", "devices")


def read_sysfs_device(address: str) -> PciDevice:
    """One device from sysfs (vendor, device, class, revision, subsystem ids, irq, resource, driver)."""
    d = os.path.join(sysfs_devices_dir(), address)
    vendor = _hex_or_none(read_text(os.path.join(d, "vendor")))
    device = _hex_or_none(read_text(os.path.join(d, "device")))
    if vendor is None or device is None:
        raise NotFoundError(f"{d}: no vendor/device files (not a PCI device directory?)")
    revision = _hex_or_none(read_text(os.path.join(d, "revision")))
    if revision is None:  # `revision` appeared in Linux 2.6.29; older kernels: config byte 8
        cfg = _read_config_bytes(os.path.join(d, "config"), L.PCI_REVISION_ID, 1)
        revision = cfg[0] if cfg else None
    resource = read_text(os.path.join(d, "resource")) or ""
    try:
        driver: str | None = os.path.basename(os.readlink(os.path.join(d, "driver")))
    except OSError:
        driver = None
    irq = _hex_or_none(read_text(os.path.join(d, "irq")))
    return PciDevice(
        address=address,
        vendor=vendor,
        device=device,
        class_code=_hex_or_none(read_text(os.path.join(d, "class"))),
        revision=revision,
        subsystem_vendor=_hex_or_none(read_text(os.path.join(d, "subsystem_vendor"))),
        subsystem_device=_hex_or_none(read_text(os.path.join(d, "subsystem_device"))),
        driver=driver,
        irq=irq,
        bars=bars_from_resource(parse_resource(resource)),
        source="sysfs",
    )


def _read_config_bytes(path: str, offset: int, length: int) -> bytes | None:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except OSError:
        return None
    return data if len(data) == length else None


def proc_config_path(address: str) -> str:
    """/proc/bus/pci/BB/DD.F (``dddd:BB`` for a non-zero domain, as drivers/pci/proc.c names it)."""
    domain, bus, rest = address.split(":")
    busdir = bus if domain == "0000" else f"{domain}:{bus}"
    return paths.proc("bus", "pci", busdir, rest)


def scan_sysfs() -> list[PciDevice]:
    """All devices under /sys/bus/pci/devices, sorted by address."""
    d = sysfs_devices_dir()
    try:
        names = sorted(os.listdir(d))
    except OSError as err:
        raise from_oserror(err, f"list {d}", "is sysfs mounted? try --source procfs") from err
    return [read_sysfs_device(name) for name in names if normalize_address(name) == name]


def scan_procfs() -> list[PciDevice]:
    """All devices in /proc/bus/pci/devices (upci's source), completed from each device's
    world-readable 64-byte header in /proc/bus/pci/BB/DD.F (class, revision, subsystem ids)."""
    path = paths.proc("bus", "pci", "devices")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise from_oserror(err, f"read {path}", "the kernel has no CONFIG_PCI or CONFIG_PROC_FS") from err
    devices = []
    for line in parse_proc_devices(text):
        head = _read_config_bytes(proc_config_path(line.address), 0, L.PCI_STD_HEADER_SIZEOF)
        class_code = revision = sub_v = sub_d = None
        if head:
            h = L.HEADER_NORMAL.decode(head)
            revision = h["revision"]
            class_code = h["base_class"] << 16 | h["subclass"] << 8 | h["prog_if"]
            if h["header_type"] & L.PCI_HEADER_TYPE_MASK == L.PCI_HEADER_TYPE_NORMAL:
                sub_v, sub_d = h["subsystem_vendor"], h["subsystem_device"]
        devices.append(
            PciDevice(
                address=line.address,
                vendor=line.vendor,
                device=line.device,
                class_code=class_code,
                revision=revision,
                subsystem_vendor=sub_v,
                subsystem_device=sub_d,
                driver=line.driver,
                irq=line.irq,
                bars=line.bars,
                source="procfs",
            )
        )
    return sorted(devices, key=lambda dev: dev.address)


def scan(source: str = "auto") -> list[PciDevice]:
    """All PCI devices: sysfs, or /proc/bus/pci/devices when sysfs has none (``source="auto"``).

    Raises UsageError for an unknown source, NotFoundError when neither source exists.
    """
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r} (choose from {', '.join(SOURCES)})")
    if source == "sysfs":
        return scan_sysfs()
    if source == "procfs":
        return scan_procfs()
    if os.path.isdir(sysfs_devices_dir()):
        devices = scan_sysfs()
        if devices:
            return devices
    if os.path.exists(paths.proc("bus", "pci", "devices")):
        return scan_procfs()
    raise NotFoundError(
        "no PCI devices: neither /sys/bus/pci/devices nor /proc/bus/pci/devices lists any",
        "the kernel has no PCI support, or sysfs/procfs are not mounted",
    )
