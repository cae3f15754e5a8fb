"""The one place that opens and maps physical memory: /dev/mem or the module's /dev/pyphys_mem.

Backends (``open_physmem(backend=...)``):

``mmap``
    /dev/mem opened ``O_RDWR|O_SYNC`` (or ``O_RDONLY|O_SYNC``), page-aligned ``MAP_SHARED``
    windows, cached per page. The only backend that can reach MMIO with exact-width accesses.
``rw``
    /dev/mem with ``pread``/``pwrite``. drivers/char/mem.c copies through a bounce buffer, so
    access width is the kernel's choice; it is limited to RAM below ``high_memory``
    (``valid_phys_addr_range``) and shows zeros for restricted low RAM.
``module``
    /dev/pyphys_mem from ``pyphys.ko mem_device=1``: ``pread``/``pwrite`` at offset = physical
    address, System RAM only (``-ENXIO`` elsewhere). It exists for kernels whose
    CONFIG_STRICT_DEVMEM blocks /dev/mem. Security trade-off (as with chipsec's and LiME's
    drivers): it is a /dev/mem without the kernel's policy, so it is off by default and root-only.
``auto``
    mmap if /dev/mem opens and an mmap probe of a System RAM page works; else the module's
    device if present. ``PhysMem.reason`` says which was taken and why; a later refusal of RAM
    by /dev/mem also falls back to the module's device when it exists.

Exact widths: see :mod:`pyphys.physmem_window` (every 8/16/32/64-bit access is ONE aligned load
or store). Every ``OSError`` becomes a :class:`~pyphys.errors.PyphysError` here, with the kernel's
reason (STRICT_DEVMEM, IO_STRICT_DEVMEM, PAT, lockdown, capabilities) and what to try.
"""

from __future__ import annotations

import errno
import os

from pyphys import TYPE_CHECKING, paths
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
from pyphys.physmem_window import (  # noqa: F401 (re-exported: pyphys.physmem is the public name)
    PAGE_SIZE,
    WIDTH_FORMATS,
    MappedWindow,
    _single_access,
    all_zero,
    check_value,
    check_width,
    page_base,
)

if TYPE_CHECKING:
    from typing import Callable

BACKENDS = ("auto", "mmap", "rw", "module")
#: windows larger than this are mapped, copied and unmapped chunk by chunk
_CHUNK = 1 << 20
#: single-page windows kept mapped (word accesses in a batch hit the same page again and again)
_CACHE_PAGES = 64
#: x86: drivers/char/mem.c read() shows zeros for restricted RAM below 1 MiB (devmem_is_allowed == 2)
_LOW_ZERO_LIMIT = 1 << 20

STRICT_HINT = (
    "CONFIG_STRICT_DEVMEM: /dev/mem may not touch System RAM on this kernel; boot the lab kernel "
    "(make shell), or load pyphys.ko mem_device=1 and use --backend module, or use a kernel with "
    "STRICT_DEVMEM off"
)
IO_STRICT_HINT = (
    "CONFIG_IO_STRICT_DEVMEM: a driver claims this MMIO range exclusively; boot with iomem=relaxed "
    "or unbind the driver (echo BDF > /sys/bus/pci/drivers/DRIVER/unbind)"
)
PAT_HINT = (
    "x86 PAT refused the memory type: the range is already mapped with another cache mode "
    "(dmesg: 'conflicting memory types'); boot with nopat, or try --backend rw"
)
NO_DEVMEM_HINT = (
    "this kernel has no /dev/mem (CONFIG_DEVMEM off, or not a lab kernel; this host has none): "
    "run it in the lab VM: make shell"
)
NO_MODULE_DEV_HINT = (
    "load the module with its device: sudo modprobe -r pyphys; sudo modprobe pyphys mem_device=1"
    " (after sudo pyphys module install)"
)


def lockdown_mode() -> str | None:
    """The active kernel lockdown mode ("none", "integrity", "confidentiality"), or None if unknown."""
    try:
        with open(paths.sys("kernel", "security", "lockdown")) as f:
            text = f.read()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


