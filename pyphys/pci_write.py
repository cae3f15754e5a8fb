"""Journaled PCI writes and their undo: BAR registers, config space, and BAR sizing.

Every write goes through :func:`pyphys.journal.journaled_write` (old and new bytes appended
and fsync'd before the write); ``pyphys undo`` reopens the target through :func:`reopen`, which
the journal's table of openers names.
"""

from __future__ import annotations

from pyphys.dialect import json_value
from pyphys.errors import NotFoundError, PyphysError, RegionError, UsageError
from pyphys.layouts import pci as L
from pyphys.pci_access import BarAccess, ConfigSpace, check_access, check_range
from pyphys.pci_devices import PciDevice, normalize_address
from pyphys.pci_select import Selector, select_device
from pyphys.record import Record

#: the journal kind of every PCI write (BAR or config space)
JOURNAL_KIND = "pci"


class PciWrite(Record):
    """What a PCI write did: the journal record's id, bytes before, bytes written, bytes after."""

    __slots__ = ("record_id", "target", "offset", "old", "new", "after")
    _frozen = True

    record_id: int
    target: str
    offset: int
    old: bytes
    new: bytes
    after: bytes


def _journaled(target, offset: int, data: bytes, label: str, journal=None) -> PciWrite:
    from pyphys import journal as jmod

    # Device registers are not memory: a read-back that differs from the write is their
    # documented behaviour (edu's liveness register returns ~value, the factorial register n!),
    # so the journal records what was read back ("actual") instead of failing the write.
    rec = jmod.journaled_write(target, offset, data, kind=JOURNAL_KIND, label=label, journal=journal, verify=False)
    return PciWrite(rec.id, label, offset, rec.old, rec.new, rec.readback)


def write_bar(
    dev: PciDevice,
    index: int,
    offset: int,
    data: bytes,
    *,
    width: int | None = None,
    via: str = "resource",
    journal=None,
) -> PciWrite:
    """Journaled write of ``data`` into BAR ``index`` at ``offset``.

    ``width`` set: ``data`` is one value of that many bits, stored as ONE access (checked for
    alignment and bounds). Otherwise ``data`` is a byte string stored with the widest aligned
    accesses. Every check runs before anything is opened for writing. Returns a PciWrite.
    """
    bar = dev.bar(index)
    what = f"{dev.short_address} BAR{index}"
    if width is not None:
        size = check_access(
            what,
            bar.size,
            offset,
            width,
            int.from_bytes(data, "little"),
            widths=(8, 16, 32) if bar.kind == "io" else (8, 16, 32, 64),
        )
        if len(data) != size:
            raise UsageError(f"{len(data)} bytes given for a {width}-bit write")
    else:
        check_range(what, bar.size, offset, len(data))
    with BarAccess(dev, bar, via, writable=True) as acc:
        return _journaled(acc, offset, bytes(data), f"pci {dev.address} BAR{index}+{offset:#x} via {via}", journal)


def write_config(
    dev: PciDevice, offset: int, width: int, value: int, *, mask: int | None = None, force: bool = False, journal=None
) -> PciWrite:
    """Journaled ``width``-bit config-space write; UsageError unless ``force`` (a bad config write can
    hang the bus or make the device vanish).

    ``mask`` (setpci's VALUE:MASK): only the bits set in it change; the register is read and
    ``(old & ~mask) | (value & mask)`` written whole, journaled like any write, so undo puts the
    whole old register back. A full mask is a plain write. A list of one
    (:func:`write_config_list`)."""
    full = (1 << width) - 1
    values = [(value, full if mask is None else mask)]
    return write_config_list(dev, offset, width, values, force=force, journal=journal)[0]


