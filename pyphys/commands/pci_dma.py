"""``pyphys pci dma``: let QEMU's edu device copy RAM into its buffer, or its buffer into RAM."""

from __future__ import annotations

from pyphys.commands._common import add_json, emit, emit_json, note
from pyphys.dialect import fmt_range, hexdump, parse_number, parse_range

EPILOG = """\
The device, not the CPU, moves the bytes: bus mastering must be on (PCI COMMAND bit 2), the RAM
address is a bus address (the physical address here, with no IOMMU in between), and it must fit
the device's DMA mask. RAM outside pyphys.ko's buffer is refused unless --force. Every register
write, and the RAM a to-ram copy overwrites, is journaled: `pyphys undo ID` restores the RAM.

examples:
  pyphys pci dma 1234:11e8 to-device 0x3a5c000+256 --dma-mask 0xffffffff
  pyphys pci dma 1234:11e8 to-ram 0x3a5c800+256 --dma-mask 0xffffffff
"""


def add_parser(psub) -> None:
    import argparse

    q = psub.add_parser(
        "dma",
        help="let QEMU's edu device copy RAM into its buffer or back (bus mastering, journaled)",
        description="Program the DMA engine of QEMU's edu device (1234:11e8) from user space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("device", metavar="DEVICE", help="the edu device: an address (00:05.0) or 1234:11e8")
    q.add_argument("direction", choices=("to-device", "to-ram"), help="RAM into edu's buffer, or edu's buffer into RAM")
    q.add_argument("range", metavar="RAM", help="START+LENGTH or START-END (END exclusive), at most 4 KiB")
    q.add_argument("--device-offset", metavar="OFF", default="0", help="offset in edu's 4 KiB buffer (default 0)")
    q.add_argument(
        "--dma-mask",
        metavar="MASK",
        default=None,
        help="the device's DMA mask, as QEMU was told (-device edu,dma_mask=M; default edu's 0xfffffff)",
    )
    q.add_argument("--force", action="store_true", help="allow RAM outside pyphys.ko's buffer")
    q.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors on success")
    add_json(q, "the transfer")
    q.set_defaults(func=run_dma)


def run_dma(args) -> int:
    from pyphys import edu, pci_select

    start, end = parse_range(args.range, "RAM range")
    offset = parse_number(args.device_offset, "device offset", maximum=edu.BUF_SIZE - 1)
    mask = edu.DEFAULT_DMA_MASK if args.dma_mask is None else parse_number(args.dma_mask, "DMA mask")
    dev = pci_select.select_device(pci_select.parse_selector(args.device))
    res = edu.dma(dev, args.direction, start, end - start, device_offset=offset, dma_mask=mask, force=args.force)
    if args.json:
        emit_json(res)
        return 0
    if args.quiet:
        return 0
    ram = fmt_range(res.ram, res.ram + res.length)
    where = f"edu buffer +{res.device_offset:#x}"
    arrow = f"RAM {ram} -> {where}" if res.direction == "to-device" else f"{where} -> RAM {ram}"
    emit(f"{dev.short_address} DMA {arrow}: {res.length} bytes in {res.seconds * 1000:.0f} ms")
    if res.data is not None:
        emit(hexdump(res.data, res.ram))
    note("pci dma", f"journal entries {res.journal_ids[0]}..{res.journal_ids[-1]}", args.quiet)
    if res.direction == "to-ram":
        note("pci dma", f"`pyphys undo {res.journal_ids[0]}` restores the RAM's old bytes")
    return 0
