"""Byte layouts, declared apart from the logic that uses them (after pyelftools' structs).

One module per format, each citing the kernel or tool document it comes from:
``pagemap`` (Documentation/admin-guide/mm/pagemap.rst), ``lime`` (LiME's header),
``pci`` (the PCI configuration header and capability structures).

:class:`Layout` is a ``struct.Struct`` plus a tuple of field names: the one place a record's
field widths and offsets are written down. Decoders call :meth:`Layout.decode`; offsets and
widths of single fields (for a register read or write) come from :meth:`Layout.offset` and
:meth:`Layout.width`, never restated by hand.
"""

from __future__ import annotations

import struct


class Layout:
    """A little-endian record: ``fields`` is a tuple of ``(name, struct code)``; a name of
    ``None`` is padding (codes like ``"3x"``)."""

    def __init__(self, name: str, fields: tuple[tuple[str | None, str], ...]):
        self.name = name
        self.fields = fields
        self.struct = struct.Struct("<" + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.names = tuple(n for n, _ in fields if n is not None)
        self._offsets: dict[str, tuple[int, int]] = {}
        pos = 0
        for n, code in fields:
            width = struct.calcsize("<" + code)
            if n is not None:
                self._offsets[n] = (pos, width)
            pos += width

    def offset(self, field: str) -> int:
        """Byte offset of ``field`` from the start of the record."""
        return self._offsets[field][0]

    def width(self, field: str) -> int:
        """Size of ``field`` in bytes."""
        return self._offsets[field][1]

    def decode(self, data: bytes, base: int = 0) -> dict[str, int]:
        """``{name: value}`` for the record at ``data[base:]``; only the fields wholly present are
        decoded (a short read yields the leading fields, never a guess)."""
        if len(data) - base >= self.size:
            return dict(zip(self.names, self.struct.unpack_from(data, base)))
        out = {}
        for n, (off, width) in self._offsets.items():
            if base + off + width <= len(data):
                out[n] = int.from_bytes(data[base + off : base + off + width], "little")
        return out

    def field_at(self, offset: int) -> str | None:
        """The field that starts at ``offset``, if any (for naming a register)."""
        for n, (off, _width) in self._offsets.items():
            if off == offset:
                return n
        return None
