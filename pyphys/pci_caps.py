"""Capabilities decoded the way ``lspci -vv`` prints them (pciutils ls-caps.c, ls-ecaps.c).

:func:`describe` fills a :class:`~pyphys.pci_config.Capability` with ``summary`` (lspci's text
after ``Capabilities: [OFF]``), ``details`` (its ``-vv`` lines), ``fields`` (the registers by
the names of their layout in :mod:`pyphys.layouts.pci`) and, for a vendor-specific capability,
its ``raw`` bytes. Decoded here: Power Management, MSI, MSI-X, PCI Express (device, link, slot,
root port), subsystem IDs and vendor-specific; every other capability is named only.
Register bits below are include/uapi/linux/pci_regs.h's, as lspci prints them.
"""

from __future__ import annotations

from pyphys import TYPE_CHECKING
from pyphys.layouts import pci as L

if TYPE_CHECKING:
    from pyphys.pci_config import Capability

PM_AUX_CURRENT = (0, 55, 100, 160, 220, 270, 320, 375)  # mA, PCI_PM_CAP_AUX_POWER (bits 6-8)
L0S_LATENCY = ("<64ns", "<128ns", "<256ns", "<512ns", "<1us", "<2us", "<4us", "unlimited")
L1_LATENCY = ("<1us", "<2us", "<4us", "<8us", "<16us", "<32us", "<64us", "unlimited")
ASPM_SUPPORT = ("not supported", "L0s", "L1", "L0s L1")
ASPM_ENABLED = ("Disabled", "L0s Enabled", "L1 Enabled", "L0s L1 Enabled")
INDICATOR = ("Unknown", "On", "Blink", "Off")
POWER_SCALE = (1.0, 0.1, 0.01, 0.001)


def _flags(value: int, bits: tuple[tuple[str, int], ...]) -> str:
    """``Name+``/``Name-`` for each bit, as lspci's FLAG()."""
    return " ".join(f"{name}{'+' if value & bit else '-'}" for name, bit in bits)


