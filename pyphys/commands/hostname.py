"""pyphys hostname NAME: patch the kernel's nodename through physical memory."""

from __future__ import annotations


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Change the hostname from user space, without sethostname(2): find the physical address of the kernel's "
            "nodename (pyphys.ko sysfs, else kernel symbols), check it holds `uname -n`, write NAME "
            "NUL-terminated through /dev/mem, read it back. Undo with `pyphys undo`."
        ),
    )
    p.add_argument("name", metavar="NAME", help="new hostname (1-64 printable bytes)")
    p.add_argument("--dry-run", action="store_true", help="show what would be written; write nothing")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "mmap", "rw", "module"),
        help="how to reach physical memory (default: auto, which says what it chose)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from pyphys import hostname

    res = hostname.change(args.name, backend=args.backend, dry_run=args.dry_run)
    p = res.plan
    print(f"nodename: physical address {p.phys:#x}, {p.field_len} bytes (from {p.source})")
    print(f"backend:  {res.backend}" + (f" ({res.backend_reason})" if res.backend_reason else ""))
    print(f"before:   {res.before}")
    if res.unchanged:
        print(f"after:    {res.after}")
        print(f"journal:  none; the hostname is already {res.before!r}, nothing written")
        return 0
    if args.dry_run:
        print(f"would write {p.new!r} ({len(p.new)} bytes) at {p.phys:#x}; nothing written (--dry-run)")
        return 0
    print(f"after:    {res.after}")
    if res.journal_id is not None:
        print(f"journal:  entry {res.journal_id}; `pyphys undo {res.journal_id}` restores {res.before!r}")
    return 0