class _Regions:
    """Lazy /proc/iomem lookups: is a range System RAM, and what to call it in messages."""

    def __init__(self) -> None:
        self._tree = None
        self._loaded = False

    @property
    def tree(self):
        if not self._loaded:
            self._loaded = True
            try:
                from pyphys import iomem

                tree = iomem.load()
                self._tree = None if tree.hidden else tree
            except PyphysError:
                self._tree = None
        return self._tree

    def is_ram(self, addr: int, length: int = 1) -> bool | None:
        """True/False, or None when /proc/iomem is unreadable or hidden."""
        tree = self.tree
        return None if tree is None else tree.is_ram(addr, length)

    def claimed(self, addr: int) -> str | None:
        """Name of the innermost non-RAM region at ``addr`` (a driver or device), if any."""
        tree = self.tree
        if tree is None:
            return None
        chain = tree.region_of(addr)
        return chain[-1].name if chain and not tree.is_ram(addr) else None

    def first_ram_page(self) -> int | None:
        tree = self.tree
        if tree is None:
            return None
        return tree.first_ram_page(PAGE_SIZE, above=_LOW_ZERO_LIMIT)


class PhysMem(FileHolder):
    """Physical memory through one backend; use :func:`open_physmem` to get one.

    Implements the journal's target protocol: ``read``, ``write``, ``describe``.
    """

    def __init__(self, backend: str, writable: bool, reason: str = "", regions: _Regions | None = None):
        self.backend = backend
        self.writable = writable
        self.reason = reason
        self.regions = regions or _Regions()
        self._auto = False
        self._fd: int | None = None
        self._module_fd: int | None = None
        self.path = ""
        self._windows: dict[int, MappedWindow] = {}

    # -- opening ----------------------------------------------------------------------------
    def _open(self, path: str, module: bool) -> int:
        flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_SYNC | os.O_CLOEXEC
        try:
            return os.open(path, flags)
        except OSError as err:
            raise explain_open(err, path, module) from err

    def _start(self) -> None:
        if self.backend == "module":
            self.path = paths.dev("pyphys_mem")
            self._fd = self._open(self.path, module=True)
        else:
            self.path = paths.dev("mem")
            self._fd = self._open(self.path, module=False)

    def _switch_to_module(self, why: str) -> bool:
        """auto only: move to /dev/pyphys_mem if it exists; True if switched."""
        if not self._auto or self.backend == "module" or not os.path.exists(paths.dev("pyphys_mem")):
            return False
        fd = self._open(paths.dev("pyphys_mem"), module=True)
        self.close()
        self._fd, self.backend, self.path = fd, "module", paths.dev("pyphys_mem")
        self.reason = f"{why}; using {self.path}"
        return True

    # -- explain ---------------------------------------------------------------------------
    def _explain(self, err: OSError, addr: int, op: str) -> PyphysError:
        return explain_access(err, addr, op, self.path, self.backend, self.regions)

    # -- mmap backend ------------------------------------------------------------------------
    def _window(self, addr: int, size: int) -> MappedWindow:
        """A cached one-page window holding [addr, addr+size) (size never crosses a page here)."""
        base = page_base(addr)
        win = self._windows.get(base)
        if win is None:
            if len(self._windows) >= _CACHE_PAGES:
                old = next(iter(self._windows))
                self._windows.pop(old).close()
            assert self._fd is not None
            win = MappedWindow(
                self._fd,
                base,
                PAGE_SIZE,
                self.writable,
                mmio=not self.regions.is_ram(base, PAGE_SIZE),
                what=self.path,
                explain=lambda e, off: self._explain(e, addr, "mmap"),
            )
            self._windows[base] = win
        return win

    def _mapped(self, addr: int, length: int, fn: Callable[[MappedWindow, int, int, int], None]) -> None:
        """Call fn(window, window_offset, pos, n) over [addr, addr+length), page by page or in chunks."""
        pos = 0
        while pos < length:
            here = addr + pos
            left = length - pos
            if here % PAGE_SIZE or left < 2 * PAGE_SIZE:
                n = min(left, PAGE_SIZE - here % PAGE_SIZE)
                win = self._window(here, n)
                fn(win, here - win.offset, pos, n)
            else:
                # A long page-aligned stretch: map it once, uncached (dumps, big ranges).
                n = min(left, _CHUNK)
                n -= n % PAGE_SIZE
                assert self._fd is not None
                win = MappedWindow(
                    self._fd,
                    here,
                    n,
                    self.writable,
                    mmio=not self.regions.is_ram(here, n),
                    what=self.path,
                    explain=lambda e, off: self._explain(e, off, "mmap"),
                )
                try:
                    fn(win, 0, pos, n)
                finally:
                    win.close()
            pos += n

    # -- public API --------------------------------------------------------------------------
    def read(self, addr: int, length: int) -> bytes:
        """``length`` bytes at physical ``addr`` (page crossings handled; 32-bit accesses on MMIO).

        Raises RegionError, DevMemBlockedError (with the kernel's reason), PermissionDeniedError.
        """
        _check_addr(addr, length)
        if length == 0:
            return b""
        try:
            return self._read(addr, length)
        except DevMemBlockedError as err:
            if self.regions.is_ram(addr, 1) is not False and self._switch_to_module(
                f"{self.path if self.backend != 'module' else '/dev/mem'} refused RAM ({err.message})"
            ):
                return self._read(addr, length)
            raise

    def _read(self, addr: int, length: int) -> bytes:
        if self.backend == "mmap":
            out = bytearray(length)

            def grab(win: MappedWindow, off: int, pos: int, n: int) -> None:
                out[pos : pos + n] = win.read(off, n)

            self._mapped(addr, length, grab)
            return bytes(out)
        data = self._pread(addr, length)
        if self.backend == "rw" and all_zero(data):
            self._check_zeros(addr, length)
        return data

    def _pread(self, addr: int, length: int) -> bytes:
        assert self._fd is not None
        mmio = self.backend == "rw" and self.regions.is_ram(addr, length) is False
        try:
            if mmio and not _single_access(length, addr, True):
                # read() of non-RAM through /dev/mem: keep to 32-bit pieces of aligned words.
                lo = addr - addr % 4
                hi = -(-(addr + length) // 4) * 4
                raw = b"".join(self._pread_exact(a, 4) for a in range(lo, hi, 4))
                return raw[addr - lo : addr - lo + length]
            return self._pread_exact(addr, length)
        except OSError as err:
            raise self._explain(err, addr, "read") from err

    def _pread_exact(self, addr: int, length: int) -> bytes:
        assert self._fd is not None
        data = os.pread(self._fd, length, addr)
        if len(data) != length:
            raise RegionError(
                f"{self.path}: read at {addr + len(data):#x} came back short ({len(data)} of {length} bytes)",
                "the address is past the end of what this device serves",
            )
        return data

    def _check_zeros(self, addr: int, length: int) -> None:
        """No ambiguous zeros: read() of restricted RAM returns zeros under STRICT_DEVMEM.

        drivers/char/mem.c read_mem(): ``if (allowed == 2) clear_user(...)`` — x86's
        devmem_is_allowed() returns 2 for System RAM below 1 MiB. Probe with mmap: EPERM means
        the kernel restricts RAM, so the zeros are not the memory's content.
        """
        if addr >= _LOW_ZERO_LIMIT or not self.regions.is_ram(addr, 1):
            return
        assert self._fd is not None
        try:
            with MappedWindow(self._fd, addr, length, False, what=self.path) as win:
                real = win.read(0, length)
        except PyphysError as err:
            raise DevMemBlockedError(
                f"{self.path} returned only zeros at {addr:#x} and mmap there was refused ({err.message}): "
                "the kernel shows zeros for restricted RAM (drivers/char/mem.c), not the memory's content",
                STRICT_HINT,
            ) from None
        if not all_zero(real):
            raise DevMemBlockedError(
                f"{self.path} read() returned zeros at {addr:#x} but mmap shows data: "
                "the kernel hides this restricted RAM from read() (drivers/char/mem.c)",
                "use --backend mmap",
            )

    def write(self, addr: int, data: bytes) -> None:
        """Raw write of ``data`` at ``addr`` (NOT journaled: use journal.journaled_write)."""
        if not self.writable:
            raise UsageError("physical memory was opened read-only")
        _check_addr(addr, len(data))
        if not data:
            return
        try:
            self._write(addr, bytes(data))
        except DevMemBlockedError as err:
            if self.regions.is_ram(addr, 1) is not False and self._switch_to_module(
                f"/dev/mem refused RAM ({err.message})"
            ):
                self._write(addr, bytes(data))
                return
            raise

    def _write(self, addr: int, data: bytes) -> None:
        if self.backend == "mmap":

            def put(win: MappedWindow, off: int, pos: int, n: int) -> None:
                win.write(off, data[pos : pos + n])

            self._mapped(addr, len(data), put)
            return
        assert self._fd is not None
        mmio = self.backend == "rw" and self.regions.is_ram(addr, len(data)) is False
        if mmio and not _single_access(len(data), addr, True) and (addr % 4 or len(data) % 4):
            raise UsageError(
                f"{addr:#x}+{len(data)} is not RAM: MMIO writes through read/write must be whole aligned "
                "32-bit words (use --backend mmap for narrower stores)"
            )
        try:
            if mmio and not _single_access(len(data), addr, True):
                for pos in range(0, len(data), 4):
                    self._pwrite_exact(addr + pos, data[pos : pos + 4])
            else:
                self._pwrite_exact(addr, data)
        except OSError as err:
            raise self._explain(err, addr, "write") from err

    def _pwrite_exact(self, addr: int, data: bytes) -> None:
        assert self._fd is not None
        done = os.pwrite(self._fd, data, addr)
        if done != len(data):
            raise RegionError(f"{self.path}: write at {addr:#x} stopped after {done} of {len(data)} bytes")

    def _word_window(self, addr: int, size: int) -> MappedWindow | None:
        """The cached mmap window for a word access, or None after an auto switch to the module."""
        try:
            return self._window(addr, size)
        except DevMemBlockedError as err:
            if self.regions.is_ram(addr, 1) is not False and self._switch_to_module(
                f"/dev/mem refused RAM ({err.message})"
            ):
                return None
            raise

    def read_word(self, addr: int, width: int) -> int:
        """One aligned ``width``-bit load at ``addr`` (pread of exactly width/8 bytes on rw/module)."""
        size = check_width(width)
        if addr % size:
            raise UsageError(f"address {addr:#x} is not aligned to {width} bits ({size} bytes)")
        _check_addr(addr, size)
        if self.backend == "mmap":
            win = self._word_window(addr, size)
            if win is not None:
                return win.read_word(addr - win.offset, width)
        try:
            data = self._pread_exact(addr, size)
        except OSError as err:
            raise self._explain(err, addr, "read") from err
        if self.backend == "rw" and all_zero(data):
            self._check_zeros(addr, size)
        return int.from_bytes(data, "little")

    def write_word(self, addr: int, width: int, value: int) -> None:
        """One aligned ``width``-bit store of ``value`` at ``addr`` (raw, not journaled)."""
        size = check_width(width)
        check_value(value, width)
        if addr % size:
            raise UsageError(f"address {addr:#x} is not aligned to {width} bits ({size} bytes)")
        if not self.writable:
            raise UsageError("physical memory was opened read-only")
        _check_addr(addr, size)
        if self.backend == "mmap":
            win = self._word_window(addr, size)
            if win is not None:
                win.write_word(addr - win.offset, width, value)
                return
        try:
            self._pwrite_exact(addr, value.to_bytes(size, "little"))
        except OSError as err:
            raise self._explain(err, addr, "write") from err

    def word_slot(self, addr: int, width: int, writable: bool = False) -> tuple[memoryview, int] | None:
        """(view, index) such that ``view[index]`` is ONE aligned ``width``-bit load/store at ``addr``.

        The batch fast path: validate and map once, then each access is a single indexing.
        None when the backend is not mmap (use read_word/write_word). Raises like read_word.
        """
        size = check_width(width)
        if addr % size:
            raise UsageError(f"address {addr:#x} is not aligned to {width} bits ({size} bytes)")
        if writable and not self.writable:
            raise UsageError("physical memory was opened read-only")
        _check_addr(addr, size)
        if self.backend != "mmap":
            return None
        win = self._word_window(addr, size)
        if win is None:
            return None
        return win._index(addr - win.offset, width)

    def describe(self) -> dict:
        """JSON-able description the journal stores to reopen this target for undo."""
        return {"backend": self.backend}

    def _release(self) -> None:
        """Unmap all windows (:meth:`close` then closes the device)."""
        for win in self._windows.values():
            win.close()
        self._windows.clear()


def _check_addr(addr: int, length: int) -> None:
    if addr < 0 or length < 0:
        raise UsageError(f"negative address or length ({addr:#x}, {length})")
    if addr + length > 1 << 52:
        # x86-64 physical addresses have at most 52 bits (MAXPHYADDR)
        raise RegionError(f"{addr:#x}+{length:#x} is beyond the 52-bit physical address space")


def explain_open(err: OSError, path: str, module: bool) -> PyphysError:
    """The reason an open() of /dev/mem or /dev/pyphys_mem failed, with what to try."""
    from pyphys import physmem_explain

    return physmem_explain.explain_open(err, path, module)


def explain_access(err: OSError, addr: int, op: str, path: str, backend: str, regions: _Regions | None) -> PyphysError:
    """The reason an mmap/read/write at ``addr`` was refused, naming the kernel policy behind it."""
    from pyphys import physmem_explain

    return physmem_explain.explain_access(err, addr, op, path, backend, regions)


def open_physmem(backend: str = "auto", writable: bool = False) -> PhysMem:
    """Open physical memory through ``backend`` ("auto", "mmap", "rw", "module").

    Returns a :class:`PhysMem` (context manager) whose ``.backend`` is the one in use and
    ``.reason`` says why. Raises NotFoundError (no /dev/mem), ModuleNotLoadedError (no
    /dev/pyphys_mem), PermissionDeniedError, DevMemBlockedError, UsageError (unknown backend).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend != "auto":
        pm = PhysMem(backend, writable, reason=f"--backend {backend}")
        pm._start()
        return pm
    mem, module = paths.dev("mem"), paths.dev("pyphys_mem")
    regions = _Regions()
    if not os.path.exists(mem):
        if os.path.exists(module):
            pm = PhysMem("module", writable, f"{mem} does not exist; using {module}", regions)
            pm._start()
            return pm
        raise NotFoundError(f"{mem} does not exist", NO_DEVMEM_HINT)
    pm = PhysMem("mmap", writable, f"{mem} present and mmap of RAM works", regions)
    pm._auto = True
    try:
        pm._start()
    except (PermissionDeniedError, DevMemBlockedError) as err:
        if os.path.exists(module):
            pm = PhysMem("module", writable, f"{mem} refused ({err.message}); using {module}", regions)
            pm._start()
            return pm
        raise
    probe = regions.first_ram_page()
    if probe is None:
        pm.reason = f"{mem} present (RAM layout unknown: mmap not probed)"
        return pm
    assert pm._fd is not None
    try:
        MappedWindow(pm._fd, probe, PAGE_SIZE, False, what=mem).close()
    except OSError as err:  # pragma: no cover - MappedWindow converts; kept for safety
        raise from_oserror(err, f"mmap of {mem}") from err
    except PyphysError as err:
        cause = err.__cause__
        code = getattr(cause, "errno", None)
        name = errno.errorcode.get(code, "an error") if code else "an error"
        why = f"{mem} refused mmap of RAM with {name}"
        if code == errno.EPERM:
            why += " (CONFIG_STRICT_DEVMEM)"
        if os.path.exists(module):
            pm.close()
            pm = PhysMem("module", writable, f"{why}; using {module}", regions)
            pm._start()
            return pm
        pm.reason = f"{why}; staying on mmap (MMIO may work; for RAM: {NO_MODULE_DEV_HINT})"
    return pm


def reopen(description: dict) -> PhysMem:
    """The journal's opener for kind "phys": ``{"backend": NAME}`` reopened writable (undo)."""
    backend = description.get("backend", "auto")
    return open_physmem(backend if isinstance(backend, str) else repr(backend), writable=True)
