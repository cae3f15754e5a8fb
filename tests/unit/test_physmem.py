"""physmem against a regular file standing in for /dev/mem (paths.set_roots(dev=...)).

Ground truth is the file itself, read and written with plain open() — not through physmem.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct

import pytest

from pyphys import paths, physmem
from pyphys.errors import (
    DevMemBlockedError,
    ModuleNotLoadedError,
    NotFoundError,
    PermissionDeniedError,
    RegionError,
    UsageError,
)

PAGE = physmem.PAGE_SIZE
SIZE = 16 * PAGE
IOMEM = """\
00000000-00000fff : Reserved
00001000-00007fff : System RAM
00008000-00008fff : PCI Bus 0000:00
  00008000-00008fff : 0000:00:03.0
    00008000-00008fff : edu
00009000-0000ffff : System RAM
"""


def pattern(n: int) -> bytes:
    return b"".join(struct.pack("<I", 0x50590000 | i) for i in range(n // 4))


@pytest.fixture
def fake(tmp_path):
    """A 16-page /dev/mem stand-in with the module buffer's pattern, and a matching /proc/iomem."""
    dev = tmp_path / "dev"
    proc = tmp_path / "proc"
    sysfs = tmp_path / "sys"
    dev.mkdir()
    proc.mkdir()
    sysfs.mkdir()
    (dev / "mem").write_bytes(pattern(SIZE))
    (proc / "iomem").write_text(IOMEM)
    old = paths.set_roots(dev=str(dev), proc=str(proc), sys=str(sysfs))
    yield tmp_path
    paths.set_roots(**old)


def raw(tmp_path, addr: int, n: int, name: str = "mem") -> bytes:
    with open(tmp_path / "dev" / name, "rb") as f:
        f.seek(addr)
        return f.read(n)


