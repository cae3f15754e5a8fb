"""Processes and their mappings: /proc/PID/maps, /proc/PID/stat, and picking a process.

A process is named by pid, ``self`` or a name (looked up with psutil, imported only then).
:func:`parse_maps` takes lines, not a path, so tests feed it fixtures; :func:`read_maps`
opens ``paths.proc(pid, "maps")``. Format: proc(5) and Documentation/filesystems/proc.rst
("/proc/PID/maps": ``address perms offset dev inode pathname``).

Results are records (:mod:`pyphys.record`: :class:`Mapping`, :class:`ProcessInfo`); the plain
tuples they are built from (:func:`read_maps_rows`, :func:`stat_of`) serve readers that only
need a field or two of every mapping.
"""

from __future__ import annotations

import bisect
import os

from pyphys import TYPE_CHECKING, paths
from pyphys.errors import (
    NotFoundError,
    ProcessGoneError,
    PyphysError,
    UsageError,
    from_oserror,
)
from pyphys.layouts.pagemap import PF_KTHREAD
from pyphys.record import Record

if TYPE_CHECKING:
    from collections.abc import Iterable


# ---------------------------------------------------------------------------------------
# /proc/PID/maps
# ---------------------------------------------------------------------------------------
class Mapping(Record):
    """One line of /proc/PID/maps: ``[start, end)`` virtual addresses and what backs them
    (``start``, ``end``, ``perms``, ``offset``, ``dev``, ``inode``, ``path``)."""

    __slots__ = ("start", "end", "perms", "offset", "dev", "inode", "path")
    _frozen = True
    _json = {"start": "hex", "end": "hex", "offset": "hex"}

    @property
    def size(self) -> int:
        """Length in bytes."""
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1:2] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2:3] == "x"

    @property
    def shared(self) -> bool:
        """True for MAP_SHARED ("s"), False for private copy-on-write ("p")."""
        return self.perms[3:4] == "s"

    @property
    def anonymous(self) -> bool:
        """No file behind it: plain anonymous memory, [heap], [stack], [anon:NAME]."""
        return self.inode == 0 and (not self.path or self.path.startswith("["))

    @property
    def label(self) -> str:
        """The pathname column, or ``[anon]`` when it is empty."""
        return self.path or "[anon]"

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def maps_line(self) -> str:
        """The mapping formatted like its /proc/PID/maps line."""
        return maps_line(self.start, self.end, self.perms, self.offset, self.dev, self.inode, self.path)

    def describe(self) -> str:
        """Short form: range, perms and label."""
        return f"{self.start:#x}-{self.end:#x} {self.perms} {self.label}"


def maps_line(start: int, end: int, perms: str, offset: int, dev: str, inode: int, path: str) -> str:
    """A /proc/PID/maps line (fs/proc/task_mmu.c show_map_vma: path padded to column 73)."""
    line = f"{start:08x}-{end:08x} {perms} {offset:08x} {dev} {inode}"
    return f"{line:<73}{path}" if path else line


class MapsParseError(PyphysError):
    """A /proc/PID/maps line that does not have the documented format."""


def parse_maps_row(line: str, lineno: int = 0) -> tuple[int, int, str, int, str, int, str]:
    """One maps line as ``(start, end, perms, offset, dev, inode, path)``; MapsParseError if malformed."""
    parts = line.rstrip("\n").split(None, 5)
    try:
        if len(parts) < 5:
            raise ValueError("fewer than 5 fields")
        lo, sep, hi = parts[0].partition("-")
        if not sep:
            raise ValueError("address range without '-'")
        start, end = int(lo, 16), int(hi, 16)
        perms = parts[1]
        if len(perms) != 4:
            raise ValueError(f"permissions {perms!r} are not 4 characters")
        if start > end:
            raise ValueError("range ends before it starts")
        return (
            start,
            end,
            perms,
            int(parts[2], 16),
            parts[3],
            int(parts[4]),
            parts[5].strip() if len(parts) > 5 else "",
        )
    except ValueError as err:
        where = f"line {lineno}" if lineno else "line"
        raise MapsParseError(f"malformed /proc/PID/maps {where}: {line.strip()!r} ({err})") from None


def parse_maps_line(line: str, lineno: int = 0) -> Mapping:
    """Parse one maps line; raises :class:`MapsParseError` naming the line."""
    return Mapping(*parse_maps_row(line, lineno))


def parse_maps(lines: Iterable[str]) -> list[Mapping]:
    """All mappings in ``lines`` (the text of /proc/PID/maps), in file (address) order."""
    return [Mapping(*parse_maps_row(line, n)) for n, line in enumerate(lines, 1) if line.strip()]


def read_maps_rows(pid: int) -> list[tuple[int, int, str, int, str, int, str]]:
    """The rows of /proc/PID/maps as tuples (what :func:`read_maps` wraps in :class:`Mapping`)."""
    path = paths.proc(pid, "maps")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            return [parse_maps_row(line, n) for n, line in enumerate(f, 1) if line.strip()]
    except FileNotFoundError as err:
        raise ProcessGoneError(f"process {pid} no longer exists ({path})") from err
    except OSError as err:
        raise from_oserror(err, f"cannot read {path}") from err


def read_maps(pid: int) -> list[Mapping]:
    """Mappings of process ``pid``; raises ProcessGoneError / PermissionDeniedError."""
    return [Mapping(*row) for row in read_maps_rows(pid)]


def find_mapping(maps: list, addr: int):
    """The mapping (or row) containing ``addr``; ``maps`` sorted by start, as the kernel lists them."""
    starts = [m[0] if isinstance(m, tuple) else m.start for m in maps]
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0:
        m = maps[i]
        end = m[1] if isinstance(m, tuple) else m.end
        if addr < end:
            return m
    return None


