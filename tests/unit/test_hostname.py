"""pyphys hostname on the host: name validation, module sysfs parsing, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyphys import hostname, kmod, paths
from pyphys.errors import ModuleNotLoadedError, UsageError


@pytest.mark.parametrize("name", ["", "a" * 65, "tab\there", "nul\0", "del\x7f", "nl\n"])
def test_invalid_names_are_usage_errors(name):
    with pytest.raises(UsageError):
        hostname.validate_name(name)


@pytest.mark.parametrize(
    "name, raw",
    [("NinjaNinja", b"NinjaNinja\0"), ("a" * 64, b"a" * 64 + b"\0"), ("caf\u00e9", "caf\u00e9".encode() + b"\0")],
)
def test_valid_names_get_their_nul(name, raw):
    assert hostname.validate_name(name) == raw


def test_utf8_length_counts_bytes():
    with pytest.raises(UsageError, match="65 bytes"):
        hostname.validate_name("\u00e9" * 32 + "x")


@pytest.fixture
def fake_sys(tmp_path):
    d = tmp_path / "kernel" / "pyphys"
    d.mkdir(parents=True)
    (d / "buffer_phys").write_text("0x2622000\n")
    (d / "buffer_size").write_text("4096\n")
    (d / "nodename_phys").write_text("0x1acbba1\n")
    (d / "nodename_len").write_text("65\n")
    old = paths.set_roots(sys=str(tmp_path))
    yield d
    paths.set_roots(**old)


def test_kmod_info_parses_sysfs(fake_sys):
    info = kmod.info()
    assert (info.buffer_phys, info.buffer_size, info.nodename_phys, info.nodename_len) == (
        0x2622000,
        4096,
        0x1ACBBA1,
        65,
    )
    assert hostname.locate_nodename() == (0x1ACBBA1, 65, "pyphys.ko sysfs (__pa_symbol)")


def test_kmod_missing_module_says_how_to_load(tmp_path):
    old = paths.set_roots(sys=str(tmp_path))
    try:
        with pytest.raises(ModuleNotLoadedError, match="pyphys module install"):
            kmod.info()
    finally:
        paths.set_roots(**old)


def test_pattern_matches_the_documented_words():
    data = kmod.pattern(16)
    assert data == bytes.fromhex("00005950010059500200595003005950")


@pytest.mark.parametrize("args", [[""], ["x" * 65], ["a\tb"]])
def test_cli_bad_name_one_line_exit_2(args):
    proc = subprocess.run([sys.executable, "-m", "pyphys", "hostname", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_without_module_or_devmem_fails_in_one_line(tmp_path):
    """This host has no pyphys.ko and no /dev/mem: one line, non-zero, nothing else."""
    env = dict(os.environ, PYPHYS_SYS=str(tmp_path), PYPHYS_DEV=str(tmp_path), PYPHYS_JOURNAL=str(tmp_path / "j"))
    proc = subprocess.run(
        [sys.executable, "-m", "pyphys", "hostname", "NinjaNinja"], capture_output=True, text=True, env=env
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "j").exists()


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stock Debian capture with a sparse dev/mem holding 'vm' at its nodename_phys, uname -n 'vm'."""
    import shutil
    import types
    from pathlib import Path

    root = tmp_path / "m"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "stock-debian-6.1", root)
    phys = int((root / "sys" / "kernel" / "pyphys" / "nodename_phys").read_text(), 16)
    (root / "dev").mkdir(exist_ok=True)
    with open(root / "dev" / "mem", "wb") as f:
        f.truncate(1 << 30)
        f.seek(phys)
        f.write(b"vm" + b"\0" * 63)
    real = os.uname()
    fields = {k: getattr(real, k) for k in ("sysname", "release", "version", "machine")}
    monkeypatch.setattr(os, "uname", lambda: types.SimpleNamespace(nodename="vm", **fields))
    journal = root / "journal.jsonl"
    monkeypatch.setenv("PYPHYS_JOURNAL", str(journal))
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    yield root, phys, journal
    paths.set_roots(**old)


def _peek(path, at, n):
    with open(path, "rb") as f:
        f.seek(at)
        return f.read(n)


def test_same_name_writes_and_journals_nothing(standin, capsys):
    from pyphys import cli

    root, phys, journal = standin
    journal.write_text("")
    mem_before = _peek(root / "dev" / "mem", phys, 65)
    mtime = os.stat(root / "dev" / "mem").st_mtime_ns
    assert cli.main(["hostname", "vm", "--backend", "rw"]) == 0
    out = capsys.readouterr().out
    assert "before:   vm" in out and "after:    vm" in out and "already 'vm'" in out and "entry" not in out
    assert journal.read_text() == ""
    assert _peek(root / "dev" / "mem", phys, 65) == mem_before
    assert os.stat(root / "dev" / "mem").st_mtime_ns == mtime
    # a different name does write and journal on the same stand-in (the set-up can see a write)
    assert cli.main(["hostname", "ab", "--backend", "rw"]) == 0
    assert "entry 1" in capsys.readouterr().out and journal.read_text().count("\n") >= 1
    assert _peek(root / "dev" / "mem", phys, 3) == b"ab\0"
