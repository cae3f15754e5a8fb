"""Configuration space decoded: the header (declared once in :mod:`pyphys.layouts.pci`), the
BAR registers, and the capability lists walked as the kernel walks them.

Decoders take bytes, so tests feed them captures. A short read (64 bytes for a reader without
CAP_SYS_ADMIN) decodes what is there and says in ``notes`` what is missing; a corrupt or hostile
capability list (a loop, a pointer into the header or past config space) stops the walk with a
note saying where.
"""

from __future__ import annotations

from pyphys.dialect import json_id, json_value
from pyphys.errors import PyphysError
from pyphys.layouts import pci as L
from pyphys.record import Record, encode


class BarRegister(Record):
    """A BAR as its config register reads (the address the device decodes, not the size)."""

    __slots__ = ("index", "offset", "raw", "kind", "is_64bit", "prefetchable", "address")
    _frozen = True

    index: int
    offset: int
    raw: int  # 32 bits, or 64 for a 64-bit pair
    kind: str
    is_64bit: bool
    prefetchable: bool
    address: int

    def to_json(self) -> dict:
        """docs/json.md: the register's offset and value (32 bits, 64 for a 64-bit pair) and the
        address it decodes as 0x strings."""
        return {
            "index": self.index,
            "offset": f"{self.offset:#x}",
            "value": json_value(self.raw, 64 if self.raw >> 32 or self.is_64bit else 32),
            "type": self.kind,
            "is_64bit": self.is_64bit,
            "prefetchable": self.prefetchable,
            "address": f"{self.address:#x}",
        }


class Capability(Record):
    """One entry of a capability list (``extended`` for the PCIe list at 0x100).

    ``summary`` is the text lspci prints after ``Capabilities: [OFF]``, ``details`` its ``-vv``
    lines, ``fields`` the decoded registers, ``raw`` the bytes of a vendor-specific capability.
    """

    __slots__ = ("offset", "cap_id", "name", "extended", "version", "summary", "details", "fields", "raw")
    _frozen = True
    _defaults = {"extended": False, "version": None, "summary": "", "details": (), "fields": {}, "raw": b""}

    offset: int
    cap_id: int
    name: str
    extended: bool
    version: int | None
    summary: str
    details: tuple[str, ...]
    fields: dict
    raw: bytes

    def to_json(self) -> dict:
        """docs/json.md: offset and ID (8 bits, 16 for an extended one) as 0x strings, the
        decoded registers as :func:`pyphys.pci_caps.fields_json` writes them, the bytes of a
        vendor-specific capability as ``data``."""
        from pyphys.pci_caps import fields_json

        return {
            "offset": f"{self.offset:#x}",
            "id": json_value(self.cap_id, 16 if self.extended else 8),
            "name": self.name,
            "extended": self.extended,
            "version": self.version,
            "summary": self.summary,
            "fields": fields_json(self),
            "data": self.raw.hex() if self.raw else None,
        }


def _register_json(value: int, bits: tuple[tuple[int, str, str], ...], width: int = 16) -> dict:
    """A register with named bits: its value and the pci_regs.h names of the bits set (docs/json.md)."""
    return {"value": json_value(value, width), "flags": [name for bit, _text, name in bits if value & bit]}


def _registers_json(hdr: ConfigHeader) -> dict:
    layout = L.HEADER_LAYOUTS.get(hdr.header_type, L.HEADER_COMMON)
    return {name: json_value(v, 8 * layout.width(name)) for name, v in hdr.registers.items()}


_JSON_FORMS = {
    "id": lambda hdr, v: json_id(v),
    "id8": lambda hdr, v: json_id(v, 8),
    "class": lambda hdr, v: json_id(v, 24),
    "value8": lambda hdr, v: json_id(v, 8),
    "value32": lambda hdr, v: json_id(v, 32),
    "command": lambda hdr, v: _register_json(v, L.COMMAND_BITS),
    "status": lambda hdr, v: _register_json(v, L.STATUS_BITS),
    "registers": lambda hdr, v: _registers_json(hdr),
}


