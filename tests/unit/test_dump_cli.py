"""``pyphys dump`` from the command line: one-line errors, nothing left behind, progress on a tty.

Same stand-in /dev/mem and iomem as test_dump.py. Full-disk and read-only cases mount a small
tmpfs (root on the host: marked host_root).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
from helpers import dump_cli, dump_env, dump_mem, one_line_error

from pyphys import dump
from pyphys.errors import PyphysError

cli, env_for, mem = dump_cli, dump_env, dump_mem


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.mark.parametrize(
    "args, rc, words",
    [
        (["0x2000-0x1000"], 2, "ends before it starts"),
        (["0x100000+1M", "0x1ff000+8K"], 2, "overlap"),
        (["0x500000+4K"], 1, "not all System RAM: 0x500000 is in PCI Bus 0000:00"),
        (["0xc00000+4K"], 1, "a hole"),
        (["banana"], 2, "not a range"),
        (["0x100000+4K", "-f", "padded", "-o", "-"], 2, "cannot stream the padded format"),
        (["0x100000+4K", "--json", "-o", "-"], 2, "--json and -o - both want standard output"),
        (["0x100000+4K", "-o", "/dev/stdout"], 2, "give -o -"),
        (["0x100000+4K", "--resume"], 2, "nothing to resume"),
        (["--block-size", "1000"], 2, "multiple of 4K"),
        (["-f", "vmcore"], 2, "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(fake, tmp_path, args, rc, words):
    proc = cli(tmp_path, *args, *([] if "-o" in args else ["-o", str(fake / "x.lime")]))
    assert proc.returncode == rc
    if "invalid choice" in words:  # argparse's own usage message
        assert words in proc.stderr
    else:
        assert words in one_line_error(proc)
    assert listing(fake) == []


def test_existing_output(fake, tmp_path):
    (fake / "x.lime").write_bytes(b"keep me")
    proc = cli(tmp_path, "-o", str(fake / "x.lime"))
    assert proc.returncode == 2 and "exists (use --force" in one_line_error(proc)
    assert (fake / "x.lime").read_bytes() == b"keep me" and listing(fake) == ["x.lime"]
    proc = cli(tmp_path, "--force", "-o", str(fake / "x.lime"))
    assert proc.returncode == 0, proc.stderr
    assert listing(fake) == ["x.lime", "x.lime.json", "x.lime.sha256"]


def test_missing_directory(fake, tmp_path):
    proc = cli(tmp_path, "-o", str(fake / "no" / "x.lime"))
    assert proc.returncode == 1 and "no such directory" in one_line_error(proc)


def test_force_replaces_a_regular_file_not_a_device_node(fake, tmp_path):
    """The "one dialect" case: mknod /tmp/ff c 1 7; pyphys dump -o /tmp/ff 0x100000+64K --force."""
    node = fake / "ff"
    if os.geteuid() == 0:
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's numbers
    else:
        os.mkfifo(node)
    proc = cli(tmp_path, "-o", str(node), "0x100000+64K", "--force")
    assert proc.returncode == 2 and "regular files only" in one_line_error(proc)
    assert not stat.S_ISREG(os.lstat(node).st_mode) and listing(fake) == ["ff"]


def test_summary_lists_file_offsets_and_no_bar_off_a_tty(fake, tmp_path, memfile):
    proc = cli(tmp_path, "-f", "raw", "0x800000+4K", "0x1000+0x100", "-o", str(fake / "s.raw"))
    assert proc.returncode == 0 and proc.stderr == ""
    rows = re.findall(
        r"^\s+(0x[0-9a-f]+)-(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+[0-9a-f]{16}$", proc.stdout, re.M
    )
    assert rows == [("0x1000", "0x1100", "0x100", "0x0"), ("0x800000", "0x801000", "0x1000", "0x100")]
    data = (fake / "s.raw").read_bytes()
    assert data[0x100:] == mem(0x800000, 0x801000, memfile)
    sha = re.search(r"^sha256 ([0-9a-f]{64}) ", proc.stdout, re.M).group(1)
    assert (fake / "s.raw.sha256").read_text() == f"{sha}  s.raw\n"


def test_progress_bar_on_a_tty(fake, tmp_path):
    """stderr on a pseudo-terminal: the bar shows rate and ETA, and is wiped at the end."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pyphys", "dump", "--block-size", "64K", "-o", str(fake / "t.lime")],
            env=env_for(tmp_path),
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=120,
        )
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert re.search(r"\[#+\.*\]\s+\d+\.\d%.*MB/s\s+ETA \d+:\d\d", tty), tty
    assert tty.endswith("\r\x1b[K")  # cleared, not left on screen


