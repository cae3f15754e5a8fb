"""The lab demo: boot the lab kernel, load pyphys.ko, `pyphys hostname NinjaNinja`, show uname -n.

Run through `make demo` (which installs and builds what is missing first).
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    from pyphys import kernels

    ap.add_argument("--kernel", default="lab", choices=kernels.names())
    ap.add_argument("--name", default="NinjaNinja")
    ap.add_argument("--keep", action="store_true", help="do not undo the change before the guest powers off")
    args = ap.parse_args()

    from pyphys.errors import PyphysError
    from pyphys.labvm import LabVM

    def step(msg: str) -> None:
        print(f"==> {msg}", flush=True)

    t0 = time.monotonic()
    step(f"building or reusing the {args.kernel} kernel and pyphys.ko (first time: ~12-15 min on 2 cores)")
    vm = LabVM(args.kernel, quiet=False)
    try:
        vm.start()
    except PyphysError as err:
        print(f"demo: {err}", file=sys.stderr)
        vm.close()
        return 1
    try:
        step(
            f"booted {vm.kernel.release} under QEMU ({vm.accel.upper()}) in {vm.boot_seconds:.1f} s; "
            f"pyphys.ko loaded from {vm.ko}"
        )
        print(vm.run("ls -l /sys/kernel/pyphys/").out, end="")
        before = vm.run("uname -n").out.strip()
        step(f"uname -n before: {before}")
        step(f"pyphys hostname {args.name}")
        res = vm.pyphys("hostname", args.name)
        print(res.out, end="")
        if res.err:
            print(res.err, end="", file=sys.stderr)
        after = vm.run("uname -n").out.strip()
        step(f"uname -n after:  {after}")
        if res.rc == 0 and not args.keep:
            step("pyphys undo (every write to physical memory can be undone)")
            print(vm.pyphys("undo").out, end="")
            step(f"uname -n after undo: {vm.run('uname -n').out.strip()}")
        ok = res.rc == 0 and after == args.name
        step(f"{'done' if ok else 'FAILED'} in {time.monotonic() - t0:.1f} s")
        return 0 if ok or not vm.kernel.is_lab else 1
    finally:
        vm.close()


if __name__ == "__main__":
    sys.exit(main())
