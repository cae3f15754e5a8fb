"""``--resume``: an interrupted dump continued in the same file is byte for byte the dump that
was never interrupted; a partial file from another boot, another format, or altered since is
refused and left as it was; SIGKILL's leftovers are found by the next run.

Judges: the uninterrupted dump of the same stand-in memory, hashlib, the partial file's bytes
before and after a refused resume. Checkpoints are made small (64 KiB) so that 12 MiB of
stand-in RAM holds many.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import dump_cli, dump_env, one_line_error
from lime_reader import LIME_V1

from pyphys import dump, dump_io
from pyphys.errors import PyphysError, UsageError

BOOT = "1b2c3d4e-0000-4000-8000-00000000000{}\n"


@pytest.fixture
def machine(fake, tmp_path, monkeypatch):
    (tmp_path / "proc" / "sys" / "kernel" / "random").mkdir(parents=True)
    (tmp_path / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text(BOOT.format(1))
    monkeypatch.setattr(dump, "CHECKPOINT", 1 << 20)
    return fake


def interrupt_after(nbytes: int):
    def on_write(fd, done):
        if done >= nbytes:
            raise KeyboardInterrupt

    return on_write


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


FORMATS = ["raw", "padded", "lime", "avml", "elf"]


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_resumed_dump_is_the_uninterrupted_one(machine, fmt, direct):
    out = machine
    whole = dump.dump(str(out / f"w.{fmt}"), None, fmt, block_size=64 << 10, meta=False)
    target = out / f"r.{fmt}"
    # 0x700000 bytes in: inside the second range (an avml record cut between two blocks)
    with pytest.raises(KeyboardInterrupt):
        dump.dump(str(target), None, fmt, direct=direct, block_size=64 << 10, on_write=interrupt_after(0x700000))
    partial = dump_io.partial_name(str(target))
    assert os.path.exists(partial) and os.path.exists(partial + ".json") and not target.exists()
    res = dump.dump(str(target), None, fmt, direct=direct, block_size=64 << 10, resume=True)
    assert target.read_bytes() == (out / f"w.{fmt}").read_bytes()
    assert res.sha256 == whole.sha256
    assert [r.sha256 for r in res.ranges] == [r.sha256 for r in whole.ranges]
    assert [r.file_offset for r in res.ranges] == [r.file_offset for r in whole.ranges]
    assert 0 < res.resumed_from < res.size
    assert not os.path.exists(partial) and not os.path.exists(partial + ".json")
    if res.sha256:
        assert (out / f"r.{fmt}.sha256").read_text() == f"{whole.sha256}  r.{fmt}\n"
    assert json.loads((out / f"r.{fmt}.json").read_text())["resumed_from"] == f"{res.resumed_from:#x}"


def partial_state(out, name="r.lime"):
    partial = dump_io.partial_name(str(out / name))
    return partial, digest(partial), open(partial + ".json").read()


def interrupted(out, fmt="lime", name="r.lime"):
    with pytest.raises(KeyboardInterrupt):
        dump.dump(str(out / name), None, fmt, on_write=interrupt_after(0x300000))
    return partial_state(out, name)


def test_another_boot_is_refused_and_nothing_changes(machine, tmp_path):
    out = machine
    before = interrupted(out)
    (tmp_path / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text(BOOT.format(2))
    with pytest.raises(UsageError, match="another boot .*the memory it holds is gone"):
        dump.dump(str(out / "r.lime"), None, "lime", resume=True)
    assert partial_state(out) == before


def test_another_format_is_refused_and_nothing_changes(machine):
    out = machine
    before = interrupted(out)
    with pytest.raises(UsageError, match="started as format lime, not elf"):
        dump.dump(str(out / "r.lime"), None, "elf", resume=True)
    with pytest.raises(UsageError, match="other ranges"):
        dump.dump(str(out / "r.lime"), [dump.parse_range("0x100000+1M")], "lime", resume=True)
    assert partial_state(out) == before


def test_an_altered_partial_file_is_refused(machine):
    out = machine
    partial, _, state = interrupted(out)
    with open(partial, "r+b") as f:
        f.seek(0x100)
        f.write(b"tampered")
    before = digest(partial)
    with pytest.raises(PyphysError, match="no longer match their checkpoint's SHA-256"):
        dump.dump(str(out / "r.lime"), None, "lime", resume=True)
    assert digest(partial) == before and open(partial + ".json").read() == state


def test_no_sha256_dumps_cannot_be_resumed(machine):
    out = machine
    with pytest.raises(KeyboardInterrupt):
        dump.dump(str(out / "r.lime"), None, "lime", sha256=False, on_write=interrupt_after(0x300000))
    with pytest.raises(UsageError, match="--no-sha256"):
        dump.dump(str(out / "r.lime"), None, "lime", resume=True)


def test_a_run_without_resume_replaces_the_leftover(machine):
    out = machine
    interrupted(out)
    told = []
    dump.dump(str(out / "r.lime"), None, "lime", note=told.append)
    assert any("removed" in t and "pyphys-partial" in t and "--resume" in t for t in told), told
    assert sorted(os.listdir(out)) == ["r.lime", "r.lime.json", "r.lime.sha256"]


def _wait_for_checkpoint(state_path, proc, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(state_path) as f:
                if json.load(f)["checkpoints"]:
                    return True
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


@pytest.fixture
def big_ram(tmp_path):
    """256 MiB of sparse stand-in RAM, with a mark in every MiB (so each block differs): the
    CLI's first checkpoint comes after 128 MiB (pyphys.dump.CHECKPOINT)."""
    for d in ("dev", "proc", "out", "proc/sys/kernel/random"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    size = 256 << 20
    with open(tmp_path / "dev" / "mem", "wb") as f:
        f.truncate(size)
        for off in range(0, size, 1 << 20):
            f.seek(off)
            f.write(off.to_bytes(8, "little") * 8)
    (tmp_path / "proc" / "iomem").write_text(f"00000000-{size - 1:08x} : System RAM\n")
    (tmp_path / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text(BOOT.format(7))
    return tmp_path / "out"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_cli_dump_resumes_from_its_leftover(big_ram, tmp_path, sig):
    """SIGKILL leaves the partial file and its state (nothing can clean up); SIGTERM after a
    checkpoint keeps them on purpose. `--resume` finishes the same file."""
    out = big_ram
    target = out / "k.lime"
    child = subprocess.Popen(
        [sys.executable, "-m", "pyphys", "dump", "--block-size", "64K", "-o", str(target)],
        env=dump_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = dump_io.partial_name(str(target))
    try:
        assert _wait_for_checkpoint(partial + ".json", child), "no checkpoint was ever written"
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == (-9 if sig == signal.SIGKILL else 143), err
    if sig == signal.SIGTERM:
        assert "--resume continues it" in err and err.count("\n") == 1, err
    assert os.path.exists(partial) and not target.exists()
    proc = dump_cli(tmp_path, "--block-size", "64K", "--resume", "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    assert "resumed at file offset" in proc.stdout
    # what an uninterrupted dump holds: LiME's header (lime.h) and the memory, as it is
    h = hashlib.sha256(LIME_V1.pack(b"EMiL", 1, 0, (256 << 20) - 1, bytes(8)))
    with open(tmp_path / "dev" / "mem", "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    assert digest(target) == h.hexdigest()
    assert sorted(os.listdir(out)) == ["k.lime", "k.lime.json", "k.lime.sha256"]


def test_resume_refusal_from_the_cli_is_one_line(machine, tmp_path):
    out = machine
    interrupted(out)
    (tmp_path / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text(BOOT.format(3))
    proc = dump_cli(tmp_path, "--resume", "-o", str(out / "r.lime"))
    assert proc.returncode == 2 and "another boot" in one_line_error(proc)
