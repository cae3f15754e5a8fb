"""Config-space registers as setpci names them: ``COMMAND``, ``04.w``, ``CAP_EXP+0x10.w``.

A register is ``BASE[+OFFSET][.WIDTH][@N]`` as in setpci(8): BASE is an offset, one of setpci's
register names (each carries the width of its register, and the header types it exists in), or
a capability, ``CAP_xxx`` (the classic list) or ``ECAP_xxx`` (the PCI Express extended list at
0x100), found by walking the device's list; ``@N`` picks the N-th capability of that ID,
counting from 0 (setpci.c exec_op() through pciutils' pci_find_cap_nr()): ``CAP_VNDR+2.b@1``
is byte 2 of the second vendor-specific capability. WIDTH is setpci's letter: ``b`` 8,
``w`` 16, ``l`` 32 bits.

A capability may also be given by number, as setpci's ``CAPxx`` (a classic capability ID below
0x100: ``CAP10`` is PCI Express, CAP_EXP) and ``ECAPxxx`` (an extended one below 0x1000:
``ECAP001`` is AER, ECAP_AER). The digits after CAP/ECAP are ALWAYS hex, as in setpci, with or
without 0x: ``CAP10`` is ID 0x10, never 10 (the one place pyphys reads bare digits as hex, as
nothing else could be meant; an ``+OFFSET`` after them follows the rule below). setpci gives
these no natural width, so they need ``.b``, ``.w`` or ``.l``; they take ``+OFFSET`` and ``@N``
like the names.

A value written may be setpci's ``VALUE:MASK`` (:func:`parse_masked_value`): only the bits set
in MASK change, the others keep what the register reads just before the write. A list
``V1,V2,...`` (:func:`parse_values`, each element with its own ``:MASK``) writes consecutive
registers of the width given: value i at REG + i * width (setpci.c exec_op()).

Numbers are pyphys's: decimal or ``0x`` hex. setpci reads every number as hex, so a bare
number inside setpci's syntax that reads differently in the two (``10.l``, ``CAP_EXP+10``, a
value or mask after such a register: ``COMMAND=10``, ``0x40.w=1,12``) is refused with both
readings; ``04.w`` (one significant digit) means 4 to both.
"""

from __future__ import annotations

from pyphys.dialect import SETPCI_WIDTHS, parse_number
from pyphys.errors import NotFoundError, UsageError
from pyphys.record import Record

NORMAL, BRIDGE, CARDBUS = 1, 2, 4  # header-type masks: types 0, 1, 2
HEADER_NAMES = {0: "normal", 1: "bridge", 2: "CardBus"}

