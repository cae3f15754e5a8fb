"""pyphys module build|install|uninstall|status: pyphys.ko on this machine's own kernel."""

from __future__ import annotations

import sys

from pyphys.cli import DIRECTORY
from pyphys.commands._common import add_json, emit, emit_json, note

EPILOG = """\
  pyphys module status             headers, installed/loaded, and whether this kernel loads unsigned modules
  pyphys module build              build pyphys.ko against /lib/modules/$(uname -r)/build; prints its path
  sudo pyphys module install       through DKMS if installed (else /lib/modules/RELEASE/extra), then load it
  sudo pyphys module uninstall     unload it and remove what install put in place
"""


def register(sub, name: str, help_text: str) -> None:
    import argparse

    p = sub.add_parser(
        name,
        help=help_text,
        description="Build, install, load and remove pyphys.ko for a kernel of this machine; when the kernel "
        "refuses to load it, say why (missing headers, Secure Boot or lockdown needing a signed module, "
        "signature enforcement, a version magic mismatch).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    msub = p.add_subparsers(dest="module_command", metavar="ACTION")
    kernel_help = "kernel release to build for (default: the running one, `uname -r`)"

    b = msub.add_parser("build", help="build pyphys.ko with the kernel's Kbuild; print the .ko's path")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--kernel", metavar="RELEASE", help=kernel_help)
    where.add_argument(
        "--kdir", metavar="DIR", help="a configured kernel tree instead of /lib/modules/RELEASE/build"
    ).complete = DIRECTORY
    b.add_argument(
        "-o", "--output", metavar="DIR", help="build directory (default: in pyphys's cache)"
    ).complete = DIRECTORY
    b.set_defaults(func=_build)

    i = msub.add_parser("install", help="build, install (DKMS when present) and load pyphys.ko (root)")
    i.add_argument("--kernel", metavar="RELEASE", help=kernel_help)
    how = i.add_mutually_exclusive_group()
    how.add_argument("--dkms", action="store_true", default=None, help="require DKMS")
    how.add_argument("--no-dkms", dest="dkms", action="store_false", help="plain Kbuild + depmod, even with DKMS")
    i.set_defaults(func=_install)

    u = msub.add_parser("uninstall", help="unload pyphys.ko and remove what install put in place (root)")
    u.add_argument("--kernel", metavar="RELEASE", help="only this kernel's copy (default: every kernel's)")
    u.set_defaults(func=_uninstall)

    s = msub.add_parser("status", help="headers, installed, loaded, and whether this kernel loads unsigned modules")
    s.add_argument("--kernel", metavar="RELEASE", help="kernel release (default: the running one)")
    add_json(s, "the status")
    s.set_defaults(func=_status)

    actions = ", ".join(msub.choices)
    p.set_defaults(func=lambda args: _no_action(actions))


def _no_action(actions: str) -> int:
    sys.stderr.write(f"pyphys module: error: no ACTION given: one of {actions} (see pyphys module --help)\n")
    return 2


def _build(args) -> int:
    from pyphys import kmod_install

    res = kmod_install.build(release=args.kernel, kdir=args.kdir, out_dir=args.output)
    note("module build", f"built for {res.release} against {res.kdir} in {res.seconds:.1f} s (log: {res.log})")
    emit(res.ko)
    return 0


def _install(args) -> int:
    from pyphys import kmod_install

    res = kmod_install.install(release=args.kernel, use_dkms=args.dkms)
    emit(f"installed: {res.module} ({res.method}, kernel {res.release})")
    for path in res.changed:
        emit(f"changed:   {path}")
    if res.loaded:
        emit("loaded:    /sys/kernel/pyphys present")
    if res.note:
        note("module install", res.note)
    return 0


def _uninstall(args) -> int:
    from pyphys import kmod_install

    removed = kmod_install.uninstall(release=args.kernel)
    for what in removed:
        emit(f"removed: {what}")
    if not removed:
        note("module uninstall", "nothing to remove: pyphys.ko is neither loaded nor installed")
    return 0


def _status(args) -> int:
    from pyphys import kmod_install

    st = kmod_install.status(release=args.kernel)
    if args.json:
        emit_json(st)
        return 0
    emit(f"kernel:        {st['release']}")
    emit(f"headers:       {st['headers'] or 'missing (pyphys module build needs them)'}")
    emit(f"installed:     {st['installed'] or 'no'}")
    emit(f"dkms:          {'; '.join(st['dkms']) or 'not registered'}")
    emit(f"loaded:        {'yes' if st['loaded'] else 'no'}")
    sb = {True: "on", False: "off", None: "unknown"}[st["secure_boot"]]
    emit(f"secure boot:   {sb}")
    emit(f"lockdown:      {st['lockdown'] or 'unknown'}")
    sig = {True: "enforced", False: "not enforced", None: "unknown"}[st["sig_enforce"]]
    emit(f"module sigs:   {sig}")
    emit(f"unsigned load: {st['unsigned_load']}")
    return 0
