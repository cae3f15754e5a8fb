"""The exit statuses README.md documents ("Exit status") are the ones the CLI returns.

Each documented status has representative command lines, run through the real CLI on the
stand-in machine of test_bad_input.py; interrupts, a closed pipe and a signal during a dump are
raised from inside the command the way the interpreter would raise them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from test_bad_input import REPO, make_tree

from pyphys import cli, paths


def documented() -> dict[str, str]:
    """README's Exit status table: status -> meaning."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Exit status\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| (\d+|128\+N) \| (.+) \|$", section, re.M))


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    root = tmp_path_factory.mktemp("exit-status") / "m"
    make_tree(root)
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    yield root
    paths.set_roots(**old)


@pytest.fixture
def env(machine, monkeypatch):
    monkeypatch.chdir(machine)
    monkeypatch.setenv("PYPHYS_JOURNAL", str(machine / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    monkeypatch.setenv("PYPHYS_CACHE", str(machine / "cache"))
    return machine


def run(capsys, *argv):
    capsys.readouterr()
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def raiser(exc):
    def boom(*_a, **_k):
        raise exc

    return boom


TESTED = {"0", "1", "2", "130", "141", "128+N"}


def test_every_documented_status_is_tested():
    assert set(documented()) == TESTED


@pytest.mark.parametrize(
    "argv",
    [
        ("iomem",),
        ("iomem", "0x1000"),
        ("lab", "list"),
        ("ksym", "init_uts_ns", "--no-kcore"),
        ("lab", "check", "1", "--template"),
    ],
)
def test_success_is_0(env, capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 0 and out, err


@pytest.mark.parametrize(
    "argv",
    [
        ("ksym", "no_such_symbol_anywhere"),
        ("devmem", "sym:no_such_symbol_here"),
        ("lab", "check", "1", "--file", "/nonexistent/results.txt"),
        ("pagemap", "999999999", "0x1000"),
    ],
)
def test_failure_is_1(env, capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 1 and not out and len(err.splitlines()) == 1, err


def test_ksym_disagreement_is_1(env, capsys):
    nodename = env / "sys" / "kernel" / "pyphys" / "nodename_phys"
    good = nodename.read_text()
    nodename.write_text("0x1000\n")
    try:
        rc, out, err = run(capsys, "ksym", "nodename", "--no-kcore")
    finally:
        nodename.write_text(good)
    assert rc == 1 and "DISAGREE" in out


@pytest.mark.parametrize(
    "argv",
    [(), ("lab",), ("devmem", "1a000"), ("devmem", "0x1000", "q"), ("lab", "shell", "--kernel", "bogus"), ("dump",)],
)
def test_bad_input_is_2(env, capsys, argv):
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and not out and len(err.splitlines()) == 1, err


def test_bad_input_is_2_from_the_installed_script(env):
    e = dict(os.environ, PYTHONPATH=str(REPO), PYPHYS_PROC=paths.proc(), PYPHYS_DEV=paths.dev())
    p = subprocess.run(
        [sys.executable, str(REPO / "bin" / "pyphys"), "devmem", "0x10000000000000000"],
        capture_output=True,
        text=True,
        env=e,
        timeout=60,
    )
    assert p.returncode == 2 and p.stdout == "" and "above the maximum" in p.stderr


def test_ctrl_c_is_130(env, capsys, monkeypatch):
    monkeypatch.setattr("pyphys.iomem.load", raiser(KeyboardInterrupt()))
    rc, out, err = run(capsys, "iomem")
    assert rc == 130 and err == "pyphys iomem: interrupted\n" and not out


def test_closed_stdout_is_141(env, capsys, monkeypatch):
    monkeypatch.setattr("pyphys.iomem.load", raiser(BrokenPipeError()))
    rc, out, err = run(capsys, "iomem")
    assert rc == 141 and not err


@pytest.mark.parametrize("signame, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_dump_stopped_by_a_signal_is_128_plus_n(env, capsys, monkeypatch, signame, status):
    from pyphys.commands import dump as dump_cmd

    monkeypatch.setattr("pyphys.dump.dump", raiser(dump_cmd._Signalled(signame)))
    rc, out, err = run(capsys, "dump", "-o", str(env / "never"), "0x1000+4K")
    assert rc == status and len(err.splitlines()) == 1 and f"killed by {signame}" in err
    assert not (env / "never").exists()
