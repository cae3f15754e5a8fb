"""Counting kpageflags by runs of frames (pyphys.pagemap._pfnruns) against a page-by-page count
of the same crafted pagemap entries and kpageflags file."""

from __future__ import annotations

import os
import random
import struct
from collections import Counter

import pytest

from pyphys.layouts import pagemap as L
from pyphys.pagemap._pfnruns import count_by_runs, run_starts

PRESENT, SWAP, SD, EXCL = L.PM_PRESENT, L.PM_SWAP, L.PM_SOFT_DIRTY, 1 << 56
NPFN = 4096


@pytest.fixture
def kpageflags(tmp_path):
    rng = random.Random(7)
    words = [rng.choice((0x5828, 0x5828, 0x5828, 0x586C, 0x0800, 1 << 57)) for _ in range(NPFN)]
    path = tmp_path / "kpageflags"
    path.write_bytes(struct.pack(f"<{NPFN}Q", *words))
    fd = os.open(path, os.O_RDONLY)
    yield fd, words
    os.close(fd)


def by_page(entries, words) -> dict[int, Counter]:
    """The same count, one entry at a time (frames past the file read as 0)."""
    out: dict[int, Counter] = {}
    for e in entries:
        if not e >> 63:
            continue
        meta = (e >> 56) | (0x08 if e & SD else 0)
        pfn = e & L.PM_PFRAME_MASK
        out.setdefault(meta, Counter())[words[pfn] if pfn < len(words) else 0] += 1
    return out


def pack(entries) -> bytes:
    return struct.pack(f"<{len(entries)}Q", *entries)


def test_run_starts_up_and_down():
    up = [PRESENT | p for p in (10, 11, 12, 40, 41, 7)]
    assert run_starts(pack(up)) == [0, 3, 5, 6]
    down = [PRESENT | p for p in (12, 11, 10, 3, 2)]
    assert run_starts(pack(down), down=True) == [0, 3, 5]
    assert run_starts(pack(down)) == [0, 1, 2, 3, 4, 5]
    assert run_starts(pack(down), limit=2) is None


def test_flag_bits_split_runs():
    # consecutive frames, but soft-dirty / exclusive / swapped differ: separate runs
    es = [PRESENT | 5, PRESENT | SD | 6, PRESENT | SD | 7, PRESENT | EXCL | 8, SWAP | 9, SWAP | 10]
    assert run_starts(pack(es)) == [0, 1, 3, 4, 6]


@pytest.mark.parametrize("seed", range(6))
def test_count_by_runs_equals_page_by_page(kpageflags, seed):
    fd, words = kpageflags
    rng = random.Random(seed)
    entries = []
    while len(entries) < 5000:
        kind = rng.random()
        n = rng.randint(1, 300)
        base = rng.randrange(NPFN + 64)  # some runs run past the file's end
        bits = PRESENT | rng.choice((0, SD, EXCL, EXCL | SD))
        if kind < 0.5:
            entries += [bits | (base + i) for i in range(n)]
        elif kind < 0.8:
            entries += [bits | max(base - i, 0) for i in range(n)]
        elif kind < 0.9:
            entries += [SWAP | (base + i) << 5 for i in range(n)]
        else:
            entries += [bits | base] * rng.randint(1, 4)  # one frame mapped several times
    got = count_by_runs(pack(entries), fd, min_average=1)
    want = by_page(entries, words)
    assert {g: +c for g, c in got.items() if +c} == want


def test_scattered_frames_use_the_table(kpageflags):
    fd, _words = kpageflags
    entries = [PRESENT | p for p in range(0, NPFN, 3)]
    assert count_by_runs(pack(entries), fd) is None
