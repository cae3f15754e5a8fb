"""The ``pyphys`` command line: parse, call a library function, format, map errors.

Each subcommand lives in ``pyphys/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Only the chosen subcommand's module is imported, so a one-shot call starts fast.
Any :class:`~pyphys.errors.PyphysError` becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module under pyphys.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "hostname": ("hostname", "change the kernel's hostname by patching its nodename through /dev/mem"),
    "pagemap": ("pagemap", "virtual to physical: decode /proc/PID/pagemap and kpageflags"),
    "devmem": ("devmem", "read/write physical memory (busybox devmem compatible)"),
    "undo": ("undo", "undo physical memory and PCI writes recorded in the journal"),
    "journal": ("undo", "list the write journal"),
    "iomem": ("iomem", "show /proc/iomem as a tree, or which region an address is in"),
    "ksym": ("ksym", "virtual and physical address of a kernel symbol, from several sources"),
    "doctor": ("doctor", "explain what allows or blocks physical memory access here"),
    "pci": ("pci", "PCI devices without a driver: list, config space, BAR read/write"),
    "dump": ("dump", "dump physical memory to a file (raw, padded, LiME)"),
    "lab": ("lab", "the lab VM: shell, run a command, start/check a classroom lab"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the standard for bad input (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)

    def _get_formatter(self):
        # argparse builds a formatter even to parse (add_subparsers, for the usage prefix), and
        # without a width the formatter imports shutil for the terminal size, which brings
        # fnmatch, zlib, bz2 and lzma: 0.3 s of a one-shot call in the TCG guest.
        return self.formatter_class(prog=self.prog, width=_width())


def _width() -> int:
    """shutil.get_terminal_size()'s answer (COLUMNS, else the terminal, else 80), minus 2."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(columns - 2, 11)


def _load(name: str):
    return importlib.import_module(f"pyphys.commands.{COMMANDS[name][0]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or one with just subcommand ``only`` registered (fast path)."""
    from pyphys import __version__

    parser = _Parser(
        prog="pyphys",
        description="Physical-memory experiments from user space.",
    )
    parser.add_argument("--version", action="version", version=f"pyphys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_mod, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = _load(name)
        except ModuleNotFoundError as err:
            if only is not None or not err.name or not err.name.startswith("pyphys.commands"):
                raise
            continue  # a subcommand not built yet is simply not offered
        module.register(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyphys`` console script; returns the exit status."""
    from pyphys.errors import PyphysError

    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    only = first if first in COMMANDS and "-h" not in argv[:1] else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except PyphysError as err:
        print(f"pyphys {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"pyphys {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())
