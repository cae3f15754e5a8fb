"""QEMU's ``edu`` teaching device driven from user space: its DMA engine.

edu (PCI 1234:11e8; QEMU's docs/specs/edu.rst) has a 4 KiB buffer of its own at device address
0x40000 and a DMA engine programmed through BAR0: source 0x80, destination 0x88, count 0x90,
command 0x98 (bit 0 starts the transfer and reads 1 until it is done, bit 1 is the direction:
0 = RAM to device, 1 = device to RAM). The device, not the CPU, then reads or writes RAM: what a
driver does with bus mastering, DMA masks and bus addresses, without a driver.

Three things the device does that make a mistake costly, and so are checked here before any
register is written:

- a device-side address outside its buffer makes QEMU abort the whole machine (edu.c
  ``edu_check_range`` calls ``hw_error``): never allowed;
- a RAM address above the device's DMA mask is silently masked (``edu_clamp_addr``), so the
  device would reach *another* address: never allowed (the mask is 28 bits unless QEMU was
  started with ``-device edu,dma_mask=...``; the lab VM uses 32 bits);
- with bus mastering off (PCI COMMAND bit 2) the device's memory accesses go nowhere: refused
  with the command that turns it on.

RAM outside pyphys.ko's buffer is refused unless forced. Every register write is journaled, and
a copy into RAM journals the RAM's old bytes first, so ``pyphys undo`` restores them. The
device's own buffer is not addressable by the CPU (no BAR maps it), so what a copy into the
device overwrote there cannot be journaled; it is scratch the device loses at reset.
"""

from __future__ import annotations

import time

from pyphys.errors import PyphysError, UsageError
from pyphys.record import Record

EDU_IDS = (0x1234, 0x11E8)
BUF_ADDR = 0x40000  # edu.rst: "the DMA buffer ... at 0x40000" in the device's address space
BUF_SIZE = 4096
DMA_SRC, DMA_DST, DMA_COUNT, DMA_CMD = 0x80, 0x88, 0x90, 0x98
CMD_START, CMD_TO_RAM = 0x1, 0x2
DEFAULT_DMA_MASK = (1 << 28) - 1  # edu.c's default dma_mask
PCI_COMMAND, COMMAND_MASTER = 0x04, 0x4
DIRECTIONS = ("to-device", "to-ram")


class DmaResult(Record):
    """One edu DMA transfer: ``direction`` (to-device / to-ram), ``device`` (PCI address), ``ram``
    (bus = physical address), ``device_offset`` (in edu's buffer), ``length``, ``journal_ids`` (the
    entries written, oldest first), ``seconds`` (start to completion), ``data`` (RAM after a to-ram
    copy, else None)."""

    __slots__ = ("direction", "device", "ram", "device_offset", "length", "journal_ids", "seconds", "data")
    _json = {"ram": "hex", "device_offset": "hex", "data": "bytes"}


def is_edu(dev) -> bool:
    return (dev.vendor, dev.device) == EDU_IDS


def _check_plan(dev, direction: str, ram: int, length: int, device_offset: int, dma_mask: int, force: bool) -> None:
    """Every refusal, before anything is opened for writing."""
    from pyphys import kmod
    from pyphys.dialect import fmt_range

    if not is_edu(dev):
        raise UsageError(
            f"{dev.short_address} is {dev.ids}, not QEMU's edu (1234:11e8)",
            "`pyphys pci dma` programs edu's documented DMA engine; other devices' engines differ",
        )
    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r} (choose from {', '.join(DIRECTIONS)})")
    if not 0 <= device_offset < BUF_SIZE or not 1 <= length <= BUF_SIZE - device_offset:
        raise UsageError(
            f"{length} bytes at offset {device_offset:#x} do not fit edu's {BUF_SIZE}-byte buffer",
            "QEMU stops the whole machine when edu is pointed outside its buffer, so pyphys never does",
        )
    if ram < 0 or ram + length - 1 > dma_mask:
        raise UsageError(
            f"RAM {fmt_range(ram, ram + length)} is above edu's DMA mask {dma_mask:#x}",
            "the device would silently reach the address with the high bits cleared; if QEMU was "
            "started with -device edu,dma_mask=M, pass --dma-mask M",
        )
    if force:
        return
    if not kmod.is_loaded():
        raise UsageError(
            "pyphys.ko is not loaded, so there is no buffer known to be safe for the device to use",
            f"{kmod.LOAD_HINT}; or --force for RAM you own",
        )
    info = kmod.info()
    if not (info.buffer_phys <= ram and ram + length <= info.buffer_phys + info.buffer_size):
        raise UsageError(
            f"RAM {fmt_range(ram, ram + length)} is outside pyphys.ko's buffer "
            f"{fmt_range(info.buffer_phys, info.buffer_phys + info.buffer_size)}",
            "a device writing RAM the kernel uses corrupts it with no fault to tell; --force if you mean it",
        )