# setpci's register names: offset, width in bits, header types the register exists in
# (0: every type); names and widths as setpci(8) lists them (`setpci --dumpregs`)
REGISTERS: dict[str, tuple[int, int, int]] = {
    "VENDOR_ID": (0x00, 16, 0),
    "DEVICE_ID": (0x02, 16, 0),
    "COMMAND": (0x04, 16, 0),
    "STATUS": (0x06, 16, 0),
    "REVISION": (0x08, 8, 0),
    "CLASS_PROG": (0x09, 8, 0),
    "CLASS_DEVICE": (0x0A, 16, 0),
    "CACHE_LINE_SIZE": (0x0C, 8, 0),
    "LATENCY_TIMER": (0x0D, 8, 0),
    "HEADER_TYPE": (0x0E, 8, 0),
    "BIST": (0x0F, 8, 0),
    "BASE_ADDRESS_0": (0x10, 32, NORMAL | BRIDGE),
    "BASE_ADDRESS_1": (0x14, 32, NORMAL | BRIDGE),
    "BASE_ADDRESS_2": (0x18, 32, NORMAL),
    "BASE_ADDRESS_3": (0x1C, 32, NORMAL),
    "BASE_ADDRESS_4": (0x20, 32, NORMAL),
    "BASE_ADDRESS_5": (0x24, 32, NORMAL),
    "CARDBUS_CIS": (0x28, 32, NORMAL),
    "SUBSYSTEM_VENDOR_ID": (0x2C, 16, NORMAL),
    "SUBSYSTEM_ID": (0x2E, 16, NORMAL),
    "ROM_ADDRESS": (0x30, 32, NORMAL),
    "CAPABILITIES": (0x34, 8, NORMAL | BRIDGE),
    "INTERRUPT_LINE": (0x3C, 8, NORMAL | BRIDGE),
    "INTERRUPT_PIN": (0x3D, 8, NORMAL | BRIDGE),
    "MIN_GNT": (0x3E, 8, NORMAL),
    "MAX_LAT": (0x3F, 8, NORMAL),
    "PRIMARY_BUS": (0x18, 8, BRIDGE),
    "SECONDARY_BUS": (0x19, 8, BRIDGE),
    "SUBORDINATE_BUS": (0x1A, 8, BRIDGE),
    "SEC_LATENCY_TIMER": (0x1B, 8, BRIDGE),
    "IO_BASE": (0x1C, 8, BRIDGE),
    "IO_LIMIT": (0x1D, 8, BRIDGE),
    "SEC_STATUS": (0x1E, 16, BRIDGE),
    "MEMORY_BASE": (0x20, 16, BRIDGE),
    "MEMORY_LIMIT": (0x22, 16, BRIDGE),
    "PREF_MEMORY_BASE": (0x24, 16, BRIDGE),
    "PREF_MEMORY_LIMIT": (0x26, 16, BRIDGE),
    "PREF_BASE_UPPER32": (0x28, 32, BRIDGE),
    "PREF_LIMIT_UPPER32": (0x2C, 32, BRIDGE),
    "IO_BASE_UPPER16": (0x30, 16, BRIDGE),
    "IO_LIMIT_UPPER16": (0x32, 16, BRIDGE),
    "BRIDGE_ROM_ADDRESS": (0x38, 32, BRIDGE),
    "BRIDGE_CONTROL": (0x3E, 16, BRIDGE),
    "CB_CARDBUS_BASE": (0x10, 32, CARDBUS),
    "CB_CAPABILITIES": (0x14, 16, CARDBUS),
    "CB_SEC_STATUS": (0x16, 16, CARDBUS),
    "CB_BUS_NUMBER": (0x18, 8, CARDBUS),
    "CB_CARDBUS_NUMBER": (0x19, 8, CARDBUS),
    "CB_SUBORDINATE_BUS": (0x1A, 8, CARDBUS),
    "CB_CARDBUS_LATENCY": (0x1B, 8, CARDBUS),
    "CB_MEMORY_BASE_0": (0x1C, 32, CARDBUS),
    "CB_MEMORY_LIMIT_0": (0x20, 32, CARDBUS),
    "CB_MEMORY_BASE_1": (0x24, 32, CARDBUS),
    "CB_MEMORY_LIMIT_1": (0x28, 32, CARDBUS),
    "CB_IO_BASE_0": (0x2C, 16, CARDBUS),
    "CB_IO_BASE_0_HI": (0x2E, 16, CARDBUS),
    "CB_IO_LIMIT_0": (0x30, 16, CARDBUS),
    "CB_IO_LIMIT_0_HI": (0x32, 16, CARDBUS),
    "CB_IO_BASE_1": (0x34, 16, CARDBUS),
    "CB_IO_BASE_1_HI": (0x36, 16, CARDBUS),
    "CB_IO_LIMIT_1": (0x38, 16, CARDBUS),
    "CB_IO_LIMIT_1_HI": (0x3A, 16, CARDBUS),
    "CB_SUBSYSTEM_VENDOR_ID": (0x40, 16, CARDBUS),
    "CB_SUBSYSTEM_ID": (0x42, 16, CARDBUS),
    "CB_LEGACY_MODE_BASE": (0x44, 32, CARDBUS),
}
ALIASES = {"CAPABILITY_LIST": "CAPABILITIES"}  # the kernel's PCI_CAPABILITY_LIST

