"""Undo: restore the old bytes of journaled writes, newest first, all or nothing.

:meth:`pyphys.journal.Journal.select` and :meth:`~pyphys.journal.Journal.undo` call these.
Every selected entry is checked first (against memory as it will be after the newer undos):
if the bytes there are no longer what pyphys wrote, nothing is written. Targets are reopened
through the journal's table of openers (:func:`pyphys.journal.opener_for`).
"""

from __future__ import annotations

import json
import os

from pyphys import TYPE_CHECKING
from pyphys.errors import JournalError, UsageError, VerifyError
from pyphys.journal import MAX_ID, Entry, UndoResult, _get, _put, _short, opener_for
from pyphys.record import Record

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pyphys.journal import Journal


class _Planned(Record):
    __slots__ = ("entry", "key", "current", "status")


def _entry_id(value: object) -> int:
    """An entry id given to the library: a Python int in range (``pyphys undo`` parses text)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"journal entry id {value!r} is not an integer")
    if not 1 <= value <= MAX_ID:
        raise UsageError(f"journal entry id {value} is out of range (1..{MAX_ID})")
    return value


def select(jr: Journal, which: str | int | Sequence[int] = "last", count: int | None = None) -> list[Entry]:
    """See :meth:`pyphys.journal.Journal.select`."""
    entries = jr.entries()
    active = [e for e in entries if e.active]
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise UsageError(f"--last {count}: give a positive number of entries")
        chosen = active[-count:]
    elif which == "all":
        chosen = active
    elif which == "last":  # the last write: all of it when it was one group (setpci's REG=V1,V2)
        group = active[-1].group if active else None
        chosen = [e for e in active if e.group == group] if group is not None else active[-1:]
    elif isinstance(which, str):
        raise UsageError(f"undo {which!r}: give entry ids, 'last' or 'all'")
    else:
        ids = [_entry_id(i) for i in ([which] if isinstance(which, int) else list(which))]
        known = {e.id: e for e in entries}
        chosen = []
        for i in ids:
            e = known.get(i)
            if e is None:
                raise UsageError(f"journal {jr.path} has no entry {i}")
            if e.undone:
                raise UsageError(f"journal entry {i} was already undone at {e.undone_time}")
            if e.aborted:
                raise UsageError(f"journal entry {i} never reached memory (its write failed)")
            chosen.append(e)
    if not chosen:
        raise JournalError(f"nothing to undo in {jr.path}", "`pyphys journal` lists the entries")
    return sorted(chosen, key=lambda e: e.id, reverse=True)


def undo(jr: Journal, which, count: int | None, dry_run: bool) -> list[UndoResult]:
    """See :meth:`pyphys.journal.Journal.undo`."""
    if not os.path.exists(jr.path):
        select(jr, which, count)  # raises (nothing was ever journaled), and nothing is created
    with jr.locked():
        jr.check()  # a damaged journal could hide a write, or undo one twice
        chosen = select(jr, which, count)
        targets: dict[str, Any] = {}
        try:
            plan = _plan(chosen, targets)
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
                    jr.mark(e.id, "undone")
                results.append(UndoResult(e.id, e.addr, e.kind, e.target, e.old, status, e.label, back))
            return results
        finally:
            for tgt in targets.values():
                close = getattr(tgt, "close", None)
                if close:
                    close()


def _plan(chosen: list[Entry], targets: dict[str, Any]) -> list[_Planned]:
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
