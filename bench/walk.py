"""Bench (guest): the whole-process page-table walk against pagemap's summary of the same process.

A child with ``PYPHYS_BENCH_WALK_MIB`` MiB (default 64) of touched anonymous 4 KiB pages and one
2 MiB THP region: ``pyphys walk PID --all`` (every page-table page read through physical memory,
every page compared with pagemap) vs ``pyphys pagemap PID --all --summary`` (pagemap plus
kpageflags for every page, no page table read). Both are whole CLI runs, Python start-up
included, best of 3 alternating runs; no target (the walk does strictly more work: the ratio
says how much). The walk must report zero disagreements, or the bench fails.
Prints ONE JSON list of rows (scripts/bench.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

WHERE = "guest"
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = int(os.environ.get("PYPHYS_BENCH_WALK_MIB", "64"))
REPEAT = 3

CHILD = r"""
import ctypes, mmap, sys, time
n = %d << 20
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for off in range(0, n, mmap.PAGESIZE):
    m[off] = 1
big = mmap.mmap(-1, 4 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
base = ctypes.addressof(ctypes.c_char.from_buffer(big))
thp = (base + (2 << 20) - 1) // (2 << 20) * (2 << 20)
ctypes.CDLL(None).madvise(ctypes.c_void_p(thp), ctypes.c_size_t(2 << 20), 14)  # MADV_HUGEPAGE
ctypes.memset(thp, 1, 2 << 20)
sys.stdout.write("ready\n")
sys.stdout.flush()
time.sleep(3600)
"""

ENV = dict(os.environ, PYTHONPATH=TOP + os.pathsep + os.environ.get("PYTHONPATH", ""))


def timed(argv: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=ENV, cwd=TOP)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:5])} failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    return dt, p.stdout


def main() -> int:
    if os.geteuid() != 0:
        print(json.dumps([{"bench": "walk --all: skipped", "note": "needs root (the module's page-table ioctl)"}]))
        return 0
    py = sys.executable
    child = subprocess.Popen([py, "-c", CHILD % MIB], stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        pid = str(child.pid)
        walk = [py, "-m", "pyphys", "walk", pid, "--all"]
        summary = [py, "-m", "pyphys", "pagemap", pid, "--all", "--summary"]
        _dt, doc = timed(walk + ["--json"])
        d = json.loads(doc)
        if d["disagree"]:
            raise SystemExit(f"walk --all: {d['disagree']} disagreements: {d['disagreements'][:3]}")
        timed(summary)
        ta, tb = [], []
        for _ in range(REPEAT):
            ta.append(timed(walk)[0])
            tb.append(timed(summary)[0])
    finally:
        child.kill()
        child.wait()
    med = statistics.median
    lv = d["by_level"]
    row = {
        "bench": f"walk --all of {MIB} MiB touched anon + a THP ({d['pages']} pages)",
        "pyphys": round(min(ta), 4),
        "peer_name": "pyphys pagemap PID --all --summary",
        "peer": round(min(tb), 4),
        "unit": "s",
        "ratio": round(min(ta) / min(tb), 3),
        "target": "-",
        "note": (
            f"best of {REPEAT} alternating, CLI incl. Python start-up; medians {med(ta):.3f} vs {med(tb):.3f} s; "
            f"{d['present']} present ({lv['pte']['leaves']} PTE, {lv['pmd']['leaves']} PMD 2M leaves), "
            f"{d['tables_read']} page-table pages read, {d['agree']} agree, 0 disagree"
        ),
    }
    print(json.dumps([row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
