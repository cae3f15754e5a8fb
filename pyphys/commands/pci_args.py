"""Arguments shared by the ``pyphys pci`` actions: device selection, widths (setpci's letters), BAR indexes."""

from __future__ import annotations

from pyphys.dialect import SETPCI_WIDTHS, parse_number, parse_width
from pyphys.errors import UsageError


def add_selection(q) -> None:
    """The device-selection options every action takes (lspci's -s and -d, and ID options)."""
    g = q.add_argument_group("device selection (as lspci's -s and -d)")
    g.add_argument("-s", dest="slot", metavar="[[DOMAIN:]BUS:]SLOT[.FUNC]", help="lspci's -s: e.g. 00:04.0, 04, 01:")
    g.add_argument(
        "-d",
        dest="ids",
        metavar="[VENDOR]:[DEVICE][:CLASS[:PROGIF]]",
        help="lspci's -d, hexadecimal, an empty part or * for any: 1af4:1110, 1af4: (any device of "
        "the vendor), ::0200 (a class), ::06xx (x: any digit)",
    )
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


def bar_index(text: str) -> int:
    return parse_number(text, "BAR index", maximum=5)


def pci_width(text: str | None, default: int = 32) -> int:
    """A width as setpci spells it: 8/16/32/64 bits, or b=8, w=16, l=32."""
    return parse_width(text, SETPCI_WIDTHS, default)