@pytest.mark.parametrize("backend", ["mmap", "rw", "auto"])
@pytest.mark.parametrize("width", [8, 16, 32, 64])
def test_read_word_matches_file(fake, backend, width):
    addr = 0x1000 + 0x40
    with physmem.open_physmem(backend) as pm:
        got = pm.read_word(addr, width)
    assert got == int.from_bytes(raw(fake, addr, width // 8), "little")


@pytest.mark.parametrize("backend", ["mmap", "rw"])
@pytest.mark.parametrize("width", [8, 16, 32, 64])
def test_write_word_touches_exactly_width_bytes(fake, backend, width):
    addr = 0x2000 + 0x10
    before = raw(fake, addr - 8, 32)
    value = 0xA5A5A5A5A5A5A5A5 & ((1 << width) - 1)
    with physmem.open_physmem(backend, writable=True) as pm:
        pm.write_word(addr, width, value)
    after = raw(fake, addr - 8, 32)
    n = width // 8
    assert after[8 : 8 + n] == value.to_bytes(n, "little")
    assert after[:8] == before[:8] and after[8 + n :] == before[8 + n :]


def test_module_backend_uses_pyphys_mem(fake):
    (fake / "dev" / "pyphys_mem").write_bytes(bytes(SIZE))
    with physmem.open_physmem("module", writable=True) as pm:
        pm.write_word(0x1000, 32, 0x12345678)
        assert pm.backend == "module"
    assert raw(fake, 0x1000, 4, "pyphys_mem") == bytes.fromhex("78563412")
    assert raw(fake, 0x1000, 4) == pattern(0x1004)[0x1000:]  # /dev/mem untouched


@pytest.mark.parametrize("backend", ["mmap", "rw"])
def test_range_read_crosses_pages(fake, backend):
    addr, n = 0x2FF0, 2 * PAGE + 0x30
    with physmem.open_physmem(backend) as pm:
        assert pm.read(addr, n) == raw(fake, addr, n)


@pytest.mark.parametrize("backend", ["mmap", "rw"])
def test_range_write_crosses_pages(fake, backend):
    addr, data = 0x3FFD, os.urandom(3 * PAGE + 7)
    whole = pattern(SIZE)
    with physmem.open_physmem(backend, writable=True) as pm:
        pm.write(addr, data)
    assert raw(fake, addr, len(data)) == data
    end = addr + len(data)
    assert raw(fake, addr - 5, 5) == whole[addr - 5 : addr]
    assert raw(fake, end, 5) == whole[end : end + 5]


def test_mmio_range_read_is_32bit_and_exact(fake):
    # 0x8000 is not RAM in the fixture: unaligned range read goes through aligned 32-bit words
    with physmem.open_physmem("mmap") as pm:
        assert pm.read(0x8001, 6) == raw(fake, 0x8001, 6)
        assert pm.regions.is_ram(0x8000) is False
        assert pm.regions.is_ram(0x9000) is True


def test_mapped_window_never_splits_32bit(fake, monkeypatch):
    """A 32-bit MMIO read is one read_word(…, 32), not four byte reads."""
    calls = []
    orig = physmem.MappedWindow.read_word

    def spy(self, off, width):
        calls.append(width)
        return orig(self, off, width)

    monkeypatch.setattr(physmem.MappedWindow, "read_word", spy)
    with physmem.open_physmem("mmap") as pm:
        pm.read(0x8004, 4)
        pm.read(0x8001, 9)
    assert calls == [32, 32, 32, 32]


@pytest.mark.parametrize("width,addr", [(16, 0x1001), (32, 0x1002), (64, 0x1004)])
def test_unaligned_is_usage_error(fake, width, addr):
    with physmem.open_physmem("mmap", writable=True) as pm:
        with pytest.raises(UsageError, match="aligned"):
            pm.read_word(addr, width)
        with pytest.raises(UsageError, match="aligned"):
            pm.write_word(addr, width, 1)
    assert raw(fake, 0x1000, 16) == pattern(0x1010)[0x1000:]


@pytest.mark.parametrize("width", [0, 7, 24, 128, -32])
def test_unknown_width(fake, width):
    with physmem.open_physmem("mmap") as pm, pytest.raises(UsageError, match="width"):
        pm.read_word(0x1000, width)


def test_value_wider_than_width(fake):
    with physmem.open_physmem("mmap", writable=True) as pm, pytest.raises(UsageError, match="wider"):
        pm.write_word(0x1000, 8, 0x100)
    assert raw(fake, 0x1000, 4) == struct.pack("<I", 0x50590400)


def test_read_only_refuses_write(fake):
    with physmem.open_physmem("mmap") as pm, pytest.raises(UsageError, match="read-only"):
        pm.write(0x1000, b"x")


def test_past_end_of_device(fake):
    with physmem.open_physmem("rw") as pm, pytest.raises(RegionError):
        pm.read(SIZE - 2, 4)
    with physmem.open_physmem("mmap") as pm, pytest.raises(RegionError):
        pm.read_word(SIZE, 32)


def test_missing_devmem_says_lab_vm(tmp_path):
    old = paths.set_roots(dev=str(tmp_path))
    try:
        with pytest.raises(NotFoundError) as info:
            physmem.open_physmem("auto")
        assert "make shell" in str(info.value)
        with pytest.raises(ModuleNotLoadedError, match="mem_device=1"):
            physmem.open_physmem("module")
    finally:
        paths.set_roots(**old)


def test_unknown_backend(fake):
    with pytest.raises(UsageError, match="backend"):
        physmem.open_physmem("dma")


def test_auto_falls_back_to_module_device_when_devmem_missing(fake):
    os.unlink(fake / "dev" / "mem")
    (fake / "dev" / "pyphys_mem").write_bytes(pattern(SIZE))
    with physmem.open_physmem("auto") as pm:
        assert pm.backend == "module"
        assert "does not exist" in pm.reason
        assert pm.read_word(0x1000, 32) == 0x50590400


def _mmap_refusing(code):
    real = mmap.mmap

    def fake_mmap(fd, length, *args, **kw):
        raise OSError(code, os.strerror(code))

    return real, fake_mmap


def test_auto_probe_eperm_picks_module_and_says_why(fake, monkeypatch):
    (fake / "dev" / "pyphys_mem").write_bytes(pattern(SIZE))
    _real, refuse = _mmap_refusing(errno.EPERM)
    monkeypatch.setattr(mmap, "mmap", refuse)
    with physmem.open_physmem("auto") as pm:
        assert pm.backend == "module"
        assert "EPERM" in pm.reason and "STRICT_DEVMEM" in pm.reason
        assert pm.read_word(0x1000, 32) == 0x50590400


def test_eperm_on_ram_names_strict_devmem(fake, monkeypatch):
    _real, refuse = _mmap_refusing(errno.EPERM)
    monkeypatch.setattr(mmap, "mmap", refuse)
    with physmem.open_physmem("mmap") as pm, pytest.raises(DevMemBlockedError) as info:
        pm.read_word(0x1000, 32)
    assert "STRICT_DEVMEM" in str(info.value) and "mem_device=1" in str(info.value)


def test_eperm_on_claimed_mmio_names_io_strict(fake, monkeypatch):
    _real, refuse = _mmap_refusing(errno.EPERM)
    monkeypatch.setattr(mmap, "mmap", refuse)
    with physmem.open_physmem("mmap") as pm, pytest.raises(DevMemBlockedError) as info:
        pm.read_word(0x8000, 32)
    assert "IO_STRICT_DEVMEM" in str(info.value) and "iomem=relaxed" in str(info.value)
    assert "edu" in str(info.value)


def test_einval_on_mmap_names_pat(fake, monkeypatch):
    _real, refuse = _mmap_refusing(errno.EINVAL)
    monkeypatch.setattr(mmap, "mmap", refuse)
    with physmem.open_physmem("mmap") as pm, pytest.raises(DevMemBlockedError, match="nopat"):
        pm.read_word(0x1000, 32)


def test_lockdown_named_on_eperm_open(fake, monkeypatch):
    sec = fake / "sys" / "kernel" / "security"
    sec.mkdir(parents=True)
    (sec / "lockdown").write_text("none [integrity] confidentiality\n")

    def refuse(path, flags, mode=0o777):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(physmem.os, "open", refuse)
    with pytest.raises(DevMemBlockedError, match=r"lockdown \(\[integrity\]\)"):
        physmem.open_physmem("mmap")


def test_eperm_open_without_lockdown_is_capability(fake, monkeypatch):
    def refuse(path, flags, mode=0o777):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(physmem.os, "open", refuse)
    with pytest.raises(PermissionDeniedError, match="CAP_SYS_RAWIO"):
        physmem.open_physmem("rw")


def test_eacces_open_says_root(fake, monkeypatch):
    def refuse(path, flags, mode=0o777):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(physmem.os, "open", refuse)
    with pytest.raises(PermissionDeniedError, match="root"):
        physmem.open_physmem("mmap")


def test_zeros_from_read_of_restricted_low_ram_are_not_data(fake, monkeypatch):
    """drivers/char/mem.c shows zeros for restricted RAM below 1 MiB: say so, don't print zeros."""
    with open(fake / "dev" / "mem", "r+b") as f:
        f.seek(0x1000)
        f.write(bytes(64))
    _real, refuse = _mmap_refusing(errno.EPERM)
    monkeypatch.setattr(mmap, "mmap", refuse)
    with physmem.open_physmem("rw") as pm, pytest.raises(DevMemBlockedError, match="zeros"):
        pm.read(0x1000, 64)


def test_real_zeros_are_returned(fake):
    with open(fake / "dev" / "mem", "r+b") as f:
        f.seek(0x1000)
        f.write(bytes(64))
    with physmem.open_physmem("rw") as pm:
        assert pm.read(0x1000, 64) == bytes(64)


def test_mapped_window_on_any_fd(tmp_path):
    path = tmp_path / "resource0"
    path.write_bytes(bytes(PAGE))
    fd = os.open(path, os.O_RDWR)
    try:
        with physmem.MappedWindow(fd, 0, 0x100, True, mmio=True, what="resource0") as win:
            win.write_word(0x04, 32, 0x12345678)
            win.write(0x09, b"abc")
            assert win.read_word(0x04, 32) == 0x12345678
            assert win.read(0x08, 4) == b"\0abc"
            with pytest.raises(RegionError):
                win.read_word(0x100, 32)
    finally:
        os.close(fd)
    assert path.read_bytes()[4:12] == bytes.fromhex("78563412") + b"\0abc"


def test_mmio_8_byte_range_is_two_32bit_loads_but_read_word_64_is_one(fake, monkeypatch):
    """QEMU's edu answers only 32-bit accesses to its registers: a range never becomes a 64-bit load."""
    calls = []
    orig = physmem.MappedWindow.read_word
    monkeypatch.setattr(
        physmem.MappedWindow, "read_word", lambda self, off, w: (calls.append(w), orig(self, off, w))[1]
    )
    with physmem.open_physmem("mmap") as pm:
        assert pm.read(0x8000, 8) == raw(fake, 0x8000, 8)
        assert calls == [32, 32]
        calls.clear()
        pm.read_word(0x8000, 64)
        assert calls == [64]
        calls.clear()
        pm.read(0x1000, 8)  # RAM: one exact 64-bit copy is fine
        assert calls == [64]


def test_all_zero():
    assert physmem.all_zero(b"") and physmem.all_zero(bytes(5)) and physmem.all_zero(bytes(3 << 20))
    assert not physmem.all_zero(b"\0\0\1") and not physmem.all_zero(bytes(2 << 20) + b"\1")
    assert physmem.all_zero(memoryview(bytes(4096)))


def test_split_modules_keep_public_names_and_load_explanations_only_on_errors(fake):
    """physmem re-exports the window layer; the refusal explanations are imported on a refusal only."""
    import subprocess
    import sys

    from pyphys import physmem_window

    assert physmem.MappedWindow is physmem_window.MappedWindow and physmem.PAGE_SIZE == physmem_window.PAGE_SIZE
    code = (
        "import sys\nfrom pyphys import paths, physmem\n"
        f"paths.set_roots(dev={str(fake / 'dev')!r}, proc={str(fake / 'proc')!r}, sys={str(fake / 'sys')!r})\n"
        "with physmem.open_physmem('mmap') as pm: pm.read_word(0x1000, 32)\n"
        "print('pyphys.physmem_explain' in sys.modules)\n"
        "try:\n    physmem.open_physmem('module')\nexcept Exception as err:\n    print(type(err).__name__)\n"
        "print('pyphys.physmem_explain' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=fresh_env()
    ).stdout
    assert out.split() == ["False", "ModuleNotLoadedError", "True"]


def fresh_env() -> dict:
    """The environment for a fresh interpreter that imports this checkout's pyphys."""
    import pyphys

    top = os.path.dirname(os.path.dirname(os.path.abspath(pyphys.__file__)))
    return dict(os.environ, PYTHONPATH=top + os.pathsep + os.environ.get("PYTHONPATH", ""))
