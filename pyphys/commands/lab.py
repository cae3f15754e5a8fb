"""pyphys lab: the lab VM (shell, run a command) and the classroom labs (start, check)."""

from __future__ import annotations

import sys


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description="Boot a lab kernel under QEMU with the lab's devices.")
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION")

    sh = lsub.add_parser("shell", help="an interactive shell in the lab VM")
    sh.add_argument("--kernel", default="lab", choices=("lab", "stock"),
                    help="lab: STRICT_DEVMEM off (default); stock: Debian's kernel as shipped")
    sh.add_argument("--kvm", action="store_true", help="try KVM (hangs on some hosts; TCG is the default)")
    sh.set_defaults(func=_shell)

    rn = lsub.add_parser("run", help="boot, load pyphys.ko, run one shell command, print its output, exit with its status")
    rn.add_argument("--kernel", default="lab", choices=("lab", "stock"))
    rn.add_argument("--no-module", action="store_true", help="do not load pyphys.ko")
    rn.add_argument("command", nargs="+", help="the command (quote it, or put it after --)")
    rn.set_defaults(func=_run)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _shell(args) -> int:
    from pyphys import labvm

    return labvm.interactive_shell(args.kernel, kvm=args.kvm)


def _run(args) -> int:
    from pyphys.labvm import LabVM

    with LabVM(args.kernel, module=not args.no_module, quiet=False) as vm:
        print(f"[pyphys lab] {vm.kernel.name} kernel {vm.kernel.release} booted in {vm.boot_seconds:.1f} s "
              f"({vm.accel})", file=sys.stderr)
        res = vm.run(" ".join(args.command), timeout=3600)
        sys.stdout.write(res.out)
        sys.stderr.write(res.err)
        return res.rc
