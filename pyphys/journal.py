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
``"hex"`` holds the real ones). :meth:`Journal.entries` folds them into :class:`Entry`.

Target protocol
---------------
A *target* is what a write goes to. It is any object with::

    read(addr_or_offset: int, n: int) -> bytes
    write(addr_or_offset: int, data: bytes) -> None
    describe() -> dict          # JSON-able, enough to reopen it later
    close() -> None             # optional

:func:`journaled_write` stores ``kind`` and ``target.describe()`` in the entry. To undo,
the journal needs an *opener* for the kind: ``opener(description: dict) -> target`` (opened
writable). Register one with :func:`register_target`. When an entry's kind has no opener,
the journal imports ``pyphys.<kind>`` (e.g. ``pyphys.pci``), which is expected to call
``journal.register_target("<kind>", opener)`` at import time. Kind ``"phys"`` is built in:
its description is ``{"backend": NAME}`` and addresses are physical.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

from pyphys import TYPE_CHECKING, paths
from pyphys.errors import JournalError, UsageError, VerifyError, from_oserror

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, Callable

_OPENERS: dict = {}  # kind -> opener(description) -> target


def register_target(kind: str, opener: Callable[[dict], Any]) -> None:
    """Make entries of ``kind`` undoable: ``opener(description) -> writable target``."""
    _OPENERS[kind] = opener


def _open_phys(description: dict) -> Any:
    from pyphys import physmem

    return physmem.open_physmem(description.get("backend", "auto"), writable=True)


register_target("phys", _open_phys)


def opener_for(kind: str) -> Callable[[dict], Any]:
    """The opener registered for ``kind`` (importing ``pyphys.<kind>`` if needed); JournalError if none."""
    if kind not in _OPENERS and kind.isidentifier():
        try:
            __import__(f"pyphys.{kind}")
        except ImportError:
            pass
    try:
        return _OPENERS[kind]
    except KeyError:
        raise JournalError(f"journal entries of kind {kind!r} cannot be reopened (no opener registered)") from None


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class _Record:
    """A minimal dataclass stand-in: __init__/__repr__/__eq__ from ``_fields`` and ``_defaults``.

    Why not dataclasses: importing it pulls in inspect and a dozen modules, and in the TCG lab
    guest every module costs several 9p stats (~10 ms each) on every one-shot pyphys call.
    """

    __slots__ = ()
    _fields: tuple = ()
    _defaults: dict = {}

    def __init__(self, *args: object, **kwargs: object) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} arguments")
        values = dict(self._defaults)
        values.update(zip(self._fields, args))
        for key, value in kwargs.items():
            if key not in self._fields:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            values[key] = value
        for name in self._fields:
            if name not in values:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            setattr(self, name, values[name])

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self._fields)


class Entry(_Record):
    """One journaled write, with the facts appended about it since.

    Fields: id, time, kind, target (dict), addr, old, new (bytes), label, undone, undone_time,
    aborted, actual (read-back bytes when they differed), width (bits, for word writes).
    """

    __slots__ = (
        "id",
        "time",
        "kind",
        "target",
        "addr",
        "old",
        "new",
        "label",
        "undone",
        "undone_time",
        "aborted",
        "actual",
        "width",
    )
    _fields = __slots__
    _defaults = {"label": "", "undone": False, "undone_time": None, "aborted": False, "actual": None, "width": None}

    @property
    def active(self) -> bool:
        """True if the write happened and has not been undone."""
        return not self.undone and not self.aborted

    def to_dict(self) -> dict:
        """JSON-able form, as `pyphys journal --json` prints it."""
        out = {
            "id": self.id,
            "time": self.time,
            "kind": self.kind,
            "target": self.target,
            "addr": f"{self.addr:#x}",
            "old": self.old.hex(),
            "new": self.new.hex(),
            "label": self.label,
            "undone": self.undone,
            "aborted": self.aborted,
        }
        if self.undone_time:
            out["undone_time"] = self.undone_time
        if self.actual is not None:
            out["actual"] = self.actual.hex()
        if self.width:
            out["width"] = self.width
        return out


class WriteRecord(_Record):
    """What :func:`journaled_write` did.

    Entry ``id``, ``addr``, ``old`` and ``new`` bytes, ``readback``, ``verified``.
    """

    __slots__ = ("id", "addr", "old", "new", "readback", "verified")
    _fields = __slots__
    _defaults = {"verified": True}


