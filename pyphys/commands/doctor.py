"""``pyphys doctor``: one report of what allows or blocks physical-memory access here.

Each line is OK, BLOCKED, WARN or INFO, followed by the fix where there is one.
"""

from __future__ import annotations


def run(args) -> int:
    """Print the report (or --json); exit 0 when nothing blocks, 1 when any item is BLOCKED."""
    import json

    from pyphys import doctor

    checks = doctor.run_checks(probe=not args.no_probe)
    blocked = [c.name for c in checks if c.status == "BLOCKED"]
    if args.json:
        print(json.dumps([c.to_json() for c in checks]))
        return 1 if blocked else 0
    for c in checks:
        print(f"{c.status:<8}{c.name}: {c.detail}")
        if c.fix and c.status != "OK":
            print(f"{'':8}fix: {c.fix}")
    print(
        f"summary: {len(blocked)} blocking: {', '.join(blocked)}"
        if blocked
        else "summary: nothing blocks physical memory access"
    )
    return 1 if blocked else 0


def register(sub, name: str, help_text: str) -> None:
    """Add the ``doctor`` subcommand."""
    p = sub.add_parser(
        name,
        help=help_text,
        description="Check /dev/mem, STRICT_DEVMEM/IO_STRICT_DEVMEM, PAT, lockdown, capabilities, "
        "kptr_restrict, pagemap, /proc/iomem, pyphys.ko and module signing; each with its fix.",
        epilog="exit status: 0 when nothing is BLOCKED (OK, WARN and INFO lines do not count), "
        "1 when at least one item is BLOCKED (the summary line names them); the report is printed "
        "either way, also with --json.",
    )
    p.add_argument("--no-probe", action="store_true", help="do not try a live read of System RAM")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
