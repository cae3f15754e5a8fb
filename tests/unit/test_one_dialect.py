"""One dialect across subcommands: sizes with K/M/G/T wherever a length is taken, one range
parser, messages that quote the argument as typed, results only on stdout, and every address or
range a command prints accepted back by the others. Canned trees only (tests/fixtures)."""

from __future__ import annotations

import json
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


@needs_4k
@pytest.mark.parametrize("mode", [[], ["--pages"], ["--runs", "--count"]])
def test_pagemap_failing_range_prints_nothing_on_stdout(proc, capsys, mode):
    # 0x25000 lies in no mapping of the canned process 4242: the scan fails before any row
    rc, out, err = run(capsys, "pagemap", "4242", "0x25000-0x27000", *mode)
    assert rc == 1 and out == ""
    assert len(err.splitlines()) == 1 and "is not mapped in process 4242" in err


@needs_4k
@pytest.mark.parametrize("argv", [["0x10234"], ["--all"]])
def test_pagemap_notes_go_to_stderr(capsys, argv):
    # the canned proc-hidden zeroes PFNs as the kernel does without CAP_SYS_ADMIN: a note says so
    old = paths.set_roots(proc=os.path.join(FIX, "pagemap", "proc-hidden"))
    try:
        rc, out, err = run(capsys, "pagemap", "4242", *argv)
        assert rc == 0 and "note:" not in out
        assert "pyphys pagemap: note: " in err
        rc, out, err = run(capsys, "pagemap", "4242", *argv, "--json")
        assert rc == 0 and json.loads(out)["notes"] and err == ""  # --json: the notes stay in the document
    finally:
        paths.set_roots(**old)
