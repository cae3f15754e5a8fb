"""The ``pyphys`` command line: parse, call a library function, format, map errors.

Each subcommand lives in ``pyphys/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Only the chosen subcommand's module is imported, so a one-shot call starts fast.
Any :class:`~pyphys.errors.PyphysError` becomes one line on stderr and a non-zero exit.

The first thing a student runs, ``pyphys pagemap PROCESS ADDRESS``, and the page-types-like
``pyphys pagemap PID --all --summary`` skip argparse (and the re, gettext and locale modules it
imports): :func:`_fast_args` builds the same namespace the parser would, from the subcommand's
own defaults. Anything else goes through argparse.
"""

from __future__ import annotations

import sys

from pyphys import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

# subcommand -> (module under pyphys.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "hostname": ("hostname", "change the kernel's hostname by patching its nodename through /dev/mem"),
    "pagemap": ("pagemap", "virtual to physical: decode /proc/PID/pagemap and kpageflags"),
    "devmem": ("devmem", "read/write physical memory (busybox devmem compatible)"),
    "undo": ("undo", "undo physical memory and PCI writes recorded in the journal"),
    "journal": ("undo", "list the write journal"),
    "iomem": ("iomem", "show /proc/iomem as a tree, or which region an address is in"),
    "walk": ("walk", "walk a process's or the kernel's page table, level by level, checked against pagemap"),
    "ksym": ("ksym", "virtual and physical address of a kernel symbol, from several sources"),
    "doctor": ("doctor", "explain what allows or blocks physical memory access here"),
    "pci": ("pci", "PCI devices without a driver: list, config space, BAR read/write"),
    "dump": ("dump", "dump physical memory to a file or a pipe (raw, padded, LiME, AVML, ELF core)"),
    "lab": ("lab", "the lab VM: shell, run a command, start/check a classroom lab"),
    "module": ("module", "build, install, load and remove pyphys.ko on this machine, and say why a load fails"),
}

# what shell completion offers for an option's value (shtab reads an action's ``complete``)
FILE = {"bash": "_shtab_compgen_files", "zsh": "_files"}
DIRECTORY = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}


def _parser_class():
    """:class:`argparse.ArgumentParser` with one-line errors (argparse imported only here)."""
    import argparse

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

    return _Parser


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
    module = f"pyphys.commands.{COMMANDS[name][0]}"
    __import__(module)  # (not importlib.import_module: the importlib package costs a start-up)
    return sys.modules[module]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or one with just subcommand ``only`` registered (fast path)."""
    from pyphys import __version__

    parser = _parser_class()(
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


class _Args:
    """What argparse's Namespace is to a subcommand: attributes."""

    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


# the options of `pyphys pagemap` the argparse-free path takes: flag -> (dest, value)
_FAST_FLAGS = {
    "--all": ("all", True),
    "--count": ("count", True),
    "--json": ("json", True),
    "--pages": ("mode", "pages"),
    "--runs": ("mode", "runs"),
    "--summary": ("mode", "summary"),
}


def _fast_args(argv: list[str]):
    """The parsed arguments of ``pagemap PROCESS [ADDRESS] [FLAG...]`` (plain words first, then
    flags spelled in full among --all --count --json and one of --pages --runs --summary, each
    once), else None. Equal to what the parser gives (tests/unit/test_cli.py checks it against
    argparse)."""
    if len(argv) < 2 or argv[0] != "pagemap":
        return None
    words = 1
    while words < len(argv) and argv[words][:1] not in ("-", ""):
        words += 1
    flags = argv[words:]
    if words not in (2, 3) or (words == 2 and not flags) or len(set(flags)) != len(flags):
        return None
    kw: dict[str, object] = {}
    for flag in flags:
        dest_value = _FAST_FLAGS.get(flag)
        if dest_value is None or dest_value[0] in kw:  # unknown, abbreviated, or two modes
            return None
        kw[dest_value[0]] = dest_value[1]
    cmd = _load("pagemap")
    values = dict(cmd.DEFAULTS, **kw)
    address = argv[2] if words == 3 else None
    return _Args(command="pagemap", process=argv[1], address=address, func=cmd.run, **values)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyphys`` console script; returns the exit status."""
    from pyphys.errors import PyphysError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _fast_args(argv)
        if args is None:
            first = next((a for a in argv if not a.startswith("-")), None)
            only = first if first in COMMANDS and "-h" not in argv[:1] else None
            parser = build_parser(only)
            args, extra = parser.parse_known_args(argv)
            if extra:  # said by the subcommand that was given them, not by the top-level parser
                where = f"pyphys {args.command}" if getattr(args, "command", None) else "pyphys"
                sys.stderr.write(f"{where}: error: unrecognized arguments: {' '.join(extra)} (see {where} --help)\n")
                return 2
            if not getattr(args, "func", None):
                sys.stderr.write(f"pyphys: error: no COMMAND given: one of {', '.join(COMMANDS)} (see pyphys --help)\n")
                return 2
    except KeyboardInterrupt:  # while starting up
        print("pyphys: interrupted", file=sys.stderr)
        return 130
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