def neighbours(maps: list[Mapping], addr: int) -> tuple[Mapping | None, Mapping | None]:
    """The nearest mapping ending at or below ``addr`` and the nearest starting above it."""
    below = None
    above = None
    for m in maps:
        if m.end <= addr and (below is None or m.end > below.end):
            below = m
        if m.start > addr and (above is None or m.start < above.start):
            above = m
    return below, above


def mappings_in(maps: list[Mapping], start: int, end: int) -> list[tuple[Mapping, int, int]]:
    """``(mapping, lo, hi)`` for each mapping overlapping ``[start, end)``, clipped to it."""
    out = []
    for m in maps:
        lo, hi = max(m.start, start), min(m.end, end)
        if lo < hi:
            out.append((m, lo, hi))
    return out


# ---------------------------------------------------------------------------------------
# /proc/PID/stat and choosing a process
# ---------------------------------------------------------------------------------------
class ProcessInfo(Record):
    """What pyphys needs to know about a process before reading its page tables: ``pid``,
    ``name`` (comm, as in /proc/PID/stat), ``state`` (one letter: R, S, D, Z, T, ...),
    ``kernel_thread``."""

    __slots__ = ("pid", "name", "state", "kernel_thread")
    _frozen = True

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def parse_stat(text: str) -> tuple[int, str, str, int]:
    """``(pid, comm, state, flags)`` from the text of /proc/PID/stat.

    comm may contain spaces and parentheses, so it runs to the LAST ')' (proc(5)).
    """
    try:
        lpar, rpar = text.index("("), text.rindex(")")
        pid = int(text[:lpar])
        rest = text[rpar + 2 :].split()
        return pid, text[lpar + 1 : rpar], rest[0], int(rest[6])
    except (ValueError, IndexError):
        raise PyphysError(f"malformed /proc/PID/stat: {text[:80]!r}") from None


def stat_of(pid: int) -> tuple[int, str, str, bool]:
    """``(pid, name, state, kernel_thread)`` from /proc/PID/stat; NotFoundError if no such process."""
    path = paths.proc(pid, "stat")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"no process with pid {pid}", "list processes with `ps -e`") from None
    except OSError as err:
        raise from_oserror(err, f"cannot read {path}") from err
    _pid, comm, state, flags = parse_stat(text)
    return pid, comm, state, bool(flags & PF_KTHREAD)


def process_info(pid: int) -> ProcessInfo:
    """Read /proc/PID/stat; NotFoundError when there is no such process."""
    return ProcessInfo(*stat_of(pid))


def check_address_space(pid: int, name: str, state: str, kernel_thread: bool) -> None:
    """Raise a clear error if the process has no user memory to look at."""
    if kernel_thread:
        raise UsageError(
            f"pid {pid} ({name}) is a kernel thread: it has no user address space, so no pagemap", "pick a user process"
        )
    if state in ("Z", "X"):
        raise ProcessGoneError(
            f"pid {pid} ({name}) is a zombie: it exited and its memory "
            "is gone (only its exit status is left for its parent)"
        )


def require_address_space(info: ProcessInfo) -> None:
    """:func:`check_address_space` for a :class:`ProcessInfo`."""
    check_address_space(info.pid, info.name, info.state, info.kernel_thread)


def resolve_pid(spec: str | int) -> int:
    """The pid named by ``spec``: a pid (int or digits), ``self``, or a process name.

    A name matches the process name (comm), the executable's basename or argv[0]'s basename;
    this process is never a match. No match is NotFoundError; several are a UsageError listing
    them (pyphys never guesses). The pid is not checked to exist (see :func:`stat_of`).
    """
    if isinstance(spec, int):
        pid = spec
    else:
        text = spec.strip()
        if text == "self":
            return os.getpid()
        if text.lstrip("+-").isdigit():
            pid = int(text)
        elif not text:
            raise UsageError("empty process name", "give a pid, `self` or a process name")
        else:
            return _by_name(text)
    if pid <= 0:
        raise UsageError(f"pid {spec!r} is not a positive number")
    return pid


def resolve_process(spec: str | int) -> ProcessInfo:
    """:func:`resolve_pid` and :func:`process_info` in one."""
    return process_info(resolve_pid(spec))


def _by_name(name: str) -> int:
    try:
        import psutil  # only for names: keeps `pyphys pagemap PID ADDR` fast
    except ImportError:
        raise UsageError(
            f"looking a process up by name ({name!r}) needs psutil", "pip install psutil, or give the pid"
        ) from None
    me = os.getpid()
    matches = []
    for proc in psutil.process_iter(["pid", "name", "exe", "cmdline"]):
        info = proc.info
        if info["pid"] == me:
            continue
        argv0 = os.path.basename((info.get("cmdline") or [""])[0] or "")
        exe = os.path.basename(info.get("exe") or "")
        if name in (info.get("name"), argv0, exe):
            matches.append((info["pid"], " ".join(info.get("cmdline") or []) or f"[{info.get('name')}]"))
    if not matches:
        raise NotFoundError(f"no process named {name!r}", "list processes with `ps -e`, or give the pid")
    if len(matches) > 1:
        shown = "; ".join(f"{pid}: {cmd[:60]}" for pid, cmd in sorted(matches)[:8])
        more = f"; and {len(matches) - 8} more" if len(matches) > 8 else ""
        raise UsageError(f"{len(matches)} processes are named {name!r}: {shown}{more}", "give the pid")
    return matches[0][0]