# capability IDs by setpci's names (PCI Code and ID Assignment)
CAPS = {
    "PM": 0x01, "AGP": 0x02, "VPD": 0x03, "SLOTID": 0x04, "MSI": 0x05, "CHSWP": 0x06, "PCIX": 0x07,
    "HT": 0x08, "VNDR": 0x09, "DBG": 0x0A, "CCRC": 0x0B, "HOTPLUG": 0x0C, "SSVID": 0x0D, "AGP3": 0x0E,
    "SECURE": 0x0F, "EXP": 0x10, "MSIX": 0x11, "SATA": 0x12, "AF": 0x13, "EA": 0x14,
}  # fmt: skip
ECAPS = {
    "AER": 0x01, "VC": 0x02, "DSN": 0x03, "PB": 0x04, "RCLINK": 0x05, "RCILINK": 0x06, "RCEC": 0x07,
    "MFVC": 0x08, "VC2": 0x09, "RBCB": 0x0A, "VNDR": 0x0B, "ACS": 0x0D, "ARI": 0x0E, "ATS": 0x0F,
    "SRIOV": 0x10, "MRIOV": 0x11, "MCAST": 0x12, "PRI": 0x13, "REBAR": 0x15, "DPA": 0x16, "TPH": 0x17,
    "LTR": 0x18, "SECPCI": 0x19, "PMUX": 0x1A, "PASID": 0x1B, "LNR": 0x1C, "DPC": 0x1D, "L1PM": 0x1E,
    "PTM": 0x1F, "M_PCIE": 0x20, "FRS": 0x21, "RTR": 0x22, "DVSEC": 0x23, "VF_REBAR": 0x24, "DLNK": 0x25,
    "16GT": 0x26, "LMR": 0x27, "HIER_ID": 0x28, "NPEM": 0x29, "32GT": 0x2A, "IDE": 0x30, "64GT": 0x31,
}  # fmt: skip


class Register(Record):
    """A parsed register: ``cap`` ("CAP_EXP"...) or None, ``offset`` from the start of config
    space (no cap) or of the capability, ``width`` in bits or None (none given or named);
    ``setpci_form``: a name, a +OFFSET or a .WIDTH was given (setpci's syntax)."""

    __slots__ = ("text", "offset", "width", "cap", "cap_id", "extended", "header_mask", "setpci_form", "instance")
    _defaults = {"cap": None, "cap_id": None, "extended": False, "header_mask": 0, "setpci_form": False, "instance": 0}
    _frozen = True


def _number(text: str, whole: str, what: str) -> int:
    t = text.strip()
    if t.isascii() and t.isdigit() and int(t, 16) != int(t):
        raise UsageError(
            f"{what} {t!r} in {whole!r} is ambiguous: setpci reads it as hex (0x{t}), pyphys as decimal ({int(t)})",
            f"write 0x{t} or {int(t)}",
        )
    if t.isascii() and t.isdigit():  # one significant digit: 04 is 4 to setpci and to pyphys
        return int(t)
    return parse_number(t, f"{what} in {whole!r}" if t != whole else what)


