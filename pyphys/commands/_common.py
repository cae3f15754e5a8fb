"""Argument helpers shared by subcommands: number parsing that raises UsageError."""

from __future__ import annotations

from pyphys.errors import UsageError


def parse_int(text: str, what: str = "number", *, minimum: int | None = 0, maximum: int | None = None) -> int:
    """Parse decimal, 0x-hex, 0o-octal or 0b-binary ``text``; UsageError with a clear line otherwise."""
    try:
        value = int(text.replace("_", ""), 0)
    except (ValueError, AttributeError):
        raise UsageError(f"{what} {text!r} is not a number (use decimal or 0x-prefixed hex)") from None
    if minimum is not None and value < minimum:
        raise UsageError(f"{what} {text!r} is negative" if minimum == 0 else f"{what} {text!r} is below {minimum:#x}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{what} {text!r} is above the maximum {maximum:#x}")
    return value