def _bus_master_on(dev) -> None:
    from pyphys import pci_access

    cmd = pci_access.read_config_word(dev, PCI_COMMAND, 16)
    if not cmd & COMMAND_MASTER:
        raise UsageError(
            f"bus mastering is off on {dev.short_address} (COMMAND {cmd:#06x}, bit 2 clear): "
            "the device cannot reach RAM",
            f"turn it on: pyphys pci config {dev.short_address} 0x04 16 {cmd | COMMAND_MASTER:#06x} --force",
        )


def dma(
    dev,
    direction: str,
    ram: int,
    length: int,
    *,
    device_offset: int = 0,
    dma_mask: int = DEFAULT_DMA_MASK,
    force: bool = False,
    timeout: float = 10.0,
    journal=None,
) -> DmaResult:
    """Copy ``length`` bytes between RAM at ``ram`` and edu's buffer at ``device_offset``.

    Raises UsageError for every refusal (nothing written), PyphysError when the device does not
    finish within ``timeout`` seconds.
    """
    from pyphys import journal as jmod
    from pyphys import pci_access, pci_write, physmem

    _check_plan(dev, direction, ram, length, device_offset, dma_mask, force)
    _bus_master_on(dev)
    dev_addr = BUF_ADDR + device_offset
    src, dst = (ram, dev_addr) if direction == "to-device" else (dev_addr, ram)
    cmd = CMD_START | (CMD_TO_RAM if direction == "to-ram" else 0)
    own = journal is None
    jr = journal if journal is not None else jmod.Journal()
    ids: list[int] = []
    try:
        with jr.locked(), pci_access.BarAccess(dev, dev.bar(0)) as bar:
            if bar.read_word(DMA_CMD, 32) & CMD_START:
                raise UsageError(f"edu's DMA engine on {dev.short_address} is busy with an earlier transfer")
            pm = physmem.open_physmem() if direction == "to-ram" else None
            try:
                ram_id = None
                if pm is not None:
                    old = pm.read(ram, length)
                    # what the device will write is not known until it has: "actual" records it below
                    ram_id = jr.record("phys", pm.describe(), ram, old, old, f"edu DMA into RAM from {dev.address}")
                    ids.append(ram_id)
                for off, value in ((DMA_SRC, src), (DMA_DST, dst), (DMA_COUNT, length), (DMA_CMD, cmd)):
                    w = pci_write.write_bar(dev, 0, off, value.to_bytes(8, "little"), width=64, journal=jr)
                    ids.append(w.record_id)
                t0 = time.monotonic()
                while bar.read_word(DMA_CMD, 32) & CMD_START:
                    if time.monotonic() - t0 > timeout:
                        raise PyphysError(
                            f"edu on {dev.short_address} did not finish the DMA in {timeout:.0f} s",
                            "the command register still reads bit 0 set; `pyphys journal` lists what was written",
                        )
                    time.sleep(0.01)
                seconds = time.monotonic() - t0
                data = None
                if pm is not None:
                    data = pm.read(ram, length)
                    jr.mark(ram_id, "actual", data)
            finally:
                if pm is not None:
                    pm.close()
        ids.sort()
        return DmaResult(direction, dev.address, ram, device_offset, length, ids, seconds, data)
    finally:
        if own:
            jr.close()
