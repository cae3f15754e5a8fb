"""The lab 1 picture's data on this host (root: pagemap shows PFNs): every plotted frame is the
one /proc/self/pagemap gives for that page, read here without pyphys; drawing needs matplotlib,
and its absence is one clear error."""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys

import pytest

from pyphys import labplot
from pyphys.errors import PyphysError


def _pfn(vaddr: int) -> int:
    with open("/proc/self/pagemap", "rb") as f:  # pagemap.rst: one u64 per page, PFN in bits 0-54
        f.seek(vaddr // mmap.PAGESIZE * 8)
        entry = struct.unpack("<Q", f.read(8))[0]
    assert entry >> 63, "page not present"
    return entry & ((1 << 55) - 1)


@pytest.fixture
def locked_page():
    if os.geteuid() != 0:
        pytest.skip("needs root: pagemap hides PFNs from others")
    m = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m[:8] = b"labplot!"
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(mmap.PAGESIZE)) == 0
    yield addr
    libc.munlock(ctypes.c_void_p(addr), ctypes.c_size_t(mmap.PAGESIZE))
    m.close()


@pytest.mark.host_root
def test_layout_places_a_page_on_its_frame(locked_page):
    lay = labplot.layout(os.getpid())
    where = lay.locate(locked_page)
    assert where is not None
    col = lay.columns[where[0]]
    seg = next(s for s in col.segments if s.first <= where[1] < s.first + s.pages)
    assert seg.pfn_at(where[1]) == _pfn(locked_page)
    assert seg.kind == "anonymous"
    # files are grouped: one column per shared library, however many mappings it has
    labels = [c.label for c in lay.columns if not c.label.startswith("[")]
    assert len(labels) == len(set(labels))


@pytest.mark.host_root
def test_plot_without_matplotlib_says_how_to_install(locked_page, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(PyphysError, match=r"pip install 'pyphys\[plot\]'"):
        labplot.plot([os.getpid()], str(tmp_path / "x.png"))


def test_plot_writes_an_image(locked_page, tmp_path):
    # not host_root: matplotlib is an optional extra (make setup installs it, so CI runs this)
    pytest.importorskip("matplotlib", reason="the optional extra `plot` is not installed")
    out = labplot.plot([os.getpid()], str(tmp_path / "frames.png"), {"page": locked_page})
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
