"""``pyphys pci``: PCI devices without a driver (list, show, config space, BAR read/write/sizing)."""

from __future__ import annotations

import json

from pyphys.commands import pci_rw
from pyphys.commands.pci_args import add_selection, bar_index, has_id_flags, pick, selector, split_device
from pyphys.dialect import fmt_size
from pyphys.errors import UsageError

DESCRIPTION = """\
PCI devices without a driver, through the kernel's own files (sysfs, /proc/bus/pci).

  pyphys pci list [DEVICE] [--json]           devices, IDs, driver, BARs (sysfs; /proc/bus/pci fallback)
  pyphys pci show DEVICE [-v|-vv] [--json]    one device as lspci -nn -v/-vv shows it: header, BARs, capabilities
  pyphys pci read  DEVICE BAR OFFSET [WIDTH] [-l LENGTH]
  pyphys pci write DEVICE BAR OFFSET [WIDTH] VALUE
  pyphys pci write DEVICE BAR OFFSET --string 'Dunia,vipi?\\r'
  pyphys pci config DEVICE [OFFSET [WIDTH [VALUE --force]]] [-x]
  pyphys pci config DEVICE REG[+OFF][.b|.w|.l][@N][=VALUE[:MASK][,...]]   setpci's syntax: COMMAND, 04.w,
                                              CAP_EXP+0x10.w, CAP_VNDR+2.b@1 (the 2nd CAP_VNDR), COMMAND=0x4:0x4,
                                              CAP10+2.w and ECAP001.l (capability IDs in hex), 0x40.b=1,2,3
  pyphys pci bar-size DEVICE BAR [--force]    size a BAR: write all ones, read back, restore (journaled)

DEVICE is an address (0000:00:04.0, 00:04.0) or else what lspci's -d takes:
[vendor]:[device][:class[:prog-if]], hexadecimal, an empty part or * matching any (1af4:1110;
1234: is every device of vendor 0x1234; ::0200 every Ethernet controller; an x digit of the class
matches any, ::06xx every bridge). It is left out when options name it as lspci's do:
-s [[domain:]bus:]slot.func, -d as above, or -V vendor, -D device, --subsystem-vendor,
--subsystem-device. WIDTH is 8, 16, 32 or 64 bits, or setpci's letters b=8, w=16, l=32; default 32. Memory BARs are
reached through an mmap of sysfs resourceN (default) or /dev/mem at the BAR address (--via
devmem); I/O-port BARs through read/write of resourceN. Writes are journaled: `pyphys undo`
restores the old bytes. A config VALUE may be setpci's VALUE:MASK: only the bits set in MASK
change (the register is read, merged and written whole; bits of VALUE outside MASK are ignored,
as setpci ignores them), and undo restores the whole old register. @N counts capabilities of the
same ID from 0, as setpci does. CAPxx and ECAPxxx name a capability by its ID, whose digits are
ALWAYS hex, as in setpci (CAP10 is 0x10, PCI Express; ECAP001 is AER), and need a width (.w).
REG.W=V1,V2,... writes consecutive registers of that width from REG (value i at REG + i*W, each
with its own :MASK if any): every register is checked and read first, the list must end inside
config space, and it is one journal group that `pyphys undo` restores whole, last register first.
Numbers are decimal or 0x hex; in setpci's REG forms a bare number that setpci would read as hex
(10.l, CAP_EXP+10, COMMAND=10) is refused with both readings: write 0x10 or 16.
"""


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION, formatter_class=_raw_formatter())
    psub = p.add_subparsers(dest="pci_command", metavar="ACTION")

    q = psub.add_parser("list", help="list devices with their BARs (like lspci -nn, with a BAR table)")
    q.add_argument(
        "device",
        nargs="?",
        metavar="DEVICE",
        help="only devices matching this address or [vendor]:[device][:class[:prog-if]] (as lspci -d)",
    )
    q.add_argument(
        "--source",
        choices=("auto", "sysfs", "procfs"),
        default="auto",
        help="sysfs, or /proc/bus/pci/devices (default: sysfs, procfs if absent)",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    add_selection(q)
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
    add_selection(q)
    q.set_defaults(func=pci_rw.run_read)

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
    add_selection(q)
    q.set_defaults(func=pci_rw.run_write)

    q = psub.add_parser("config", help="decode the config header, or read/write one config register")
    q.add_argument(
        "args",
        nargs="*",
        metavar="ARG",
        help="DEVICE [OFFSET [WIDTH [VALUE]]], or DEVICE REG[+OFF][.b|.w|.l][=VALUE] as setpci: "
        "a register name (COMMAND, STATUS, BASE_ADDRESS_0 ...; its own width), CAP_xxx or ECAP_xxx, "
        "CAPxx or ECAPxxx (the ID, always hex as in setpci; a width needed) "
        "(@N: the N-th of that ID, from 0); VALUE may be VALUE:MASK (only MASK's bits change), "
        "or V1,V2,... for consecutive registers (one journal group)",
    )
    q.add_argument("-x", "--hexdump", action="store_true", help="hexdump the readable config space")
    q.add_argument("--force", action="store_true", help="allow a config-space write (can disable the device)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    add_selection(q)
    q.set_defaults(func=pci_rw.run_config)

    q = psub.add_parser("show", help="one device as lspci -nn -v/-vv shows it: header, BARs, capabilities")
    q.add_argument("device", nargs="?", metavar="DEVICE", help="an address (00:04.0) or vendor:device; or -s/-d")
    q.add_argument("-v", "--verbose", action="count", default=0, help="-v: BARs and capabilities; -vv: decoded")
    q.add_argument("--json", action="store_true", help="machine-readable output (everything -vv decodes)")
    add_selection(q)
    q.set_defaults(func=run_show)

    q = psub.add_parser("bar-size", help="size a BAR: write all ones, read back, restore (journaled, undoable)")
    q.add_argument("args", nargs="+", metavar="ARG", help="DEVICE BAR (or BAR alone with -s/-d)")
    q.add_argument("--force", action="store_true", help="size it even while the device decodes the BAR's space (risky)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    add_selection(q)
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
            f"        BAR{bar.index}  {bar.type_text:<22} {bar.start:#018x}  size {bar.size:#x} ({fmt_size(bar.size)})"
        )
    if not dev.bars:
        lines.append("        no BARs")
    return "\n".join(lines)


def run_list(args) -> int:
    from pyphys import pci_devices, pci_select

    devices = pci_devices.scan(args.source)
    if args.device or has_id_flags(args):
        devices = pci_select.find_devices(selector(args, args.device), devices)
        if not devices:
            from pyphys.errors import NotFoundError

            everything = pci_devices.scan(args.source)
            raise NotFoundError(
                f"no PCI device matches {selector(args, args.device)}",
                "present: " + (", ".join(d.summary() for d in everything) or "none"),
            )
    if args.json:
        print(json.dumps({"devices": [d.to_json() for d in devices]}, indent=2))
        return 0
    print("\n".join(format_device(d) for d in devices))
    return 0


# ----------------------------------------------------------------------------------------------
# show / bar-size


# ----------------------------------------------------------------------------------------------


def run_show(args) -> int:
    from pyphys import pci_show
    from pyphys.commands._common import note

    if not args.device and not has_id_flags(args):
        from pyphys.pci_select import HOW_TO_NAME

        raise UsageError(HOW_TO_NAME)
    dev = pick(args, args.device)
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

    device_text, rest = split_device(args, args.args)
    if len(rest) != 1:
        raise UsageError("usage: pyphys pci bar-size DEVICE BAR [--force]")
    index = bar_index(rest[0])
    dev = pick(args, device_text)
    res = pci_write.size_bar(dev, index, force=args.force)
    if args.json:
        print(json.dumps(res.to_json()))
        return 0
    digits = 16 if res.is_64bit else 8
    kind = "I/O" if res.kind == "io" else f"memory, {'64' if res.is_64bit else '32'}-bit"
    kind += ", prefetchable" if res.prefetchable else ""
    print(
        f"{dev.short_address} BAR{index} ({kind}): size {res.size:#x} ({fmt_size(res.size)}); "
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
