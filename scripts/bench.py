"""`make bench`: every bench/*.py in one run, one table of ratios against the named peers
(``python scripts/bench.py NAME ...``, or ``make bench BENCH="NAME ..."``: only bench/NAME.py).

Each bench script declares ``WHERE = "host"`` or ``"guest"`` and prints one JSON list of rows
({bench, pyphys, peer_name, peer, unit, ratio, target, note}). Host benches run here; guest
benches run inside ONE boot of the lab VM (TCG), so their peers (busybox devmem, dd) run in
the same guest, side by side.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def where(path: str) -> str:
    with open(path) as f:
        m = re.search(r'^WHERE\s*=\s*["\'](host|guest)["\']', f.read(), re.M)
    return m.group(1) if m else "host"


def parse_rows(name: str, rc: int, out: str, err: str) -> list[dict]:
    try:
        rows = json.loads(out.strip().splitlines()[-1]) if rc == 0 and out.strip() else None
    except (ValueError, IndexError):
        rows = None
    if not isinstance(rows, list):
        tail = (err or out).strip().splitlines()[-3:]
        return [{"bench": f"{name}: FAILED (exit {rc})", "note": " | ".join(tail)}]
    return rows


def fmt(v, unit: str = "") -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.3g} {unit}".strip()
    return f"{v} {unit}".strip()


def main(argv: list[str]) -> int:
    scripts = sorted(glob.glob(os.path.join(TOP, "bench", "*.py")))
    scripts = [s for s in scripts if not os.path.basename(s).startswith("_")]
    if argv:  # `make bench BENCH="walk dump"`: those bench/NAME.py alone
        unknown = sorted(set(argv) - {os.path.basename(s)[:-3] for s in scripts})
        if unknown:
            print(f"bench: no bench/{unknown[0]}.py", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if os.path.basename(s)[:-3] in argv]
    if not scripts:
        print("no bench/*.py scripts", file=sys.stderr)
        return 1
    rows: list[tuple[str, dict]] = []
    # pyphys as installed: pip byte-compiles a package at install time, and an environment
    # with PYTHONDONTWRITEBYTECODE=1 would otherwise compile the edited modules at every call
    sys.path.insert(0, TOP)
    from pyphys.labvm import byte_compile

    byte_compile()
    host = [s for s in scripts if where(s) == "host"]
    guest = [s for s in scripts if where(s) == "guest"]
    for s in host:
        name = os.path.basename(s)[:-3]
        print(f"[bench] host: {name} ...", file=sys.stderr, flush=True)
        p = subprocess.run([sys.executable, s], capture_output=True, text=True, cwd=TOP)
        rows += [("host", r) for r in parse_rows(name, p.returncode, p.stdout, p.stderr)]
    if guest:
        from pyphys.labvm import LabVM

        print("[bench] booting the lab VM once for the guest benches ...", file=sys.stderr, flush=True)
        with LabVM("lab", memory=os.environ.get("PYPHYS_BENCH_MEM", "1G")) as vm:
            for s in guest:
                name = os.path.basename(s)[:-3]
                print(f"[bench] guest: {name} ...", file=sys.stderr, flush=True)
                # PYPHYS_BENCH_* settings of this shell reach the guest's bench scripts
                pass_on = {k: v for k, v in os.environ.items() if k.startswith("PYPHYS_BENCH_")}
                if vm.page_types:  # the booted kernel's own page-types, for the guest's pagemap peers
                    pass_on["PYPHYS_PAGE_TYPES"] = vm.page_types
                env = " ".join(shlex.quote(f"{k}={v}") for k, v in pass_on.items())
                cmd = f"cd {shlex.quote(TOP)} && env {env} {shlex.quote(sys.executable)} {shlex.quote(s)}"
                r = vm.run(cmd, timeout=3000)
                rows += [("guest (TCG)", x) for x in parse_rows(name, r.rc, r.out, r.err)]
    header = ["where", "bench", "pyphys", "peer", "peer value", "ratio", "target", "note"]
    table = [header]
    for w, r in rows:
        unit = r.get("unit", "")
        table.append(
            [
                w,
                str(r.get("bench", "?")),
                fmt(r.get("pyphys"), unit),
                str(r.get("peer_name", "-")),
                fmt(r.get("peer"), unit),
                fmt(r.get("ratio"), "x") if r.get("ratio") is not None else "-",
                str(r.get("target", "-")),
                str(r.get("note", "")),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(row)) + " |" for row in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(lines))
    os.makedirs(os.path.join(TOP, "out"), exist_ok=True)
    with open(os.path.join(TOP, "out", "bench.json"), "w") as f:
        json.dump(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": [dict(r, where=w) for w, r in rows]}, f, indent=1
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