def write_config_list(
    dev: PciDevice,
    offset: int,
    width: int,
    values: list[tuple[int, int]],
    *,
    force: bool = False,
    journal=None,
) -> list[PciWrite]:
    """setpci's ``REG.W=V1,V2,...``: value i (a ``(value, mask)`` pair, as
    :func:`pyphys.pci_regs.parse_values` gives) into the ``width``-bit register at
    ``offset + i * width / 8``, in order, journaled as ONE group: ``pyphys undo`` puts every
    register back, last first (a list of one is a plain write). Returns one PciWrite per register.

    Every register is checked (aligned, inside config space: the list ends at or below the
    config file's size, 0x100 or 0x1000) and read before any is written; UsageError/RegionError
    and nothing written otherwise. A partial mask keeps the other bits as read just before."""
    from pyphys import journal as jmod

    if not values:
        raise UsageError("no values to write")
    full, size = (1 << width) - 1, width // 8
    what = f"{dev.short_address} config space"
    with ConfigSpace(dev) as probe:
        limit = min(probe.size, L.PCI_CFG_SPACE_EXP_SIZE)  # setpci: the list must end by 0x1000
    offsets = [offset + i * size for i in range(len(values))]
    end = offset + len(values) * size
    if offset < limit < end:
        raise RegionError(
            f"{len(values)} {width}-bit registers from {offset:#x} end at {end:#x}, past the end of {what} "
            f"({limit:#x} bytes): nothing written",
            f"room for {(limit - offset) // size} {width}-bit register(s) from {offset:#x}",
        )
    for off, (value, mask) in zip(offsets, values):
        if mask < 0 or mask > full:
            raise UsageError(f"mask {mask:#x} is too wide for a {width}-bit register")
        check_access(what, limit, off, width, value, widths=(8, 16, 32))
    if not force:
        raise UsageError(
            f"refusing to write config space of {dev.short_address} without --force",
            "a wrong command/BAR value can disable the device or hang the machine",
        )
    own = journal is None
    jr = journal if journal is not None else jmod.Journal()
    try:
        with ConfigSpace(dev, writable=True) as cfg, jr.locked():
            olds = [cfg.read(off, size) for off in offsets]  # every register read before any write
            news = []
            for old, (value, mask) in zip(olds, values):
                word = (int.from_bytes(old, "little") & ~mask & full) | (value & mask)
                news.append(word.to_bytes(size, "little"))
            target = cfg.describe()
            n = len(offsets)
            ids = jr.record_many(
                [
                    (
                        JOURNAL_KIND,
                        target,
                        off,
                        old,
                        new,
                        f"pci {dev.address} config+{off:#x}" + (f" ({i + 1}/{n})" if n > 1 else ""),
                    )
                    for i, (off, old, new) in enumerate(zip(offsets, olds, news))
                ],
                group=n > 1,
            )
            done: list[PciWrite] = []
            pending = list(ids)  # marked aborted if the list stops: their registers were not written
            try:
                for entry_id, off, old, new in zip(ids, offsets, olds, news):
                    pending.remove(entry_id)  # from here on its outcome is marked by write_recorded
                    # a register's read-back may differ by design (see _journaled): recorded, not refused
                    back = jmod.write_recorded(jr, entry_id, cfg, off, old, new)
                    done.append(PciWrite(entry_id, f"pci {dev.address} config+{off:#x}", off, old, new, back))
            finally:
                if pending:
                    jr.mark_many(pending, "aborted")
            return done
    finally:
        if own:
            jr.close()


def reopen(description: dict, writable: bool = True):
    """Reopen a journaled PCI target from its ``describe()`` dict (for ``pyphys undo``).

    Refuses (NotFoundError) if the device at that address is no longer the same vendor:device,
    or its BAR moved: undoing into another device's registers would be worse than not undoing.
    """
    address = description.get("address")
    if not isinstance(address, str) or normalize_address(address) != address:
        raise PyphysError(f"journal entry has no usable PCI address: {description!r}")
    dev = select_device(Selector(address=address))
    if (dev.vendor, dev.device) != (description.get("vendor"), description.get("device")):
        raise NotFoundError(
            f"{address} is now {dev.ids}, not the "
            f"{description.get('vendor', 0):04x}:{description.get('device', 0):04x} "
            "the journal recorded",
            "the bus was re-enumerated: undo by hand",
        )
    if description.get("space") == "config":
        return ConfigSpace(dev, writable=writable)
    bar = dev.bar(int(description.get("bar", -1)))
    if description.get("bar_start") not in (None, bar.start):
        raise NotFoundError(f"{address} BAR{bar.index} moved to {bar.start:#x} since the write", "undo by hand")
    return BarAccess(dev, bar, description.get("via", "resource"), writable=writable)


# ----------------------------------------------------------------------------------------------
# BAR sizing (PCI 3.0 6.2.5.1): write all ones, read back the decoder's mask, restore
# ----------------------------------------------------------------------------------------------
class BarSizing(Record):
    """What sizing BAR ``index`` found: the register before, its all-ones read-back, the size it
    implies, the register after the restore, and the journal entry of the sizing write."""

    __slots__ = (
        "address",
        "index",
        "offset",
        "kind",
        "is_64bit",
        "prefetchable",
        "original",
        "readback",
        "size",
        "after",
        "journal_id",
        "decoding",
    )
    _frozen = True

    address: str
    index: int
    offset: int
    kind: str  # "mem" or "io"
    is_64bit: bool
    prefetchable: bool
    original: int
    readback: int
    size: int
    after: int
    journal_id: int
    decoding: bool  # the device decoded this space while it was sized (--force)

    @property
    def restored(self) -> bool:
        return self.after == self.original

    def to_json(self) -> dict:
        """docs/schema/pci-bar-size.json: the device under ``slot``, the register's offset and its
        values (32 bits, 64 for a 64-bit BAR) as 0x strings, the size in bytes."""
        width = 64 if self.is_64bit else 32
        return {
            "slot": self.address,
            "bar": self.index,
            "offset": f"{self.offset:#x}",
            "type": self.kind,
            "is_64bit": self.is_64bit,
            "prefetchable": self.prefetchable,
            "width": width,
            "original": json_value(self.original, width),
            "readback": json_value(self.readback, width),
            "size": self.size,
            "after": json_value(self.after, width),
            "restored": self.restored,
            "journal_id": self.journal_id,
            "decoding": self.decoding,
        }


