"""``pyphys pci show``: one device the way ``lspci -nn -v``/``-vv`` prints it, as data.

:func:`show` reads as much config space as the kernel allows, decodes it
(:mod:`pyphys.pci_config`, :mod:`pyphys.pci_caps`), joins the BARs' sizes from sysfs
``resource`` (lspci takes them from there too), and returns the report's lines, the notes
about what could not be read, and the JSON form. Line formats follow pciutils' lspci.c
(show_verbose(), show_bases()) and ls-caps.c.
"""

from __future__ import annotations

from pyphys.dialect import fmt_size
from pyphys.errors import NO_ADMIN, root_hint
from pyphys.layouts import pci as L
from pyphys.pci_access import ConfigSpace
from pyphys.pci_config import ConfigHeader, decode_config
from pyphys.pci_devices import PciDevice
from pyphys.pci_ids import class_name, device_names, vendor_name
from pyphys.record import Record

STATUS_FLAGS = (
    ("Cap", 0x10),
    ("66MHz", 0x20),
    ("UDF", 0x40),
    ("FastB2B", 0x80),
    ("ParErr", 0x100),
)
STATUS_ERRORS = (
    (">TAbort", 0x800),
    ("<TAbort", 0x1000),
    ("<MAbort", 0x2000),
    (">SERR", 0x4000),
    ("<PERR", 0x8000),
    ("INTx", 0x8),
)


class ShowReport(Record):
    """The lines of the report (stdout), notes on what is missing (stderr), and its JSON form."""

    __slots__ = ("lines", "notes", "header", "config_size", "readable", "device")
    _frozen = True

    lines: tuple[str, ...]
    notes: tuple[str, ...]
    header: ConfigHeader
    config_size: int
    readable: int
    device: PciDevice

    def to_json(self) -> dict:
        sizes = {b.index: b for b in self.device.bars}
        bars = []
        for reg in self.header.bars:
            bar = sizes.get(reg.index)
            bars.append(
                {**reg.to_json(), "start": f"{bar.start:#x}" if bar else None, "size": bar.size if bar else None}
            )
        return {
            **self.device.to_json(),
            "config_size": self.config_size,
            "readable": self.readable,
            "config": {**self.header.to_json(), "bars": bars},
            "notes": list(self.notes),
        }


def _flags(value: int, bits: tuple[tuple[str, int], ...]) -> str:
    return " ".join(f"{name}{'+' if value & bit else '-'}" for name, bit in bits)


def _title(dev: PciDevice, hdr: ConfigHeader) -> str:
    vname, dname = device_names(dev)
    names = " ".join(n for n in (vname, dname) if n)
    ident = f"{names} [{hdr.vendor:04x}:{hdr.device:04x}]" if names else f"Device [{hdr.vendor:04x}:{hdr.device:04x}]"
    text = f"{dev.short_address} {class_name(hdr.class_code)} [{hdr.class_code >> 8:04x}]: {ident}"
    if hdr.revision:
        text += f" (rev {hdr.revision:02x})"
    if hdr.class_code & 0xFF:
        text += f" (prog-if {hdr.class_code & 0xFF:02x})"
    return text


def _regions(dev: PciDevice, hdr: ConfigHeader) -> list[str]:
    sizes = {b.index: b for b in dev.bars}
    lines = []
    for reg in hdr.bars:
        bar = sizes.get(reg.index)
        start = bar.start if bar else reg.address
        if reg.kind == "io":
            text = f"Region {reg.index}: I/O ports at {start:04x}"
            off = not hdr.command & L.PCI_COMMAND_IO
        else:
            width = "64-bit" if reg.is_64bit else "32-bit"
            pref = "prefetchable" if reg.prefetchable else "non-prefetchable"
            text = f"Region {reg.index}: Memory at {start:08x} ({width}, {pref})"
            off = not hdr.command & L.PCI_COMMAND_MEMORY
        if off:
            text += " [disabled]"
        if bar:
            text += f" [size={fmt_size(bar.size, exact=True)}]"
        lines.append(text)
    if hdr.rom_address:
        enabled = hdr.rom_address & L.PCI_ROM_ADDRESS_ENABLE
        addr = hdr.rom_address & L.PCI_ROM_ADDRESS_MASK & 0xFFFFFFFF
        lines.append(f"Expansion ROM at {addr:08x}" + ("" if enabled else " [disabled]"))
    return lines


