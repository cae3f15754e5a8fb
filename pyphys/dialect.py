"""The one dialect of pyphys's arguments and output: numbers, sizes, ranges, widths, bytes.

Every subcommand parses and prints these through this module, so ``0x1000+4K`` means the
same thing to ``devmem``, ``dump``, ``pagemap`` and ``iomem``, and whatever one command prints
another accepts back (docs/json.md and ``pyphys --help`` describe it once):

- **numbers**: ASCII decimal (``4096``) or ``0x`` hex (``0x1000``), nothing else. Bare hex as
  /proc/PID/maps or /proc/iomem print it (``7f3a00000000``, ``000a0000``) is refused with
  "did you mean 0x…?": a leading zero means octal to busybox and strtoul, and a silent guess
  would read the wrong address.
- **sizes**: a number with an optional binary suffix, ``K`` ``M`` ``G`` ``T`` (``KiB`` … too).
- **ranges**: ``START+LENGTH`` or ``START-END``; END is exclusive everywhere, as in
  /proc/PID/maps (``/proc/iomem`` prints inclusive ends: :mod:`pyphys.iomem` converts).
- **widths** in bits, 8/16/32/64, or the letters of the tool being mimicked: busybox devmem's
  ``b h w l`` (8 16 32 64 on x86-64) or setpci's ``.b .w .l`` (8 16 32).
- **bytes**: C escapes (``'Hi\\r\\x00'``) or hex (``'de ad be ef'``).

Output: :func:`fmt_addr` / :func:`fmt_range` (re-enterable), :func:`fmt_value` (busybox's
``0x%0*X``), :func:`hexdump` (``hexdump -C``), :func:`fmt_size`.
"""

from __future__ import annotations

from pyphys.errors import UsageError

WIDTHS = (8, 16, 32, 64)
# busybox devmem: b=8 h=16 w=32 l=sizeof(long) (64 on x86-64); setpci: .b .w .l = 8 16 32
BUSYBOX_WIDTHS = {"b": 8, "h": 16, "w": 32, "l": 64}
SETPCI_WIDTHS = {"b": 8, "w": 16, "l": 32}
SIZE_SHIFTS = {"k": 10, "m": 20, "g": 30, "t": 40}
U64_MAX = (1 << 64) - 1
_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_number(text: str, what: str = "number", *, minimum: int | None = 0, maximum: int | None = U64_MAX) -> int:
    """``text`` as decimal or 0x-hex (ASCII only); UsageError naming ``what`` otherwise."""
    t = text.strip() if isinstance(text, str) else ""
    if t[:2] in ("0x", "0X") and len(t) > 2 and all(c in _HEX for c in t[2:]):
        value = int(t[2:], 16)
    elif t and all(c in _DEC for c in t) and (t == "0" or t[0] != "0"):
        value = int(t, 10)
    else:
        raise UsageError(f"{what} {text!r} is not a number", _number_hint(t))
    # the limit in the base the user wrote: "lab number '0' is below the minimum 1"
    limit = fmt_addr if t[:2] in ("0x", "0X") else str
    if minimum is not None and value < minimum:
        raise UsageError(f"{what} {text!r} is below the minimum {limit(minimum)}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{what} {text!r} is above the maximum {limit(maximum)}")
    return value


def _number_hint(t: str) -> str:
    if t and all(c in _HEX for c in t) and t.isascii():
        if all(c in _DEC for c in t):  # leading zero: octal to busybox, decimal or hex to a person
            return f"did you mean 0x{t} (hex) or {t.lstrip('0') or '0'} (decimal)? a leading zero is ambiguous"
        return f"did you mean 0x{t}? numbers are decimal or 0x-prefixed hex"
    if t[:1] == "-":
        return "negative numbers mean nothing here"
    if not t.isascii():
        return "digits must be ASCII 0-9 (and a-f after 0x)"
    return "use decimal or 0x-prefixed hex"


def parse_size(text: str, what: str = "size", *, minimum: int | None = 1, maximum: int | None = U64_MAX) -> int:
    """A number with an optional binary suffix K/M/G/T (or KiB/MiB/GiB/TiB): ``64K`` -> 65536."""
    t = text.strip() if isinstance(text, str) else ""
    low = t.lower()
    shift = 0
    for suffix in ("ib", "b"):
        if len(low) > 2 and low.endswith(suffix) and low[-len(suffix) - 1] in SIZE_SHIFTS:
            low, t = low[: -len(suffix)], t[: -len(suffix)]
            break
    if low[-1:] in SIZE_SHIFTS and not (low[:2] == "0x" and low[-1:] in _HEX):
        shift = SIZE_SHIFTS[low[-1]]
        t = t[:-1]
    try:
        value = parse_number(t, what, minimum=None, maximum=None) << shift
    except UsageError as err:
        hint = err.hint if t.lower().startswith("0x") or shift == 0 else "a size is a number with K, M, G or T"
        raise UsageError(f"{what} {text!r} is not a size", hint) from None
    if minimum is not None and value < minimum:
        raise UsageError(f"{what} {text!r} is below the minimum {fmt_size(minimum)}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{what} {text!r} is above the maximum {fmt_size(maximum)}")
    return value


