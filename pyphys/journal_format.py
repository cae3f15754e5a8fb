"""The journal's line format: an entry or a marker line parsed and checked (:func:`parse_line`).

:mod:`pyphys.journal` describes the lines; this module is the one reader of them.
"""

from __future__ import annotations

import json

from pyphys.record import Record

MAX_ID = (1 << 63) - 1
EVENTS = ("undone", "aborted", "actual", "old")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


class Entry(Record):
    """One journaled write, with the facts appended about it since.

    Fields: id, time, kind, target (dict), addr, old, new (bytes), label, undone, undone_time,
    aborted, actual (read-back bytes when they differed), width (bits, for word writes), group
    (the id of the first entry of the writes appended with it as one group, e.g. one setpci
    ``REG=V1,V2``; ``pyphys undo`` of the last entry undoes its whole group), None alone.
    """

    __slots__ = (
        "id", "time", "kind", "target", "addr", "old", "new", "label", "undone", "undone_time", "aborted", "actual",
        "width", "group",
    )  # fmt: skip
    _defaults = {
        "label": "", "undone": False, "undone_time": None, "aborted": False, "actual": None, "width": None,
        "group": None,
    }  # fmt: skip

    @property
    def active(self) -> bool:
        """True if the write happened and has not been undone."""
        return not self.undone and not self.aborted

    def to_json(self) -> dict:
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
        if self.group is not None:
            out["group"] = self.group
        return out


class Mark(Record):
    """A marker line: ``event`` (one of :data:`EVENTS`) about entry ``ref``; ``data`` its bytes."""

    __slots__ = ("ref", "event", "time", "data")


def _int(obj: dict, key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} is {json.dumps(value)[:40]}, not an integer")
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"{key!r} {value} is out of range (1..2**63-1)")
    return value


def _hex(obj: dict, key: str) -> bytes:
    try:
        return bytes.fromhex(obj.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{key!r} is not hex bytes") from None


def parse_line(raw: bytes) -> Entry | Mark:
    """One journal line -> :class:`Entry` or :class:`Mark`; ValueError saying what is wrong."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise ValueError("it is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("it is not a JSON object")
    if ("id" in obj) == ("ref" in obj):
        raise ValueError('it has neither or both of "id" and "ref"')
    for key in ("time", "label"):
        if not isinstance(obj.get(key, ""), str):
            raise ValueError(f"{key!r} is not a string")
    if "ref" in obj:
        event = obj.get("event")
        if event not in EVENTS:
            raise ValueError(f"unknown event {json.dumps(event)[:40]}")
        data = _hex(obj, "hex") if event in ("actual", "old") else None
        return Mark(_int(obj, "ref"), event, obj.get("time"), data)
    kind, target, addr, width = obj.get("kind"), obj.get("target") or {}, obj.get("addr"), obj.get("width")
    if not isinstance(kind, str) or not kind:
        raise ValueError('"kind" is not a name')
    if not isinstance(target, dict):
        raise ValueError('"target" is not an object')
    if not isinstance(addr, str) or addr[:2] != "0x" or not 2 < len(addr) <= 18 or not set(addr[2:]) <= _HEXDIGITS:
        raise ValueError('"addr" is not a 0x-hex address')
    if width not in (None, 8, 16, 32, 64) or isinstance(width, bool):
        raise ValueError('"width" is not 8, 16, 32 or 64')
    old, new = _hex(obj, "old"), _hex(obj, "new")
    if len(old) != len(new):
        raise ValueError('"old" and "new" differ in length')
    entry_id = _int(obj, "id")
    group = _int(obj, "group") if "group" in obj else None
    if group is not None and group > entry_id:
        raise ValueError(f'"group" {group} is after the entry itself')
    return Entry(
        id=entry_id,
        group=group,
        time=obj.get("time", ""),
        kind=kind,
        target=target,
        addr=int(addr, 16),
        old=old,
        new=new,
        label=obj.get("label", ""),
        width=width,
    )
