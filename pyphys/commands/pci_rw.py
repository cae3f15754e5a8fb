"""``pyphys pci read``, ``write`` and ``config``: BAR registers and config space, journaled writes."""

from __future__ import annotations

import json
import sys

from pyphys.commands.pci_args import bar_index, pci_width, pick, split_device
from pyphys.dialect import (
    decode_escapes,
    decode_hex,
    fmt_value,
    hexdump,
    json_value,
    parse_number,
    parse_size,
    written_json,
)
from pyphys.errors import UsageError


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
# read / write


# ----------------------------------------------------------------------------------------------


def _bar_doc(dev, index: int, offset: int, width: int, via: str) -> dict:
    """The keys every BAR read/write document starts with (docs/json.md)."""
    return {"slot": dev.address, "bar": index, "offset": f"{offset:#x}", "width": width, "via": via}


def run_read(args) -> int:
    from pyphys import pci_access

    device_text, rest = split_device(args, args.args)
    if len(rest) < 2 or len(rest) > 3:
        raise UsageError("usage: pyphys pci read DEVICE BAR OFFSET [WIDTH] [-l LENGTH]")
    index = bar_index(rest[0])
    offset = parse_number(rest[1], "offset")
    width = pci_width(rest[2]) if len(rest) == 3 else 32
    length = parse_size(args.length, "length") if args.length is not None else None
    dev = pick(args, device_text)
    if length is not None:
        data = pci_access.read_bar_range(dev, index, offset, length, width, via=args.via)
        if args.json:
            print(
                json.dumps({**_bar_doc(dev, index, offset, width, args.via), "length": len(data), "data": data.hex()})
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
        print(json.dumps({**_bar_doc(dev, index, offset, width, args.via), "value": json_value(value, width)}))
    else:
        print(fmt_value(value, width))
    _warn_if_disabled(dev, bar, value, width)
    return 0


def run_write(args) -> int:
    from pyphys import pci_write

    device_text, rest = split_device(args, args.args)
    raw = args.string is not None or args.hex is not None
    if raw:
        if len(rest) not in (2, 3):
            raise UsageError("usage: pyphys pci write DEVICE BAR OFFSET [WIDTH] --string TEXT|--hex HEX")
        width = pci_width(rest[2]) if len(rest) == 3 else None
        data = decode_escapes(args.string) if args.string is not None else decode_hex(args.hex)
        if not data:
            raise UsageError("nothing to write: the byte string is empty")
        if width is not None and len(data) * 8 != width:
            raise UsageError(f"{len(data)} bytes given for a {width}-bit write (leave WIDTH out for a byte string)")
    else:
        if len(rest) not in (3, 4):
            raise UsageError("usage: pyphys pci write DEVICE BAR OFFSET [WIDTH] VALUE (or --string/--hex)")
        width = pci_width(rest[2]) if len(rest) == 4 else 32
        value = parse_number(rest[-1], "value")
        if value >> width:
            raise UsageError(f"value {rest[-1]!r} is too wide for a {width}-bit write")
        data = value.to_bytes(width // 8, "little")
    index = bar_index(rest[0])
    offset = parse_number(rest[1], "offset")
    dev = pick(args, device_text)
    rec = pci_write.write_bar(dev, index, offset, data, width=width, via=args.via)
    if args.json:
        print(
            json.dumps(
                {
                    **_bar_doc(dev, index, offset, width, args.via),
                    **written_json(rec.old, rec.new, rec.after, width),
                    "journal_id": rec.record_id,
                }
            )
        )
    elif not args.quiet:
        if width is not None:
            back = int.from_bytes(rec.after, "little")
            old = int.from_bytes(rec.old, "little")
            print(
                f"{dev.short_address} BAR{index}+{offset:#x}: {fmt_value(old, width)} -> "
                f"{fmt_value(int.from_bytes(rec.new, 'little'), width)} (reads back {fmt_value(back, width)}); "
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


CONFIG_USAGE = (
    "usage: pyphys pci config DEVICE [OFFSET [WIDTH [VALUE[:MASK][,...] --force]]] "
    "or DEVICE REG[+OFF][.b|.w|.l][@N][=VALUE[:MASK][,VALUE[:MASK]...]]"
)


def _config_register(rest: list[str]):
    """(register or None, width, value text or None) from the arguments after DEVICE: an OFFSET
    with WIDTH and VALUE as separate words, or setpci's ``REG[+OFF][.W][=VALUE]`` (a VALUE may
    also follow as the next word)."""
    from pyphys import pci_regs

    if not rest:
        return None, 32, None
    spec, eq, value_text = rest[0].partition("=")
    reg = pci_regs.parse_register(spec)
    if reg.setpci_form:
        if len(rest) > (1 if eq else 2):
            raise UsageError(CONFIG_USAGE, "setpci's REG.w carries its width: no separate WIDTH after it")
        if not eq:
            value_text = rest[1] if len(rest) == 2 else None
        return reg, reg.width or 32, value_text
    if eq or len(rest) > 3:
        raise UsageError(CONFIG_USAGE)
    width = pci_width(rest[1]) if len(rest) >= 2 else 32
    return reg, width, rest[2] if len(rest) == 3 else None


def _print_config_writes(args, dev, width: int, recs) -> None:
    """Config writes, one line a register; JSON: one write's fields, or a list's under ``writes``."""
    from pyphys.commands._common import note

    if args.json:
        writes = [
            {"offset": f"{r.offset:#x}", **written_json(r.old, r.new, r.after, width), "journal_id": r.record_id}
            for r in recs
        ]
        doc = {"slot": dev.address, "width": width}
        print(json.dumps({**doc, "writes": writes} if len(recs) > 1 else {**doc, **writes[0]}))
        return
    for r in recs:
        old, new, back = (fmt_value(int.from_bytes(b, "little"), width) for b in (r.old, r.new, r.after))
        print(
            f"{dev.short_address} config+{r.offset:#x}: {old} -> {new} (reads back {back}); journal entry {r.record_id}"
        )
    if len(recs) > 1:
        first, last = recs[0].record_id, recs[-1].record_id
        note(
            "pci config",
            f"journal entries {first}..{last} are one group: `pyphys undo` restores all {len(recs)} registers",
        )


def run_config(args) -> int:
    from pyphys import pci_access, pci_config, pci_regs, pci_write

    device_text, rest = split_device(args, args.args)
    reg, width, value_text = _config_register(rest)
    # a value after a register in setpci's form is read as setpci's: no bare number it reads as hex
    setpci = reg is not None and reg.setpci_form
    values = pci_regs.parse_values(value_text, width, setpci) if value_text is not None else None
    value, mask = values[0] if values else (None, None)
    if value is not None and not args.force:
        raise UsageError(
            "refusing to write config space without --force",
            "a wrong command/BAR value can disable the device or hang the machine",
        )
    dev = pick(args, device_text)
    offset = None
    if reg is not None:
        located = reg.cap is not None or reg.header_mask
        offset = pci_regs.locate(reg, pci_access.read_config(dev)) if located else reg.offset
    if value is not None:
        if len(values) > 1:
            recs = pci_write.write_config_list(dev, offset, width, values, force=args.force)
        else:
            recs = [pci_write.write_config(dev, offset, width, value, mask=mask, force=args.force)]
        _print_config_writes(args, dev, width, recs)
        return 0
    if offset is not None:
        word = pci_access.read_config_word(dev, offset, width)
        if args.json:
            print(
                json.dumps(
                    {"slot": dev.address, "offset": f"{offset:#x}", "width": width, "value": json_value(word, width)}
                )
            )
        else:
            print(fmt_value(word, width))
        return 0
    data = pci_access.read_config(dev)
    if args.hexdump:
        print(hexdump(data))
        return 0
    hdr = pci_config.decode_config(data)
    if args.json:
        print(json.dumps({"slot": dev.address, **hdr.to_json()}, indent=2))
    else:
        print(format_config(dev, hdr))
    return 0
