"""Which PCI device: an address, IDs, or lspci's filters ``-s`` and ``-d``.

lspci's meanings (pciutils lib/filter.c, lspci(8)):

- ``-s [[[[domain]:]bus]:][slot][.[func]]``: each part hexadecimal, empty or ``*`` for any;
  ``-s 04`` is slot 4 on any bus, ``-s 01:`` every device on bus 1, ``-s .1`` every function 1.
- ``-d [vendor]:[device][:class[:prog-if]]`` (pciutils 3.8 and later): hexadecimal, each part
  empty or ``*`` for any (``1af4:`` is every device of vendor 0x1af4, ``:`` every device); the
  class is the 16-bit base class and subclass (``0200`` for an Ethernet controller) in which an
  ``x`` digit matches any (``06xx``: every bridge); prog-if is the class code's low byte. Leading
  zeros are allowed (lspci bounds the value, not the digits).

A positional DEVICE is a full address (``0000:00:04.0``, ``00:04.0``) or else means what
``-d`` means (``1234:11e8``, ``1234:``).
Subsystem IDs have long options only (``--subsystem-vendor``, ``--subsystem-device``).
"""

from __future__ import annotations

import re

from pyphys.errors import NotFoundError, UsageError
from pyphys.pci_devices import PciDevice, normalize_address, scan
from pyphys.record import Record

_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
HOW_TO_NAME = (
    "name a device: an address (00:04.0), vendor:device (1af4:1110), -s [[domain:]bus:]slot.func or -d vendor:device"
)


class Selector(Record):
    """Which device: an exact address, IDs, a class, and/or lspci's slot filter parts."""

    __slots__ = (
        "address",
        "vendor",
        "device",
        "subsystem_vendor",
        "subsystem_device",
        "class_code",
        "class_mask",
        "prog_if",
        "domain",
        "bus",
        "slot",
        "func",
    )
    _frozen = True
    _defaults = {
        "address": None,
        "vendor": None,
        "device": None,
        "subsystem_vendor": None,
        "subsystem_device": None,
        "class_code": None,
        "class_mask": 0xFFFF,
        "prog_if": None,
        "domain": None,
        "bus": None,
        "slot": None,
        "func": None,
    }

    address: str | None
    vendor: int | None
    device: int | None
    subsystem_vendor: int | None
    subsystem_device: int | None
    class_code: int | None  # 16 bits: base class << 8 | subclass (lspci -d's third part)
    class_mask: int  # the bits of class_code that must match (an x digit clears its four)
    prog_if: int | None  # the class code's low byte (lspci -d's fourth part)
    domain: int | None
    bus: int | None
    slot: int | None
    func: int | None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f) is None for f in self._fields if f != "class_mask")

    def matches(self, dev: PciDevice) -> bool:
        domain, bus, rest = dev.address.split(":")
        slot, func = rest.split(".")
        where = (int(domain, 16), int(bus, 16), int(slot, 16), int(func))
        cls = dev.class_code >> 8 if dev.class_code is not None else None
        prog_if = dev.class_code & 0xFF if dev.class_code is not None else None
        if self.class_code is not None and (cls is None or (cls ^ self.class_code) & self.class_mask):
            return False
        return all(
            want is None or want == have
            for want, have in (
                (self.address, dev.address),
                (self.vendor, dev.vendor),
                (self.device, dev.device),
                (self.subsystem_vendor, dev.subsystem_vendor),
                (self.subsystem_device, dev.subsystem_device),
                (self.prog_if, prog_if),
                (self.domain, where[0]),
                (self.bus, where[1]),
                (self.slot, where[2]),
                (self.func, where[3]),
            )
        )

    def __str__(self) -> str:
        parts = []
        if self.address is not None:
            parts.append(self.address)
        if any(v is not None for v in (self.domain, self.bus, self.slot, self.func)):

            def part(value, fmt: str) -> str:
                return "*" if value is None else format(value, fmt)

            parts.append(
                f"-s {part(self.domain, '04x')}:{part(self.bus, '02x')}:{part(self.slot, '02x')}.{part(self.func, 'x')}"
            )
        if any(v is not None for v in (self.vendor, self.device, self.class_code, self.prog_if)):
            v = f"{self.vendor:04x}" if self.vendor is not None else "*"
            d = f"{self.device:04x}" if self.device is not None else "*"
            cls = ""
            if self.class_code is not None or self.prog_if is not None:
                cls = ":" + (_class_text(self.class_code, self.class_mask) if self.class_code is not None else "*")
            if self.prog_if is not None:
                cls += f":{self.prog_if:02x}"
            parts.append(f"{v}:{d}{cls}")
        if self.subsystem_vendor is not None or self.subsystem_device is not None:
            v = f"{self.subsystem_vendor:04x}" if self.subsystem_vendor is not None else "*"
            d = f"{self.subsystem_device:04x}" if self.subsystem_device is not None else "*"
            parts.append(f"subsystem {v}:{d}")
        return " ".join(parts) or "any device"


def _class_text(value: int, mask: int) -> str:
    return "".join("x" if not (mask >> s) & 0xF else f"{(value >> s) & 0xF:x}" for s in (12, 8, 4, 0))


def _hex_part(text: str, what: str, maximum: int, option: str) -> int | None:
    """One part of an lspci filter: empty or ``*`` is any, else hexadecimal up to ``maximum``."""
    if text in ("", "*"):
        return None
    if not _HEX_RE.match(text):
        raise UsageError(f"{option}: {what} {text!r} is not hexadecimal")
    value = int(text, 16)
    if value > maximum:
        raise UsageError(f"{option}: {what} {text!r} is above the maximum {maximum:#x}")
    return value