class ConfigHeader(Record):
    """The decoded configuration header and capability lists.

    Its fields, their JSON keys and forms and the layout fields they come from are declared once,
    in :data:`pyphys.layouts.pci.CONFIG_HEADER`; ``registers`` holds every field of the header's
    layout by its name.
    """

    __slots__ = tuple(attr for attr, _key, _form, _src, _dflt in L.CONFIG_HEADER)
    _frozen = True
    _defaults = {"notes": (), "bridge_buses": None, "registers": {}}

    @property
    def command_flags(self) -> list[str]:
        return [name for bit, name, _json in L.COMMAND_BITS if self.command & bit]

    @property
    def status_flags(self) -> list[str]:
        return [name for bit, name, _json in L.STATUS_BITS if self.status & bit]

    def to_json(self) -> dict:
        """Every field of :data:`~pyphys.layouts.pci.CONFIG_HEADER` under its key, in its form."""
        return {
            key: _JSON_FORMS[form](self, getattr(self, attr)) if form else encode(getattr(self, attr))
            for attr, key, form, _src, _dflt in L.CONFIG_HEADER
        }


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


def _missing(pos: int, have: int) -> str:
    return (
        f"capability at {pos:#x} is beyond the {have} bytes readable: reading config space "
        f"past {have:#x} needs CAP_SYS_ADMIN (drivers/pci/pci-sysfs.c pci_read_config): run as root"
    )


def walk_capabilities(data: bytes, first: int) -> tuple[tuple[Capability, ...], list[str]]:
    """Follow the classic capability list from the pointer at ``first``; (caps, notes).

    Bounded like the kernel's __pci_find_next_cap_ttl() (48 hops), pointers masked with ~3.
    A pointer into the header, past config space, past the bytes we could read, or back to a
    capability already seen stops the walk with a note naming where it pointed from.
    """
    caps: list[Capability] = []
    notes: list[str] = []
    if first >= len(data):
        return (), [_missing(first, len(data))]
    where = f"the capabilities pointer at {first:#x}"
    pos = data[first] & ~3
    seen = set()
    for _ in range(L.PCI_FIND_CAP_TTL):
        if pos == 0:
            break
        if pos < L.PCI_CAP_FIRST_OFFSET or pos + 2 > L.PCI_CFG_SPACE_SIZE:
            notes.append(f"{where} points to {pos:#x}, outside the capability area 0x40-0xff: list stopped there")
            break
        if pos + 2 > len(data):
            notes.append(_missing(pos, len(data)))
            break
        if pos in seen:
            notes.append(f"capability list loops: {where} points back to {pos:#x}; stopped there")
            break
        seen.add(pos)
        cap_id = data[pos + L.PCI_CAP_LIST_ID]
        if cap_id == 0xFF:
            notes.append(f"{where} points to {pos:#x}, which reads 0xff (chain broken): list stopped there")
            break
        caps.append(Capability(pos, cap_id, L.PCI_CAP_ID_NAMES.get(cap_id, f"unknown {cap_id:#04x}")))
        where = f"the capability at {pos:#x}"
        pos = data[pos + L.PCI_CAP_LIST_NEXT] & ~3
    else:
        notes.append(f"capability list longer than {L.PCI_FIND_CAP_TTL} entries: stopped (malformed?)")
    return tuple(caps), notes


