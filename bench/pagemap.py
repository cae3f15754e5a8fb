"""pagemap benchmarks (issue 3), on the host: pyphys against the kernel's own page-types.

1. Whole-process flag summary of a child with 4 GiB of touched anonymous memory:
   ``pyphys pagemap PID --all --summary`` vs ``page-types -p PID`` (both read pagemap for every
   page and kpageflags for every present frame). Target <= 0.8x (both CPUs may be used).
2. One-address translation ``pyphys pagemap PID ADDR`` vs bare ``python -c pass`` start-up.
   Target <= 1.5x.
3. Peak RSS of the summary over those 4 GiB (wait4 rusage of the process). Target <= 100 MiB.
4. A sparse address space: a 64 GiB ``MAP_NORESERVE`` anonymous mapping with 16 384 touched
   pages (one every 4 MiB), ``pyphys pagemap PID --all --summary`` with the PAGEMAP_SCAN ioctl
   and with the chunked-read fallback (``PYPHYS_PAGEMAP_SCAN=ioctl|read``) vs ``page-types -p
   PID``. Target <= 0.1x. Python's own start-up (``python -c pass``) is printed as the floor a
   Python command cannot go under, and the scan alone (``summarize`` timed inside one
   process, the pagemap files opened anew each time) next to it.

Wall times are the best of several alternating runs (the machine is shared); medians and CPU
time (user+sys from wait4, less sensitive to other load) are in the notes. Python may cache
bytecode (in a temporary PYTHONPYCACHEPREFIX), as an installed package does: `make` exports
PYTHONDONTWRITEBYTECODE, which would otherwise recompile pyphys on every run. The command is
the `pyphys` console script when it is installed next to this Python, else `python -m pyphys`.
page-types: $PYPHYS_PAGE_TYPES, else the newest built by scripts/build-page-types.sh, else the
lab kernel tree's tools/vm/page-types.
Prints one JSON list of rows on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WHERE = "host"
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = int(os.environ.get("PYPHYS_BENCH_PAGEMAP_GIB", "4"))

CHILD = r"""
import mmap, sys, time
n = %d << 30
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for off in range(0, n, mmap.PAGESIZE):
    m[off] = 1
sys.stdout.write("%%d\n" %% (__import__("ctypes").addressof(__import__("ctypes").c_char.from_buffer(m))))
sys.stdout.flush()
time.sleep(3600)
"""


SPARSE_CHILD = r"""
import mmap, sys, time
n = 64 << 30
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)  # MAP_NORESERVE
# 4 KiB pages: with THP "always" (the lab kernel) each touch would fault in 2 MiB, 32 GiB in all
m.madvise(mmap.MADV_NOHUGEPAGE)
for off in range(0, n, n // 16384):
    m[off] = 1
sys.stdout.write("ready\n")
sys.stdout.flush()
time.sleep(3600)
"""


ENV = dict(
    os.environ,
    PYTHONPATH=TOP + os.pathsep + os.environ.get("PYTHONPATH", ""),
    PYTHONPYCACHEPREFIX=os.path.join(tempfile.gettempdir(), f"pyphys-bench-pycache-{os.getuid()}"),
)
ENV.pop("PYTHONDONTWRITEBYTECODE", None)


def timed(argv: list[str], env: dict | None = None) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds of one run of ``argv``; raises if it fails."""
    env = env or ENV
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=TOP)
    _pid, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {err.strip()[-300:]}")
    return dt, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def alternate(a: list[str], b: list[str], n: int, env_a: dict | None = None):
    """Run ``a`` and ``b`` in turn ``n`` times (after one warm-up each); lists of wall, RSS, CPU."""
    timed(a, env_a)
    timed(b)
    out = {"a": ([], [], []), "b": ([], [], [])}
    for _ in range(n):
        for key, argv, env in (("a", a, env_a), ("b", b, None)):
            for lst, v in zip(out[key], timed(argv, env)):
                lst.append(v)
    return out["a"], out["b"]


