"""Change the kernel's hostname by patching init_uts_ns.name.nodename through /dev/mem.

The classic exercise (Essential Linux Device Drivers, ch. 5): find the physical
address of the nodename (pyphys.ko's sysfs, else kallsyms + /proc/iomem via ``pyphys.ksym``),
check the bytes there really are the current ``uname -n``, then write the new name,
NUL-terminated, through physical memory. The write is journaled, so ``pyphys undo`` restores
the old name byte for byte.
"""

from __future__ import annotations

import os

from pyphys.errors import ModuleNotLoadedError, PyphysError, UsageError
from pyphys.record import Record

# include/uapi/linux/utsname.h: __NEW_UTS_LEN 64, char nodename[__NEW_UTS_LEN + 1]
NODENAME_MAX = 64


class HostnamePlan(Record):
    """Where the nodename is and what would be written there."""

    __slots__ = ("phys", "field_len", "source", "current", "new")
    _frozen = True

    phys: int  # physical address of init_uts_ns.name.nodename
    field_len: int  # size of the field (65)
    source: str  # how the address was found
    current: str  # uname -n now
    new: bytes  # bytes to write: the new name and its NUL


class HostnameResult(Record):
    """What happened: the name before and after, as uname(2) reports it, and the journal id."""

    __slots__ = ("plan", "before", "after", "journal_id", "backend", "backend_reason", "unchanged")
    _defaults = {"unchanged": False}
    _frozen = True

    plan: HostnamePlan
    before: str
    after: str
    journal_id: int | None
    backend: str
    backend_reason: str
    unchanged: bool  # NAME was already the hostname: nothing written, nothing journaled


def validate_name(name: str) -> bytes:
    """The new name as bytes plus NUL; UsageError if empty, too long, or not printable."""
    if not name:
        raise UsageError("the new hostname is empty")
    if "\0" in name:
        raise UsageError("the new hostname contains a NUL byte")
    bad = [c for c in name if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise UsageError(f"the new hostname contains a non-printable character {bad[0]!r}")
    raw = name.encode("utf-8", "strict")
    if len(raw) > NODENAME_MAX:
        raise UsageError(f"the new hostname is {len(raw)} bytes; the kernel's nodename holds at most {NODENAME_MAX}")
    return raw + b"\0"


def locate_nodename() -> tuple[int, int, str]:
    """(physical address, field length, source) of the kernel's nodename.

    pyphys.ko's sysfs first (__pa_symbol in the kernel); without the module, the symbol
    init_uts_ns through ``pyphys.ksym`` (kallsyms + iomem, kcore). Raises ModuleNotLoadedError
    with the load hint when neither works.
    """
    from pyphys import kmod

    try:
        info = kmod.info()
        return info.nodename_phys, info.nodename_len, "pyphys.ko sysfs (__pa_symbol)"
    except ModuleNotLoadedError as mod_err:
        try:
            from pyphys import ksym
        except ImportError:
            raise mod_err from None
        try:
            report = ksym.lookup("nodename")
            if report.phys is None:
                raise PyphysError("no source gave a physical address for init_uts_ns.name.nodename")
            names = ", ".join(s.name for s in report.sources if s.phys is not None)
            return report.phys, ksym.UTS_FIELD_LEN, f"kernel symbols ({names})"
        except PyphysError as ksym_err:
            raise ModuleNotLoadedError(
                f"cannot locate the nodename: {mod_err.message}; and from kernel symbols: {ksym_err.message}",
                mod_err.hint,
            ) from None


def plan(name: str) -> HostnamePlan:
    """Validate ``name`` and find the nodename. Writes nothing."""
    new = validate_name(name)
    phys, field_len, source = locate_nodename()
    if len(new) > field_len:
        raise UsageError(f"the new hostname needs {len(new)} bytes with its NUL; the field holds {field_len}")
    return HostnamePlan(phys, field_len, source, os.uname().nodename, new)


def _check_current(mem, p: HostnamePlan) -> None:
    """Refuse unless the bytes at the address are the current nodename, NUL-terminated."""
    expected = p.current.encode() + b"\0"
    got = mem.read(p.phys, len(expected))
    if got != expected:
        shown = got.split(b"\0")[0].decode("utf-8", "replace")
        raise PyphysError(
            f"the bytes at {p.phys:#x} read {shown!r}, not the current hostname {p.current!r}: "
            f"the address from {p.source} is wrong or memory is hidden; nothing written",
            "check `pyphys ksym init_uts_ns` and `pyphys doctor`",
        )


def change(name: str, *, backend: str = "auto", dry_run: bool = False, journal=None) -> HostnameResult:
    """Write ``name`` into the kernel's nodename; returns before/after as ``uname -n`` sees them.

    Raises UsageError for a bad name, ModuleNotLoadedError, DevMemBlockedError (STRICT_DEVMEM),
    PermissionDeniedError, VerifyError; nothing is written on any error before the write.
    """
    from pyphys import journal as journal_mod
    from pyphys import physmem

    p = plan(name)
    with physmem.open_physmem(backend, writable=not dry_run) as mem:
        _check_current(mem, p)
        before = os.uname().nodename
        record_id = None
        if p.new == p.current.encode() + b"\0":  # _check_current read exactly these bytes there
            return HostnameResult(p, before, before, None, mem.backend, mem.reason, unchanged=True)
        if not dry_run:
            record = journal_mod.journaled_write(
                mem, p.phys, p.new, kind="phys", label=f"hostname {before!r} -> {name!r}", journal=journal
            )
            record_id = record.id
        after = os.uname().nodename
        return HostnameResult(p, before, after, record_id, mem.backend, mem.reason)