def walk_ext_capabilities(data: bytes) -> tuple[tuple[Capability, ...], list[str]]:
    """Follow the PCI Express extended capability list at 0x100 (when more than 256 bytes were read)."""
    caps: list[Capability] = []
    notes: list[str] = []
    if len(data) < L.PCI_EXT_CAP_FIRST_OFFSET + 4:
        return (), notes
    pos = L.PCI_EXT_CAP_FIRST_OFFSET
    where = "the extended capability list"
    seen = set()
    for _ in range(L.PCI_FIND_EXT_CAP_TTL):
        if pos + 4 > len(data):
            notes.append(f"{where} points to {pos:#x}, past the {len(data)} bytes readable: list stopped there")
            break
        header = _u32(data, pos)
        # 0 (no list) or ~0 (nothing decodes there) ends the walk, as pci_find_next_ext_capability()
        if header in (0, 0xFFFFFFFF):
            break
        if pos in seen:
            notes.append(f"extended capability list loops: {where} points back to {pos:#x}; stopped there")
            break
        seen.add(pos)
        cap_id = header & 0xFFFF
        ver = (header >> L.PCI_EXT_CAP_VER_SHIFT) & L.PCI_EXT_CAP_VER_MASK
        caps.append(Capability(pos, cap_id, L.PCI_EXT_CAP_ID_NAMES.get(cap_id, f"unknown {cap_id:#06x}"), True, ver))
        nxt = (header >> L.PCI_EXT_CAP_NEXT_SHIFT) & L.PCI_EXT_CAP_NEXT_MASK
        if nxt == 0:
            break
        where = f"the extended capability at {pos:#x}"
        if nxt < L.PCI_EXT_CAP_FIRST_OFFSET:
            notes.append(f"{where} points to {nxt:#x}, below the extended space at 0x100: list stopped there")
            break
        pos = nxt
    else:
        notes.append(f"extended capability list longer than {L.PCI_FIND_EXT_CAP_TTL} entries: stopped (malformed?)")
    return tuple(caps), notes


def decode_config(data: bytes) -> ConfigHeader:
    """Decode a configuration header (at least the 64 standard bytes); PyphysError if shorter."""
    if len(data) < L.PCI_STD_HEADER_SIZEOF:
        raise PyphysError(f"config space is {len(data)} bytes: the standard header alone has 64")
    common = L.HEADER_COMMON.decode(data)
    htype = common["header_type"] & L.PCI_HEADER_TYPE_MASK
    layout = L.HEADER_LAYOUTS.get(htype)
    regs = layout.decode(data) if layout else common
    notes: list[str] = []
    caps: tuple[Capability, ...] = ()
    if common["status"] & L.PCI_STATUS_CAP_LIST and "capabilities_pointer" in regs:
        first = L.PCI_CB_CAPABILITY_LIST if htype == L.PCI_HEADER_TYPE_CARDBUS else L.PCI_CAPABILITY_LIST
        caps, notes = walk_capabilities(data, first)
    ext, ext_notes = walk_ext_capabilities(data)
    notes += ext_notes
    if layout is None:
        notes.append(f"unknown header type {htype}")
    elif htype == L.PCI_HEADER_TYPE_CARDBUS and "subsystem_vendor" not in regs:
        notes.append(f"the CardBus header's subsystem IDs at {L.PCI_CB_SUBSYSTEM_VENDOR_ID:#x} are not readable")
    from pyphys import pci_caps

    caps = tuple(pci_caps.describe(data, c, htype) for c in caps + ext)
    buses = None
    if htype == L.PCI_HEADER_TYPE_BRIDGE:
        buses = (regs["primary_bus"], regs["secondary_bus"], regs["subordinate_bus"])
    # the fields read straight from the layout, as CONFIG_HEADER names them; the rest computed here
    read = {attr: regs.get(src, dflt) for attr, _key, _form, src, dflt in L.CONFIG_HEADER if src}
    return ConfigHeader(
        length=len(data),
        class_code=common["base_class"] << 16 | common["subclass"] << 8 | common["prog_if"],
        header_type=htype,
        multifunction=bool(common["header_type"] & L.PCI_HEADER_TYPE_MULTIFUNCTION),
        bars=decode_bar_registers(data, L.BARS_PER_HEADER_TYPE.get(htype, 0)),
        rom_address=regs.get("rom_address") or None,
        capabilities=caps,
        notes=tuple(notes),
        bridge_buses=buses,
        registers=regs,
        **read,
    )