def parse_range(
    text: str, what: str = "range", *, maximum: int = U64_MAX, length: int | None = None
) -> tuple[int, int]:
    """``START+LENGTH`` or ``START-END`` (END exclusive) -> (start, end). A bare START is a
    range of ``length`` bytes when one is given, else a UsageError."""
    t = text.strip() if isinstance(text, str) else ""
    sep = "+" if "+" in t else "-" if "-" in t[1:] else None
    if sep is None:
        if length is None:
            raise UsageError(f"{what} {text!r} is not a range", "write START+LENGTH or START-END (END exclusive)")
        start = parse_number(t, f"{what} start", maximum=maximum)
        end = start + length
    else:
        left, right = t.split(sep, 1)
        try:  # the message quotes the whole argument as typed, then the part that is wrong
            start = parse_number(left, "start", maximum=maximum)
            if sep == "+":
                end = start + parse_size(right, "length")
            else:
                end = parse_number(right, "end", maximum=maximum + 1)
        except UsageError as err:
            raise UsageError(f"{what} {text!r}: {err.message}", err.hint) from None
        if sep == "-" and end <= start:
            raise UsageError(
                f"{what} {text!r} ends before it starts", "END is exclusive: START-END covers START..END-1"
            )
    if end > maximum + 1:
        raise UsageError(f"{what} {text!r} runs past {fmt_addr(maximum)}")
    return start, end


def parse_width(text: str | None, letters: dict[str, int] = BUSYBOX_WIDTHS, default: int = 32) -> int:
    """Width in bits: 8/16/32/64, or one of ``letters`` (busybox's by default)."""
    if text is None:
        return default
    t = text.strip().lower()
    if t in letters:
        return letters[t]
    if t in ("8", "16", "32", "64"):
        return int(t)
    named = ", ".join(f"{k}={v}" for k, v in letters.items())
    raise UsageError(f"width {text!r} is not one of 8, 16, 32, 64 (bits) or {named}")


def parse_value(text: str, width: int, what: str = "value") -> int:
    """A value for a ``width``-bit write; UsageError when it does not fit."""
    value = parse_number(text, what)
    if value >> width:
        raise UsageError(f"{what} {text!r} does not fit in {width} bits (max {(1 << width) - 1:#x})")
    return value


