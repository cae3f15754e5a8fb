"""The pyphys.ko sysfs interface: /sys/kernel/pyphys/ (ABI in kmod/ABI.md).

The module publishes physical addresses it computed in the kernel (virt_to_phys() for its
buffer, __pa_symbol() for the nodename in the kernel image):
ground truth from outside user space for the pagemap, /dev/mem and hostname features.
"""

from __future__ import annotations

import errno
import os

from pyphys import paths
from pyphys.errors import FILE_MODE, ModuleNotLoadedError, PermissionDeniedError, PyphysError, from_oserror, root_hint
from pyphys.record import Record

SYSFS_DIR = ("kernel", "pyphys")
PATTERN_BASE = 0x50590000  # u32 word i of the buffer at load time is PATTERN_BASE | i
LOAD_HINT = "load it: sudo pyphys module install (builds it for this kernel and loads it), or in the lab: make shell"


class ModuleInfo(Record):
    """What pyphys.ko reports about its buffer and the kernel's nodename."""

    __slots__ = ("buffer_phys", "buffer_size", "nodename_phys", "nodename_len")
    _frozen = True

    buffer_phys: int
    buffer_size: int
    nodename_phys: int
    nodename_len: int


def sysfs_path(name: str = "") -> str:
    """Path of one of the module's sysfs files (or its directory)."""
    return paths.sys(*SYSFS_DIR, name) if name else paths.sys(*SYSFS_DIR)


def is_loaded() -> bool:
    """True when /sys/kernel/pyphys exists."""
    return os.path.isdir(sysfs_path())


def _read(name: str) -> str:
    path = sysfs_path(name)
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        if not is_loaded():
            raise ModuleNotLoadedError("pyphys.ko is not loaded (no /sys/kernel/pyphys)", LOAD_HINT) from None
        raise ModuleNotLoadedError(
            f"{path} is missing: an older pyphys.ko is loaded", "rmmod pyphys and load this version"
        ) from None
    except PermissionError as err:
        # Address files are 0400: physical addresses are secrets (like kptr_restrict).
        raise PermissionDeniedError(
            f"cannot read {path}: {os.strerror(err.errno)}",
            root_hint(FILE_MODE, "physical addresses are root-only (mode 0400): run as root"),
        ) from err
    except OSError as err:
        raise from_oserror(err, f"reading {path}") from err


def _number(name: str) -> int:
    text = _read(name)
    try:
        return int(text, 0)
    except ValueError:
        raise PyphysError(f"{sysfs_path(name)} holds {text!r}, not a number") from None


def info() -> ModuleInfo:
    """Read all of the module's address files. Raises ModuleNotLoadedError, PermissionDeniedError."""
    return ModuleInfo(
        buffer_phys=_number("buffer_phys"),
        buffer_size=_number("buffer_size"),
        nodename_phys=_number("nodename_phys"),
        nodename_len=_number("nodename_len"),
    )


def read_buffer() -> bytes:
    """The buffer's content as the kernel sees it (sysfs ``buffer``)."""
    path = sysfs_path("buffer")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        if err.errno == errno.ENOENT and not is_loaded():
            raise ModuleNotLoadedError("pyphys.ko is not loaded (no /sys/kernel/pyphys)", LOAD_HINT) from None
        raise from_oserror(err, f"reading {path}") from err


def write_buffer(data: bytes, offset: int = 0) -> None:
    """Write ``data`` into the buffer at ``offset`` through sysfs (the kernel does the store)."""
    path = sysfs_path("buffer")
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as err:
        raise from_oserror(err, f"opening {path}") from err
    try:
        os.pwrite(fd, data, offset)
    except OSError as err:
        raise from_oserror(err, f"writing {path}") from err
    finally:
        os.close(fd)


def pattern(size: int) -> bytes:
    """The buffer's content right after load: little-endian u32 words PATTERN_BASE | i."""
    import struct

    return b"".join(struct.pack("<I", PATTERN_BASE | i) for i in range(size // 4))
