"""One dialect across subcommands: sizes with K/M/G/T wherever a length is taken, one range
parser, messages that quote the argument as typed, results only on stdout, and every address or
range a command prints accepted back by the others. Canned trees only (tests/fixtures)."""

from __future__ import annotations

import os

import pytest

from pyphys import cli, pagemap, paths

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
needs_4k = pytest.mark.skipif(pagemap.PAGE_SIZE != 4096, reason="the canned pagemap assumes 4 KiB pages")


@pytest.fixture
def proc():
    old = paths.set_roots(proc=os.path.join(FIX, "pagemap", "proc"))
    yield
    paths.set_roots(**old)


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@needs_4k
def test_pagemap_range_takes_a_size_suffix(proc, capsys):
    # 32K = 8 pages of 4 KiB: the same table as the START-END form the canned maps give
    rc, want, _ = run(capsys, "pagemap", "4242", "0x10000-0x18000", "--pages")
    assert rc == 0 and sum(ln.startswith("0x") for ln in want.splitlines()) == 8
    rc, out, err = run(capsys, "pagemap", "4242", "0x10000+32K", "--pages")
    assert (rc, out, err) == (0, want, "")


@needs_4k
@pytest.mark.parametrize("arg,part", [("0x1000+-5", "'-5'"), ("0x-1", "'0x'"), ("0x1000+1x", "'1x'")])
def test_pagemap_range_message_quotes_the_argument_as_typed(proc, capsys, arg, part):
    rc, out, err = run(capsys, "pagemap", "4242", arg)
    assert rc == 2 and out == ""
    assert f"'{arg}'" in err and part in err
    assert "'0x1000+'" not in err  # not the argument cut at the wrong separator