def check_aligned(addr: int, width: int, what: str = "address") -> None:
    """UsageError unless ``addr`` is a multiple of ``width`` bits."""
    if addr % (width // 8):
        raise UsageError(f"{what} {addr:#x} is not aligned to {width} bits ({width // 8} bytes)")


_ESCAPES = {"r": 13, "n": 10, "t": 9, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27, "0": 0}


def decode_escapes(text: str, what: str = "--string") -> bytes:
    r"""C escapes (\r \n \t \0 \\ \xNN \NNN octal) to bytes; other characters as UTF-8."""
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if not nxt:
            raise UsageError(f"{what} ends with a lone backslash", "write \\\\ for a backslash")
        if nxt == "x":
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or not all(c in _HEX for c in digits):
                raise UsageError(f"bad escape {text[i : i + 4]!r} in {what}", "\\xNN takes two hex digits")
            out.append(int(digits, 16))
            i += 4
        elif nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and text[j] in "01234567":
                j += 1
            value = int(text[i + 1 : j], 8)
            if value > 0xFF:
                raise UsageError(f"octal escape {text[i:j]!r} in {what} is more than one byte")
            out.append(value)
            i = j
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise UsageError(f"unknown escape \\{nxt} in {what}", "known: \\r \\n \\t \\0 \\\\ \\xNN \\NNN")
    if not out:
        raise UsageError(f"{what}: no bytes given")
    return bytes(out)


def decode_hex(text: str, what: str = "--hex") -> bytes:
    """``'de ad be ef'``, ``'deadbeef'``, ``'de:ad'`` or ``'0xdeadbeef'`` (bytes in the order
    written) -> bytes."""
    t = text.strip()
    if t[:2].lower() == "0x":
        t = t[2:]
    t = t.replace(":", " ").replace(",", " ")
    if not t.isascii() or not all(c in _HEX or c.isspace() for c in t):
        raise UsageError(f"{what} {text!r} is not hex bytes", "write them like 'de ad be ef'")
    digits = "".join(t.split())
    if len(digits) % 2:
        raise UsageError(f"{what} {text!r} has an odd number of hex digits", "each byte is two digits")
    if not digits:
        raise UsageError(f"{what}: no bytes given")
    return bytes.fromhex(digits)


# -- output --------------------------------------------------------------------------------------
def fmt_addr(addr: int) -> str:
    """``0x1acbba1``: how pyphys prints an address, and what every command accepts back."""
    return f"{addr:#x}"


def fmt_range(start: int, end: int) -> str:
    """``0x1000-0x3000`` (END exclusive): re-enterable as a range argument."""
    return f"{start:#x}-{end:#x}"


def fmt_value(value: int, width: int) -> str:
    """busybox devmem's read format ``0x%0*llX``: width/4 upper-case digits."""
    return f"0x{value:0{width // 4}X}"


def json_value(value: int, width: int) -> str:
    """A ``width``-bit value in JSON (docs/json.md): ``0x`` lower-case hex, width/4 digits."""
    return f"0x{value:0{width // 4}x}"


def json_raw(value: int | None) -> str | None:
    """A raw 64-bit word in JSON (docs/json.md: pagemap entries, flags words): 16 digits, ``null`` when unknown."""
    return None if value is None else json_value(value, 64)


def json_id(value: int | None, bits: int = 16) -> str | None:
    """A PCI ID (16 bits) or class code (24) in JSON (docs/json.md), ``null`` when unknown."""
    return None if value is None else json_value(value, bits)


def written_json(old: bytes, new: bytes, readback: bytes, width: int | None) -> dict:
    """A write's before/after in JSON: ``old``/``new``/``readback`` as values for a ``width``-bit
    write; for a byte string (width None) the blobs ``old_data``/``data``/``readback_data``."""
    if width is None:
        return {"old_data": old.hex(), "data": new.hex(), "readback_data": readback.hex()}
    as_int = lambda b: json_value(int.from_bytes(b, "little"), width)  # noqa: E731
    return {"old": as_int(old), "new": as_int(new), "readback": as_int(readback)}


def fmt_size(size: int, exact: bool = False) -> str:
    """``4K``, ``1.5M``, ``3G`` for people (binary units; exact multiples drop the fraction);
    parse_size() reads the exact ones back. ``exact``: the largest unit that divides the size,
    as lspci prints a BAR's ``[size=1536K]``, never a fraction."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if exact and size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
        if not exact and size >= 1 << shift:
            if size % (1 << shift) == 0:
                return f"{size >> shift}{unit}"
            return f"{size / (1 << shift):.1f}{unit}"
    return str(size)


def printable(text: str) -> str:
    r"""``text`` safe to put on a terminal: what the kernel hands over verbatim (a device name
    can hold anything) must not move the cursor or send escape sequences. Characters that are
    not printable (ESC, CR, NUL, DEL and other control or invisible ones) are written C-style,
    ``\xNN`` (``\uNNNN`` above U+00FF), a backslash as ``\\``, so :func:`decode_escapes`
    reads an ASCII name back; the rest, U+FFFD for undecodable bytes included, as is."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)


def _escape(c: str) -> str:
    if c == "\\":
        return "\\\\"
    n = ord(c)
    return f"\\x{n:02x}" if n <= 0xFF else (f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}")


def hexdump(data: bytes, base: int = 0) -> str:
    """``hexdump -C``'s layout with ``base`` as the first offset: 16 bytes a line in two groups
    of 8, printable ASCII between bars, identical lines squeezed to ``*``, the end offset last
    (nothing at all for no bytes, as hexdump prints for empty input)."""
    if not data:
        return ""
    lines = []
    prev = None
    squeezed = False
    digits = max(8, len(f"{base + len(data):x}"))
    for pos in range(0, len(data), 16):
        chunk = data[pos : pos + 16]
        if chunk == prev and len(chunk) == 16:
            if not squeezed:
                lines.append("*")
                squeezed = True
            continue
        prev, squeezed = chunk, False
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{base + pos:0{digits}x}  {left:<23}  {right:<23}  |{text}|")
    lines.append(f"{base + len(data):0{digits}x}")
    return "\n".join(lines)