def _numbered_cap(name: str, whole: str) -> tuple[int, bool] | None:
    """setpci's ``CAPxx`` / ``ECAPxxx`` (``name`` upper-cased): (capability ID, extended), or None
    when ``name`` is not of that form. The digits are hex, as setpci's parse_x32() reads them."""
    for prefix, limit, extended in (("ECAP", 0x1000, True), ("CAP", 0x100, False)):
        digits = name[len(prefix) :]
        if not name.startswith(prefix) or digits.startswith("_"):
            continue
        digits = digits[2:] if digits.startswith("0X") else digits
        try:  # isalnum(): no sign, space or underscore, which int() would take
            cap_id = int(digits, 16) if digits.isascii() and digits.isalnum() else None
        except ValueError:
            cap_id = None
        if cap_id is None:
            return None
        if cap_id >= limit:
            kind = "extended capability IDs (ECAPxxx)" if extended else "capability IDs (CAPxx)"
            raise UsageError(
                f"register {whole!r}: capability ID {cap_id:#x} is too big: {kind} are below {limit:#x}",
                "the digits after CAP/ECAP are hex" + ("" if extended else "; an extended capability is ECAPxxx"),
            )
        return cap_id, extended
    return None


def parse_register(text: str) -> Register:
    """``BASE[+OFFSET][.b|.w|.l][@N]``; UsageError for anything else (nothing is read yet)."""
    whole = text.strip()
    # setpci splits at the first '@': all after it is the instance number
    spec, at, number = whole.partition("@")
    if at and not number.strip():
        raise UsageError(f"register {whole!r}: @ needs an instance number (@0 is the first capability of that ID)")
    instance = _number(number, whole, "capability instance") if at else 0
    body, width = spec, None
    head, dot, tail = spec.rpartition(".")
    if dot and tail.lower() in SETPCI_WIDTHS:
        body, width = head, SETPCI_WIDTHS[tail.lower()]
    elif dot and head:
        raise UsageError(f"register {whole!r}: width {'.' + tail!r} is not setpci's .b (8), .w (16) or .l (32)")
    base, plus, rest = body.partition("+")
    extra = _number(rest, whole, "offset") if plus else 0
    name = base.strip().upper()
    name = ALIASES.get(name, name)
    setpci_form = bool(plus or dot)
    if name in REGISTERS:
        off, natural, mask = REGISTERS[name]
        if plus or at:
            what = "+OFFSET" if plus else "@N"
            raise UsageError(f"register {whole!r}: {what} goes after a capability (CAP_xxx, ECAP_xxx), not {name}")
        return Register(whole, off, width or natural, header_mask=mask, setpci_form=True)
    numbered = _numbered_cap(name, whole)
    if numbered is not None:
        cap_id, extended = numbered
        if width is None:
            raise UsageError(
                f"register {whole!r}: a capability by number has no natural width (setpci's 'Missing width')",
                f"give one: {base.strip()}{'+' + rest.strip() if plus else ''}.w (or .b, .l)",
            )
        named = [k for k, v in (ECAPS if extended else CAPS).items() if v == cap_id]
        label = f"{name} ({'ECAP_' if extended else 'CAP_'}{named[0]})" if named else name
        return Register(whole, extra, width, label, cap_id, extended, setpci_form=True, instance=instance)
    for prefix, table, extended in (("ECAP_", ECAPS, True), ("CAP_", CAPS, False)):
        if name.startswith(prefix):
            cap_id = table.get(name[len(prefix) :])
            if cap_id is None:
                known = ", ".join(prefix + k for k in table)
                raise UsageError(f"unknown capability {base.strip()!r}", f"setpci's names: {known}")
            return Register(whole, extra, width, name, cap_id, extended, setpci_form=True, instance=instance)
    if base[:1].isalpha() and not base.lower().startswith("0x"):
        raise UsageError(
            f"unknown register {base.strip()!r}",
            "setpci's names (COMMAND, STATUS, BASE_ADDRESS_0 ...), CAP_xxx, ECAP_xxx, "
            "CAPxx or ECAPxxx (hex IDs), or an offset",
        )
    if at:
        raise UsageError(f"register {whole!r}: @N selects an instance of a capability (CAP_xxx@1), not of an offset")
    if setpci_form:
        return Register(whole, _number(base, whole, "offset") + extra, width, setpci_form=True)
    return Register(whole, parse_number(base, "offset"), width)


