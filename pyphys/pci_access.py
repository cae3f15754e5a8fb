"""Access to a PCI device without a driver: its BARs and its configuration space.

- BARs: memory BARs through an mmap of sysfs ``resourceN`` (the default), or of /dev/mem at the
  BAR's bus address (``via="devmem"``, through :mod:`pyphys.physmem`, the one module that opens
  /dev/mem). Both use :class:`pyphys.physmem.MappedWindow`, so an 8/16/32/64-bit access is ONE
  load or store of that width. I/O-port BARs go through ``pread``/``pwrite`` of ``resourceN``,
  which the kernel turns into exactly one inb/inw/inl (pci_resource_io()).
- Config space: the sysfs ``config`` file; an aligned 1/2/4-byte pread/pwrite is one config
  access of that width (pci_read_config()/pci_write_config()).

Every check runs before any I/O, so bad input writes nothing. Writes that must be journaled go
through :mod:`pyphys.pci_write`; the raw ``write`` methods here are the journal's target protocol.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from pyphys import paths
from pyphys.errors import (
    DevMemBlockedError,
    FileHolder,
    NotFoundError,
    PermissionDeniedError,
    PyphysError,
    RegionError,
    UsageError,
    from_oserror,
)
from pyphys.layouts import pci as L
from pyphys.pci_devices import Bar, PciDevice, proc_config_path, read_text, sysfs_devices_dir

VIAS = ("resource", "devmem")


def check_access(
    what: str,
    size_limit: int,
    offset: int,
    width: int,
    value: int | None = None,
    widths: Iterable[int] = (8, 16, 32, 64),
) -> int:
    """Validate one ``width``-bit access at ``offset`` of a ``size_limit``-byte space.

    Returns the access size in bytes. Raises UsageError (bad width, unaligned, value too wide)
    or RegionError (past the end).
    """
    widths = tuple(widths)
    if width not in widths:
        raise UsageError(f"width {width} is not one of {', '.join(map(str, widths))} (bits) for {what}")
    size = width // 8
    if offset < 0:
        raise UsageError(f"offset {offset} is negative")
    if offset + size > size_limit:
        last = size_limit - size
        raise RegionError(
            f"offset {offset:#x} is past the end of {what} ({size_limit:#x} bytes)",
            f"the last {width}-bit access is at {last:#x}" if last >= 0 else None,
        )
    if offset % size:
        raise UsageError(f"offset {offset:#x} is not aligned to {width} bits ({size} bytes) in {what}")
    if value is not None:
        if value < 0:
            raise UsageError(f"value {value} is negative")
        if value >> width:
            raise UsageError(f"value {value:#x} is too wide for a {width}-bit access")
    return size


def check_range(what: str, size_limit: int, offset: int, length: int, unit: int = 1) -> None:
    """Validate a byte range (a hexdump or a byte-string write); ``unit`` = access size in bytes."""
    if offset < 0 or length < 0:
        raise UsageError("offset and length must not be negative")
    if length == 0:
        raise UsageError("length is 0: nothing to do")
    if offset + length > size_limit:
        raise RegionError(
            f"{offset:#x}+{length:#x} runs past the end of {what} ({size_limit:#x} bytes)",
            f"at most {max(size_limit - offset, 0):#x} bytes fit from {offset:#x}",
        )
    if unit > 1 and (offset % unit or length % unit):
        raise UsageError(f"{offset:#x}+{length:#x} is not a whole number of aligned {unit * 8}-bit accesses in {what}")


# ----------------------------------------------------------------------------------------------
# refusals explained
# ----------------------------------------------------------------------------------------------
def _cmdline() -> str:
    return read_text(paths.proc("cmdline")) or ""


def bar_claimant(dev: PciDevice, bar: Bar) -> str | None:
    """Who holds ``bar`` busy in /proc/iomem (a driver's request_mem_region name), if anyone.

    /proc/iomem nests the driver's busy region under the BAR's own ``0000:00:04.0`` entry.
    None when nothing claims it or when /proc/iomem hides addresses (not root).
    """
    if bar.kind != "mem":
        return None
    try:
        from pyphys import iomem

        tree = iomem.load()
    except (PyphysError, ImportError):
        return None
    if tree.hidden:
        return None
    chain = tree.region_of(bar.start)
    names = [r.name for r in chain]
    if dev.address in names:
        below = names[names.index(dev.address) + 1 :]
        return below[-1] if below else None
    return None


def explain_bar_error(err: OSError, dev: PciDevice, bar: Bar, op: str, path: str) -> PyphysError:
    """Turn a refusal of a BAR access into the kernel's reason and the ways out.

    drivers/pci/pci-sysfs.c pci_mmap_resource(): EPERM under lockdown (LOCKDOWN_PCI_ACCESS);
    EINVAL when iomem_is_exclusive() (kernel/resource.c: the range is busy, i.e. a driver called
    pci_request_region(), and CONFIG_IO_STRICT_DEVMEM is set, unless iomem=relaxed) or when the
    mapping does not fit the BAR; x86 PAT (arch/x86/mm/pat/memtype.c) fails a mapping whose cache
    type conflicts with an existing one with EINVAL too.
    """
    from pyphys import physmem

    code = err.errno
    what = f"{op} of {dev.short_address} BAR{bar.index} ({path})"
    if code == errno.EACCES:
        return PermissionDeniedError(f"{what}: permission denied", "resourceN files are mode 0600: run as root")
    if code == errno.ENOENT:
        return NotFoundError(
            f"{what}: no such file",
            "the kernel made no resource file for this BAR: it is unassigned, or the architecture has no PCI mmap",
        )
    if code == errno.EPERM:
        mode = physmem.lockdown_mode()
        if mode in ("integrity", "confidentiality"):
            return DevMemBlockedError(
                f"{what}: refused by kernel lockdown ([{mode}], LOCKDOWN_PCI_ACCESS)",
                "lockdown forbids user-space BAR access: boot with lockdown=none (or without Secure Boot enforcement)",
            )
        return PermissionDeniedError(f"{what}: operation not permitted", "run as root with CAP_SYS_ADMIN")
    if code == errno.EINVAL and op == "mmap":
        claimant = bar_claimant(dev, bar)
        relaxed = "iomem=relaxed" in _cmdline().split()
        if claimant or dev.driver:
            owner = claimant or dev.driver
            unbind = (
                f"echo {dev.address} > /sys/bus/pci/drivers/{dev.driver}/unbind" if dev.driver else "unbind its driver"
            )
            return DevMemBlockedError(
                f"{what}: refused with EINVAL: the BAR is claimed by {owner!r} and this kernel enforces "
                "exclusive MMIO (CONFIG_IO_STRICT_DEVMEM, kernel/resource.c iomem_is_exclusive)",
                f"unbind the driver ({unbind}) or boot with iomem=relaxed"
                + (
                    ""
                    if not relaxed
                    else "; iomem=relaxed is already set, so suspect an x86 PAT memory-type conflict (dmesg)"
                ),
            )
        return DevMemBlockedError(
            f"{what}: refused with EINVAL (no driver claims the BAR)",
            "x86 PAT memory-type conflict: the range is mapped elsewhere with another cache mode "
            "(dmesg: 'conflicting memory types'); use resourceN rather than resourceN_wc, or boot with nopat",
        )
    return from_oserror(err, what)


# ----------------------------------------------------------------------------------------------
# BAR access
# ----------------------------------------------------------------------------------------------
class BarAccess(FileHolder):
    """Open BAR ``bar`` of ``dev`` for exact-width accesses at offsets relative to the BAR.

    ``via="resource"``: mmap of sysfs ``resourceN`` (memory BARs) or pread/pwrite of it (I/O BARs,
    each one inb/inw/inl). ``via="devmem"``: /dev/mem at the BAR's address through
    :func:`pyphys.physmem.open_physmem` (memory BARs only). Implements the journal's target
    protocol (``read``, ``write``, ``describe``). Use as a context manager.
    """

    def __init__(self, dev: PciDevice, bar: Bar, via: str = "resource", writable: bool = False):
        if via not in VIAS:
            raise UsageError(f"unknown access path {via!r} (choose from {', '.join(VIAS)})")
        if bar.kind == "io" and via == "devmem":
            raise UsageError(
                f"BAR{bar.index} of {dev.short_address} is an I/O-port BAR: /dev/mem reaches memory, not ports",
                "use --via resource (pread/pwrite of resourceN does inb/inw/inl)",
            )
        self.dev, self.bar, self.via, self.writable = dev, bar, via, writable
        self.size = bar.size
        self.path = os.path.join(sysfs_devices_dir(), dev.address, f"resource{bar.index}")
        self._fd: int | None = None
        self._win = None
        self._pm = None
        self.what = f"{dev.short_address} BAR{bar.index}"
        if via == "devmem":
            from pyphys import physmem

            self._pm = physmem.open_physmem("mmap", writable=writable)
            self.path = self._pm.path
        else:
            flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
            try:
                self._fd = os.open(self.path, flags)
            except OSError as err:
                raise explain_bar_error(err, dev, bar, "open", self.path) from err

    # -- memory BAR through resourceN: a MappedWindow covering what is asked ---------------------
    def _window(self, off: int, n: int):
        from pyphys import physmem

        win = self._win
        if win is not None and win.offset <= off and off + n <= win.offset + win.length:
            return win
        if win is not None:
            win.close()
            self._win = None
        # Map the pages around the access; memory BARs of a page or more are whole pages, so the
        # window never passes the BAR's end (pci_mmap_fits() refuses that with EINVAL).
        base = physmem.page_base(off)
        length = min(max(n + off - base, physmem.PAGE_SIZE), self.size - base)
        assert self._fd is not None
        try:
            self._win = physmem.MappedWindow(
                self._fd,
                base,
                length,
                self.writable,
                # a prefetchable BAR has no read side effects (PCI 3.0 6.2.5.1): plain copies are fine
                mmio=not self.bar.prefetchable,
                what=self.what,
                explain=lambda e, o: explain_bar_error(e, self.dev, self.bar, "mmap", self.path),
            )
        except RegionError as err:
            if self.size >= physmem.PAGE_SIZE:
                raise
            # sysfs gives resourceN the BAR's size (pci_create_attr()), and CPython's mmap refuses a
            # length past a regular file's size, while MappedWindow maps whole pages.
            raise RegionError(
                f"{self.what} is {self.size} bytes, smaller than a page: its resource file cannot be "
                f"mapped a whole page at a time ({err.message})",
                "use --via devmem (/dev/mem maps the page at the BAR's address)",
            ) from None
        return self._win

    # -- I/O BAR through resourceN: pread/pwrite of exactly the access size ------------------
    def _io(self, off: int, size: int, data: bytes | None = None) -> bytes:
        assert self._fd is not None
        try:
            if data is None:
                got = os.pread(self._fd, size, off)
            else:
                done = os.pwrite(self._fd, data, off)
                got = data if done == size else b""
        except OSError as err:
            raise explain_bar_error(err, self.dev, self.bar, "write" if data else "read", self.path) from err
        if len(got) != size:
            raise RegionError(f"{self.what}: port access at {off:#x} came back short ({len(got)} of {size} bytes)")
        return got

    # -- public: exact-width -------------------------------------------------------------------------
    def _widths(self) -> tuple[int, ...]:
        return (8, 16, 32) if self.bar.kind == "io" else (8, 16, 32, 64)

    def read_word(self, off: int, width: int) -> int:
        """One ``width``-bit access at BAR offset ``off``."""
        size = check_access(self.what, self.size, off, width, widths=self._widths())
        if self._pm is not None:
            return self._pm.read_word(self.bar.start + off, width)
        if self.bar.kind == "io":
            return int.from_bytes(self._io(off, size), "little")
        win = self._window(off, size)
        return win.read_word(off - win.offset, width)

    def write_word(self, off: int, width: int, value: int) -> None:
        """One ``width``-bit store of ``value`` at BAR offset ``off`` (raw: not journaled)."""
        size = check_access(self.what, self.size, off, width, value, widths=self._widths())
        self.write(off, value.to_bytes(size, "little"))

    # -- public: journal target protocol --------------------------------------------------------
    def read(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``: one exact access for 1/2/4/8 aligned bytes, else widest aligned pieces."""
        check_range(self.what, self.size, off, n)
        if self._pm is not None:
            return self._pm.read(self.bar.start + off, n)
        if self.bar.kind == "io":
            return b"".join(self._io(o, s) for o, s in _pieces(off, n, 4))
        win = self._window(off, n)
        return win.read(off - win.offset, n)

    def write(self, off: int, data: bytes) -> None:
        """Store ``data`` at ``off`` (raw: use :func:`write_bar` for a journaled write)."""
        if not self.writable:
            raise UsageError(f"{self.what} was opened read-only")
        check_range(self.what, self.size, off, len(data))
        if self._pm is not None:
            self._pm.write(self.bar.start + off, bytes(data))
            return
        if self.bar.kind == "io":
            pos = 0
            for o, s in _pieces(off, len(data), 4):
                self._io(o, s, bytes(data[pos : pos + s]))
                pos += s
            return
        win = self._window(off, len(data))
        win.write(off - win.offset, bytes(data))

    def describe(self) -> dict:
        """What the journal stores to reopen this BAR for undo (see :func:`reopen`)."""
        return {
            "space": "bar",
            "address": self.dev.address,
            "vendor": self.dev.vendor,
            "device": self.dev.device,
            "bar": self.bar.index,
            "bar_start": self.bar.start,
            "via": self.via,
        }

    def _release(self) -> None:
        if self._win is not None:
            self._win.close()
            self._win = None

    def close(self) -> None:
        super().close()  # the window, then the resource file
        if self._pm is not None:
            self._pm.close()
            self._pm = None


def _pieces(off: int, n: int, widest: int) -> list[tuple[int, int]]:
    """Split [off, off+n) into naturally aligned accesses of at most ``widest`` bytes."""
    out = []
    pos = off
    end = off + n
    while pos < end:
        size = widest
        while size > 1 and (pos % size or pos + size > end):
            size //= 2
        out.append((pos, size))
        pos += size
    return out


def open_bar(dev: PciDevice, index: int, via: str = "resource", writable: bool = False) -> BarAccess:
    """Open BAR ``index`` of ``dev``; NotFoundError if it has no such BAR (listing the ones it has)."""
    return BarAccess(dev, dev.bar(index), via, writable)


def read_bar_range(dev: PciDevice, index: int, offset: int, length: int, width: int, via: str = "resource") -> bytes:
    """``length`` bytes from BAR ``index`` at ``offset``, as ``width``-bit accesses (a hexdump's data)."""
    bar = dev.bar(index)
    size = check_access(
        f"{dev.short_address} BAR{index}",
        bar.size,
        offset,
        width,
        widths=(8, 16, 32) if bar.kind == "io" else (8, 16, 32, 64),
    )
    check_range(f"{dev.short_address} BAR{index}", bar.size, offset, length, size)
    with BarAccess(dev, bar, via) as acc:
        return b"".join(acc.read_word(o, width).to_bytes(size, "little") for o in range(offset, offset + length, size))


# ----------------------------------------------------------------------------------------------
# config space
# ----------------------------------------------------------------------------------------------
class ConfigSpace(FileHolder):
    """A device's configuration space through sysfs ``config`` (or /proc/bus/pci/BB/DD.F).

    An aligned 1/2/4-byte pread/pwrite is ONE config access of that width (pci_read_config()
    splits by alignment). Implements the journal's target protocol.
    """

    def __init__(self, dev: PciDevice, writable: bool = False):
        self.dev, self.writable = dev, writable
        sys_path = os.path.join(sysfs_devices_dir(), dev.address, "config")
        self.path = sys_path if os.path.exists(sys_path) else proc_config_path(dev.address)
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        try:
            self._fd: int | None = os.open(self.path, flags)
        except OSError as err:
            raise from_oserror(
                err, f"open {self.path}", "writing config space needs root" if writable else None
            ) from err
        try:
            self.size = os.fstat(self._fd).st_size or L.PCI_CFG_SPACE_SIZE
        except OSError:
            self.size = L.PCI_CFG_SPACE_SIZE

    def read(self, off: int, n: int) -> bytes:
        """``n`` bytes at ``off``; PermissionDeniedError when the kernel returns fewer (not root)."""
        check_range(f"{self.dev.short_address} config space", self.size, off, n)
        assert self._fd is not None
        try:
            data = os.pread(self._fd, n, off)
        except OSError as err:
            raise from_oserror(err, f"read {self.path} at {off:#x}") from err
        if len(data) < n:
            raise PermissionDeniedError(
                f"{self.path}: only {off + len(data):#x} bytes of config space are readable",
                "reading past the 64-byte header needs CAP_SYS_ADMIN (drivers/pci/pci-sysfs.c): run as root",
            )
        return data

    def read_all(self) -> bytes:
        """As much config space as the kernel lets us read (64 bytes unprivileged, 256/4096 as root)."""
        assert self._fd is not None
        try:
            return os.pread(self._fd, self.size, 0)
        except OSError as err:
            raise from_oserror(err, f"read {self.path}") from err

    def write(self, off: int, data: bytes) -> None:
        """pwrite ``data`` at ``off`` (raw: use :func:`write_config` for the journaled, --force path)."""
        if not self.writable:
            raise UsageError(f"{self.path} was opened read-only")
        check_range(f"{self.dev.short_address} config space", self.size, off, len(data))
        assert self._fd is not None
        try:
            done = os.pwrite(self._fd, bytes(data), off)
        except OSError as err:
            if err.errno == errno.EPERM and _lockdown_active():
                raise DevMemBlockedError(
                    f"write {self.path}: refused by kernel lockdown (LOCKDOWN_PCI_ACCESS)",
                    "boot with lockdown=none",
                ) from err
            raise from_oserror(err, f"write {self.path} at {off:#x}") from err
        if done != len(data):
            raise RegionError(f"{self.path}: write at {off:#x} stopped after {done} of {len(data)} bytes")

    def read_word(self, off: int, width: int) -> int:
        size = check_access(f"{self.dev.short_address} config space", self.size, off, width, widths=(8, 16, 32))
        return int.from_bytes(self.read(off, size), "little")

    def describe(self) -> dict:
        return {"space": "config", "address": self.dev.address, "vendor": self.dev.vendor, "device": self.dev.device}


def _lockdown_active() -> bool:
    from pyphys import physmem

    return physmem.lockdown_mode() in ("integrity", "confidentiality")


def read_config(dev: PciDevice) -> bytes:
    """All the config space the caller may read."""
    with ConfigSpace(dev) as cfg:
        return cfg.read_all()


def read_config_word(dev: PciDevice, offset: int, width: int) -> int:
    """One ``width``-bit (8/16/32) config read at ``offset``."""
    with ConfigSpace(dev) as cfg:
        return cfg.read_word(offset, width)


def memory_decoding(dev: PciDevice) -> tuple[bool, bool] | None:
    """(I/O space enabled, memory space enabled) from the command register, or None if unreadable.

    With the enable bit off the device ignores its BAR: reads come back all ones (master abort).
    """
    try:
        cmd = read_config_word(dev, L.PCI_COMMAND, 16)
    except PyphysError:
        return None
    return bool(cmd & L.PCI_COMMAND_IO), bool(cmd & L.PCI_COMMAND_MEMORY)