class UndoResult(_Record):
    """One undone entry (id, addr, kind, target, restored, status, label, readback):
    ``status`` is "restored", "already" (memory already held the old bytes) or "register"
    (the old bytes were written back to a location that, when pyphys wrote it, read back
    something other than what was written -- a device register such as edu's liveness
    register; ``readback`` is what it reads now, which is not expected to equal ``restored``)."""

    __slots__ = ("id", "addr", "kind", "target", "restored", "status", "label", "readback")
    _fields = __slots__
    _defaults = {"label": "", "readback": None}


class _Planned(_Record):
    __slots__ = ("entry", "key", "current", "status")
    _fields = __slots__


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
        if lock_timeout is None:
            try:
                lock_timeout = float(os.environ.get("PYPHYS_LOCK_TIMEOUT", "30"))
            except ValueError:
                lock_timeout = 30.0
        self.lock_timeout = lock_timeout
        self._fd: int | None = None
        self._depth = 0
        self.bad_lines = 0

    # -- file and lock --------------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is None:
            parent = os.path.dirname(self.path) or "."
            try:
                os.makedirs(parent, mode=0o700, exist_ok=True)
                created = not os.path.exists(self.path)
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
    def _lines(self) -> Iterable[dict]:
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        # a torn last line after a crash mid-append: not an entry
                        self.bad_lines += 1
                        continue
                    if isinstance(obj, dict):
                        yield obj
                    else:
                        self.bad_lines += 1
        except FileNotFoundError:
            return
        except OSError as err:
            raise from_oserror(err, f"read journal {self.path}") from err

    def entries(self) -> list[Entry]:
        """All entries in id order, with undone/aborted/actual folded in."""
        by_id: dict[int, Entry] = {}
        self.bad_lines = 0
        for obj in self._lines():
            try:
                if "ref" in obj:
                    entry = by_id.get(int(obj["ref"]))
                    if entry is None:
                        continue
                    event = obj.get("event")
                    if event == "undone":
                        entry.undone, entry.undone_time = True, obj.get("time")
                    elif event == "aborted":
                        entry.aborted = True
                    elif event == "actual":
                        entry.actual = bytes.fromhex(obj["hex"])
                    elif event == "old":
                        entry.old = bytes.fromhex(obj["hex"])
                    continue
                entry = Entry(
                    id=int(obj["id"]),
                    time=str(obj.get("time", "")),
                    kind=str(obj["kind"]),
                    target=dict(obj.get("target") or {}),
                    addr=int(str(obj["addr"]), 0),
                    old=bytes.fromhex(obj["old"]),
                    new=bytes.fromhex(obj["new"]),
                    label=str(obj.get("label", "")),
                    width=int(obj["width"]) if obj.get("width") else None,
                )
            except (KeyError, ValueError, TypeError):
                self.bad_lines += 1
                continue
            by_id[entry.id] = entry
        return [by_id[k] for k in sorted(by_id)]

    def _last_id(self) -> int:
        """Highest entry id (reads the file backwards; ids only grow)."""
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return 0
        if size == 0:
            return 0
        with open(self.path, "rb") as f:
            chunk = 4096
            pos = size
            tail = b""
            while pos > 0:
                step = min(chunk, pos)
                pos -= step
                f.seek(pos)
                tail = f.read(step) + tail
                lines = tail.split(b"\n")
                # the first piece may be a partial line unless we reached the start
                complete = lines if pos == 0 else lines[1:]
                for raw in reversed(complete):
                    try:
                        obj = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and "id" in obj:
                        return int(obj["id"])
                chunk *= 4
        return 0

    # -- appending --------------------------------------------------------------------------
    def _append(self, objs: Sequence[dict]) -> None:
        fd = self._open()
        data = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs).encode()
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError as err:
            raise from_oserror(err, f"append to journal {self.path}", "nothing was written to memory") from err

    def record_many(self, items: Sequence[tuple]) -> list[int]:
        """Append entries (kind, target, addr, old, new, label[, width]) with ONE fsync; returns their ids.

        ``width`` (bits) marks a word write: undo then restores with one store of that width.
        """
        with self.locked():
            first = self._last_id() + 1
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
        """The same marker about several entries, with one fsync."""
        stamp = _now()
        objs = []
        for ref in refs:
            obj: dict = {"ref": ref, "event": event, "time": stamp}
            if data is not None:
                obj["hex"] = bytes(data).hex()
            objs.append(obj)
        if objs:
            self._append(objs)

    # -- undo -------------------------------------------------------------------------------
    def select(self, which: str | int | Sequence[int] = "last", *, count: int | None = None) -> list[Entry]:
        """Entries to undo, newest first: "last", "all", an id, a list of ids, or the last ``count``.

        UsageError for an unknown id or one already undone; JournalError if nothing is left.
        """
        entries = self.entries()
        active = [e for e in entries if e.active]
        if count is not None:
            if count <= 0:
                raise UsageError(f"--last {count}: give a positive number of entries")
            chosen = active[-count:]
        elif which == "all":
            chosen = active
        elif which == "last":
            chosen = active[-1:]
        else:
            ids = [which] if isinstance(which, int) else list(which)  # type: ignore[arg-type]
            known = {e.id: e for e in entries}
            chosen = []
            for i in ids:
                e = known.get(int(i))
                if e is None:
                    raise UsageError(f"journal {self.path} has no entry {i}")
                if e.undone:
                    raise UsageError(f"journal entry {i} was already undone at {e.undone_time}")
                if e.aborted:
                    raise UsageError(f"journal entry {i} never reached memory (its write failed)")
                chosen.append(e)
        if not chosen:
            raise JournalError(f"nothing to undo in {self.path}", "`pyphys journal` lists the entries")
        return sorted(chosen, key=lambda e: e.id, reverse=True)

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
        Raises VerifyError if a restore does not read back.
        """
        with self.locked():
            chosen = self.select(which, count=count)
            targets: dict[str, Any] = {}
            try:
                plan = self._plan(chosen, targets)
                results = []
                for step in plan:
                    e = step.entry
                    status, back = step.status, None
                    if step.status == "restored" and not dry_run:
                        tgt = targets[step.key]
                        _put(tgt, e.addr, e.old, e.width)
                        back = _get(tgt, e.addr, len(e.old), e.width)
                        if back != e.old:
                            if e.actual is None:  # it echoed pyphys's write, so it must echo this
                                raise VerifyError(
                                    f"undo of entry {e.id} at {e.addr:#x}: wrote {e.old.hex()}, read back {back.hex()}"
                                )
                            # a register that never echoed: its reads are not its last write
                            status = "register"
                    if not dry_run:
                        self.mark(e.id, "undone")
                    results.append(UndoResult(e.id, e.addr, e.kind, e.target, e.old, status, e.label, back))
                return results
            finally:
                for tgt in targets.values():
                    close = getattr(tgt, "close", None)
                    if close:
                        close()

    def _plan(self, chosen: list[Entry], targets: dict[str, Any]) -> list[_Planned]:
        overlay: dict[str, dict[int, int]] = {}
        plan = []
        for e in chosen:
            key = json.dumps([e.kind, e.target], sort_keys=True)
            if key not in targets:
                targets[key] = opener_for(e.kind)(e.target)
            seen = bytearray(_get(targets[key], e.addr, len(e.new), e.width))
            over = overlay.setdefault(key, {})
            for i in range(len(seen)):
                if e.addr + i in over:
                    seen[i] = over[e.addr + i]
            current = bytes(seen)
            if current == e.new or (e.actual is not None and current == e.actual):
                status = "restored"
            elif current == e.old:
                status = "already"
            else:
                raise JournalError(
                    f"entry {e.id} at {e.addr:#x}: memory now holds {_short(current)}, not the "
                    f"{_short(e.new)} pyphys wrote; refusing to undo (nothing written)",
                    "something else changed it since; undo newer entries first or leave it",
                )
            for i, b in enumerate(e.old):
                over[e.addr + i] = b
            plan.append(_Planned(e, key, current, status))
        return plan


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
            try:
                _put(target, addr, data, width)
            except BaseException:
                # a failed write may still have changed part of the range (page crossing)
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
    "Entry",
    "Journal",
    "UndoResult",
    "WriteRecord",
    "journaled_write",
    "opener_for",
    "register_target",
]
