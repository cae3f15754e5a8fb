"""PCI devices from user space with no driver: scan, select, decode config space, access BARs.

The exercise of seed 002 (upci: scan bus -> find device -> open region -> read/write u8/u16/u32),
done with the kernel's own interfaces:

- Scan: sysfs ``/sys/bus/pci/devices/<domain:bus:dev.fn>/`` (Documentation/PCI/sysfs-pci.rst,
  drivers/pci/pci-sysfs.c); ``/proc/bus/pci/devices`` (drivers/pci/proc.c) is the fallback upci
  uses, completed by the 64 world-readable header bytes in ``/proc/bus/pci/BB/DD.F``.
- BARs: memory BARs through an mmap of sysfs ``resourceN`` (the default), or of /dev/mem at the
  BAR's bus address (``via="devmem"``, through :mod:`pyphys.physmem`, the one module that opens
  /dev/mem). Both use :class:`pyphys.physmem.MappedWindow`, so an 8/16/32/64-bit access is ONE
  load or store of that width. I/O-port BARs go through ``pread``/``pwrite`` of ``resourceN``,
  which the kernel turns into exactly one inb/inw/inl (pci_resource_io()).
- Config space: the sysfs ``config`` file; an aligned 1/2/4-byte pread/pwrite is one config
  access of that width (pci_read_config()/pci_write_config()).

Library functions return data and raise :class:`~pyphys.errors.PyphysError`; they never print.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyphys import paths
from pyphys.errors import (
    DevMemBlockedError,
    NotFoundError,
    PermissionDeniedError,
    PyphysError,
    RegionError,
    UsageError,
    from_oserror,
)
from pyphys.layouts import pci as L

VIAS = ("resource", "devmem")
SOURCES = ("auto", "sysfs", "procfs")
#: the journal kind of every PCI write (BAR or config space)
JOURNAL_KIND = "pci"

_BDF_RE = re.compile(r"^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")
_IDS_RE = re.compile(r"^([0-9a-fA-F]{1,4})?:([0-9a-fA-F]{1,4})?$")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    """One base address register as the kernel assigned it."""

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
        """JSON-able dict."""
        return {
            "index": self.index,
            "type": self.kind,
            "bits": None if self.kind == "io" else (64 if self.is_64bit else 32),
            "prefetchable": self.prefetchable,
            "start": self.start,
            "end": self.end,
            "size": self.size,
        }


@dataclass(frozen=True)
class PciDevice:
    """A PCI function: identity, bound driver and BARs. Fields read from sysfs are never guessed:
    a value the source does not provide is None (procfs has no class without the config file)."""

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
        """JSON-able dict (numbers as integers)."""
        return {
            "address": self.address,
            "vendor": self.vendor,
            "device": self.device,
            "class": self.class_code,
            "revision": self.revision,
            "subsystem_vendor": self.subsystem_vendor,
            "subsystem_device": self.subsystem_device,
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


@dataclass(frozen=True)
class ProcDeviceLine:
    """One line of /proc/bus/pci/devices."""

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
# config space decoding
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BarRegister:
    """A BAR as its config register reads (the address the device decodes, not the size)."""

    index: int
    offset: int
    raw: int  # 32 bits, or 64 for a 64-bit pair
    kind: str
    is_64bit: bool
    prefetchable: bool
    address: int

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "offset": self.offset,
            "raw": self.raw,
            "type": self.kind,
            "is_64bit": self.is_64bit,
            "prefetchable": self.prefetchable,
            "address": self.address,
        }


@dataclass(frozen=True)
class Capability:
    """One entry of the capability list (``extended`` for the PCIe list at 0x100)."""

    offset: int
    cap_id: int
    name: str
    extended: bool = False
    version: int | None = None

    def to_json(self) -> dict:
        return {
            "offset": self.offset,
            "id": self.cap_id,
            "name": self.name,
            "extended": self.extended,
            "version": self.version,
        }


@dataclass(frozen=True)
class ConfigHeader:
    """The decoded configuration header (PCI Local Bus Spec 3.0, 6.1) and capability lists."""

    length: int  # bytes decoded from (64 for a reader without CAP_SYS_ADMIN)
    vendor: int
    device: int
    command: int
    status: int
    revision: int
    class_code: int
    header_type: int
    multifunction: bool
    cache_line_size: int
    latency_timer: int
    bist: int
    bars: tuple[BarRegister, ...]
    subsystem_vendor: int | None
    subsystem_device: int | None
    rom_address: int | None
    interrupt_line: int
    interrupt_pin: int
    capabilities: tuple[Capability, ...]
    notes: tuple[str, ...] = field(default=())
    bridge_buses: tuple[int, int, int] | None = None  # primary, secondary, subordinate

    @property
    def command_flags(self) -> list[str]:
        return [name for bit, name in L.COMMAND_BITS if self.command & bit]

    @property
    def status_flags(self) -> list[str]:
        return [name for bit, name in L.STATUS_BITS if self.status & bit]

    def to_json(self) -> dict:
        return {
            "length": self.length,
            "vendor": self.vendor,
            "device": self.device,
            "command": self.command,
            "command_flags": self.command_flags,
            "status": self.status,
            "status_flags": self.status_flags,
            "revision": self.revision,
            "class": self.class_code,
            "header_type": self.header_type,
            "multifunction": self.multifunction,
            "cache_line_size": self.cache_line_size,
            "latency_timer": self.latency_timer,
            "bist": self.bist,
            "bars": [b.to_json() for b in self.bars],
            "subsystem_vendor": self.subsystem_vendor,
            "subsystem_device": self.subsystem_device,
            "rom_address": self.rom_address,
            "interrupt_line": self.interrupt_line,
            "interrupt_pin": self.interrupt_pin,
            "capabilities": [c.to_json() for c in self.capabilities],
            "bridge_buses": list(self.bridge_buses) if self.bridge_buses else None,
            "notes": list(self.notes),
        }


def _u8(data: bytes, off: int) -> int:
    return data[off]


def _u16(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 2], "little")


def _u32(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 4], "little")


def decode_bar_registers(data: bytes, count: int) -> tuple[BarRegister, ...]:
    """Decode ``count`` BAR registers from config bytes; a 64-bit BAR consumes two slots."""
    bars = []
    index = 0
    while index < count:
        off = L.PCI_BASE_ADDRESS_0 + 4 * index
        raw = _u32(data, off)
        if raw & L.PCI_BASE_ADDRESS_SPACE_IO:
            bars.append(BarRegister(index, off, raw, "io", False, False, raw & L.PCI_BASE_ADDRESS_IO_MASK & 0xFFFFFFFF))
            index += 1
            continue
        is64 = (raw & L.PCI_BASE_ADDRESS_MEM_TYPE_MASK) == L.PCI_BASE_ADDRESS_MEM_TYPE_64
        pref = bool(raw & L.PCI_BASE_ADDRESS_MEM_PREFETCH)
        if is64 and index + 1 < count:
            raw64 = raw | (_u32(data, off + 4) << 32)
            bars.append(BarRegister(index, off, raw64, "mem", True, pref, raw64 & ~0xF & (2**64 - 1)))
            index += 2
            continue
        bars.append(BarRegister(index, off, raw, "mem", is64, pref, raw & L.PCI_BASE_ADDRESS_MEM_MASK & 0xFFFFFFFF))
        index += 1
    return tuple(b for b in bars if b.raw)


def walk_capabilities(data: bytes, first: int) -> tuple[tuple[Capability, ...], list[str]]:
    """Follow the classic capability list from the pointer at ``first``; (caps, notes).

    Bounded like the kernel's __pci_find_next_cap_ttl() (48 hops), pointers masked with ~3.
    A pointer past the bytes we could read is reported in the notes, not guessed.
    """
    caps: list[Capability] = []
    notes: list[str] = []
    pos = _u8(data, first) & ~3
    seen = set()
    for _ in range(L.PCI_FIND_CAP_TTL):
        if pos < L.PCI_CAP_FIRST_OFFSET:
            break
        if pos + 2 > len(data):
            notes.append(
                f"capability at {pos:#x} is beyond the {len(data)} bytes readable: reading config space "
                "past 0x40 needs CAP_SYS_ADMIN (drivers/pci/pci-sysfs.c pci_read_config)"
            )
            break
        if pos in seen:
            notes.append(f"capability list loops back to {pos:#x}")
            break
        seen.add(pos)
        cap_id = _u8(data, pos + L.PCI_CAP_LIST_ID)
        if cap_id == 0xFF:
            break
        caps.append(Capability(pos, cap_id, L.PCI_CAP_ID_NAMES.get(cap_id, f"unknown {cap_id:#04x}")))
        pos = _u8(data, pos + L.PCI_CAP_LIST_NEXT) & ~3
    else:
        notes.append("capability list longer than 48 entries: stopped (malformed?)")
    return tuple(caps), notes


def walk_ext_capabilities(data: bytes) -> tuple[tuple[Capability, ...], list[str]]:
    """Follow the PCI Express extended capability list at 0x100 (only if 4096 bytes were read)."""
    caps: list[Capability] = []
    notes: list[str] = []
    if len(data) < L.PCI_CFG_SPACE_EXP_SIZE:
        return (), notes
    pos = L.PCI_EXT_CAP_FIRST_OFFSET
    seen = set()
    for _ in range(L.PCI_FIND_EXT_CAP_TTL):
        header = _u32(data, pos)
        # 0 (no list) or ~0 (nothing decodes there) ends the walk, as pci_find_next_ext_capability()
        if header in (0, 0xFFFFFFFF):
            break
        if pos in seen:
            notes.append(f"extended capability list loops back to {pos:#x}")
            break
        seen.add(pos)
        cap_id = header & 0xFFFF
        ver = (header >> L.PCI_EXT_CAP_VER_SHIFT) & L.PCI_EXT_CAP_VER_MASK
        caps.append(Capability(pos, cap_id, L.PCI_EXT_CAP_ID_NAMES.get(cap_id, f"unknown {cap_id:#06x}"), True, ver))
        nxt = (header >> L.PCI_EXT_CAP_NEXT_SHIFT) & L.PCI_EXT_CAP_NEXT_MASK
        if nxt < L.PCI_EXT_CAP_FIRST_OFFSET:
            break
        pos = nxt
    return tuple(caps), notes


def decode_config(data: bytes) -> ConfigHeader:
    """Decode a configuration header (at least the 64 standard bytes); PyphysError if shorter."""
    if len(data) < L.PCI_STD_HEADER_SIZEOF:
        raise PyphysError(f"config space is {len(data)} bytes: the standard header alone has 64")
    header_byte = _u8(data, L.PCI_HEADER_TYPE)
    htype = header_byte & L.PCI_HEADER_TYPE_MASK
    status = _u16(data, L.PCI_STATUS)
    notes: list[str] = []
    caps: tuple[Capability, ...] = ()
    if status & L.PCI_STATUS_CAP_LIST:
        first = L.PCI_CB_CAPABILITY_LIST if htype == L.PCI_HEADER_TYPE_CARDBUS else L.PCI_CAPABILITY_LIST
        caps, notes = walk_capabilities(data, first)
    ext, ext_notes = walk_ext_capabilities(data)
    notes += ext_notes
    sub_v = sub_d = rom = None
    buses = None
    if htype == L.PCI_HEADER_TYPE_NORMAL:
        sub_v, sub_d = _u16(data, L.PCI_SUBSYSTEM_VENDOR_ID), _u16(data, L.PCI_SUBSYSTEM_ID)
        rom = _u32(data, L.PCI_ROM_ADDRESS)
    elif htype == L.PCI_HEADER_TYPE_BRIDGE:
        rom = _u32(data, L.PCI_ROM_ADDRESS1)
        buses = (_u8(data, L.PCI_PRIMARY_BUS), _u8(data, L.PCI_SECONDARY_BUS), _u8(data, L.PCI_SUBORDINATE_BUS))
    elif htype == L.PCI_HEADER_TYPE_CARDBUS and len(data) >= L.PCI_CB_SUBSYSTEM_ID + 2:
        sub_v, sub_d = _u16(data, L.PCI_CB_SUBSYSTEM_VENDOR_ID), _u16(data, L.PCI_CB_SUBSYSTEM_ID)
    else:
        notes.append(f"unknown header type {htype}")
    return ConfigHeader(
        length=len(data),
        vendor=_u16(data, L.PCI_VENDOR_ID),
        device=_u16(data, L.PCI_DEVICE_ID),
        command=_u16(data, L.PCI_COMMAND),
        status=status,
        revision=_u8(data, L.PCI_REVISION_ID),
        class_code=_u32(data, L.PCI_REVISION_ID) >> 8,
        header_type=htype,
        multifunction=bool(header_byte & L.PCI_HEADER_TYPE_MULTIFUNCTION),
        cache_line_size=_u8(data, L.PCI_CACHE_LINE_SIZE),
        latency_timer=_u8(data, L.PCI_LATENCY_TIMER),
        bist=_u8(data, L.PCI_BIST),
        bars=decode_bar_registers(data, L.BARS_PER_HEADER_TYPE.get(htype, 0)),
        subsystem_vendor=sub_v,
        subsystem_device=sub_d,
        rom_address=rom or None,
        interrupt_line=_u8(data, L.PCI_INTERRUPT_LINE),
        interrupt_pin=_u8(data, L.PCI_INTERRUPT_PIN),
        capabilities=caps + ext,
        notes=tuple(notes),
        bridge_buses=buses,
    )


def class_name(class_code: int | None) -> str:
    """``RAM memory`` for 0x050000: subclass name, else base class name, else ``Class xxxx``."""
    if class_code is None:
        return "Unknown class"
    base, sub = class_code >> 16, (class_code >> 8) & 0xFF
    names = _ids()
    name = names.class_name(base, sub) if names else None
    return name or L.SUBCLASS_NAMES.get((base, sub)) or L.BASE_CLASS_NAMES.get(base) or f"Class {base:02x}{sub:02x}"


# ----------------------------------------------------------------------------------------------
# pci.ids names (optional: pciutils' database, if installed)
# ----------------------------------------------------------------------------------------------
class PciIds:
    """Vendor, device and class names from a pci.ids text (format: pciutils' pci.ids header)."""

    def __init__(self, text: str):
        self.text = text
        self._class_at = text.find("\nC ")

    def _block(self, key: str, start: int = 0, end: int | None = None) -> int | None:
        pos = self.text.find(f"\n{key}  ", start, end)
        return None if pos < 0 else pos + 1

    @staticmethod
    def _name_at(text: str, pos: int) -> str:
        line = text[pos : text.find("\n", pos)]
        return line.split("  ", 1)[1].strip() if "  " in line else ""

    def names(self, vendor: int, device: int) -> tuple[str | None, str | None]:
        """(vendor name, device name), None where unknown."""
        end = self._class_at if self._class_at > 0 else None
        pos = self._block(f"{vendor:04x}", 0, end)
        if pos is None:
            return None, None
        vname = self._name_at(self.text, pos)
        nxt = re.compile(r"\n[0-9a-fC]").search(self.text, pos)
        block_end = nxt.start() if nxt else len(self.text)
        dpos = self.text.find(f"\n\t{device:04x}  ", pos, block_end)
        return vname, (self._name_at(self.text, dpos + 2) if dpos >= 0 else None)

    def class_name(self, base: int, sub: int) -> str | None:
        if self._class_at < 0:
            return None
        pos = self.text.find(f"\nC {base:02x}  ", self._class_at - 1)
        if pos < 0:
            return None
        pos += 1
        nxt = self.text.find("\nC ", pos)
        spos = self.text.find(f"\n\t{sub:02x}  ", pos, nxt if nxt > 0 else None)
        if spos >= 0:
            return self._name_at(self.text, spos + 2)
        return self._name_at(self.text, pos)


_IDS_CACHE: dict[str, PciIds | None] = {}
PCI_IDS_PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids")


def _ids() -> PciIds | None:
    """The pci.ids database (``PYPHYS_PCI_IDS`` overrides, "" disables), or None."""
    env = os.environ.get("PYPHYS_PCI_IDS")
    candidates = (env,) if env is not None else PCI_IDS_PATHS
    key = "|".join(candidates)
    if key not in _IDS_CACHE:
        _IDS_CACHE[key] = None
        for path in candidates:
            if not path:
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    _IDS_CACHE[key] = PciIds(f.read())
                break
            except OSError:
                continue
    return _IDS_CACHE[key]


def device_names(dev: PciDevice) -> tuple[str | None, str | None]:
    """(vendor name, device name) from pci.ids when installed, else (None, None)."""
    ids = _ids()
    return ids.names(dev.vendor, dev.device) if ids else (None, None)


# ----------------------------------------------------------------------------------------------
# scanning
# ----------------------------------------------------------------------------------------------
def _read_text(path: str) -> str | None:
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
    vendor = _hex_or_none(_read_text(os.path.join(d, "vendor")))
    device = _hex_or_none(_read_text(os.path.join(d, "device")))
    if vendor is None or device is None:
        raise NotFoundError(f"{d}: no vendor/device files (not a PCI device directory?)")
    revision = _hex_or_none(_read_text(os.path.join(d, "revision")))
    if revision is None:  # `revision` appeared in Linux 2.6.29; older kernels: config byte 8
        cfg = _read_config_bytes(os.path.join(d, "config"), L.PCI_REVISION_ID, 1)
        revision = cfg[0] if cfg else None
    resource = _read_text(os.path.join(d, "resource")) or ""
    try:
        driver: str | None = os.path.basename(os.readlink(os.path.join(d, "driver")))
    except OSError:
        driver = None
    irq = _hex_or_none(_read_text(os.path.join(d, "irq")))
    return PciDevice(
        address=address,
        vendor=vendor,
        device=device,
        class_code=_hex_or_none(_read_text(os.path.join(d, "class"))),
        revision=revision,
        subsystem_vendor=_hex_or_none(_read_text(os.path.join(d, "subsystem_vendor"))),
        subsystem_device=_hex_or_none(_read_text(os.path.join(d, "subsystem_device"))),
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
            revision = head[L.PCI_REVISION_ID]
            class_code = _u32(head, L.PCI_REVISION_ID) >> 8
            if head[L.PCI_HEADER_TYPE] & L.PCI_HEADER_TYPE_MASK == L.PCI_HEADER_TYPE_NORMAL:
                sub_v, sub_d = _u16(head, L.PCI_SUBSYSTEM_VENDOR_ID), _u16(head, L.PCI_SUBSYSTEM_ID)
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


# ----------------------------------------------------------------------------------------------
# selecting a device
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selector:
    """Which device: by address, and/or by IDs (seed 002's -V/-D/-v/-d)."""

    address: str | None = None
    vendor: int | None = None
    device: int | None = None
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None

    @property
    def empty(self) -> bool:
        return all(
            v is None for v in (self.address, self.vendor, self.device, self.subsystem_vendor, self.subsystem_device)
        )

    def matches(self, dev: PciDevice) -> bool:
        return (
            (self.address is None or self.address == dev.address)
            and (self.vendor is None or self.vendor == dev.vendor)
            and (self.device is None or self.device == dev.device)
            and (self.subsystem_vendor is None or self.subsystem_vendor == dev.subsystem_vendor)
            and (self.subsystem_device is None or self.subsystem_device == dev.subsystem_device)
        )

    def __str__(self) -> str:
        parts = []
        if self.address is not None:
            parts.append(self.address)
        if self.vendor is not None or self.device is not None:
            v = f"{self.vendor:04x}" if self.vendor is not None else "*"
            d = f"{self.device:04x}" if self.device is not None else "*"
            parts.append(f"{v}:{d}")
        if self.subsystem_vendor is not None or self.subsystem_device is not None:
            v = f"{self.subsystem_vendor:04x}" if self.subsystem_vendor is not None else "*"
            d = f"{self.subsystem_device:04x}" if self.subsystem_device is not None else "*"
            parts.append(f"subsystem {v}:{d}")
        return " ".join(parts) or "any device"


def _parse_id(text: str, what: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a hexadecimal ID") from None
    if not 0 <= value <= 0xFFFF:
        raise UsageError(f"{what} {text!r} does not fit in 16 bits")
    return value


def parse_selector(
    text: str | None = None,
    *,
    vendor: int | None = None,
    device: int | None = None,
    subsystem_vendor: int | None = None,
    subsystem_device: int | None = None,
) -> Selector:
    """Build a Selector from ``text`` plus ID flags.

    ``text`` is an address ``[[domain:]bus:]slot.func`` (the dot tells it apart) or
    ``vendor:device`` in hex like ``lspci -d`` (either side may be empty: ``1af4:``).
    Raises UsageError when ``text`` is neither, or contradicts a flag.
    """
    address = None
    if text is not None and text != "":
        address = normalize_address(text)
        if address is None:
            m = _IDS_RE.match(text.strip())
            if not m or (m.group(1) is None and m.group(2) is None):
                raise UsageError(
                    f"device {text!r} is neither an address like 0000:00:04.0 / 00:04.0 "
                    "nor vendor:device IDs like 1af4:1110"
                )
            tv = _parse_id(m.group(1), "vendor ID") if m.group(1) else None
            td = _parse_id(m.group(2), "device ID") if m.group(2) else None
            for name, given, parsed in (("vendor", vendor, tv), ("device", device, td)):
                if given is not None and parsed is not None and given != parsed:
                    raise UsageError(f"{name} ID {parsed:#06x} in {text!r} contradicts the flag's {given:#06x}")
            vendor = tv if tv is not None else vendor
            device = td if td is not None else device
    for name, value in (
        ("vendor ID", vendor),
        ("device ID", device),
        ("subsystem vendor ID", subsystem_vendor),
        ("subsystem device ID", subsystem_device),
    ):
        if value is not None and not 0 <= value <= 0xFFFF:
            raise UsageError(f"{name} {value:#x} does not fit in 16 bits")
    return Selector(address, vendor, device, subsystem_vendor, subsystem_device)


def find_devices(selector: Selector, devices: list[PciDevice] | None = None) -> list[PciDevice]:
    """The devices matching ``selector`` (all of them for an empty selector)."""
    devices = scan() if devices is None else devices
    return [d for d in devices if selector.matches(d)]


def select_device(selector: Selector, devices: list[PciDevice] | None = None) -> PciDevice:
    """Exactly one device; NotFoundError (none) or UsageError (several), each listing what exists."""
    if selector.empty:
        raise UsageError("name a device: an address (00:04.0), vendor:device (1af4:1110), or -V/-D/-v/-d IDs")
    devices = scan() if devices is None else devices
    found = [d for d in devices if selector.matches(d)]
    if len(found) == 1:
        return found[0]
    if not found:
        present = ", ".join(d.summary() for d in devices) or "none"
        raise NotFoundError(f"no PCI device matches {selector}", f"present: {present}")
    names = ", ".join(d.summary() for d in found)
    raise UsageError(
        f"{len(found)} PCI devices match {selector}: {names}",
        f"name one by address, e.g. {found[0].short_address}",
    )


# ----------------------------------------------------------------------------------------------
# access checks shared by BAR and config accesses (all before any I/O: bad input writes nothing)
# ----------------------------------------------------------------------------------------------
def check_access(
    what: str,
    size_limit: int,
    offset: int,
    width: int,
    value: int | None = None,
    widths: Iterable[int] = (8, 16, 32, 64),
) -> int:
    """Validate one ``width``-bit access at ``offset`` of a ``size_limit``-byte space.

    Returns the access size in bytes. Raises UsageError (bad width, unaligned, value too wide)
    or RegionError (past the end).
    """
    widths = tuple(widths)
    if width not in widths:
        raise UsageError(f"width {width} is not one of {', '.join(map(str, widths))} (bits) for {what}")
    size = width // 8
    if offset < 0:
        raise UsageError(f"offset {offset} is negative")
    if offset + size > size_limit:
        last = size_limit - size
        raise RegionError(
            f"offset {offset:#x} is past the end of {what} ({size_limit:#x} bytes)",
            f"the last {width}-bit access is at {last:#x}" if last >= 0 else None,
        )
    if offset % size:
        raise UsageError(f"offset {offset:#x} is not aligned to {width} bits ({size} bytes) in {what}")
    if value is not None:
        if value < 0:
            raise UsageError(f"value {value} is negative")
        if value >> width:
            raise UsageError(f"value {value:#x} is too wide for a {width}-bit access")
    return size


def check_range(what: str, size_limit: int, offset: int, length: int, unit: int = 1) -> None:
    """Validate a byte range (a hexdump or a byte-string write); ``unit`` = access size in bytes."""
    if offset < 0 or length < 0:
        raise UsageError("offset and length must not be negative")
    if length == 0:
        raise UsageError("length is 0: nothing to do")
    if offset + length > size_limit:
        raise RegionError(
            f"{offset:#x}+{length:#x} runs past the end of {what} ({size_limit:#x} bytes)",
            f"at most {max(size_limit - offset, 0):#x} bytes fit from {offset:#x}",
        )
    if unit > 1 and (offset % unit or length % unit):
        raise UsageError(f"{offset:#x}+{length:#x} is not a whole number of aligned {unit * 8}-bit accesses in {what}")


# ----------------------------------------------------------------------------------------------
# refusals explained
# ----------------------------------------------------------------------------------------------
def _cmdline() -> str:
    return _read_text(paths.proc("cmdline")) or ""


def bar_claimant(dev: PciDevice, bar: Bar) -> str | None:
    """Who holds ``bar`` busy in /proc/iomem (a driver's request_mem_region name), if anyone.

    /proc/iomem nests the driver's busy region under the BAR's own ``0000:00:04.0`` entry.
    None when nothing claims it or when /proc/iomem hides addresses (not root).
    """
    if bar.kind != "mem":
        return None
    try:
        from pyphys import iomem

        tree = iomem.load()
    except (PyphysError, ImportError):
        return None
    if tree.hidden:
        return None
    chain = tree.region_of(bar.start)
    names = [r.name for r in chain]
    if dev.address in names:
        below = names[names.index(dev.address) + 1 :]
        return below[-1] if below else None
    return None


def explain_bar_error(err: OSError, dev: PciDevice, bar: Bar, op: str, path: str) -> PyphysError:
    """Turn a refusal of a BAR access into the kernel's reason and the ways out.

    drivers/pci/pci-sysfs.c pci_mmap_resource(): EPERM under lockdown (LOCKDOWN_PCI_ACCESS);
    EINVAL when iomem_is_exclusive() (kernel/resource.c: the range is busy, i.e. a driver called
    pci_request_region(), and CONFIG_IO_STRICT_DEVMEM is set, unless iomem=relaxed) or when the
    mapping does not fit the BAR; x86 PAT (arch/x86/mm/pat/memtype.c) fails a mapping whose cache
    type conflicts with an existing one with EINVAL too.
    """
    from pyphys import physmem

    code = err.errno
    what = f"{op} of {dev.short_address} BAR{bar.index} ({path})"
    if code == errno.EACCES:
        return PermissionDeniedError(f"{what}: permission denied", "resourceN files are mode 0600: run as root")
    if code == errno.ENOENT:
        return NotFoundError(
            f"{what}: no such file",
            "the kernel made no resource file for this BAR: it is unassigned, or the architecture has no PCI mmap",
        )
    if code == errno.EPERM:
        mode = physmem.lockdown_mode()
        if mode in ("integrity", "confidentiality"):
            return DevMemBlockedError(
                f"{what}: refused by kernel lockdown ([{mode}], LOCKDOWN_PCI_ACCESS)",
                "lockdown forbids user-space BAR access: boot with lockdown=none (or without Secure Boot enforcement)",
            )
        return PermissionDeniedError(f"{what}: operation not permitted", "run as root with CAP_SYS_ADMIN")
    if code == errno.EINVAL and op == "mmap":
        claimant = bar_claimant(dev, bar)
        relaxed = "iomem=relaxed" in _cmdline().split()
        if claimant or dev.driver:
            owner = claimant or dev.driver
            unbind = (
                f"echo {dev.address} > /sys/bus/pci/drivers/{dev.driver}/unbind" if dev.driver else "unbind its driver"
            )
            return DevMemBlockedError(
                f"{what}: refused with EINVAL: the BAR is claimed by {owner!r} and this kernel enforces "
                "exclusive MMIO (CONFIG_IO_STRICT_DEVMEM, kernel/resource.c iomem_is_exclusive)",
                f"unbind the driver ({unbind}) or boot with iomem=relaxed"
                + (
                    ""
                    if not relaxed
                    else "; iomem=relaxed is already set, so suspect an x86 PAT memory-type conflict (dmesg)"
                ),
            )
        return DevMemBlockedError(
            f"{what}: refused with EINVAL (no driver claims the BAR)",
            "x86 PAT memory-type conflict: the range is mapped elsewhere with another cache mode "
            "(dmesg: 'conflicting memory types'); use resourceN rather than resourceN_wc, or boot with nopat",
        )
    return from_oserror(err, what)


# ----------------------------------------------------------------------------------------------
# BAR access
# ----------------------------------------------------------------------------------------------
class BarAccess:
    """Open BAR ``bar`` of ``dev`` for exact-width accesses at offsets relative to the BAR.

    ``via="resource"``: mmap of sysfs ``resourceN`` (memory BARs) or pread/pwrite of it (I/O BARs,
    each one inb/inw/inl). ``via="devmem"``: /dev/mem at the BAR's address through
    :func:`pyphys.physmem.open_physmem` (memory BARs only). Implements the journal's target
    protocol (``read``, ``write``, ``describe``). Use as a context manager.
    """

    def __init__(self, dev: PciDevice, bar: Bar, via: str = "resource", writable: bool = False):
        if via not in VIAS:
            raise UsageError(f"unknown access path {via!r} (choose from {', '.join(VIAS)})")
        if bar.kind == "io" and via == "devmem":
            raise UsageError(
                f"BAR{bar.index} of {dev.short_address} is an I/O-port BAR: /dev/mem reaches memory, not ports",
                "use --via resource (pread/pwrite of resourceN does inb/inw/inl)",
            )
        self.dev, self.bar, self.via, self.writable = dev, bar, via, writable
        self.size = bar.size
        self.path = os.path.join(sysfs_devices_dir(), dev.address, f"resource{bar.index}")
        self._fd: int | None = None
        self._win = None
        self._pm = None
        self.what = f"{dev.short_address} BAR{bar.index}"
        if via == "devmem":
            from pyphys import physmem

            self._pm = physmem.open_physmem("mmap", writable=writable)
            self.path = self._pm.path
        else:
            flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
            try:
                self._fd = os.open(self.path, flags)
            except OSError as err:
                raise explain_bar_error(err, dev, bar, "open", self.path) from err

    # -- memory BAR through resourceN: a MappedWindow covering what is asked ---------------------
    def _window(self, off: int, n: int):
        from pyphys import physmem

        win = self._win
        if win is not None and win.offset <= off and off + n <= win.offset + win.length:
            return win
        if win is not None:
            win.close()
            self._win = None
        # Map the pages around the access; memory BARs of a page or more are whole pages, so the
        # window never passes the BAR's end (pci_mmap_fits() refuses that with EINVAL).
        base = physmem.page_base(off)
        length = min(max(n + off - base, physmem.PAGE_SIZE), self.size - base)
        assert self._fd is not None
        try:
            self._win = physmem.MappedWindow(
                self._fd,
                base,
                length,
                self.writable,
                # a prefetchable BAR has no read side effects (PCI 3.0 6.2.5.1): plain copies are fine
                mmio=not self.bar.prefetchable,
                what=self.what,
                explain=lambda e, o: explain_bar_error(e, self.dev, self.bar, "mmap", self.path),
            )
        except RegionError as err:
            if self.size >= physmem.PAGE_SIZE:
                raise
            # sysfs gives resourceN the BAR's size (pci_create_attr()), and CPython's mmap refuses a
            # length past a regular file's size, while MappedWindow maps whole pages.
            raise RegionError(
                f"{self.what} is {self.size} bytes, smaller than a page: its resource file cannot be "
                f"mapped a whole page at a time ({err.message})",
                "use --via devmem (/dev/mem maps the page at the BAR's address)",
            ) from None
        return self._win

    # -- I/O BAR through resourceN: pread/pwrite of exactly the access size ------------------
    def _io(self, off: int, size: int, data: bytes | None = None) -> bytes:
        assert self._fd is not None
        try:
            if data is None:
                got = os.pread(self._fd, size, off)
            else:
                done = os.pwrite(self._fd, data, off)
                got = data if done == size else b""
        except OSError as err:
            raise explain_bar_error(err, self.dev, self.bar, "write" if data else "read", self.path) from err
        if len(got) != size:
            raise RegionError(f"{self.what}: port access at {off:#x} came back short ({len(got)} of {size} bytes)")
        return got

    # -- public: exact-width -------------------------------------------------------------------------
    def _widths(self) -> tuple[int, ...]:
        return (8, 16, 32) if self.bar.kind == "io" else (8, 16, 32, 64)

    def read_word(self, off: int, width: int) -> int:
        """One ``width``-bit access at BAR offset ``off``."""
        size = check_access(self.what, self.size, off, width, widths=self._widths())
        if self._pm is not None:
            return self._pm.read_word(self.bar.start + off, width)
        if self.bar.kind == "io":
            return int.from_bytes(self._io(off, size), "little")
        win = self._window(off, size)
        return win.read_word(off - win.offset, width)

    def write_word(self, off: int, width: int, value: int) -> None:
        """One ``width``-bit store of ``value`` at BAR offset ``off`` (raw: not journaled)."""
        size = check_access(self.what, self.size, off, width, value, widths=self._widths())
        self.write(off, value.to_bytes(size, "little"))

    # -- public: journal target protocol --------------------------------------------------------
    def read(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``: one exact access for 1/2/4/8 aligned bytes, else widest aligned pieces."""
        check_range(self.what, self.size, off, n)
        if self._pm is not None:
            return self._pm.read(self.bar.start + off, n)
        if self.bar.kind == "io":
            return b"".join(self._io(o, s) for o, s in _pieces(off, n, 4))
        win = self._window(off, n)
        return win.read(off - win.offset, n)

    def write(self, off: int, data: bytes) -> None:
        """Store ``data`` at ``off`` (raw: use :func:`write_bar` for a journaled write)."""
        if not self.writable:
            raise UsageError(f"{self.what} was opened read-only")
        check_range(self.what, self.size, off, len(data))
        if self._pm is not None:
            self._pm.write(self.bar.start + off, bytes(data))
            return
        if self.bar.kind == "io":
            pos = 0
            for o, s in _pieces(off, len(data), 4):
                self._io(o, s, bytes(data[pos : pos + s]))
                pos += s
            return
        win = self._window(off, len(data))
        win.write(off - win.offset, bytes(data))

    def describe(self) -> dict:
        """What the journal stores to reopen this BAR for undo (see :func:`reopen`)."""
        return {
            "space": "bar",
            "address": self.dev.address,
            "vendor": self.dev.vendor,
            "device": self.dev.device,
            "bar": self.bar.index,
            "bar_start": self.bar.start,
            "via": self.via,
        }

    def close(self) -> None:
        if self._win is not None:
            self._win.close()
            self._win = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._pm is not None:
            self._pm.close()
            self._pm = None

    def __enter__(self) -> BarAccess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pieces(off: int, n: int, widest: int) -> list[tuple[int, int]]:
    """Split [off, off+n) into naturally aligned accesses of at most ``widest`` bytes."""
    out = []
    pos = off
    end = off + n
    while pos < end:
        size = widest
        while size > 1 and (pos % size or pos + size > end):
            size //= 2
        out.append((pos, size))
        pos += size
    return out


def open_bar(dev: PciDevice, index: int, via: str = "resource", writable: bool = False) -> BarAccess:
    """Open BAR ``index`` of ``dev``; NotFoundError if it has no such BAR (listing the ones it has)."""
    return BarAccess(dev, dev.bar(index), via, writable)


def read_bar_range(dev: PciDevice, index: int, offset: int, length: int, width: int, via: str = "resource") -> bytes:
    """``length`` bytes from BAR ``index`` at ``offset``, as ``width``-bit accesses (a hexdump's data)."""
    bar = dev.bar(index)
    size = check_access(
        f"{dev.short_address} BAR{index}",
        bar.size,
        offset,
        width,
        widths=(8, 16, 32) if bar.kind == "io" else (8, 16, 32, 64),
    )
    check_range(f"{dev.short_address} BAR{index}", bar.size, offset, length, size)
    with BarAccess(dev, bar, via) as acc:
        return b"".join(acc.read_word(o, width).to_bytes(size, "little") for o in range(offset, offset + length, size))


# ----------------------------------------------------------------------------------------------
# config space
# ----------------------------------------------------------------------------------------------
class ConfigSpace:
    """A device's configuration space through sysfs ``config`` (or /proc/bus/pci/BB/DD.F).

    An aligned 1/2/4-byte pread/pwrite is ONE config access of that width (pci_read_config()
    splits by alignment). Implements the journal's target protocol.
    """

    def __init__(self, dev: PciDevice, writable: bool = False):
        self.dev, self.writable = dev, writable
        sys_path = os.path.join(sysfs_devices_dir(), dev.address, "config")
        self.path = sys_path if os.path.exists(sys_path) else proc_config_path(dev.address)
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        try:
            self._fd: int | None = os.open(self.path, flags)
        except OSError as err:
            raise from_oserror(
                err, f"open {self.path}", "writing config space needs root" if writable else None
            ) from err
        try:
            self.size = os.fstat(self._fd).st_size or L.PCI_CFG_SPACE_SIZE
        except OSError:
            self.size = L.PCI_CFG_SPACE_SIZE

    def read(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``; PermissionDeniedError when the kernel returns fewer (not root)."""
        check_range(f"{self.dev.short_address} config space", self.size, off, n)
        assert self._fd is not None
        try:
            data = os.pread(self._fd, n, off)
        except OSError as err:
            raise from_oserror(err, f"read {self.path} at {off:#x}") from err
        if len(data) < n:
            raise PermissionDeniedError(
                f"{self.path}: only {off + len(data):#x} bytes of config space are readable",
                "reading past the 64-byte header needs CAP_SYS_ADMIN (drivers/pci/pci-sysfs.c): run as root",
            )
        return data

    def read_all(self) -> bytes:
        """As much config space as the kernel lets us read (64 bytes unprivileged, 256/4096 as root)."""
        assert self._fd is not None
        try:
            return os.pread(self._fd, self.size, 0)
        except OSError as err:
            raise from_oserror(err, f"read {self.path}") from err

    def write(self, off: int, data: bytes) -> None:
        """pwrite ``data`` at ``off`` (raw: use :func:`write_config` for the journaled, --force path)."""
        if not self.writable:
            raise UsageError(f"{self.path} was opened read-only")
        check_range(f"{self.dev.short_address} config space", self.size, off, len(data))
        assert self._fd is not None
        try:
            done = os.pwrite(self._fd, bytes(data), off)
        except OSError as err:
            if err.errno == errno.EPERM and _lockdown_active():
                raise DevMemBlockedError(
                    f"write {self.path}: refused by kernel lockdown (LOCKDOWN_PCI_ACCESS)",
                    "boot with lockdown=none",
                ) from err
            raise from_oserror(err, f"write {self.path} at {off:#x}") from err
        if done != len(data):
            raise RegionError(f"{self.path}: write at {off:#x} stopped after {done} of {len(data)} bytes")

    def read_word(self, off: int, width: int) -> int:
        size = check_access(f"{self.dev.short_address} config space", self.size, off, width, widths=(8, 16, 32))
        return int.from_bytes(self.read(off, size), "little")

    def describe(self) -> dict:
        return {"space": "config", "address": self.dev.address, "vendor": self.dev.vendor, "device": self.dev.device}

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ConfigSpace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lockdown_active() -> bool:
    from pyphys import physmem

    return physmem.lockdown_mode() in ("integrity", "confidentiality")


def read_config(dev: PciDevice) -> bytes:
    """All the config space the caller may read."""
    with ConfigSpace(dev) as cfg:
        return cfg.read_all()


def read_config_word(dev: PciDevice, offset: int, width: int) -> int:
    """One ``width``-bit (8/16/32) config read at ``offset``."""
    with ConfigSpace(dev) as cfg:
        return cfg.read_word(offset, width)


def memory_decoding(dev: PciDevice) -> tuple[bool, bool] | None:
    """(I/O space enabled, memory space enabled) from the command register, or None if unreadable.

    With the enable bit off the device ignores its BAR: reads come back all ones (master abort).
    """
    try:
        cmd = read_config_word(dev, L.PCI_COMMAND, 16)
    except PyphysError:
        return None
    return bool(cmd & L.PCI_COMMAND_IO), bool(cmd & L.PCI_COMMAND_MEMORY)


# ----------------------------------------------------------------------------------------------
# journaled writes and undo
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PciWrite:
    """What a PCI write did: the journal record's id, bytes before, bytes written, bytes after."""

    record_id: int
    target: str
    offset: int
    old: bytes
    new: bytes
    after: bytes


def _journaled(target, offset: int, data: bytes, label: str, journal=None) -> PciWrite:
    from pyphys import journal as jmod

    # Device registers are not memory: a read-back that differs from the write is their
    # documented behaviour (edu's liveness register returns ~value, the factorial register n!),
    # so the journal records what was read back ("actual") instead of failing the write.
    rec = jmod.journaled_write(target, offset, data, kind=JOURNAL_KIND, label=label, journal=journal, verify=False)
    return PciWrite(rec.id, label, offset, rec.old, rec.new, rec.readback)


def write_bar(
    dev: PciDevice,
    index: int,
    offset: int,
    data: bytes,
    *,
    width: int | None = None,
    via: str = "resource",
    journal=None,
) -> PciWrite:
    """Journaled write of ``data`` into BAR ``index`` at ``offset``.

    ``width`` set: ``data`` is one value of that many bits, stored as ONE access (checked for
    alignment and bounds). Otherwise ``data`` is a byte string stored with the widest aligned
    accesses. Every check runs before anything is opened for writing. Returns a PciWrite.
    """
    bar = dev.bar(index)
    what = f"{dev.short_address} BAR{index}"
    if width is not None:
        size = check_access(
            what,
            bar.size,
            offset,
            width,
            int.from_bytes(data, "little"),
            widths=(8, 16, 32) if bar.kind == "io" else (8, 16, 32, 64),
        )
        if len(data) != size:
            raise UsageError(f"{len(data)} bytes given for a {width}-bit write")
    else:
        check_range(what, bar.size, offset, len(data))
    with BarAccess(dev, bar, via, writable=True) as acc:
        return _journaled(acc, offset, bytes(data), f"pci {dev.address} BAR{index}+{offset:#x} via {via}", journal)


def write_config(dev: PciDevice, offset: int, width: int, value: int, *, force: bool = False, journal=None) -> PciWrite:
    """Journaled ``width``-bit config-space write; UsageError unless ``force`` (a bad config write can
    hang the bus or make the device vanish)."""
    with ConfigSpace(dev) as probe:
        size = check_access(f"{dev.short_address} config space", probe.size, offset, width, value, widths=(8, 16, 32))
    if not force:
        raise UsageError(
            f"refusing to write config space of {dev.short_address} without --force",
            "a wrong command/BAR value can disable the device or hang the machine",
        )
    with ConfigSpace(dev, writable=True) as cfg:
        return _journaled(cfg, offset, value.to_bytes(size, "little"), f"pci {dev.address} config+{offset:#x}", journal)


def reopen(description: dict, writable: bool = True):
    """Reopen a journaled PCI target from its ``describe()`` dict (for ``pyphys undo``).

    Refuses (NotFoundError) if the device at that address is no longer the same vendor:device,
    or its BAR moved: undoing into another device's registers would be worse than not undoing.
    """
    address = description.get("address")
    if not isinstance(address, str) or normalize_address(address) != address:
        raise PyphysError(f"journal entry has no usable PCI address: {description!r}")
    dev = select_device(Selector(address=address))
    if (dev.vendor, dev.device) != (description.get("vendor"), description.get("device")):
        raise NotFoundError(
            f"{address} is now {dev.ids}, not the "
            f"{description.get('vendor', 0):04x}:{description.get('device', 0):04x} "
            "the journal recorded",
            "the bus was re-enumerated: undo by hand",
        )
    if description.get("space") == "config":
        return ConfigSpace(dev, writable=writable)
    bar = dev.bar(int(description.get("bar", -1)))
    if description.get("bar_start") not in (None, bar.start):
        raise NotFoundError(f"{address} BAR{bar.index} moved to {bar.start:#x} since the write", "undo by hand")
    return BarAccess(dev, bar, description.get("via", "resource"), writable=writable)


def _register_with_journal() -> None:
    """Make kind "pci" entries undoable: the journal imports this module and finds the opener."""
    from pyphys import journal

    journal.register_target(JOURNAL_KIND, lambda description: reopen(description, writable=True))


_register_with_journal()
