"""Counting kpageflags over runs of consecutive frames, without a Python step per page.

Anonymous memory is mostly handed out in runs of consecutive PFNs (a 4 GiB process here: 7 400
runs for 1 Mi pages). Consecutive pagemap entries that differ by exactly +1 (or -1) have the
same bits 55-63 and consecutive frames, so a run is found with big-integer lane arithmetic (as
:func:`pyphys.pagemap.scanner._pfn_lanes`), its kpageflags words are read with one pread, and
a run whose words are all equal (nearly all of them) is counted with one bytes comparison.
Only the order of pages is lost, which a count does not need.
"""

from __future__ import annotations

import os
from collections import Counter

from pyphys.errors import from_oserror
from pyphys.layouts import pagemap as L

# a blob is counted by runs when its runs average at least this many pages; below that the
# PFN-indexed table (one window read for many scattered frames) is cheaper
MIN_AVERAGE_RUN = 8
_NONZERO = bytes([0]) + b"\x01" * 255
_MASK = L.PM_PFRAME_MASK
_RAMPS: dict[int, int] = {}
_SAMPLES = 256  # neighbour pairs sampled before the lane arithmetic


def _ramp(m: int) -> int:
    """Lanes holding 0, 1, ..., m - 1."""
    got = _RAMPS.get(m)
    if got is None:
        from array import array

        got = int.from_bytes(array("Q", range(m)).tobytes(), "little")
        if len(_RAMPS) > 8:
            _RAMPS.clear()
        _RAMPS[m] = got
    return got


def run_starts(data: bytes, down: bool = False, limit: int | None = None) -> list[int] | None:
    """Indices where a run of entries going up by 1 (``down``: by -1) starts, and ``m`` last;
    None when there would be more than ``limit`` runs.

    Entry i minus i (plus i going down) is the same number all along such a run, so with those
    lanes ``d``, ``d ^ (d >> 64)`` is zero in every lane but a run's last, and the bytes
    ``find`` the nonzero ones. No lane borrows or carries: the entries handed over are present
    or swapped (bit 63 or 62 set, far above any index) with bits 59-60 clear (checked by the
    caller), so each lane stays within 0 and 2**64."""
    m = len(data) >> 3
    e = int.from_bytes(data, "little")
    d = e + _ramp(m) if down else e - _ramp(m)
    marks = (d ^ (d >> 64)).to_bytes(m * 8, "little").translate(_NONZERO)
    find = marks.find
    starts = [0]
    pos = 0
    limit = m if limit is None else limit
    while True:
        pos = (find(1, pos) >> 3) + 1  # the lane after this run's last
        if pos >= m:
            break
        starts.append(pos)
        if len(starts) > limit:
            return None
        pos <<= 3
    starts.append(m)
    return starts


def count_by_runs(data: bytes, fd: int, *, min_average: int = MIN_AVERAGE_RUN) -> dict[int, Counter] | None:
    """kpageflags words of the present entries of ``data``, counted per pagemap meta byte
    (bits 56-63, soft-dirty folded into bit 3 as summary does): ``{meta: Counter}``. ``fd``:
    /proc/kpageflags. None when the runs are too short to be worth it (use the table)."""
    m = len(data) >> 3
    entries = memoryview(data).cast("Q")
    if m >= 4 * _SAMPLES:
        # a look at a few evenly spaced neighbours first: scattered frames skip the lane work
        step = (m - 1) // _SAMPLES
        breaks = sum(abs(entries[i + 1] - entries[i]) != 1 for i in range(0, step * _SAMPLES, step))
        if breaks * min_average > 2 * _SAMPLES:
            return None
    limit = m // min_average + 1
    down = False
    starts = run_starts(data, False, limit)
    if starts is None:
        down = True
        starts = run_starts(data, True, limit)
        if starts is None:
            return None
    pread = os.pread
    out: dict[int, Counter] = {}
    try:
        for i, j in zip(starts, starts[1:]):
            n = j - i
            lo = entries[j - 1] if down else entries[i]  # the run's lowest frame
            if not lo >> 63:
                continue  # swapped entries: summary counts them by meta byte
            want = n * 8
            words = pread(fd, want, (lo & _MASK) * 8)
            if len(words) < want:
                words += bytes(want - len(words))  # past the last PFN: reads as a hole, 0
            meta = lo >> 56
            if lo & L.PM_SOFT_DIRTY:
                meta |= 0x08
            c = out.get(meta)
            if c is None:
                c = out[meta] = Counter()
            first = words[:8]
            if n == 1 or words == first * n:
                c[int.from_bytes(first, "little")] += n
            else:
                c.update(memoryview(words).cast("Q"))
    except OSError as err:
        raise from_oserror(err, "cannot read /proc/kpageflags") from err
    return out
