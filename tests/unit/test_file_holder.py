"""close / with for the objects that hold a device file open (pyphys.errors.FileHolder):
what depends on the file goes first, the file is closed once, a second close does nothing.
The kernel is the witness: fstat of a closed descriptor fails with EBADF."""

from __future__ import annotations

import errno
import os

import pytest

from pyphys import paths, pci_access, pci_devices, physmem

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pci", "host")


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as err:
        return err.errno == errno.EBADF
    return False


class _Log:
    def __init__(self, log: list, name: str, fd: int | None = None):
        self.log, self.name, self.fd = log, name, fd

    def close(self) -> None:
        # what must go first sees the file still open
        self.log.append((self.name, None if self.fd is None else _closed(self.fd)))


def test_physmem_unmaps_windows_then_closes_the_device():
    pm = physmem.PhysMem("mmap", False)
    fd = pm._fd = os.open(os.devnull, os.O_RDONLY)
    log: list = []
    pm._windows = {0: _Log(log, "window 0", fd), 1: _Log(log, "window 1", fd)}
    with pm as same:
        assert same is pm
    assert log == [("window 0", False), ("window 1", False)] and pm._windows == {}
    assert pm._fd is None and _closed(fd)
    pm.close()  # again: nothing
    assert len(log) == 2


def test_config_space_closes_its_file():
    old = paths.set_roots(sys=os.path.join(FIX, "sys"), proc=os.path.join(FIX, "proc"))
    try:
        dev = pci_devices.scan()[0]
        with pci_access.ConfigSpace(dev) as cfg:
            fd = cfg._fd
            assert fd is not None and not _closed(fd) and len(cfg.read(0, 4)) == 4
        assert cfg._fd is None and _closed(fd)
        cfg.close()
    finally:
        paths.set_roots(**old)


def test_bar_access_closes_window_file_then_physmem():
    bar = pci_access.BarAccess.__new__(pci_access.BarAccess)
    log: list = []
    fd = os.open(os.devnull, os.O_RDONLY)
    bar._fd, bar._win = fd, _Log(log, "window", fd)

    class PM:
        def close(self):
            log.append(("physmem", _closed(fd)))

    bar._pm = PM()
    with pytest.raises(RuntimeError), bar:
        raise RuntimeError("the with block fails: the file is closed all the same")
    assert log == [("window", False), ("physmem", True)]
    assert bar._fd is bar._win is bar._pm is None
    bar.close()
    assert len(log) == 2