def _class_part(text: str, option: str) -> tuple[int | None, int]:
    """lspci's class part: hex digits, each ``x`` matching any; (value, mask) as pciutils'
    parse_hex_field() computes them (the value bounded to 16 bits, an ``x`` counted as 1)."""
    if text in ("", "*"):
        return None, 0xFFFF
    if not re.match(r"^[0-9a-fA-FxX]+$", text):
        raise UsageError(f"{option}: class {text!r} is not hexadecimal (an x digit matches any)")
    value = bound = 0
    mask = 0xFFFF  # the digits left of those given must be zero, as in pciutils
    for c in text.lower():
        value, mask = value << 4 | (0 if c == "x" else int(c, 16)), mask << 4 | (0 if c == "x" else 0xF)
        bound = bound << 4 | (1 if c == "x" else int(c, 16))
        if bound > 0xFFFF:
            raise UsageError(f"{option}: class {text!r} is above the maximum 0xffff")
    return value & 0xFFFF, mask & 0xFFFF


def parse_slot_filter(text: str) -> dict[str, int | None]:
    """lspci ``-s [[[[domain]:]bus]:][slot][.[func]]`` -> {domain, bus, slot, func} (None = any)."""
    opt = f"-s {text!r}"
    if text.count(":") > 2 or text.count(".") > 1:
        raise UsageError(f"{opt} is not [[[[domain]:]bus]:][slot][.[func]]")
    head, dot, func_text = text.partition(".")
    if ":" in func_text:
        raise UsageError(f"{opt} is not [[[[domain]:]bus]:][slot][.[func]]")
    parts = head.split(":")
    slot_text = parts[-1]
    bus_text = parts[-2] if len(parts) >= 2 else ""
    domain_text = parts[-3] if len(parts) == 3 else ""
    return {
        "domain": _hex_part(domain_text, "domain", 0x7FFFFFFF, opt),
        "bus": _hex_part(bus_text, "bus", 0xFF, opt),
        "slot": _hex_part(slot_text, "slot", 0x1F, opt),
        "func": _hex_part(func_text if dot else "", "function", 7, opt),
    }


def parse_id_filter(text: str, opt: str | None = None) -> dict[str, int | None]:
    """lspci ``-d [vendor]:[device][:class[:prog-if]]`` -> {vendor, device, class_code,
    class_mask, prog_if} (None = any), as pciutils' pci_filter_parse_id() reads it."""
    opt = opt or f"-d {text!r}"
    parts = text.split(":")
    if not 2 <= len(parts) <= 4:
        raise UsageError(f"{opt} is not [vendor]:[device][:class[:prog-if]]")
    parts += [""] * (4 - len(parts))
    class_code, class_mask = _class_part(parts[2], opt)
    return {
        "vendor": _hex_part(parts[0], "vendor ID", 0xFFFF, opt),
        "device": _hex_part(parts[1], "device ID", 0xFFFF, opt),
        "class_code": class_code,
        "class_mask": class_mask if class_code is not None else None,
        "prog_if": _hex_part(parts[3], "prog-if", 0xFF, opt),
    }


def _merge(values: dict, name: str, given: int | None, source: str) -> None:
    if given is None:
        return
    have = values.get(name)
    if have is not None and have != given:
        raise UsageError(f"{name.replace('_', ' ')} {given:#06x} from {source} contradicts {have:#06x}")
    values[name] = given


def parse_selector(
    text: str | None = None,
    *,
    slot: str | None = None,
    ids: str | None = None,
    vendor: int | None = None,
    device: int | None = None,
    subsystem_vendor: int | None = None,
    subsystem_device: int | None = None,
) -> Selector:
    """Build a Selector from a positional DEVICE ``text``, lspci's ``-s``/``-d`` and ID values.

    ``text`` is an address ``[[domain:]bus:]slot.func`` (the dot tells it apart) or else an
    lspci ``-d`` filter (``1af4:1110``, ``1af4:`` for any device of the vendor, ``::0200``).
    Raises UsageError when ``text`` is neither, or the parts contradict each other.
    """
    values: dict = {}
    address = None
    if text is not None and text != "":
        address = normalize_address(text)
        if address is None:
            neither = f"device {text!r} is neither an address like 0000:00:04.0 / 00:04.0 nor IDs like 1af4:1110"
            if ":" not in text or "." in text or text.count(":") > 3:  # no ID filter has a dot
                raise UsageError(neither, "IDs as lspci -d takes them: [vendor]:[device][:class[:prog-if]]")
            for name, value in parse_id_filter(text.strip(), neither).items():
                _merge(values, name, value, repr(text))
    for name, value in (
        ("vendor", vendor),
        ("device", device),
        ("subsystem_vendor", subsystem_vendor),
        ("subsystem_device", subsystem_device),
    ):
        if value is not None and not 0 <= value <= 0xFFFF:
            raise UsageError(f"{name.replace('_', ' ')} ID {value:#x} does not fit in 16 bits")
        _merge(values, name, value, "the ID option")
    if ids is not None:
        for name, value in parse_id_filter(ids).items():
            _merge(values, name, value, "-d")
    if slot is not None:
        values.update(parse_slot_filter(slot))
    return Selector(address=address, **values)


def find_devices(selector: Selector, devices: list[PciDevice] | None = None) -> list[PciDevice]:
    """The devices matching ``selector`` (all of them for an empty selector)."""
    devices = scan() if devices is None else devices
    return [d for d in devices if selector.matches(d)]


def select_device(selector: Selector, devices: list[PciDevice] | None = None) -> PciDevice:
    """Exactly one device; NotFoundError (none) or UsageError (several), each listing what exists."""
    if selector.empty:
        raise UsageError(HOW_TO_NAME)
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
