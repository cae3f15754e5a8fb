"""``pyphys ksym SYMBOL``: a kernel symbol's virtual and physical address from independent sources.

    pyphys ksym init_uts_ns
    pyphys ksym nodename          # init_uts_ns.name.nodename, also from pyphys.ko's sysfs
    pyphys ksym jiffies_64+8 --json

Exit status 0 when the sources that answered agree, 1 when they disagree.
"""

from __future__ import annotations


def run(args) -> int:
    """Look the symbol up and show every source."""
    import json

    from pyphys import ksym

    report = ksym.lookup(args.symbol, use_kcore=not args.no_kcore)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0 if report.agree is not False else 1
    hexa = lambda v: "-" if v is None else f"{v:#x}"  # noqa: E731
    print(
        f"{report.name}: virt {hexa(report.virt)}  phys {hexa(report.phys)}"
        + (f"  size<={report.size}" if report.size else "")
    )
    for s in report.sources:
        print(f"  {s.name:<15} virt {hexa(s.virt):<20} phys {hexa(s.phys):<14} {s.note}")
    agree = report.agree
    if agree is True:
        print(f"agree: {len(report.physes)} sources give {report.phys:#x}")
    elif agree is False and len(report.physes) > 1:
        print("DISAGREE: " + ", ".join(f"{s.name}={s.phys:#x}" for s in report.sources if s.phys is not None))
        return 1
    else:
        print(
            "only one source answered: nothing to cross-check" if report.physes else "no source gave a physical address"
        )
    return 0


def register(sub, name: str, help_text: str) -> None:
    """Add the ``ksym`` subcommand."""
    p = sub.add_parser(
        name,
        help=help_text,
        description="Virtual and physical address of a kernel symbol from /proc/kallsyms + /proc/iomem, "
        "/proc/kcore's program headers, and pyphys.ko's sysfs (for the nodename); says whether they agree.",
    )
    p.add_argument(
        "symbol", metavar="SYMBOL", help="symbol name, optionally +OFFSET; 'nodename' = init_uts_ns.name.nodename"
    )
    p.add_argument("--no-kcore", action="store_true", help="skip /proc/kcore")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
