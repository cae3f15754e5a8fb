"""Processes and their mappings: /proc/PID/maps, /proc/PID/stat, and picking a process.

A process is named by pid, ``self`` or a name (looked up with psutil, imported only then).
:func:`parse_maps` takes lines, not a path, so tests feed it fixtures; :func:`read_maps`
opens ``paths.proc(pid, "maps")``. Format: proc(5) and Documentation/filesystems/proc.rst
("/proc/PID/maps": ``address perms offset dev inode pathname``).
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

from pyphys import paths
from pyphys.errors import (
    NotFoundError,
    ProcessGoneError,
    PyphysError,
    UsageError,
    from_oserror,
)

from pyphys.layouts.pagemap import PF_KTHREAD

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps: ``[start, end)`` virtual addresses and what backs them."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str

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
        line = f"{self.start:08x}-{self.end:08x} {self.perms} {self.offset:08x} {self.dev} {self.inode}"
        return f"{line:<73}{self.path}" if self.path else line

    def describe(self) -> str:
        """Short form: range, perms and label."""
        return f"{self.start:#x}-{self.end:#x} {self.perms} {self.label}"


class MapsParseError(PyphysError):
    """A /proc/PID/maps line that does not have the documented format."""


def parse_maps_line(line: str, lineno: int = 0) -> Mapping:
    """Parse one maps line; raises :class:`MapsParseError` naming the line."""
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
        return Mapping(start, end, perms, int(parts[2], 16), parts[3], int(parts[4]),
                       parts[5].strip() if len(parts) > 5 else "")
    except ValueError as err:
        where = f"line {lineno}" if lineno else "line"
        raise MapsParseError(f"malformed /proc/PID/maps {where}: {line.strip()!r} ({err})") from None


def parse_maps(lines: Iterable[str]) -> list[Mapping]:
    """All mappings in ``lines`` (the text of /proc/PID/maps), in file (address) order."""
    return [parse_maps_line(line, n) for n, line in enumerate(lines, 1) if line.strip()]


def read_maps(pid: int) -> list[Mapping]:
    """Mappings of process ``pid``; raises ProcessGoneError / PermissionDeniedError."""
    path = paths.proc(pid, "maps")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_maps(f)
    except FileNotFoundError as err:
        raise ProcessGoneError(f"process {pid} no longer exists ({path})") from err
    except OSError as err:
        raise from_oserror(err, f"cannot read {path}") from err


def find_mapping(maps: list[Mapping], addr: int) -> Mapping | None:
    """The mapping containing ``addr`` (``maps`` sorted by start, as the kernel lists them)."""
    i = bisect.bisect_right([m.start for m in maps], addr) - 1
    if i >= 0 and maps[i].contains(addr):
        return maps[i]
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


@dataclass(frozen=True)
class ProcessInfo:
    """What pyphys needs to know about a process before reading its page tables."""

    pid: int
    name: str          # comm, as in /proc/PID/stat
    state: str         # one letter: R, S, D, Z, T, ...
    kernel_thread: bool

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
        rest = text[rpar + 2:].split()
        return pid, text[lpar + 1:rpar], rest[0], int(rest[6])
    except (ValueError, IndexError):
        raise PyphysError(f"malformed /proc/PID/stat: {text[:80]!r}") from None


def process_info(pid: int) -> ProcessInfo:
    """Read /proc/PID/stat; NotFoundError when there is no such process."""
    path = paths.proc(pid, "stat")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"no process with pid {pid}", "list processes with `ps -e`") from None
    except OSError as err:
        raise from_oserror(err, f"cannot read {path}") from err
    _pid, comm, state, flags = parse_stat(text)
    return ProcessInfo(pid, comm, state, bool(flags & PF_KTHREAD))


def require_address_space(info: ProcessInfo) -> None:
    """Raise a clear error if ``info`` names a process without user memory to look at."""
    if info.kernel_thread:
        raise UsageError(f"pid {info.pid} ({info.name}) is a kernel thread: it has no user address "
                         "space, so no pagemap", "pick a user process")
    if info.zombie:
        raise ProcessGoneError(f"pid {info.pid} ({info.name}) is a zombie: it exited and its memory "
                               "is gone (only its exit status is left for its parent)")


def resolve_process(spec: str | int) -> ProcessInfo:
    """Pick a process by pid (int or digits), ``self``, or name.

    A name matches the process name (comm), the executable's basename or argv[0]'s basename;
    this process is never a match. No match is NotFoundError; several are a UsageError listing
    them (pyphys never guesses).
    """
    if isinstance(spec, int):
        pid = spec
    else:
        text = spec.strip()
        if text == "self":
            pid = os.getpid()
        elif text.lstrip("+-").isdigit():
            pid = int(text)
        elif not text:
            raise UsageError("empty process name", "give a pid, `self` or a process name")
        else:
            return _by_name(text)
    if pid <= 0:
        raise UsageError(f"pid {spec!r} is not a positive number")
    return process_info(pid)


def _by_name(name: str) -> ProcessInfo:
    try:
        import psutil  # only for names: keeps `pyphys pagemap PID ADDR` fast
    except ImportError:
        raise UsageError(f"looking a process up by name ({name!r}) needs psutil",
                         "pip install psutil, or give the pid") from None
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
    return process_info(matches[0][0])
