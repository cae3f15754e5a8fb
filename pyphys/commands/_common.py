"""What every command file shares: results on stdout, everything else on stderr.

A command parses its arguments (with :mod:`pyphys.dialect`), calls a library function, and
formats what it returns with :func:`emit` / :func:`emit_json`; notes and warnings go through
:func:`note` and :func:`warn` to stderr. Nothing reaches stdout before the library call has
succeeded, so a failing command prints its one error line and nothing else.
"""

from __future__ import annotations

import sys


def emit(text: str) -> None:
    """A result, on stdout (a newline is added)."""
    sys.stdout.write(text + "\n")


def emit_json(doc: object) -> None:
    """One JSON document on stdout, by the conventions of docs/json.md (records are encoded)."""
    import json

    from pyphys.record import encode

    sys.stdout.write(json.dumps(encode(doc)) + "\n")


def note(command: str, text: str, quiet: bool = False) -> None:
    """``pyphys COMMAND: text`` on stderr, unless ``quiet``."""
    if not quiet:
        sys.stderr.write(f"pyphys {command}: {text}\n")


def warn(command: str, text: str) -> None:
    """``pyphys COMMAND: warning: text`` on stderr (never silenced by --quiet)."""
    sys.stderr.write(f"pyphys {command}: warning: {text}\n")


def add_json(parser, what: str = "the result") -> None:
    """The ``--json`` flag, worded the same in every subcommand."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as one JSON document (docs/json.md)")
