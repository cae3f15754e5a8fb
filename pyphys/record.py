"""Records: pyphys's one way to define a result, with its own JSON form (docs/json.md).

A record class lists its fields once, in ``__slots__``; :class:`Record` gives it ``__init__``
(positional in field order, or by keyword; ``_defaults`` for optional fields), ``__repr__``,
``__eq__``, :meth:`~Record.replace` and :meth:`~Record.to_json`. ``_json`` names how a field
is written in JSON when it is not written as itself::

    class Word(Record):
        __slots__ = ("phys", "width", "value", "region")
        _defaults = {"region": None}
        _json = {"phys": "hex", "value": "hex"}

``_frozen = True`` makes a record immutable (assigning a field raises AttributeError) and
hashable by its fields, like a frozen dataclass. A record with a JSON form of its own (derived
keys, a 16-digit ``raw``) overrides :meth:`~Record.to_json`; that method is its one JSON form.

Encodings: ``"hex"`` an int as a ``0x`` string (addresses, raw words, IDs: some exceed 2**53,
which JSON readers such as jq cannot hold), ``"bytes"`` bytes as a hex string, ``"omit"`` left
out. Lists, tuples, dicts and nested records are encoded element by element; ``None`` stays
``null``.

Why not :mod:`dataclasses`: importing it pulls in inspect and a dozen modules, and in the TCG
lab guest each module costs file-system lookups over 9p on every one-shot pyphys call.
"""

from __future__ import annotations

from pyphys import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


class Record:
    """Base class of result records (see the module docstring)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, object] = {}
    _json: dict[str, str] = {}
    _frozen = False

    def __init_subclass__(cls, **kw: object) -> None:
        super().__init_subclass__(**kw)
        fields: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__slots__", ()):
                if name not in fields:
                    fields.append(name)
        cls._fields = tuple(fields)
        if cls._frozen:
            cls.__setattr__ = _refuse_set  # type: ignore[method-assign,assignment]
            cls.__delattr__ = _refuse_set  # type: ignore[method-assign,assignment]
            cls.__hash__ = _field_hash  # type: ignore[method-assign,assignment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = self._fields
        if not kwargs and len(args) == len(fields):  # the common case, kept short
            for name, value in zip(fields, args):
                object.__setattr__(self, name, value)
            return
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} arguments")
        for name, value in zip(fields, args):
            object.__setattr__(self, name, value)
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            object.__setattr__(self, name, value)
        for name in fields[len(args) :]:
            if name not in kwargs:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__} needs {name!r}")
                default = self._defaults[name]
                # mutable defaults are copied, as dataclasses' default_factory would
                object.__setattr__(self, name, default.copy() if isinstance(default, (list, dict)) else default)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]  # records are mutable values, unless _frozen

    def __reduce__(self) -> tuple:
        # pickle and copy rebuild through __init__, which frozen records need
        return type(self), tuple(getattr(self, f) for f in self._fields)

    def replace(self, **changes: object) -> Record:
        """A copy with ``changes`` applied."""
        values = {f: getattr(self, f) for f in self._fields}
        values.update(changes)
        return type(self)(**values)

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (not encoded)."""
        return {f: getattr(self, f) for f in self._fields}

    def to_json(self) -> dict[str, Any]:
        """The JSON form, by the conventions of docs/json.md."""
        out: dict[str, Any] = {}
        how = self._json
        for name in self._fields:
            kind = how.get(name)
            if kind == "omit":
                continue
            out[name] = encode(getattr(self, name), kind)
        return out


def _refuse_set(self: Record, name: str, *value: object) -> None:
    raise AttributeError(f"{type(self).__name__} is frozen: cannot change {name!r} (use replace())")


def _field_hash(self: Record) -> int:
    return hash(tuple(getattr(self, f) for f in self._fields))


def encode(value: object, kind: str | None = None) -> Any:
    """One value in its JSON form: ``kind`` "hex" or "bytes", else by its type."""
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return f"{value:#x}" if kind == "hex" else value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): encode(v, kind) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode(v, kind) for v in value]
    to_json = getattr(value, "to_json", None)
    if to_json is not None:
        return to_json()
    raise TypeError(f"no JSON form for {type(value).__name__}")
