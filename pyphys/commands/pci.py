"""``pyphys pci``: PCI devices without a driver (list, show, config space, BAR read/write/sizing)."""

from __future__ import annotations

import json
import sys

from pyphys.dialect import parse_number
from pyphys.errors import UsageError

DESCRIPTION = """\
PCI devices without a driver, through the kernel's own files (sysfs, /proc/bus/pci).

  pyphys pci list [DEVICE] [--json]           devices, IDs, driver, BARs (sysfs; /proc/bus/pci fallback)
  pyphys pci show DEVICE [-v|-vv] [--json]    one device as lspci -nn -v/-vv shows it: header, BARs, capabilities
  pyphys pci read  DEVICE BAR OFFSET [WIDTH] [-l LENGTH]
  pyphys pci write DEVICE BAR OFFSET [WIDTH] VALUE
  pyphys pci write DEVICE BAR OFFSET --string 'Dunia,vipi?\\r'
  pyphys pci config DEVICE [OFFSET [WIDTH [VALUE --force]]] [-x]
  pyphys pci bar-size DEVICE BAR [--force]    size a BAR: write all ones, read back, restore (journaled)

DEVICE is an address (0000:00:04.0, 00:04.0) or vendor:device IDs (1af4:1110), or is left out
when options name it as lspci's do: -s [[domain:]bus:]slot.func, -d [vendor]:[device][:class]
(hexadecimal; an empty part or * matches any), or -V vendor, -D device, --subsystem-vendor,
--subsystem-device. WIDTH is 8, 16, 32 or 64 bits (u8..u64 accepted); default 32. Memory BARs are
reached through an mmap of sysfs resourceN (default) or /dev/mem at the BAR address (--via
devmem); I/O-port BARs through read/write of resourceN. Writes are journaled: `pyphys undo`
restores the old bytes.
"""

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


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION, formatter_class=_raw_formatter())
    psub = p.add_subparsers(dest="pci_command", metavar="ACTION")

    def selection(q) -> None:
        g = q.add_argument_group("device selection (as lspci's -s and -d)")
        g.add_argument(
            "-s", dest="slot", metavar="[[DOMAIN:]BUS:]SLOT[.FUNC]", help="lspci's -s: e.g. 00:04.0, 04, 01:"
        )
        g.add_argument("-d", dest="ids", metavar="[VENDOR]:[DEVICE][:CLASS]", help="lspci's -d: e.g. 1af4:1110, 1af4:")
        g.add_argument("-V", "--vendor", dest="vendor_id", metavar="ID", help="vendor ID, e.g. 0x1af4")
        g.add_argument("-D", "--device", dest="device_id", metavar="ID", help="device ID, e.g. 0x1110")
        g.add_argument("--subsystem-vendor", dest="subsystem_vendor_id", metavar="ID", help="subsystem vendor ID")
        g.add_argument("--subsystem-device", dest="subsystem_device_id", metavar="ID", help="subsystem device ID")

    q = psub.add_parser("list", help="list devices with their BARs (like lspci -nn, with a BAR table)")
    q.add_argument("device", nargs="?", metavar="DEVICE", help="only devices matching this address or vendor:device")
    q.add_argument(
        "--source",
        choices=("auto", "sysfs", "procfs"),
        default="auto",
        help="sysfs, or /proc/bus/pci/devices (default: sysfs, procfs if absent)",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    selection(q)
    q.set_defaults(func=run_list)

    q = psub.add_parser("read", help="read a BAR register (or a range, as a hexdump)")
    q.add_argument(
        "args", nargs="+", metavar="ARG", help="DEVICE BAR OFFSET [WIDTH] (options go before or after these)"
    )
    q.add_argument("-l", "--length", metavar="BYTES", help="read this many bytes from OFFSET, shown as a hexdump")
    q.add_argument(
        "--via",
        choices=("resource", "devmem"),
        default="resource",
        help="sysfs resourceN mmap (default) or /dev/mem at the BAR address",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    selection(q)
    q.set_defaults(func=run_read)

    q = psub.add_parser("write", help="write a BAR register, or a byte string, journaled")
    q.add_argument(
        "args",
        nargs="+",
        metavar="ARG",
        help="DEVICE BAR OFFSET [WIDTH] VALUE, or DEVICE BAR OFFSET with --string/--hex",
    )
    data = q.add_mutually_exclusive_group()
    data.add_argument(
        "--string", metavar="TEXT", help=r"write these bytes (C escapes: \r \n \t \0 \\ \xNN) in one call"
    )
    data.add_argument("--hex", metavar="HEX", help="write these bytes, given as hex (spaces allowed)")
    q.add_argument(
        "--via",
        choices=("resource", "devmem"),
        default="resource",
        help="sysfs resourceN mmap (default) or /dev/mem at the BAR address",
    )
    q.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    selection(q)
    q.set_defaults(func=run_write)

    q = psub.add_parser("config", help="decode the config header, or read/write one config register")
    q.add_argument("args", nargs="*", metavar="ARG", help="DEVICE [OFFSET [WIDTH [VALUE]]]")
    q.add_argument("-x", "--hexdump", action="store_true", help="hexdump the readable config space")
    q.add_argument("--force", action="store_true", help="allow a config-space write (can disable the device)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    selection(q)
    q.set_defaults(func=run_config)

    q = psub.add_parser("show", help="one device as lspci -nn -v/-vv shows it: header, BARs, capabilities")
    q.add_argument("device", nargs="?", metavar="DEVICE", help="an address (00:04.0) or vendor:device; or -s/-d")
    q.add_argument("-v", "--verbose", action="count", default=0, help="-v: BARs and capabilities; -vv: decoded")
    q.add_argument("--json", action="store_true", help="machine-readable output (everything -vv decodes)")
    selection(q)
    q.set_defaults(func=run_show)

    q = psub.add_parser("bar-size", help="size a BAR: write all ones, read back, restore (journaled, undoable)")
    q.add_argument("args", nargs="+", metavar="ARG", help="DEVICE BAR (or BAR alone with -s/-d)")
    q.add_argument("--force", action="store_true", help="size it even while the device decodes the BAR's space (risky)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    selection(q)
    q.set_defaults(func=run_bar_size)

    from pyphys.commands import pci_dma

    pci_dma.add_parser(psub)
    p.set_defaults(func=lambda args: _no_action(p))


def _raw_formatter():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _no_action(parser) -> int:
    raise UsageError("name an ACTION: list, show, read, write, config, bar-size or dma (`pyphys pci -h` lists them)")


# ----------------------------------------------------------------------------------------------
# argument helpers
# ----------------------------------------------------------------------------------------------
def _id_flag(text, what: str):
    if text is None:
        return None
    return parse_number(text if text.lower().startswith(("0x", "0b", "0o")) else "0x" + text, what, maximum=0xFFFF)


def _selector(args, device_text):
    from pyphys import pci_select

    return pci_select.parse_selector(
        device_text,
        slot=args.slot,
        ids=args.ids,
        vendor=_id_flag(args.vendor_id, "vendor ID (-V)"),
        device=_id_flag(args.device_id, "device ID (-D)"),
        subsystem_vendor=_id_flag(args.subsystem_vendor_id, "subsystem vendor ID (--subsystem-vendor)"),
        subsystem_device=_id_flag(args.subsystem_device_id, "subsystem device ID (--subsystem-device)"),
    )


def _has_id_flags(args) -> bool:
    return any(
        getattr(args, k) is not None
        for k in ("slot", "ids", "vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id")
    )


def _split_device(args, positional: list[str]) -> tuple[str | None, list[str]]:
    """DEVICE is the first positional when it looks like one (has ':' or '.'); BARs and offsets never do."""
    if positional and (":" in positional[0] or "." in positional[0]):
        return positional[0], positional[1:]
    if not _has_id_flags(args):
        from pyphys.pci_select import HOW_TO_NAME

        raise UsageError(HOW_TO_NAME)
    return None, positional


def _pick(args, device_text):
    from pyphys import pci_select

    return pci_select.select_device(_selector(args, device_text))


def parse_width(text: str) -> int:
    """8/16/32/64 (or u8..u64, b/h/w/q); UsageError otherwise."""
    width = WIDTH_WORDS.get(text.strip().lower())
    if width is None:
        raise UsageError(f"width {text!r} is not one of 8, 16, 32, 64 (bits; u8..u64 also accepted)")
    return width


def _bar_index(text: str) -> int:
    return parse_number(text, "BAR index", maximum=5)


def decode_string(text: str) -> bytes:
    r"""C-style escapes (\r \n \t \0 \\ \xNN \NNN) to bytes; UsageError for non-Latin-1 text or a bad escape."""
    out = bytearray()
    i = 0
    simple = {"r": 13, "n": 10, "t": 9, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27}
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            code = ord(ch)
            if code > 0xFF:
                raise UsageError(f"character {ch!r} in --string is not a single byte (use --hex)")
            out.append(code)
            i += 1
            continue
        if i + 1 >= len(text):
            raise UsageError("--string ends with a lone backslash")
        nxt = text[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x":
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise UsageError(f"bad escape {text[i : i + 4]!r} in --string (\\xNN needs two hex digits)")
            out.append(int(digits, 16))
            i += 4
        elif nxt in "01234567":
            j = i + 1
            while j < len(text) and j < i + 4 and text[j] in "01234567":
                j += 1
            value = int(text[i + 1 : j], 8)
            if value > 0xFF:
                raise UsageError(f"octal escape {text[i:j]!r} is more than one byte")
            out.append(value)
            i = j
        else:
            raise UsageError(f"unknown escape \\{nxt} in --string")
    return bytes(out)


def decode_hex(text: str) -> bytes:
    cleaned = "".join(text.replace("0x", "").replace(",", " ").split())
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"--hex {text!r} is not hexadecimal bytes") from None


def _fmt_value(value: int, width: int) -> str:
    # busybox devmem prints "0x%0*llX": the tests and scripts compare with it
    return f"0x{value:0{width // 4}X}"


def hexdump(data: bytes, base: int = 0) -> str:
    """``hexdump -C`` layout: offset, 16 bytes in two groups of 8, printable ASCII."""
    lines = []
    for pos in range(0, len(data), 16):
        chunk = data[pos : pos + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk[:8])
        if len(chunk) > 8:
            hexes += "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{base + pos:08x}  {hexes:<49} |{text}|")
    return "\n".join(lines)


def _human_size(size: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return str(size)


def _warn_if_disabled(dev, bar, value: int, width: int) -> None:
    """All ones from a BAR usually means the device ignores it: say why when the command register shows it."""
    from pyphys import pci_access

    if value != (1 << width) - 1:
        return
    state = pci_access.memory_decoding(dev)
    if state is None:
        return
    io_on, mem_on = state
    space = "I/O" if bar.kind == "io" else "memory"
    if not (io_on if bar.kind == "io" else mem_on):
        print(
            f"pyphys pci: warning: {dev.short_address} has {space} decoding off (command register): "
            f"all-ones is a master abort, not the register; enable the device with "
            f"`echo 1 > /sys/bus/pci/devices/{dev.address}/enable`",
            file=sys.stderr,
        )


# ----------------------------------------------------------------------------------------------
# list
# ----------------------------------------------------------------------------------------------
def format_device(dev) -> str:
    from pyphys import pci_ids

    vname, dname = pci_ids.device_names(dev)
    cls = (
        f"{pci_ids.class_name(dev.class_code)} [{dev.class_code >> 8:04x}]"
        if dev.class_code is not None
        else "Class [????]"
    )
    names = " ".join(n for n in (vname, dname) if n)
    ident = f"{names} [{dev.ids}]" if names else f"[{dev.ids}]"
    rev = f" (rev {dev.revision:02x})" if dev.revision is not None else ""
    sub = f"subsystem [{dev.subsystem_ids}]" if dev.subsystem_ids else "subsystem [?]"
    lines = [
        f"{dev.short_address} {cls}: {ident}{rev}",
        f"        {sub}  driver: {dev.driver or 'none'}" + (f"  irq {dev.irq}" if dev.irq else ""),
    ]
    for bar in dev.bars:
        lines.append(
            f"        BAR{bar.index}  {bar.type_text:<22} {bar.start:#018x}  "
            f"size {bar.size:#x} ({_human_size(bar.size)})"
        )
    if not dev.bars:
        lines.append("        no BARs")
    return "\n".join(lines)


def run_list(args) -> int:
    from pyphys import pci_devices, pci_select

    devices = pci_devices.scan(args.source)
    if args.device or _has_id_flags(args):
        devices = pci_select.find_devices(_selector(args, args.device), devices)
        if not devices:
            from pyphys.errors import NotFoundError

            everything = pci_devices.scan(args.source)
            raise NotFoundError(
                f"no PCI device matches {_selector(args, args.device)}",
                "present: " + (", ".join(d.summary() for d in everything) or "none"),
            )
    if args.json:
        print(json.dumps([d.to_json() for d in devices], indent=2))
        return 0
    print("\n".join(format_device(d) for d in devices))
    return 0


# ----------------------------------------------------------------------------------------------
# read / write
# ----------------------------------------------------------------------------------------------
def run_read(args) -> int:
    from pyphys import pci_access

    device_text, rest = _split_device(args, args.args)
    if len(rest) < 2 or len(rest) > 3:
        raise UsageError("usage: pyphys pci read DEVICE BAR OFFSET [WIDTH] [-l LENGTH]")
    index = _bar_index(rest[0])
    offset = parse_number(rest[1], "offset")
    width = parse_width(rest[2]) if len(rest) == 3 else 32
    length = parse_number(args.length, "length", minimum=1) if args.length is not None else None
    dev = _pick(args, device_text)
    if length is not None:
        data = pci_access.read_bar_range(dev, index, offset, length, width, via=args.via)
        if args.json:
            print(
                json.dumps(
                    {
                        "device": dev.address,
                        "bar": index,
                        "offset": offset,
                        "width": width,
                        "via": args.via,
                        "data": data.hex(),
                    }
                )
            )
        else:
            print(hexdump(data, offset))
        return 0
    bar = dev.bar(index)
    pci_access.check_access(
        f"{dev.short_address} BAR{index}",
        bar.size,
        offset,
        width,
        widths=(8, 16, 32) if bar.kind == "io" else (8, 16, 32, 64),
    )
    with pci_access.BarAccess(dev, bar, args.via) as acc:
        value = acc.read_word(offset, width)
    if args.json:
        print(
            json.dumps(
                {"device": dev.address, "bar": index, "offset": offset, "width": width, "via": args.via, "value": value}
            )
        )
    else:
        print(_fmt_value(value, width))
    _warn_if_disabled(dev, bar, value, width)
    return 0


def run_write(args) -> int:
    from pyphys import pci_write

    device_text, rest = _split_device(args, args.args)
    raw = args.string is not None or args.hex is not None
    if raw:
        if len(rest) not in (2, 3):
            raise UsageError("usage: pyphys pci write DEVICE BAR OFFSET [WIDTH] --string TEXT|--hex HEX")
        width = parse_width(rest[2]) if len(rest) == 3 else None
        data = decode_string(args.string) if args.string is not None else decode_hex(args.hex)
        if not data:
            raise UsageError("nothing to write: the byte string is empty")
        if width is not None and len(data) * 8 != width:
            raise UsageError(f"{len(data)} bytes given for a {width}-bit write (leave WIDTH out for a byte string)")
    else:
        if len(rest) not in (3, 4):
            raise UsageError("usage: pyphys pci write DEVICE BAR OFFSET [WIDTH] VALUE (or --string/--hex)")
        width = parse_width(rest[2]) if len(rest) == 4 else 32
        value = parse_number(rest[-1], "value")
        if value >> width:
            raise UsageError(f"value {rest[-1]!r} is too wide for a {width}-bit write")
        data = value.to_bytes(width // 8, "little")
    index = _bar_index(rest[0])
    offset = parse_number(rest[1], "offset")
    dev = _pick(args, device_text)
    rec = pci_write.write_bar(dev, index, offset, data, width=width, via=args.via)
    if args.json:
        print(
            json.dumps(
                {
                    "device": dev.address,
                    "bar": index,
                    "offset": offset,
                    "width": width,
                    "via": args.via,
                    "old": rec.old.hex(),
                    "new": rec.new.hex(),
                    "readback": rec.after.hex(),
                    "journal_id": rec.record_id,
                }
            )
        )
    elif not args.quiet:
        if width is not None:
            back = int.from_bytes(rec.after, "little")
            old = int.from_bytes(rec.old, "little")
            print(
                f"{dev.short_address} BAR{index}+{offset:#x}: {_fmt_value(old, width)} -> "
                f"{_fmt_value(int.from_bytes(rec.new, 'little'), width)} (reads back {_fmt_value(back, width)}); "
                f"journal entry {rec.record_id}"
            )
        else:
            same = "same bytes" if rec.after == rec.new else f"reads back {rec.after.hex()}"
            print(
                f"{dev.short_address} BAR{index}+{offset:#x}: wrote {len(rec.new)} bytes ({same}); "
                f"journal entry {rec.record_id}"
            )
    return 0


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------
def format_config(dev, hdr) -> str:
    from pyphys import pci_ids
    from pyphys.layouts import pci as L

    lines = [
        f"{dev.short_address} [{hdr.vendor:04x}:{hdr.device:04x}] {pci_ids.class_name(hdr.class_code)} "
        f"[{hdr.class_code:06x}] rev {hdr.revision:02x}",
        f"  header type    {hdr.header_type} ({L.HEADER_TYPE_NAMES.get(hdr.header_type, 'unknown')})"
        + (", multi-function" if hdr.multifunction else ""),
        f"  command        {hdr.command:#06x}  {' '.join(hdr.command_flags) or '-'}",
        f"  status         {hdr.status:#06x}  {' '.join(hdr.status_flags) or '-'}  "
        f"DEVSEL={L.DEVSEL_NAMES[hdr.status & L.PCI_STATUS_DEVSEL_MASK]}",
        f"  cache line {hdr.cache_line_size}, latency {hdr.latency_timer}, BIST {hdr.bist:#04x}",
    ]
    if hdr.subsystem_vendor is not None:
        lines.append(f"  subsystem      {hdr.subsystem_vendor:04x}:{hdr.subsystem_device:04x}")
    if hdr.bridge_buses:
        p, s, sub = hdr.bridge_buses
        lines.append(f"  buses          primary {p:02x}, secondary {s:02x}, subordinate {sub:02x}")
    for b in hdr.bars:
        kind = (
            "io"
            if b.kind == "io"
            else f"mem {'64' if b.is_64bit else '32'}-bit" + (" prefetchable" if b.prefetchable else "")
        )
        lines.append(f"  BAR{b.index} ({b.offset:#04x})  {b.address:#x}  {kind}")
    if not hdr.bars:
        lines.append("  no BARs programmed")
    if hdr.rom_address:
        lines.append(
            f"  expansion ROM  {hdr.rom_address & L.PCI_ROM_ADDRESS_MASK & 0xFFFFFFFF:#x}"
            + (" (enabled)" if hdr.rom_address & L.PCI_ROM_ADDRESS_ENABLE else " (disabled)")
        )
    pin = (
        "-"
        if not hdr.interrupt_pin
        else "ABCD"[hdr.interrupt_pin - 1]
        if hdr.interrupt_pin <= 4
        else str(hdr.interrupt_pin)
    )
    lines.append(f"  interrupt      pin {pin}, line {hdr.interrupt_line}")
    if hdr.capabilities:
        lines.append("  capabilities:")
        for c in hdr.capabilities:
            ver = f" v{c.version}" if c.version is not None else ""
            lines.append(f"    [{c.offset:#05x}] {c.name} ({'ext ' if c.extended else ''}id {c.cap_id:#04x}){ver}")
    else:
        lines.append("  capabilities:  none")
    lines.append(f"  ({hdr.length} bytes of config space read)")
    for note in hdr.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def run_config(args) -> int:
    from pyphys import pci_access, pci_config, pci_write

    device_text, rest = _split_device(args, args.args)
    if len(rest) > 3:
        raise UsageError("usage: pyphys pci config DEVICE [OFFSET [WIDTH [VALUE --force]]]")
    offset = parse_number(rest[0], "offset") if rest else None
    width = parse_width(rest[1]) if len(rest) >= 2 else 32
    value = parse_number(rest[2], "value") if len(rest) == 3 else None
    if value is not None and value >> width:
        raise UsageError(f"value {rest[2]!r} is too wide for a {width}-bit write")
    if value is not None and not args.force:
        raise UsageError(
            "refusing to write config space without --force",
            "a wrong command/BAR value can disable the device or hang the machine",
        )
    dev = _pick(args, device_text)
    if value is not None:
        rec = pci_write.write_config(dev, offset, width, value, force=args.force)
        back = int.from_bytes(rec.after, "little")
        if args.json:
            print(
                json.dumps(
                    {
                        "device": dev.address,
                        "offset": offset,
                        "width": width,
                        "old": rec.old.hex(),
                        "new": rec.new.hex(),
                        "readback": rec.after.hex(),
                        "journal_id": rec.record_id,
                    }
                )
            )
        else:
            print(
                f"{dev.short_address} config+{offset:#x}: {_fmt_value(int.from_bytes(rec.old, 'little'), width)} -> "
                f"{_fmt_value(value, width)} (reads back {_fmt_value(back, width)}); journal entry {rec.record_id}"
            )
        return 0
    if offset is not None:
        word = pci_access.read_config_word(dev, offset, width)
        if args.json:
            print(json.dumps({"device": dev.address, "offset": offset, "width": width, "value": word}))
        else:
            print(_fmt_value(word, width))
        return 0
    data = pci_access.read_config(dev)
    if args.hexdump:
        print(hexdump(data))
        return 0
    hdr = pci_config.decode_config(data)
    if args.json:
        print(json.dumps({"device": dev.address, **hdr.to_json()}, indent=2))
    else:
        print(format_config(dev, hdr))
    return 0


# ----------------------------------------------------------------------------------------------
# show / bar-size
# ----------------------------------------------------------------------------------------------
def run_show(args) -> int:
    from pyphys import pci_show
    from pyphys.commands._common import note

    if not args.device and not _has_id_flags(args):
        from pyphys.pci_select import HOW_TO_NAME

        raise UsageError(HOW_TO_NAME)
    dev = _pick(args, args.device)
    report = pci_show.show(dev, 2 if args.json else args.verbose)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines))
    for text in report.notes:
        note("pci show", text)
    return 0


def run_bar_size(args) -> int:
    from pyphys import pci_write

    device_text, rest = _split_device(args, args.args)
    if len(rest) != 1:
        raise UsageError("usage: pyphys pci bar-size DEVICE BAR [--force]")
    index = _bar_index(rest[0])
    dev = _pick(args, device_text)
    res = pci_write.size_bar(dev, index, force=args.force)
    if args.json:
        print(json.dumps(res.to_json()))
        return 0
    digits = 16 if res.is_64bit else 8
    kind = "I/O" if res.kind == "io" else f"memory, {'64' if res.is_64bit else '32'}-bit"
    kind += ", prefetchable" if res.prefetchable else ""
    print(
        f"{dev.short_address} BAR{index} ({kind}): size {res.size:#x} ({_human_size(res.size)}); "
        f"register {res.original:#0{digits + 2}x}, all ones read back {res.readback:#0{digits + 2}x}, "
        f"restored {res.after:#0{digits + 2}x}; journal entry {res.journal_id} (undone: the restore)"
    )
    if not res.restored:
        from pyphys.errors import PyphysError

        raise PyphysError(
            f"BAR{index} of {dev.short_address} reads {res.after:#x} after the restore, not {res.original:#x}",
            f"journal entry {res.journal_id}: write the old value back with `pyphys pci config ... --force`",
        )
    return 0