def _hexbytes(data: bytes) -> list[str]:
    return [" ".join(f"{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)]


# -- Power Management (ls-caps.c cap_pm) ---------------------------------------------------------
def _pm(data: bytes, cap: Capability, regs: dict) -> tuple[str, list[str]]:
    pmc = regs["pmc"]
    summary = f"Power Management version {pmc & 0x7}"
    lines = [
        "Flags: "
        + _flags(pmc, (("PMEClk", 0x8), ("DSI", 0x20), ("D1", 0x200), ("D2", 0x400)))
        + f" AuxCurrent={PM_AUX_CURRENT[(pmc >> 6) & 7]}mA PME("
        + ",".join(
            f"{n}{'+' if pmc & b else '-'}"
            for n, b in (("D0", 0x800), ("D1", 0x1000), ("D2", 0x2000), ("D3hot", 0x4000), ("D3cold", 0x8000))
        )
        + ")"
    ]
    if "ctrl" in regs:
        t = regs["ctrl"]
        lines.append(
            f"Status: D{t & 3} NoSoftRst{'+' if t & 8 else '-'} PME-Enable{'+' if t & 0x100 else '-'} "
            f"DSel={(t >> 9) & 0xF} DScale={(t >> 13) & 3} PME{'+' if t & 0x8000 else '-'}"
        )
    return summary, lines


# -- MSI (cap_msi) ----------------------------------------------------------------------------------
def _msi(data: bytes, cap: Capability, regs: dict) -> tuple[str, list[str], dict]:
    flags = regs["flags"]
    is64 = bool(flags & L.PCI_MSI_FLAGS_64BIT)
    regs = (L.CAP_MSI64 if is64 else L.CAP_MSI32).decode(data, cap.offset)
    summary = (
        f"MSI: Enable{'+' if flags & 1 else '-'} Count={1 << ((flags >> 4) & 7)}/{1 << ((flags >> 1) & 7)} "
        f"Maskable{'+' if flags & L.PCI_MSI_FLAGS_MASK_BIT else '-'} 64bit{'+' if is64 else '-'}"
    )
    lines = []
    if "data" in regs:
        hi = f"{regs['address_hi']:08x}" if is64 else ""
        lines.append(f"Address: {hi}{regs['address_lo']:08x}  Data: {regs['data']:04x}")
    if flags & L.PCI_MSI_FLAGS_MASK_BIT and "pending" in regs:
        lines.append(f"Masking: {regs['mask']:08x}  Pending: {regs['pending']:08x}")
    if not flags & L.PCI_MSI_FLAGS_MASK_BIT:
        regs.pop("mask", None)
        regs.pop("pending", None)
    return summary, lines, regs


# -- MSI-X (cap_msix) -------------------------------------------------------------------------------
def _msix(data: bytes, cap: Capability, regs: dict) -> tuple[str, list[str]]:
    flags = regs["flags"]
    regs["table_size"] = (flags & L.PCI_MSIX_TABSIZE) + 1
    summary = (
        f"MSI-X: Enable{'+' if flags & 0x8000 else '-'} Count={regs['table_size']} "
        f"Masked{'+' if flags & 0x4000 else '-'}"
    )
    lines = []
    for key, label in (("table", "Vector table"), ("pba", "PBA")):
        if key in regs:
            off = regs[key]
            regs[f"{key}_bar"], regs[f"{key}_offset"] = off & L.PCI_MSIX_BIR, off & ~L.PCI_MSIX_BIR
            lines.append(f"{label}: BAR={off & L.PCI_MSIX_BIR} offset={off & ~L.PCI_MSIX_BIR & 0xFFFFFFFF:08x}")
    return summary, lines


# -- PCI Express (cap_express and its helpers) ---------------------------------------------------
def _speed(code: int) -> str:
    return L.LINK_SPEEDS.get(code, "unknown")


def _compare(ptype: int, sta: int, cap: int) -> str:
    """lspci's link_compare() (pciutils 3.8+): nothing when the link runs at what it can, and no
    "downgraded" for the downstream end of a link (a port cannot know what is plugged in)."""
    if sta > cap:
        return " (overdriven)"
    if sta == cap or ptype in L.PCI_EXP_TYPES_WITH_SLOT:
        return ""
    return " (downgraded)"


def _power(value: int, scale: int) -> str:
    return f"{value * POWER_SCALE[scale]:.3f}W"


def _express(data: bytes, cap: Capability, regs: dict) -> tuple[str, list[str]]:
    flags = regs["flags"]
    ptype = (flags >> 4) & 0xF
    name = L.PCI_EXP_TYPE_NAMES.get(ptype, f"Unknown type {ptype}")
    slot = ptype in L.PCI_EXP_TYPES_WITH_SLOT and bool(flags & L.PCI_EXP_FLAGS_SLOT)
    if ptype in L.PCI_EXP_TYPES_WITH_SLOT:
        name += f" (Slot{'+' if flags & L.PCI_EXP_FLAGS_SLOT else '-'})"
    summary = f"Express (v{flags & 0xF}) {name}, MSI {(flags >> 9) & 0x1F:02x}"
    regs["port_type"] = ptype
    lines: list[str] = []
    endpoint = ptype in (0x0, 0x1)
    if "devsta" in regs:
        t = regs["devcap"]
        line = f"DevCap:\tMaxPayload {128 << (t & 7)} bytes, PhantFunc {(1 << ((t >> 3) & 3)) - 1}"
        if endpoint:
            line += f", Latency L0s {L0S_LATENCY[(t >> 6) & 7]}, L1 {L1_LATENCY[(t >> 9) & 7]}"
        lines.append(line)
        extra = f"ExtTag{'+' if t & 0x20 else '-'}"
        if endpoint or ptype in (0x5, 0x7):
            extra += " " + _flags(t, (("AttnBtn", 0x1000), ("AttnInd", 0x2000), ("PwrInd", 0x4000)))
        extra += f" RBE{'+' if t & 0x8000 else '-'}"
        if endpoint:
            extra += f" FLReset{'+' if t & 0x10000000 else '-'}"
        if ptype in (0x0, 0x5, 0x7):
            extra += f" SlotPowerLimit {_power((t >> 18) & 0xFF, (t >> 26) & 3)}"
        lines.append("\t" + extra)
        w = regs["devctl"]
        lines.append("DevCtl:\t" + _flags(w, (("CorrErr", 1), ("NonFatalErr", 2), ("FatalErr", 4), ("UnsupReq", 8))))
        lines.append(
            "\t"
            + _flags(
                w, (("RlxdOrd", 0x10), ("ExtTag", 0x100), ("PhantFunc", 0x200), ("AuxPwr", 0x400), ("NoSnoop", 0x800))
            )
        )
        lines.append(f"\tMaxPayload {128 << ((w >> 5) & 7)} bytes, MaxReadReq {128 << ((w >> 12) & 7)} bytes")
        lines.append(
            "DevSta:\t"
            + _flags(
                regs["devsta"],
                (("CorrErr", 1), ("NonFatalErr", 2), ("FatalErr", 4), ("UnsupReq", 8), ("AuxPwr", 0x10))
                + (("TransPend", 0x20),),
            )
        )
    if ptype not in L.PCI_EXP_TYPES_WITHOUT_LINK and "lnksta" in regs:
        t = regs["lnkcap"]
        aspm = (t >> 10) & 3
        regs["link_cap_speed"], regs["link_cap_width"] = _speed(t & 0xF), (t >> 4) & 0x3F
        line = (
            f"LnkCap:\tPort #{t >> 24}, Speed {regs['link_cap_speed']}, Width x{regs['link_cap_width']}, "
            f"ASPM {ASPM_SUPPORT[aspm]}"
        )
        if aspm:
            lat = []
            if aspm & 1:
                lat.append(f"L0s {L0S_LATENCY[(t >> 12) & 7]}")
            if aspm & 2:
                lat.append(f"L1 {L1_LATENCY[(t >> 15) & 7]}")
            line += ", Exit Latency " + ", ".join(lat)
        lines.append(line)
        lines.append(
            "\t"
            + _flags(
                t,
                (("ClockPM", 0x40000), ("Surprise", 0x80000), ("LLActRep", 0x100000), ("BwNot", 0x200000))
                + (("ASPMOptComp", 0x400000),),
            )
        )
        w = regs["lnkctl"]
        rcb = f" RCB {128 if w & 8 else 64} bytes" if ptype in (0x4, 0x0, 0x1, 0x7) else ""
        lines.append(f"LnkCtl:\tASPM {ASPM_ENABLED[w & 3]};{rcb} " + _flags(w, (("Disabled", 0x10), ("CommClk", 0x40))))
        lines.append(
            "\t"
            + _flags(
                w,
                (("ExtSynch", 0x80), ("ClockPM", 0x100), ("AutWidDis", 0x200), ("BWInt", 0x400))
                + (("AutBWInt", 0x800),),
            )
        )
        w = regs["lnksta"]
        speed, width = w & 0xF, (w >> 4) & 0x3F
        regs["link_speed"], regs["link_width"] = _speed(speed), width
        lines.append(
            f"LnkSta:\tSpeed {_speed(speed)}{_compare(ptype, speed, t & 0xF)}, "
            f"Width x{width}{_compare(ptype, width, (t >> 4) & 0x3F)}"
        )
        lines.append(
            "\t"
            + _flags(
                w,
                (("TrErr", 0x400), ("Train", 0x800), ("SlotClk", 0x1000), ("DLActive", 0x2000))
                + (("BWMgmt", 0x4000), ("ABWMgmt", 0x8000)),
            )
        )
    if slot and "sltsta" in regs:
        t = regs["sltcap"]
        lines.append(
            "SltCap:\t"
            + _flags(
                t,
                (("AttnBtn", 1), ("PwrCtrl", 2), ("MRL", 4), ("AttnInd", 8), ("PwrInd", 0x10))
                + (("HotPlug", 0x40), ("Surprise", 0x20)),
            )
        )
        lines.append(
            f"\tSlot #{t >> 19}, PowerLimit {_power((t >> 7) & 0xFF, (t >> 15) & 3)}; "
            + _flags(t, (("Interlock", 0x20000), ("NoCompl", 0x40000)))
        )
        w = regs["sltctl"]
        lines.append(
            "SltCtl:\tEnable: "
            + _flags(
                w,
                (("AttnBtn", 1), ("PwrFlt", 2), ("MRL", 4), ("PresDet", 8), ("CmdCplt", 0x10), ("HPIrq", 0x20))
                + (("LinkChg", 0x1000),),
            )
        )
        lines.append(
            f"\tControl: AttnInd {INDICATOR[(w >> 6) & 3]}, PwrInd {INDICATOR[(w >> 8) & 3]}, "
            + _flags(w, (("Power", 0x400), ("Interlock", 0x800)))
        )
        w = regs["sltsta"]
        lines.append(
            "SltSta:\tStatus: "
            + _flags(
                w,
                (("AttnBtn", 1), ("PowerFlt", 2), ("MRL", 0x20), ("CmdCplt", 0x10), ("PresDet", 0x40))
                + (("Interlock", 0x80),),
            )
        )
        lines.append("\tChanged: " + _flags(w, (("MRL", 4), ("PresDet", 8), ("LinkState", 0x100))))
    if ptype == L.PCI_EXP_TYPE_ROOT_PORT and "rtsta" in regs:
        w = regs["rtctl"]
        lines.append(
            "RootCtl: "
            + _flags(
                w,
                (("ErrCorrectable", 1), ("ErrNon-Fatal", 2), ("ErrFatal", 4), ("PMEIntEna", 8))
                + (("CRSVisible", 0x10),),
            )
        )
        lines.append("RootCap: " + _flags(regs["rtcap"], (("CRSVisible", 1),)))
        w = regs["rtsta"]
        lines.append(
            f"RootSta: PME ReqID {w & 0xFFFF:04x}, " + _flags(w, (("PMEStatus", 0x10000), ("PMEPending", 0x20000)))
        )
    return summary, lines


def _vendor(data: bytes, cap: Capability, regs: dict) -> tuple[str, list[str], bytes]:
    length = regs.get("length", 0)
    end = min(cap.offset + max(length, 3), len(data), L.PCI_CFG_SPACE_SIZE)
    raw = bytes(data[cap.offset : end])
    return f"Vendor Specific Information: Len={length:02x} <?>", _hexbytes(raw), raw


def _sata(data: bytes, cap: Capability, regs: dict) -> str:
    """ls-caps.c cap_sata_hba(): revision, then where the index/data pair lives."""
    flags = regs["flags"]
    text = f"SATA HBA v{(flags >> 4) & 0xF}.{flags & 0xF}"
    if cap.offset + 8 <= len(data):
        bars = int.from_bytes(data[cap.offset + 4 : cap.offset + 8], "little")
        bar = bars & 0xF
        regs["bar_location"], regs["bar_offset"] = bar, (bars >> 4) & 0xFFFFF
        if 4 <= bar <= 9:
            text += f" BAR{bar - 4} Offset={(bars >> 4) & 0xFFFFF:08x}"
        elif bar == 15:
            text += " InCfgSpace"
        else:
            text += f" BAR??{bar}"
    return text


def _ext_summary(data: bytes, cap: Capability) -> tuple[str, list[str], dict, bytes]:
    if cap.cap_id == 0x03 and cap.offset + 12 <= len(data):  # Device Serial Number
        lo = int.from_bytes(data[cap.offset + 4 : cap.offset + 8], "little")
        hi = int.from_bytes(data[cap.offset + 8 : cap.offset + 12], "little")
        serial = (hi << 32 | lo).to_bytes(8, "big")
        return "Device Serial Number " + "-".join(f"{b:02x}" for b in serial), [], {"serial": hi << 32 | lo}, b""
    if cap.cap_id == 0x0B and cap.offset + 8 <= len(data):  # vendor-specific extended
        vsec = int.from_bytes(data[cap.offset + 4 : cap.offset + 8], "little")
        vid, rev, length = vsec & 0xFFFF, (vsec >> 16) & 0xF, vsec >> 20
        raw = bytes(data[cap.offset : min(cap.offset + max(length, 8), len(data))])
        summary = f"Vendor Specific Information: ID={vid:04x} Rev={rev} Len={length:03x} <?>"
        return summary, _hexbytes(raw), {"vsec_id": vid, "vsec_rev": rev, "vsec_length": length}, raw
    return L.LSPCI_EXT_CAP_NAMES.get(cap.cap_id, cap.name), [], {}, b""


def describe(data: bytes, cap: Capability, header_type: int) -> Capability:
    """``cap`` with summary, details and fields filled from config bytes ``data`` (what was read)."""
    if cap.extended:
        summary, details, fields, raw = _ext_summary(data, cap)
        return cap.replace(summary=summary, details=tuple(details), fields=fields, raw=raw)
    layout = {
        L.PCI_CAP_ID_PM: L.CAP_PM,
        L.PCI_CAP_ID_MSI: L.CAP_HEADER,
        L.PCI_CAP_ID_MSIX: L.CAP_MSIX,
        L.PCI_CAP_ID_EXP: L.CAP_EXP,
        L.PCI_CAP_ID_VNDR: L.CAP_VNDR,
    }.get(cap.cap_id, L.CAP_HEADER)
    regs = layout.decode(data[: L.PCI_CFG_SPACE_SIZE], cap.offset)
    details: list[str] = []
    raw = b""
    if "flags" not in regs and layout is L.CAP_HEADER:
        summary = cap.name
    elif cap.cap_id == L.PCI_CAP_ID_PM and "pmc" in regs:
        summary, details = _pm(data, cap, regs)
    elif cap.cap_id == L.PCI_CAP_ID_MSI:
        summary, details, regs = _msi(data, cap, regs)
    elif cap.cap_id == L.PCI_CAP_ID_MSIX and "flags" in regs:
        summary, details = _msix(data, cap, regs)
    elif cap.cap_id == L.PCI_CAP_ID_EXP and "flags" in regs:
        summary, details = _express(data, cap, regs)
    elif cap.cap_id == L.PCI_CAP_ID_VNDR:
        summary, details, raw = _vendor(data, cap, regs)
    elif cap.cap_id == L.PCI_CAP_ID_SATA and "flags" in regs:
        summary = _sata(data, cap, regs)
    elif cap.cap_id == L.PCI_CAP_ID_SSVID and cap.offset + 8 <= len(data):
        sv = int.from_bytes(data[cap.offset + 4 : cap.offset + 6], "little")
        sd = int.from_bytes(data[cap.offset + 6 : cap.offset + 8], "little")
        regs.update(subsystem_vendor=sv, subsystem_device=sd)
        summary = f"Subsystem: {sv:04x}:{sd:04x}"
    elif "flags" in regs and cap.cap_id not in L.PCI_CAP_ID_NAMES:
        summary = f"#{cap.cap_id:02x} [{regs['flags']:04x}]"  # lspci's words for one it does not know
    else:
        summary = cap.name
    regs.pop("id", None)
    regs.pop("next", None)
    return cap.replace(summary=summary, details=tuple(details), fields=regs, raw=raw)


# -- JSON (docs/json.md) ---------------------------------------------------------------------------
# the layout whose widths the registers of a capability have (MSI: the 64-bit one, a superset)
_FIELD_LAYOUTS = {
    L.PCI_CAP_ID_PM: L.CAP_PM,
    L.PCI_CAP_ID_MSI: L.CAP_MSI64,
    L.PCI_CAP_ID_MSIX: L.CAP_MSIX,
    L.PCI_CAP_ID_EXP: L.CAP_EXP,
    L.PCI_CAP_ID_VNDR: L.CAP_VNDR,
}
_INTEGER = ("table_size", "table_bar", "pba_bar", "port_type", "link_cap_width", "link_width", "bar_location")
_INTEGER += ("vsec_rev", "vsec_length", "length")  # counts, sizes, indexes, codes
_OFFSETS = ("table_offset", "pba_offset", "bar_offset")
_RENAMED = {  # JSON keys: docs/json.md's names for IDs; `flags` there is a list of names, not a register
    "flags": "flags_register",
    "subsystem_vendor": "subsystem_vendor_id",
    "subsystem_device": "subsystem_device_id",
}
_IDS = ("subsystem_vendor", "subsystem_device", "vsec_id")


def fields_json(cap: Capability) -> dict:
    """A capability's decoded fields in JSON: register values as 0x strings of the register's
    width, IDs as 0x and 4 digits, offsets as 0x strings, counts/sizes/codes integers, speeds text;
    the register the kernel calls ``..._FLAGS`` under ``flags_register``."""
    layout = L.CAP_HEADER if cap.extended else _FIELD_LAYOUTS.get(cap.cap_id, L.CAP_HEADER)
    out: dict = {}
    for key, value in cap.fields.items():
        if isinstance(value, str) or key in _INTEGER:
            form = value
        elif key in _OFFSETS:
            form = f"{value:#x}"
        elif key in _IDS:
            form = f"0x{value:04x}"
        elif key == "serial":
            form = f"0x{value:016x}"
        elif key in layout.names:
            form = f"0x{value:0{2 * layout.width(key)}x}"
        else:
            raise AssertionError(f"capability field {key!r} has no JSON form")
        out[_RENAMED.get(key, key)] = form
    return out
