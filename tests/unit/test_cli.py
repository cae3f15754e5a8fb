"""The command line's argparse-free path for `pyphys pagemap PROCESS ADDRESS`.

Ground truth: argparse itself (the same subcommand parser parses the same argv), and the
output of the argparse path for the same request.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys

import pytest

from pyphys import cli

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "argv",
    [
        ["pagemap", "self", "0x1000"],
        ["pagemap", "1234", "0x10-0x20"],
        ["pagemap", "bash", "4096"],
        ["pagemap", "self", "0x7f00+0x2000"],
        ["pagemap", "self", "--summary"],
        ["pagemap", "1234", "--all", "--summary"],
        ["pagemap", "1234", "--summary", "--all", "--json"],
        ["pagemap", "1234", "--all", "--pages", "--count"],
        ["pagemap", "1234", "0x10-0x20", "--runs", "--json"],
        ["pagemap", "1234", "0x10", "--count"],
        ["pagemap", "1234", "--all"],
        ["pagemap", "self", "0x1000", "--json"],
        ["pagemap", "self", "0x1000", "--all"],
    ],
)
def test_fast_namespace_is_what_argparse_gives(argv):
    fast = cli._fast_args(argv)
    assert fast is not None
    slow = cli.build_parser("pagemap").parse_args(argv)
    assert vars(fast) == vars(slow)


@pytest.mark.parametrize(
    "argv",
    [
        ["pagemap", "--all", "self"],
        ["pagemap", "self", "--summary", "--runs"],
        ["pagemap", "self", "--all", "--all"],
        ["pagemap", "self", "--sum"],
        ["pagemap", "self", "--all", "--view", "raw"],
        ["pagemap", "self", "--all", "0x1000"],
        ["pagemap", "self", "0x1000", "0x2000"],
        ["pagemap", "self", "--all", "--"],
        ["pagemap", "self", "--all", "-h"],
        ["pagemap", "-h"],
        ["pagemap", "self"],
        ["pagemap", "self", "-5"],
        ["pagemap", "", "0x1000"],
        ["devmem", "0x1000", "32"],
        [],
    ],
)
def test_anything_else_goes_through_argparse(argv):
    assert cli._fast_args(argv) is None


def test_same_output_both_ways(capsys):
    import ctypes

    m = mmap.mmap(-1, 2 * mmap.PAGESIZE)
    m[:5] = b"hello"
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m)) + 7
    assert cli.main(["pagemap", "self", hex(addr)]) == 0
    fast = capsys.readouterr()
    assert cli.main(["pagemap", "--", "self", hex(addr)]) == 0  # `--`: not the fast path
    slow = capsys.readouterr()

    # the kpageflags lines may change between two reads (referenced, idle); the rest may not
    def stable(text):
        return [line for line in text.splitlines() if not line.lstrip().startswith(("kpageflags", "flags", "symbolic"))]

    assert stable(fast.out) == stable(slow.out) and f"virtual address {addr:#x}" in fast.out
    assert len(fast.out.splitlines()) == len(slow.out.splitlines())
    assert fast.err == slow.err


def test_fast_path_errors_like_the_parser_path(capsys):
    assert cli.main(["pagemap", "self", "0xzz"]) == cli.main(["pagemap", "--", "self", "0xzz"]) != 0
    a, b = capsys.readouterr().err.splitlines()
    assert a == b and a.startswith("pyphys pagemap: error:")


def test_fast_path_imports_neither_argparse_nor_re():
    code = (
        "import sys; before = set(sys.modules); buf = bytearray(64)\n"
        "from pyphys.cli import main\n"
        "rc = main(['pagemap', 'self', hex(id(buf))]) + main(['pagemap', 'self', '--all', '--summary'])\n"
        "print(rc, sorted({'re', 'argparse', 'gettext'} & (set(sys.modules) - before)), file=sys.stderr)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=TOP, env=dict(os.environ, PYTHONPATH=TOP)
    )
    assert res.stderr.strip().splitlines()[-1] == "0 []", res.stderr


def test_the_installed_command_is_the_plain_script():
    with open(os.path.join(TOP, "bin", "pyphys")) as f:
        text = f.read()
    code = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert "import re" not in code and "from pyphys.cli import main" in code
    with open(os.path.join(TOP, "pyproject.toml")) as f:
        assert 'script-files = ["bin/pyphys"]' in f.read()


def test_permission_hints_look_at_euid(monkeypatch):
    """ "run as root" is advice for a user; root is told what else can refuse it."""
    import errno

    from pyphys import errors

    denied = PermissionError(errno.EACCES, "Permission denied", "/proc/1/maps")
    monkeypatch.setattr(errors.os, "geteuid", lambda: 1000)
    assert errors.from_oserror(denied, "cannot read /proc/1/maps").hint == "run as root (sudo)"
    monkeypatch.setattr(errors.os, "geteuid", lambda: 0)
    hint = errors.from_oserror(denied, "cannot read /proc/1/maps").hint
    assert "run as root" not in hint and "ptrace" in hint and "CAP_SYS_PTRACE" in hint
    other = PermissionError(errno.EACCES, "Permission denied", "/sys/kernel/x")
    hint = errors.from_oserror(other, "open /sys/kernel/x").hint
    assert "run as root" not in hint and "already root" in hint
    hint = errors.from_oserror(PermissionError(errno.EPERM, "Operation not permitted"), "open /dev/mem").hint
    assert "run as root" not in hint and "already root" in hint
