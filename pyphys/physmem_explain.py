"""Why the kernel refused an open, mmap, read or write of physical memory, and what to try.

Imported by :mod:`pyphys.physmem` only when an ``OSError`` has to be explained: the policies
behind it (STRICT_DEVMEM, IO_STRICT_DEVMEM, PAT, lockdown, capabilities) named in one line.
"""

from __future__ import annotations

import errno

from pyphys.errors import (
    FILE_MODE,
    DevMemBlockedError,
    ModuleNotLoadedError,
    NotFoundError,
    PermissionDeniedError,
    PyphysError,
    RegionError,
    from_oserror,
    no_cap,
    root_hint,
)
from pyphys.physmem import (
    IO_STRICT_HINT,
    NO_DEVMEM_HINT,
    NO_MODULE_DEV_HINT,
    PAT_HINT,
    STRICT_HINT,
    lockdown_mode,
)


def explain_open(err: OSError, path: str, module: bool) -> PyphysError:
    """The reason an open() of /dev/mem or /dev/pyphys_mem failed, with what to try."""
    code = err.errno
    if code == errno.ENOENT:
        if module:
            return ModuleNotLoadedError(f"{path} does not exist", NO_MODULE_DEV_HINT)
        return NotFoundError(f"{path} does not exist", NO_DEVMEM_HINT)
    if code == errno.EACCES:
        return PermissionDeniedError(f"open {path}: permission denied", root_hint(FILE_MODE))
    if code == errno.EPERM:
        mode = lockdown_mode()
        if not module and mode in ("integrity", "confidentiality"):
            return DevMemBlockedError(
                f"open {path}: refused by kernel lockdown ([{mode}])",
                "lockdown forbids /dev/mem (LOCKDOWN_DEV_MEM): boot with lockdown=none or without "
                "Secure Boot enforcement, or use --backend module with a signed pyphys.ko",
            )
        return PermissionDeniedError(
            f"open {path}: operation not permitted",
            root_hint(
                no_cap("CAP_SYS_RAWIO") + ", which drivers/char/mem.c open_port checks",
                "it needs root with CAP_SYS_RAWIO (drivers/char/mem.c open_port); see `pyphys doctor`",
            ),
        )
    if code in (errno.EBUSY, errno.EWOULDBLOCK):
        return PyphysError(f"open {path}: device busy", "another process holds it; try again")
    return from_oserror(err, f"open {path}")


def explain_access(err: OSError, addr: int, op: str, path: str, backend: str, regions) -> PyphysError:
    """The reason an mmap/read/write at ``addr`` was refused, naming the kernel policy behind it."""
    code = err.errno
    what = f"{op} of {path} at {addr:#x}"
    ram = regions.is_ram(addr, 1) if regions else None
    claimed = regions.claimed(addr) if regions else None
    if backend == "module":
        if code == errno.ENXIO:
            return RegionError(
                f"{what}: not System RAM (pfn_valid fails)",
                "/dev/pyphys_mem serves RAM only; use --backend mmap for MMIO",
            )
        if code == errno.EFAULT:
            return RegionError(f"{what}: the module could not access this page")
    if code == errno.EPERM:
        mode = lockdown_mode()
        if mode in ("integrity", "confidentiality"):
            return DevMemBlockedError(f"{what}: refused by kernel lockdown ([{mode}])", "boot with lockdown=none")
        if ram is False and claimed:
            return DevMemBlockedError(f"{what}: refused with EPERM (region claimed by {claimed!r})", IO_STRICT_HINT)
        return DevMemBlockedError(f"{what}: refused with EPERM", STRICT_HINT)
    if code == errno.EINVAL and op == "mmap":
        if claimed and ram is False:
            return DevMemBlockedError(
                f"{what}: refused with EINVAL (region claimed by {claimed!r})", f"{IO_STRICT_HINT}; or {PAT_HINT}"
            )
        return DevMemBlockedError(f"{what}: refused with EINVAL", PAT_HINT)
    if code == errno.EFAULT:
        return RegionError(
            f"{what}: bad address (EFAULT)",
            "read()/write() of /dev/mem stop at the end of directly mapped RAM "
            "(valid_phys_addr_range); use --backend mmap for MMIO",
        )
    if code == errno.ENXIO:
        return RegionError(f"{what}: no such physical address (ENXIO)")
    if code == errno.EAGAIN and op == "mmap":
        return DevMemBlockedError(f"{what}: remap_pfn_range failed (EAGAIN)", "the kernel could not map this range")
    return from_oserror(err, what)