def _decoded_size(readback: int, io: bool, bits: int) -> int:
    """The size a BAR's all-ones read-back implies: its lowest writable address bit, as the
    kernel's pci_size() (drivers/pci/probe.c) finds it; 0 when no address bit is writable."""
    mask = readback & (L.PCI_BASE_ADDRESS_IO_MASK if io else L.PCI_BASE_ADDRESS_MEM_MASK) & ((1 << bits) - 1)
    if io:
        mask &= 0xFFFF  # x86 I/O space is 64 KiB; the upper half may read back 0 or 1
    return mask & -mask


def size_bar(dev: PciDevice, index: int, *, force: bool = False, journal=None) -> BarSizing:
    """Size BAR ``index`` of ``dev`` the classic way and restore it, journaled.

    The all-ones write is one journal entry; the restore is that entry's undo through the
    journal, so an interrupted run leaves ``pyphys undo`` able to put the address back.
    Refused (UsageError) while the device decodes the BAR's space (command register I/O or
    Mem bit) unless ``force``: the device would answer at the all-ones address meanwhile.
    """
    from pyphys import journal as jmod
    from pyphys.pci_access import read_config

    data = read_config(dev)
    htype = data[L.PCI_HEADER_TYPE] & L.PCI_HEADER_TYPE_MASK
    count = L.BARS_PER_HEADER_TYPE.get(htype)
    if count is None:
        raise UsageError(f"{dev.short_address} has header type {htype}: pyphys knows no BARs there")
    if not 0 <= index < count:
        raise UsageError(
            f"BAR index {index} is out of range ({dev.short_address}'s header type {htype} has BARs 0-{count - 1})"
        )
    off = L.PCI_BASE_ADDRESS_0 + 4 * index
    regs = [
        int.from_bytes(data[L.PCI_BASE_ADDRESS_0 + 4 * i : L.PCI_BASE_ADDRESS_0 + 4 * i + 4], "little")
        for i in range(count)
    ]
    if index and not regs[index - 1] & L.PCI_BASE_ADDRESS_SPACE_IO:
        if regs[index - 1] & L.PCI_BASE_ADDRESS_MEM_TYPE_MASK == L.PCI_BASE_ADDRESS_MEM_TYPE_64:
            raise UsageError(
                f"BAR{index} of {dev.short_address} is the upper half of 64-bit BAR{index - 1}",
                f"size BAR{index - 1}",
            )
    raw = regs[index]
    io = bool(raw & L.PCI_BASE_ADDRESS_SPACE_IO)
    is64 = not io and raw & L.PCI_BASE_ADDRESS_MEM_TYPE_MASK == L.PCI_BASE_ADDRESS_MEM_TYPE_64
    if is64 and index + 1 >= count:
        raise PyphysError(f"BAR{index} of {dev.short_address} says 64-bit but is the last BAR register")
    command = int.from_bytes(data[L.PCI_COMMAND : L.PCI_COMMAND + 2], "little")
    bit, space = (L.PCI_COMMAND_IO, "I/O") if io else (L.PCI_COMMAND_MEMORY, "memory")
    decoding = bool(command & bit)
    if decoding and not force:
        raise UsageError(
            f"refusing to size BAR{index} of {dev.short_address}: the device decodes {space} space "
            f"(command register {command:#06x}, {'I/O' if io else 'Mem'}+), so while the BAR reads all ones "
            "it would answer at the top of the address space, over whatever is there",
            f"turn decoding off first (pyphys pci config {dev.short_address} 0x4 16 "
            f"{command & ~bit:#x} --force; `pyphys undo` turns it back on), or pass --force",
        )
    n = 8 if is64 else 4
    own = journal is None
    jr = journal if journal is not None else jmod.Journal()
    try:
        with ConfigSpace(dev, writable=True) as cfg:
            rec = jmod.journaled_write(
                cfg,
                off,
                b"\xff" * n,
                kind=JOURNAL_KIND,
                label=f"pci {dev.address} BAR{index} sizing",
                journal=jr,
                verify=False,  # the read-back is the decoder's mask, by design
            )
        jr.undo(rec.id)  # the restore: the journal's own undo of the sizing write
        with ConfigSpace(dev) as cfg:
            after = int.from_bytes(cfg.read(off, n), "little")
    finally:
        if own:
            jr.close()
    readback = int.from_bytes(rec.readback, "little")
    return BarSizing(
        address=dev.address,
        index=index,
        offset=off,
        kind="io" if io else "mem",
        is_64bit=is64,
        prefetchable=not io and bool(raw & L.PCI_BASE_ADDRESS_MEM_PREFETCH),
        original=int.from_bytes(rec.old, "little"),
        readback=readback,
        size=_decoded_size(readback, io, n * 8),
        after=after,
        journal_id=rec.id,
        decoding=decoding,
    )
