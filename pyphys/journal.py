"""The write journal: every byte pyphys writes can be undone.

The journal is a JSON-lines file at :func:`pyphys.paths.journal_path` (``PYPHYS_JOURNAL``
overrides). It is append-only and guarded by ``flock(LOCK_EX)`` on the file itself, held from
reading the old bytes until the write is verified, so concurrent pyphys processes serialize and
the journal order is the write order. Each entry is appended and ``fsync``'d BEFORE the memory
is written: after a crash the journal knows every write that may have happened.

Entry line::

    {"id": 7, "time": "2026-11-23T10:00:00.123Z", "kind": "phys", "target": {"backend": "mmap"},
     "addr": "0x3a1f000", "old": "00000000", "new": "78563412", "label": "devmem 0x3a1f000 32"}

Later facts about an entry are appended as marker lines ``{"ref": 7, "event": E, "time": ...}``:
``undone`` (restored by ``pyphys undo``: undo is not a new write), ``aborted`` (the write
failed, memory untouched), ``actual`` (read-back differed: ``"hex"`` holds what was read), and
``old`` (batch mode: the bytes found just before the write differed from the journaled guess;
``"hex"`` holds the real ones). :meth:`Journal.entries` folds them into :class:`Entry`. Entries
appended together as one group (``"group"``: the id of the group's first entry) are undone
together by ``pyphys undo`` (the last write), newest first. :mod:`pyphys.journal_format` reads
the lines.

Every append first checks the whole file (:meth:`Journal.check`): a line that is not UTF-8,
not JSON, not an entry or marker of the shapes above (ids and refs integers from 1 to 2**63-1,
ids increasing, refs to earlier entries), or a last line without its newline, refuses the
write with one line naming the file and the line, before memory is touched. A damaged journal
could otherwise hide a write from undo, or undo one twice.

Target protocol
---------------
A *target* is what a write goes to. It is any object with::

    read(addr_or_offset: int, n: int) -> bytes
    write(addr_or_offset: int, data: bytes) -> None
    describe() -> dict          # JSON-able, enough to reopen it later
    close() -> None             # optional

:func:`journaled_write` stores ``kind`` and ``target.describe()`` in the entry. To undo, the
journal reopens the target writable through the *opener* of its kind, ``opener(description)
-> target``, found in :data:`OPENERS` (kind -> ``"module:function"``, imported only when an
entry of that kind is undone, so undo works whichever modules the process imported before).
:func:`register_target` adds an opener at run time (tests, extensions). Kind ``"phys"``: the
description is ``{"backend": NAME}`` and addresses are physical; kind ``"pci"``: a device's
BAR or config space (:func:`pyphys.pci_write.reopen`).
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time

from pyphys import TYPE_CHECKING, paths
from pyphys.errors import JournalError, UsageError, VerifyError, from_oserror
from pyphys.journal_format import MAX_ID, Entry, parse_line
from pyphys.record import Record

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, Callable

#: entry kind -> "module:function" reopening its target writable from the entry's description
#: (imported when an entry of that kind is undone, whatever the process imported before)
OPENERS = {
    "phys": "pyphys.physmem:reopen",
    "pci": "pyphys.pci_write:reopen",
}
_REGISTERED: dict = {}  # kind -> opener added at run time by register_target


def register_target(kind: str, opener: Callable[[dict], Any]) -> None:
    """Make entries of ``kind`` undoable at run time: ``opener(description) -> writable target``
    (it takes precedence over :data:`OPENERS`)."""
    _REGISTERED[kind] = opener


def opener_for(kind: str) -> Callable[[dict], Any]:
    """The opener for ``kind``: a registered one, else the table's (imported now); JournalError if none."""
    opener = _REGISTERED.get(kind)
    if opener is not None:
        return opener
    spec = OPENERS.get(kind)
    if spec is None:
        raise JournalError(f"journal entries of kind {kind!r} cannot be reopened (no opener for this kind)")
    module, _, name = spec.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


def _lock_timeout(value: float | None) -> float:
    """``value``, else PYPHYS_LOCK_TIMEOUT, else 30 s; UsageError unless finite and above 0."""
    what = f"lock timeout {value!r}"
    if value is None:
        text = os.environ.get("PYPHYS_LOCK_TIMEOUT")
        if text is None:
            return 30.0
        what = f"PYPHYS_LOCK_TIMEOUT={text!r}"
        try:
            value = float(text) if text.strip().isascii() else None
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise UsageError(f"{what} is not a number of seconds above 0", "unset it to wait the default 30 s")
    return float(value)


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class WriteRecord(Record):
    """What :func:`journaled_write` did: entry ``id``, ``addr``, ``old``, ``new``, ``readback``, ``verified``."""

    __slots__ = ("id", "addr", "old", "new", "readback", "verified")
    _defaults = {"verified": True}


