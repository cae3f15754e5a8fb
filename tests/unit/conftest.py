"""Fixtures shared by test modules of tests/unit (each block names its area)."""

from __future__ import annotations

import array
import os

import pytest
from helpers import DUMP_IOMEM, DUMP_MEM_SIZE

# -- dump: a stand-in /dev/mem and /proc/iomem (tests/unit/test_dump*.py) ---------------------


@pytest.fixture(scope="session")
def memfile(tmp_path_factory):
    """Every 8-byte word holds its own physical address (any offset error shows up)."""
    path = tmp_path_factory.mktemp("mem") / "mem"
    path.write_bytes(array.array("Q", range(0, DUMP_MEM_SIZE, 8)).tobytes())
    return path


@pytest.fixture
def fake(tmp_path, memfile):
    """/dev/mem -> ``memfile``, /proc/iomem = DUMP_IOMEM; returns an empty output directory."""
    from pyphys import paths

    for d in ("dev", "proc", "sys", "out"):
        (tmp_path / d).mkdir()
    os.symlink(memfile, tmp_path / "dev" / "mem")
    (tmp_path / "proc" / "iomem").write_text(DUMP_IOMEM)
    old = paths.set_roots(dev=str(tmp_path / "dev"), proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"))
    yield tmp_path / "out"
    paths.set_roots(**old)


# -- pci: a writable copy of a captured guest (tests/unit/test_pci_*.py) ----------------------


@pytest.fixture
def lab_guest_copy(tmp_path, monkeypatch):
    """A writable copy of the lab guest's sysfs/procfs capture, made the roots pyphys reads, with
    a journal of its own; yields the copy's root."""
    import shutil

    from pyphys import paths

    root = tmp_path / "lab"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci", "lab-guest"), root, symlinks=True)
    monkeypatch.setenv("PYPHYS_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    old = paths.set_roots(sys=str(root / "sys"), proc=str(root / "proc"))
    try:
        yield root
    finally:
        paths.set_roots(**old)


@pytest.fixture
def pci_tree(lab_guest_copy):
    """``lab_guest_copy`` with a sparse 'device memory' file of its BAR's size as each
    resourceN, edu's identification register set in BAR0, and /dev under the copy (empty until
    a test makes /dev/mem). Yields a namespace: root, files {(ids, BAR index): path}, devices,
    journal (its path) and dev(ids) (the device)."""
    from pyphys import paths, pci_devices

    root = lab_guest_copy
    old = paths.set_roots(dev=str(root / "dev"))
    devices = pci_devices.scan()
    files = {}
    for d in devices:
        for b in d.bars:
            path = root / "sys/bus/pci/devices" / d.address / f"resource{b.index}"
            with open(path, "wb") as f:
                f.truncate(b.size)
            files[(d.ids, b.index)] = path
    with open(files[("1234:11e8", 0)], "r+b") as f:
        f.write((0x010000ED).to_bytes(4, "little"))  # edu.rst: identification register
    ns = type("Tree", (), {})()
    ns.root, ns.files, ns.devices, ns.journal = root, files, devices, root.parent / "journal.jsonl"
    ns.dev = lambda ids: next(d for d in devices if d.ids == ids)
    try:
        yield ns
    finally:
        paths.set_roots(**old)