def sparse_rows(py: str, pt: str) -> list[dict]:
    """Bench 4: the sparse address space, with the ioctl and with the fallback."""
    med = statistics.median
    rows = []
    child = subprocess.Popen([py, "-c", SPARSE_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline() != "ready\n":
            raise SystemExit(f"the sparse child exited ({child.wait()}) before touching its 16384 pages")
        pid = str(child.pid)
        summary = pyphys_cmd(py) + ["pagemap", pid, "--all", "--summary"]
        for mode in ("ioctl", "read"):
            env = dict(ENV, PYPHYS_PAGEMAP_SCAN=mode)
            (wa, _ra, ca), (wb, _rb, cb) = alternate(summary, [pt, "-p", pid], 5, env)
            rows.append(
                row(
                    f"sparse: summary of 64 GiB NORESERVE, 16384 touched pages ({mode})",
                    min(wa),
                    "page-types -p PID",
                    min(wb),
                    "s",
                    "<= 0.1x",
                    f"PYPHYS_PAGEMAP_SCAN={mode}; best of 5 alternating, pyphys incl. Python start-up; "
                    f"medians {med(wa):.3f} vs {med(wb):.3f} s; CPU best {min(ca):.3f} vs {min(cb):.3f} s",
                )
            )
        (wp, _rp, cp), (wb, _rb, cb) = alternate([py, "-c", "pass"], [pt, "-p", pid], 5)
        rows.append(
            row(
                "sparse: floor, Python start-up alone",
                min(wp),
                "page-types -p PID",
                min(wb),
                "s",
                "-",
                "python -c pass: what any Python command pays before its first line",
            )
        )
        env = dict(ENV, PYPHYS_PAGEMAP_SCAN="ioctl")
        inproc = subprocess.run([py, "-c", INPROC, pid], capture_output=True, text=True, env=env, check=True)
        wall, cpu = map(float, inproc.stdout.split())
        rows.append(
            row(
                "sparse: the scan alone, in-process (ioctl)",
                wall,
                "page-types -p PID",
                min(wb),
                "s",
                "-",
                f"pyphys.pagemap.summarize(PID) timed inside one Python, best of 5; CPU {cpu:.3f} s",
            )
        )
    finally:
        child.kill()
        child.wait()
    return rows


INPROC = r"""
import sys, time
from pyphys import pagemap
best = []
for _ in range(6):
    t, c = time.perf_counter(), time.process_time()
    pagemap.summarize(sys.argv[1])
    best.append((time.perf_counter() - t, time.process_time() - c))
print(min(b[0] for b in best[1:]), min(b[1] for b in best[1:]))
"""


def pyphys_cmd(py: str) -> list[str]:
    script = os.path.join(os.path.dirname(py), "pyphys")
    return [script] if os.access(script, os.X_OK) else [py, "-m", "pyphys"]


def row(bench, pyphys, peer_name, peer, unit, target, note, ratio="auto"):
    if ratio == "auto":
        ratio = pyphys / peer if peer else None
    return {
        "bench": bench,
        "pyphys": round(pyphys, 4),
        "peer_name": peer_name,
        "peer": round(peer, 4),
        "unit": unit,
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "note": note,
    }


def main() -> int:
    rows = []
    py = sys.executable
    sys.path.insert(0, TOP)
    from pyphys import kernels

    pt = kernels.host_page_types()
    if os.geteuid() != 0:
        print(json.dumps([{"bench": "pagemap: skipped", "note": "needs root (PFNs, /proc/kpageflags)"}]))
        return 0
    child = subprocess.Popen([py, "-c", CHILD % GIB], stdout=subprocess.PIPE, text=True)
    med = statistics.median
    try:
        addr = int(child.stdout.readline())
        pid = str(child.pid)
        pp = pyphys_cmd(py)
        summary = pp + ["pagemap", pid, "--all", "--summary"]
        if pt:
            (wa, ra, ca), (wb, rb, cb) = alternate(summary, [pt, "-p", pid], 5)
            rows.append(
                row(
                    f"summary of {GIB} GiB touched anon (pagemap+kpageflags per page)",
                    min(wa),
                    "page-types -p PID",
                    min(wb),
                    "s",
                    "<= 0.8x",
                    f"best of 5 alternating, pyphys incl. Python start-up; medians {med(wa):.3f} vs "
                    f"{med(wb):.3f} s; CPU user+sys best {min(ca):.3f} vs {min(cb):.3f} s "
                    f"({min(ca) / min(cb):.2f}x)",
                )
            )
        else:
            (wa, ra, ca), _ = alternate(summary, [py, "-c", "pass"], 3)
            rb = [0]
            rows.append(
                {
                    "bench": f"summary of {GIB} GiB touched anon",
                    "pyphys": round(min(wa), 4),
                    "peer_name": "page-types (not built)",
                    "unit": "s",
                    "target": "<= 0.8x",
                    "note": "run `make kernel` to build tools/vm/page-types",
                }
            )
        one = pp + ["pagemap", pid, hex(addr)]
        (w1, _r1, c1), (w2, _r2, c2) = alternate(one, [py, "-c", "pass"], 15)
        rows.append(
            row(
                "one-address CLI translation",
                min(w1),
                "python -c pass",
                min(w2),
                "s",
                "<= 1.5x",
                f"best of 15 alternating; medians {med(w1) * 1000:.1f} vs {med(w2) * 1000:.1f} ms; "
                f"CPU best {min(c1) * 1000:.1f} vs {min(c2) * 1000:.1f} ms ({min(c1) / min(c2):.2f}x)",
            )
        )
        rows.append(
            row(
                f"peak RSS, summary of {GIB} GiB",
                max(ra) / 1024,
                "page-types -p PID" if pt else "-",
                max(rb) / 1024,
                "MiB",
                "<= 100 MiB",
                "wait4() ru_maxrss of the whole pyphys process (interpreter included)",
                ratio=None,
            )
        )
    finally:
        child.kill()
        child.wait()
    if pt and os.environ.get("PYPHYS_BENCH_PAGEMAP_SPARSE", "1") != "0":
        rows += sparse_rows(py, pt)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
