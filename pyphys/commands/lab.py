"""pyphys lab: the lab VM (shell, run a command) and the classroom labs (list, start, check)."""

from __future__ import annotations

import sys

from pyphys.cli import DIRECTORY, FILE
from pyphys.commands._common import add_json, emit, emit_json
from pyphys.dialect import parse_number
from pyphys.errors import UsageError

LAB_EPILOG = """\
classroom labs (docs/labs/):
  pyphys lab list [--json]     the labs, their kernels and texts
  pyphys lab start N           on the host: boot lab N's VM (kernel, devices, module) and open its shell
  pyphys lab check N           in that shell: grade /tmp/labN.txt against the live system
  pyphys lab check N --template > /tmp/labN.txt     the results file to fill in
"""


def register(sub, name: str, help_text: str) -> None:
    import argparse

    p = sub.add_parser(
        name,
        help=help_text,
        description="Boot a lab kernel under QEMU with the lab's devices, or start and check a classroom lab.",
        epilog=LAB_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION")

    sh = lsub.add_parser("shell", help="an interactive shell in the lab VM")
    sh.add_argument(
        "--kernel",
        default="lab",
        metavar="KERNEL",
        help="lab: STRICT_DEVMEM off (default); stock, stock-6.12: Debian's 6.1 and 6.12 kernels as shipped",
    )
    sh.add_argument("--kvm", action="store_true", help="try KVM (hangs on some hosts; TCG is the default)")
    sh.set_defaults(func=_shell)

    rn = lsub.add_parser(
        "run", help="boot, load pyphys.ko, run one shell command, print its output, exit with its status"
    )
    rn.add_argument(
        "--kernel", default="lab", metavar="KERNEL", help="lab, stock or stock-6.12, as for `pyphys lab shell`"
    )
    rn.add_argument("--no-module", action="store_true", help="do not load pyphys.ko")
    rn.add_argument("guest_command", nargs="+", metavar="COMMAND", help="the command (quote it, or put it after --)")
    rn.set_defaults(func=_run)

    ls = lsub.add_parser("list", help="the classroom labs, their kernels and texts")
    add_json(ls, "the labs with their results keys")
    ls.set_defaults(func=_list)

    st = lsub.add_parser("start", help="boot lab N's VM (its kernel, devices and module) and open a shell in it")
    st.add_argument("number", metavar="N", help="lab number (`pyphys lab list`)")
    st.add_argument("--kvm", action="store_true", help="try KVM (hangs on some hosts; TCG is the default)")
    st.add_argument("--memory", default="1G", metavar="SIZE", help="guest RAM, e.g. 512M (default 1G)")
    st.add_argument(
        "--dir", metavar="DIR", help="host directory for the labs' $LABDIR, DIR/labN (default ~/pyphys-labs)"
    ).complete = DIRECTORY
    st.set_defaults(func=_start)

    ck = lsub.add_parser("check", help="inside the lab VM: grade your results file for lab N")
    ck.add_argument("number", metavar="N", help="lab number (`pyphys lab list`)")
    ck.add_argument("--file", metavar="PATH", help="results file (default /tmp/labN.txt)").complete = FILE
    ck.add_argument("--template", action="store_true", help="print the results file to fill in, and exit")
    add_json(ck, "the report")
    ck.set_defaults(func=_check)
    actions = ", ".join(lsub.choices)
    p.set_defaults(func=lambda args: _no_action(actions))


def _no_action(actions: str) -> int:
    sys.stderr.write(f"pyphys lab: error: no ACTION given: one of {actions} (see pyphys lab --help)\n")
    return 2


def _kernel(name: str) -> str:
    """``name`` if it is a kernel the lab can boot; UsageError otherwise (before anything is built)."""
    from pyphys import kernels

    if name not in kernels.names() and name != "lab":
        raise UsageError(f"--kernel {name!r} is not a lab kernel", f"choose one of {', '.join(kernels.names())}")
    return name


def _shell(args) -> int:
    from pyphys import labvm

    return labvm.interactive_shell(_kernel(args.kernel), kvm=args.kvm)


def _run(args) -> int:
    from pyphys.labvm import LabVM

    with LabVM(_kernel(args.kernel), module=not args.no_module, quiet=False) as vm:
        print(
            f"[pyphys lab] {vm.kernel.name} kernel {vm.kernel.release} booted in {vm.boot_seconds:.1f} s ({vm.accel})",
            file=sys.stderr,
        )
        res = vm.run(" ".join(args.guest_command), timeout=3600)
        sys.stdout.write(res.out)
        sys.stderr.write(res.err)
        return res.rc


def _lab(args):
    from pyphys import labs

    return labs.get(parse_number(args.number, "lab number", minimum=1))


def _list(args) -> int:
    import os

    from pyphys import labs

    if args.json:
        emit_json({"labs": list(labs.LABS.values())})
        return 0
    for lab in labs.LABS.values():
        emit(f"{lab.number}  {lab.title}")
        emit(f"   kernel: {lab.kernel:<5}  text: {os.path.relpath(lab.doc)}")
    return 0


def _start(args) -> int:
    from pyphys.labs import start

    return start.start(_lab(args).number, kvm=args.kvm, memory=args.memory, base=args.dir)


def _check(args) -> int:
    from pyphys.labs import grading

    lab = _lab(args)
    if args.template:
        sys.stdout.write(lab.template())
        return 0
    report = grading.check(lab.number, args.file)
    if args.json:
        emit_json(report)
    else:
        sys.stdout.write(grading.format_report(report))
    return 0 if report.passed else 1
