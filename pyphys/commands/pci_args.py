"""Arguments shared by the ``pyphys pci`` actions: device selection, widths, BAR indexes."""

from __future__ import annotations

from pyphys.dialect import parse_number
from pyphys.errors import UsageError

WIDTH_WORDS = {
    "8": 8,
    "16": 16,
    "32": 32,
    "64": 64,
    "u8": 8,
    "u16": 16,
    "u32": 32,
    "u64": 64,
    "b": 8,
    "h": 16,
    "w": 32,
    "l": 32,
    "q": 64,
}


def add_selection(q) -> None:
    """The device-selection options every action takes (lspci's -s and -d, and ID options)."""
    g = q.add_argument_group("device selection (as lspci's -s and -d)")
    g.add_argument("-s", dest="slot", metavar="[[DOMAIN:]BUS:]SLOT[.FUNC]", help="lspci's -s: e.g. 00:04.0, 04, 01:")
    g.add_argument("-d", dest="ids", metavar="[VENDOR]:[DEVICE][:CLASS]", help="lspci's -d: e.g. 1af4:1110, 1af4:")
    g.add_argument("-V", "--vendor", dest="vendor_id", metavar="ID", help="vendor ID, e.g. 0x1af4")
    g.add_argument("-D", "--device", dest="device_id", metavar="ID", help="device ID, e.g. 0x1110")
    g.add_argument("--subsystem-vendor", dest="subsystem_vendor_id", metavar="ID", help="subsystem vendor ID")
    g.add_argument("--subsystem-device", dest="subsystem_device_id", metavar="ID", help="subsystem device ID")


def id_flag(text, what: str):
    if text is None:
        return None
    return parse_number(text if text.lower().startswith(("0x", "0b", "0o")) else "0x" + text, what, maximum=0xFFFF)


def selector(args, device_text):
    from pyphys import pci_select

    return pci_select.parse_selector(
        device_text,
        slot=args.slot,
        ids=args.ids,
        vendor=id_flag(args.vendor_id, "vendor ID (-V)"),
        device=id_flag(args.device_id, "device ID (-D)"),
        subsystem_vendor=id_flag(args.subsystem_vendor_id, "subsystem vendor ID (--subsystem-vendor)"),
        subsystem_device=id_flag(args.subsystem_device_id, "subsystem device ID (--subsystem-device)"),
    )


def has_id_flags(args) -> bool:
    return any(
        getattr(args, k) is not None
        for k in ("slot", "ids", "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id")
    )


def split_device(args, positional: list[str]) -> tuple[str | None, list[str]]:
    """DEVICE is the first positional when it looks like one (has ':' or '.'); BARs and offsets never do."""
    if positional and (":" in positional[0] or "." in positional[0]):
        return positional[0], positional[1:]
    if not has_id_flags(args):
        from pyphys.pci_select import HOW_TO_NAME

        raise UsageError(HOW_TO_NAME)
    return None, positional


def pick(args, device_text):
    from pyphys import pci_select

    return pci_select.select_device(selector(args, device_text))


def parse_width(text: str) -> int:
    """8/16/32/64 (or u8..u64, b/h/w/q); UsageError otherwise."""
    width = WIDTH_WORDS.get(text.strip().lower())
    if width is None:
        raise UsageError(f"width {text!r} is not one of 8, 16, 32, 64 (bits; u8..u64 also accepted)")
    return width


def bar_index(text: str) -> int:
    return parse_number(text, "BAR index", maximum=5)