class UndoResult(Record):
    """One undone entry (id, addr, kind, target, restored, status, label, readback):
    ``status`` is "restored", "already" (memory already held the old bytes) or "register"
    (the old bytes were written back to a location that, when pyphys wrote it, read back
    something other than what was written -- a device register such as edu's liveness
    register; ``readback`` is what it reads now, which is not expected to equal ``restored``)."""

    __slots__ = ("id", "addr", "kind", "target", "restored", "status", "label", "readback")
    _defaults = {"label": "", "readback": None}


class _Lock:
    """Context manager for :meth:`Journal.locked` (contextlib is one more module to load)."""

    def __init__(self, journal: Journal, wait: bool):
        self.journal, self.wait = journal, wait

    def __enter__(self) -> Journal:
        self.journal._acquire(self.wait)
        return self.journal

    def __exit__(self, *exc: object) -> None:
        self.journal._release()


class Journal:
    """The journal file at ``path`` (default :func:`pyphys.paths.journal_path`)."""

    def __init__(self, path: str | None = None, lock_timeout: float | None = None):
        self.path = path or paths.journal_path()
        self.lock_timeout = _lock_timeout(lock_timeout)
        self._fd: int | None = None
        self._depth = 0
        self._last: int | None = None  # highest id, once check() passed under the current lock
        self.bad_lines = 0

    # -- file and lock --------------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is None:
            parent = os.path.dirname(self.path) or "."
            try:
                os.makedirs(parent, mode=0o700, exist_ok=True)
                created = not os.path.exists(self.path)
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # /dev/null or a pipe would keep nothing
                    os.close(fd)
                    raise JournalError(f"journal {self.path} is not a regular file", "set PYPHYS_JOURNAL to a file")
                self._fd = fd
                if created:
                    # the new directory entry must survive a crash too
                    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.fsync(dfd)
                    finally:
                        os.close(dfd)
            except OSError as err:
                raise from_oserror(err, f"open journal {self.path}", "set PYPHYS_JOURNAL to a writable file") from err
        return self._fd

    def locked(self, wait: bool = True) -> _Lock:
        """Context manager holding ``flock(LOCK_EX)`` on the journal (re-entrant within this object).

        Waits up to ``lock_timeout`` seconds (``PYPHYS_LOCK_TIMEOUT``, default 30), not at all
        if ``wait`` is False; then JournalError.
        """
        return _Lock(self, wait)

    def _acquire(self, wait: bool) -> None:
        fd = self._open()
        if self._depth == 0:
            deadline = time.monotonic() + (self.lock_timeout if wait else 0.0)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise JournalError(
                            f"journal {self.path} is locked by another pyphys process",
                            "wait for it to finish (PYPHYS_LOCK_TIMEOUT sets how long pyphys waits)",
                        ) from None
                    time.sleep(0.05)
                except OSError as err:
                    raise from_oserror(err, f"lock journal {self.path}") from err
            self._last = None  # another process may have appended since we last looked
        self._depth += 1

    def _release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the journal file (releases the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._depth = 0

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------
    def _raw_lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                return f.read().split(b"\n")
        except FileNotFoundError:
            return []
        except OSError as err:
            raise from_oserror(err, f"read journal {self.path}") from err

    def _fold(self, strict: bool) -> tuple[dict[int, Entry], int]:
        """Entries by id with their markers folded in, and the highest id. ``strict``: JournalError
        at the first bad line; otherwise bad lines are skipped and counted in ``bad_lines``."""
        by_id: dict[int, Entry] = {}
        last = 0
        self.bad_lines = 0
        raws = self._raw_lines()
        for n, raw in enumerate(raws, 1):
            if not raw.strip():
                continue
            try:
                if n == len(raws):
                    raise ValueError("it ends without a newline (an append cut short?)")
                item = parse_line(raw)
                if isinstance(item, Entry):
                    if item.id <= last:
                        raise ValueError(f"entry id {item.id} does not follow the previous id {last}")
                    by_id[item.id] = item
                    last = item.id
                    continue
                entry = by_id.get(item.ref)
                if entry is None:
                    raise ValueError(f"marker for entry {item.ref}, which no earlier line holds")
                if item.data is not None and len(item.data) != len(entry.new):
                    raise ValueError(
                        f"marker {item.event!r} for entry {item.ref} holds {len(item.data)} bytes, not {len(entry.new)}"
                    )
                if item.event == "undone":
                    entry.undone, entry.undone_time = True, item.time
                elif item.event == "aborted":
                    entry.aborted = True
                elif item.event == "actual":
                    entry.actual = item.data
                else:
                    entry.old = item.data
            except ValueError as err:
                if strict:
                    raise JournalError(
                        f"journal {self.path} line {n}: {err}; refusing to write (nothing written)",
                        "a damaged journal could hide a write from undo: repair or remove that line; "
                        "`pyphys journal --all` lists what is readable",
                    ) from None
                self.bad_lines += 1
        return by_id, last

    def entries(self) -> list[Entry]:
        """All readable entries in id order, with undone/aborted/actual folded in (bad lines are
        skipped and counted in ``bad_lines``)."""
        by_id, _ = self._fold(strict=False)
        return [by_id[k] for k in sorted(by_id)]

    def check(self) -> int:
        """Validate every line; the highest entry id (0 if none). JournalError naming the file and the
        first bad line. Kept under :meth:`locked` until released (only this object appends meanwhile)."""
        if self._depth == 0:
            return self._fold(strict=True)[1]
        if self._last is None:
            self._last = self._fold(strict=True)[1]
        return self._last

    # -- appending --------------------------------------------------------------------------
    def _append(self, objs: Sequence[dict]) -> None:
        fd = self._open()
        lines = [json.dumps(o, separators=(",", ":")).encode() for o in objs]
        for line in lines:  # never append a line that would make the journal refuse every later write
            try:
                parse_line(line)
            except ValueError as err:
                raise JournalError(f"refusing to journal {line[:80]!r}: {err}", "nothing was written") from None
        data = b"".join(line + b"\n" for line in lines)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError as err:
            self._last = None
            raise from_oserror(err, f"append to journal {self.path}", "nothing was written to memory") from err
        ids = [o["id"] for o in objs if "id" in o]
        if ids and self._last is not None:
            self._last = max(ids)

    def record_many(self, items: Sequence[tuple], *, group: bool = False) -> list[int]:
        """Append entries (kind, target, addr, old, new, label[, width]) with ONE fsync; returns their ids.

        ``width`` (bits) marks a word write: undo then restores with one store of that width.
        ``group``: the entries are one group (each names the first's id), undone together.
        JournalError (nothing appended) if the journal holds a bad line.
        """
        with self.locked():
            first = self.check() + 1
            if first + len(items) - 1 > MAX_ID:
                raise JournalError(f"journal {self.path} has run out of entry ids", "start a new journal")
            stamp = _now()
            objs = []
            for i, item in enumerate(items):
                kind, target, addr, old, new, label = item[:6]
                obj = {
                    "id": first + i,
                    "time": stamp,
                    "kind": kind,
                    "target": target,
                    "addr": f"{addr:#x}",
                    "old": bytes(old).hex(),
                    "new": bytes(new).hex(),
                    "label": label,
                }
                if len(item) > 6 and item[6]:
                    obj["width"] = int(item[6])
                if group:
                    obj["group"] = first
                objs.append(obj)
            self._append(objs)
            return [o["id"] for o in objs]

    def record(
        self, kind: str, target: dict, addr: int, old: bytes, new: bytes, label: str = "", width: int | None = None
    ) -> int:
        """Append one entry and fsync it; returns its id."""
        return self.record_many([(kind, target, addr, old, new, label, width)])[0]

    def mark(self, ref: int, event: str, data: bytes | None = None) -> None:
        """Append a marker (``undone``, ``aborted``, ``actual``, ``old``) about entry ``ref``."""
        self.mark_many([ref], event, data)

    def mark_many(self, refs: Iterable[int], event: str, data: bytes | None = None) -> None:
        """The same marker about several entries, with one fsync (``data``: as long as their writes)."""
        with self.locked():
            last = self.check()
            stamp = _now()
            objs = []
            for ref in refs:
                if isinstance(ref, bool) or not isinstance(ref, int) or not 1 <= ref <= last:
                    raise JournalError(f"journal {self.path} has no entry {ref} to mark {event}")
                obj: dict = {"ref": ref, "event": event, "time": stamp}
                if data is not None:
                    obj["hex"] = bytes(data).hex()
                objs.append(obj)
            if objs:
                self._append(objs)

    # -- undo (pyphys.journal_undo) ---------------------------------------------------------
    def select(self, which: str | int | Sequence[int] = "last", *, count: int | None = None) -> list[Entry]:
        """Entries to undo, newest first: "last", "all", an id, a list of ids, or the last ``count``.

        UsageError for an unknown id or one already undone; JournalError if nothing is left.
        """
        from pyphys import journal_undo

        return journal_undo.select(self, which, count)

    def undo(
        self,
        which: str | int | Sequence[int] = "last",
        *,
        count: int | None = None,
        dry_run: bool = False,
    ) -> list[UndoResult]:
        """Restore the old bytes of the selected entries, newest first; all or nothing.

        Every entry is checked first (against memory as it will be after the newer undos):
        if the bytes there are no longer what pyphys wrote, JournalError and nothing is written.
        So is a journal with a bad line (:meth:`check`). Raises VerifyError if a restore does
        not read back.
        """
        from pyphys import journal_undo

        return journal_undo.undo(self, which, count, dry_run)


def _get(target: Any, addr: int, n: int, width: int | None) -> bytes:
    """Read ``n`` bytes, as one ``width``-bit load when given and the target can."""
    if width and width == n * 8 and hasattr(target, "read_word"):
        return int(target.read_word(addr, width)).to_bytes(n, "little")
    return bytes(target.read(addr, n))


def _put(target: Any, addr: int, data: bytes, width: int | None) -> None:
    """Write ``data``, as one ``width``-bit store when given and the target can."""
    if width and width == len(data) * 8 and hasattr(target, "write_word"):
        target.write_word(addr, width, int.from_bytes(data, "little"))
    else:
        target.write(addr, data)


def _short(data: bytes, limit: int = 16) -> str:
    text = data[:limit].hex()
    return text + ("..." if len(data) > limit else "")


def write_recorded(
    jr: Journal, entry_id: int, target: Any, addr: int, old: bytes, data: bytes, width: int | None = None
) -> bytes:
    """Write ``data`` at ``addr`` of ``target`` for the entry ``entry_id``, already recorded with
    ``old`` (under ``jr``'s lock), and mark what happened: a write that fails and leaves ``old``
    is "aborted"; one that fails having changed something (a page crossing), or reads back other
    bytes, records them as "actual", so undo knows what memory holds. Returns the read-back."""
    try:
        _put(target, addr, data, width)
    except BaseException:
        try:
            now = _get(target, addr, len(data), width)
        except Exception:
            now = None
        if now == old:
            jr.mark(entry_id, "aborted")
        elif now is not None:
            jr.mark(entry_id, "actual", now)
        raise
    back = _get(target, addr, len(data), width)
    if back != data:
        jr.mark(entry_id, "actual", back)
    return back


def journaled_write(
    target: Any,
    addr: int,
    data: bytes,
    *,
    kind: str,
    label: str = "",
    journal: Journal | None = None,
    verify: bool = True,
    width: int | None = None,
) -> WriteRecord:
    """Journal, then write ``data`` at ``addr`` of ``target``, then read back.

    ``width`` (bits, equal to len(data)*8) makes the old-value read, the write and the
    read-back single accesses of that width through ``read_word``/``write_word`` when the
    target has them (device registers); undo then restores the same way.

    The old bytes and the new ones are appended and fsync'd before the write. Returns a
    :class:`WriteRecord`. Raises VerifyError if the read-back differs (``verify=False`` for
    registers whose reads differ by design), JournalError/PyphysError if the journal cannot
    be written (then memory is untouched), and whatever the target raises.
    """
    data = bytes(data)
    own = journal is None
    jr = journal if journal is not None else Journal()
    try:
        with jr.locked():
            if width is not None and width != len(data) * 8:
                raise UsageError(f"width {width} does not match {len(data)} bytes of data")
            old = _get(target, addr, len(data), width)
            entry_id = jr.record(kind, target.describe(), addr, old, data, label, width)
            back = write_recorded(jr, entry_id, target, addr, old, data, width)
            if back != data:
                if verify:
                    raise VerifyError(
                        f"wrote {_short(data)} at {addr:#x} but read back {_short(back)}",
                        f"journal entry {entry_id}; `pyphys undo {entry_id}` restores the old bytes",
                    )
            return WriteRecord(entry_id, addr, old, data, back, back == data)
    finally:
        if own:
            jr.close()


__all__ = [
    "OPENERS",
    "Entry",
    "Journal",
    "UndoResult",
    "WriteRecord",
    "journaled_write",
    "write_recorded",
    "opener_for",
    "register_target",
]