def _wait_for_temp(directory, proc, min_size=0, timeout=30.0):
    """Wait until the dump's temp file exists (and holds more than ``min_size`` bytes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(directory):
            if name.endswith(".pyphys-partial"):
                try:
                    if os.path.getsize(os.path.join(directory, name)) > min_size or not min_size:
                        return True
                except OSError:
                    pass
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


@pytest.fixture
def slow_mem(tmp_path):
    """2 GiB of sparse stand-in RAM: long enough to interrupt in the middle (64K blocks)."""
    dev, proc, out = tmp_path / "dev", tmp_path / "proc", tmp_path / "out"
    for d in (dev, proc, out):
        d.mkdir()
    with open(dev / "mem", "wb") as f:
        f.truncate(2 << 30)
    (proc / "iomem").write_text("00000000-7fffffff : System RAM\n")
    return out


@pytest.mark.parametrize("when", ["early", "mid-dump"])
@pytest.mark.parametrize(
    "sig, rc, words", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "killed by SIGTERM")]
)
def test_signal_leaves_nothing(slow_mem, tmp_path, sig, rc, words, when):
    out = slow_mem
    child = subprocess.Popen(
        [sys.executable, "-m", "pyphys", "dump", "--block-size", "64K", "-o", str(out / "x.lime")],
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # early: as soon as the temp file exists; mid-dump: once 1 MiB of it is written
        assert _wait_for_temp(out, child, min_size=0 if when == "early" else 1 << 20), "the dump never started"
        child.send_signal(sig)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == rc, stderr
    assert stdout == "" and stderr.count("\n") == 1 and "Traceback" not in stderr
    where = (
        r"after [\d.]+ [KM]iB of 2\.0 GiB"
        if when == "mid-dump"
        else r"(after [\d.]+ \w+ of 2\.0 GiB|before any memory was read)"
    )
    assert re.search(
        rf"^pyphys dump: {words} {where}: the partial file was removed; .*x\.lime was not written$", stderr
    ), stderr
    assert listing(out) == []


# -- full disk and read-only filesystems (a small tmpfs: needs root) ----------------------


@contextlib.contextmanager
def tmpfs(path, options):
    path.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.mark.host_root
@needs_root
def test_disk_too_small_is_refused_up_front(fake, tmp_path):
    with tmpfs(tmp_path / "small", "size=1m") as small:
        proc = cli(tmp_path, "-o", str(small / "x.lime"))
        assert proc.returncode == 1
        assert "not enough space" in one_line_error(proc)
        assert listing(small) == []


@pytest.mark.host_root
@needs_root
@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_disk_fills_up_mid_dump(fake, tmp_path, direct):
    """ENOSPC from the kernel in the middle of the copy: the partial file goes, the message says so."""
    with tmpfs(tmp_path / "small", "size=4m") as small:

        def fill_disk(fd, done):
            if os.path.exists(small / "filler"):
                return
            with open(small / "filler", "wb") as f:
                try:
                    while True:
                        f.write(b"\xff" * 65536)
                        f.flush()
                except OSError as err:
                    assert err.errno == errno.ENOSPC

        with pytest.raises(PyphysError) as info:
            dump.dump(
                str(small / "x.raw"),
                [dump.parse_range("0x100000+2M")],
                "raw",
                direct=direct,
                block_size=64 << 10,
                on_write=fill_disk,
            )
        msg = str(info.value)
        assert "no space left on device after 64.0 KiB of 2.0 MiB" in msg
        assert "partial file was removed" in msg
        assert listing(small) == ["filler"]  # before any checkpoint: nothing worth resuming


@pytest.mark.host_root
@needs_root
def test_read_only_filesystem(fake, tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        proc = cli(tmp_path, "-o", str(ro / "x.lime"))
        assert proc.returncode == 1
        assert "Read-only file system" in one_line_error(proc)
        assert listing(ro) == []


def test_direct_on_a_filesystem_without_o_direct(fake, tmp_path, monkeypatch):
    """open(O_DIRECT) -> EINVAL (tmpfs before 6.6, overlayfs on tmpfs): says so, no file."""
    real_open = os.open

    def fake_open(path, flags, *a, **kw):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(PyphysError, match="does not support O_DIRECT"):
        dump.dump(str(fake / "x.lime"), None, "lime", direct=True)
    monkeypatch.undo()
    assert listing(fake) == []