def locate(reg: Register, config: bytes) -> int:
    """The register's offset in config space (``config``: the bytes read from the device).

    A capability is looked up by walking the device's list; NotFoundError when it has none.
    A named register of another header type is a UsageError."""
    from pyphys import pci_config
    from pyphys.layouts import pci as L

    htype = config[L.PCI_HEADER_TYPE] & L.PCI_HEADER_TYPE_MASK if len(config) > L.PCI_HEADER_TYPE else 0
    if reg.header_mask and not (reg.header_mask >> htype) & 1:
        kind = HEADER_NAMES.get(htype, f"type {htype}")
        raise UsageError(f"register {reg.text!r} is not in this device's header ({kind}, header type {htype})")
    if reg.cap is None:
        return reg.offset
    if reg.extended:
        caps, _ = pci_config.walk_ext_capabilities(config)
    else:
        status = int.from_bytes(config[6:8], "little") if len(config) >= 8 else 0
        first = L.PCI_CB_CAPABILITY_LIST if htype == L.PCI_HEADER_TYPE_CARDBUS else L.PCI_CAPABILITY_LIST
        caps = pci_config.walk_capabilities(config, first)[0] if status & L.PCI_STATUS_CAP_LIST else ()
    found = [cap for cap in caps if cap.cap_id == reg.cap_id]
    if reg.instance < len(found):
        return found[reg.instance].offset + reg.offset
    hint = None
    if reg.extended and len(config) <= L.PCI_CFG_SPACE_SIZE:
        hint = f"only {len(config)} bytes of config space are readable: the extended list starts at 0x100"
    if not found:
        raise NotFoundError(f"device has no {reg.cap} capability", hint)
    raise NotFoundError(
        f"device has no {reg.cap} capability @{reg.instance}: it has {len(found)}",
        f"instances count from 0: @0 to @{len(found) - 1}" + (f"; {hint}" if hint else ""),
    )


def parse_masked_value(text: str, width: int, setpci: bool = False) -> tuple[int, int]:
    """setpci's ``VALUE`` or ``VALUE:MASK`` for a ``width``-bit register -> (value, mask); a plain
    VALUE has the full mask. As setpci, bits of VALUE outside MASK are dropped (value &= mask).
    ``setpci``: the register was written in setpci's form, so a bare number that setpci would
    read as hex and pyphys as decimal (``COMMAND=10``) is refused with both readings.
    UsageError for an empty side, a number that is not one, or anything wider than ``width``."""
    full = (1 << width) - 1
    value_text, colon, mask_text = text.partition(":")
    if colon and (not value_text.strip() or not mask_text.strip()):
        raise UsageError(f"value {text!r}: VALUE:MASK needs both (e.g. 0x4:0x4 sets bit 2 alone)")
    number = (lambda t, what: _number(t, text, what)) if setpci else parse_number
    value = number(value_text, "value")
    if value >> width:
        raise UsageError(f"value {value_text!r} is too wide for a {width}-bit write")
    if not colon:
        return value, full
    mask = number(mask_text, "mask")
    if mask >> width:
        raise UsageError(f"mask {mask_text!r} is too wide for a {width}-bit register")
    return value & mask, mask


def parse_values(text: str, width: int, setpci: bool = False) -> list[tuple[int, int]]:
    """setpci's ``V1[:M1],V2[:M2],...`` for consecutive ``width``-bit registers -> [(value, mask)],
    each as :func:`parse_masked_value`; one value is a list of one. UsageError for an empty
    element (``1,,2``, a trailing comma) naming its position, and for any bad element."""
    items = text.split(",")
    for i, item in enumerate(items):
        if not item.strip():
            where = "the element after the last comma" if i == len(items) - 1 and i else f"element {i + 1}"
            raise UsageError(
                f"value list {text!r}: {where} is empty",
                "setpci's VALUE,VALUE,... writes one register per value: give each one",
            )
    return [parse_masked_value(item, width, setpci) for item in items]