def _verbose_header(dev: PciDevice, hdr: ConfigHeader, verbose: int) -> list[str]:
    lines = []
    if hdr.subsystem_vendor is not None and (hdr.subsystem_vendor or hdr.subsystem_device):
        vname = vendor_name(hdr.subsystem_vendor)
        ids = f"Device [{hdr.subsystem_vendor:04x}:{hdr.subsystem_device:04x}]"
        lines.append(f"Subsystem: {vname} {ids}" if vname else f"Subsystem: {ids}")
    irq = dev.irq if dev.irq else hdr.interrupt_line
    if verbose == 1:
        flags = []
        if hdr.command & 0x4:
            flags.append("bus master")
        flags.append(f"{L.DEVSEL_NAMES[hdr.status & L.PCI_STATUS_DEVSEL_MASK]} devsel")
        flags.append(f"latency {hdr.latency_timer}")
        if hdr.interrupt_pin:
            flags.append(f"IRQ {irq}")
        lines.append("Flags: " + ", ".join(flags))
    else:
        lines.append("Control: " + _flags(hdr.command, tuple((name, bit) for bit, name, _json in L.COMMAND_BITS)))
        devsel = L.DEVSEL_NAMES[hdr.status & L.PCI_STATUS_DEVSEL_MASK]
        lines.append(f"Status: {_flags(hdr.status, STATUS_FLAGS)} DEVSEL={devsel} {_flags(hdr.status, STATUS_ERRORS)}")
        if hdr.command & 0x4:
            cache = f", Cache Line Size: {hdr.cache_line_size * 4} bytes" if hdr.cache_line_size else ""
            lines.append(f"Latency: {hdr.latency_timer}{cache}")
        if hdr.interrupt_pin:
            pin = "ABCD"[hdr.interrupt_pin - 1] if hdr.interrupt_pin <= 4 else "?"
            lines.append(f"Interrupt: pin {pin} routed to IRQ {irq}")
    if hdr.bridge_buses:
        p, s, sub = hdr.bridge_buses
        lines.append(
            f"Bus: primary={p:02x}, secondary={s:02x}, subordinate={sub:02x}, "
            f"sec-latency={hdr.registers.get('secondary_latency_timer', 0)}"
        )
    return lines


def show(dev: PciDevice, verbose: int = 0) -> ShowReport:
    """The report for ``dev`` at lspci's verbosity ``verbose`` (0, 1 = -v, 2 = -vv and more).

    Raises what reading config space raises (NotFoundError, PermissionDeniedError...).
    """
    with ConfigSpace(dev) as cfg:
        size = cfg.size
        data = cfg.read_all()
    hdr = decode_config(data)
    notes = list(hdr.notes)
    if len(data) < size:
        missing = "the capability lists" if len(data) <= L.PCI_CAP_FIRST_OFFSET else "the rest"
        notes.insert(
            0,
            f"only {len(data)} of {size} bytes of {dev.short_address}'s config space are readable "
            f"({len(data):#x}-{size - 1:#x} missing: {missing}); reading past the 64-byte header needs "
            "CAP_SYS_ADMIN: " + root_hint(NO_ADMIN, "run as root"),
        )
    lines = [_title(dev, hdr)]
    if verbose >= 1:
        lines += ["\t" + line for line in _verbose_header(dev, hdr, verbose)]
        lines += ["\t" + line for line in _regions(dev, hdr)]
        for cap in hdr.capabilities:
            where = f"{cap.offset:03x} v{cap.version}" if cap.extended else f"{cap.offset:02x}"
            summary = cap.summary or cap.name
            if verbose < 2 and cap.cap_id == L.PCI_CAP_ID_EXP and not cap.extended:
                summary = summary.replace(f"(v{cap.fields.get('flags', 0) & 0xF}) ", "", 1)  # as lspci -v
            lines.append(f"\tCapabilities: [{where}] {summary}")
            if verbose >= 2:
                lines += ["\t\t" + d for d in cap.details]
        if len(data) < size and len(data) <= L.PCI_CAP_FIRST_OFFSET and hdr.status & L.PCI_STATUS_CAP_LIST:
            lines.append("\tCapabilities: <access denied>")
        if dev.driver:
            lines.append(f"\tKernel driver in use: {dev.driver}")
    return ShowReport(tuple(lines), tuple(notes), hdr, size, len(data), dev)
