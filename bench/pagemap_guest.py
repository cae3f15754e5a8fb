"""Bench (guest): the sparse address space of bench/pagemap.py, inside the 6.12 lab guest.

The same child (a 64 GiB ``MAP_NORESERVE`` anonymous mapping with 16 384 touched pages) and the
same rows (PAGEMAP_SCAN ioctl, chunked-read fallback, Python's start-up floor, the scan alone
in-process), measured against the guest kernel's own page-types, built from the same source as
the guest kernel (``PYPHYS_PAGE_TYPES``, which scripts/bench.py sets from the booted kernel).
Target <= 0.1x. Prints ONE JSON list of rows (scripts/bench.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

WHERE = "guest"
HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    pt = os.environ.get("PYPHYS_PAGE_TYPES")
    if os.geteuid() != 0 or not pt or not os.access(pt, os.X_OK):
        missing = pt or "PYPHYS_PAGE_TYPES unset"
        why = "needs root" if os.geteuid() != 0 else f"no page-types of the guest kernel: {missing}"
        print(json.dumps([{"bench": "sparse pagemap (guest): skipped", "note": why}]))
        return 0
    spec = importlib.util.spec_from_file_location("bench_pagemap", os.path.join(HERE, "pagemap.py"))
    host_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host_bench)
    rows = host_bench.sparse_rows(sys.executable, pt)
    release = os.uname().release
    for r in rows:
        r["bench"] = r["bench"].replace("sparse:", f"sparse ({release}):", 1)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
