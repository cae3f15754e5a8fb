"""``pyphys iomem``: /proc/iomem as a tree, or which region an address lies in.

pyphys iomem                 # the tree, with sizes (START-END, 0x hex, END exclusive)
pyphys iomem ADDR [ADDR...]  # 'System RAM > Kernel data', or a hole
pyphys iomem --json
"""

from __future__ import annotations

import sys

from pyphys.dialect import fmt_size, parse_number, printable


def run(args) -> int:
    """Print the tree, or the region of each address."""
    import json

    from pyphys import iomem

    addrs = [parse_number(a, "address") for a in args.addrs]
    tree = iomem.load()
    if tree.hidden:
        print(f"pyphys iomem: warning: {iomem.hidden_hint()}", file=sys.stderr)
    if addrs:
        iomem.require_visible(tree)
        rows = []
        for a in addrs:
            chain = tree.region_of(a)
            rows.append(
                {
                    "phys": f"{a:#x}",
                    "region": tree.describe(a),
                    "ram": tree.is_ram(a),
                    "chain": [{"start": f"{r.start:#x}", "end": f"{r.end + 1:#x}", "name": r.name} for r in chain],
                }
            )
        if args.json:
            print(json.dumps({"results": rows}))
        else:
            for row in rows:
                print(f"{row['phys']}: {printable(row['region'])}")  # names are the kernel's verbatim
        return 0
    # --ram: the top-level System RAM regions and what they contain, in text and JSON alike
    tops = [r for r in tree.regions if not args.ram_only or r.name == iomem.SYSTEM_RAM]
    if args.json:
        regions = [r.to_json() for r in tops]
        print(json.dumps({"hidden": tree.hidden, "regions": regions, "ram_end": f"{tree.ram_end:#x}"}))
        return 0
    # START-END as every pyphys command takes it back: 0x hex, END exclusive (END+1 of /proc/iomem)
    width = max([len(f"{r.end + 1:x}") for top in tree.regions for r in (top, *top.walk())] + [8])

    def show(regions, depth):
        for r in regions:
            span = f"0x{r.start:0{width}x}-0x{r.end + 1:0{width}x}"
            print(f"{'  ' * depth}{span}  {fmt_size(r.size):>6}  {printable(r.name)}")  # names: the kernel's, verbatim
            show(r.children, depth + 1)

    show(tops, 0)
    ram = sum(r.size for r in tree.ram_regions())
    print(f"System RAM: {fmt_size(ram)} in {len(tree.ram_regions())} region(s), ends at {tree.ram_end:#x}")
    return 0


def register(sub, name: str, help_text: str) -> None:
    """Add the ``iomem`` subcommand."""
    p = sub.add_parser(
        name,
        help=help_text,
        description="Show /proc/iomem as a tree, or name the region of addresses. Each region is printed "
        "as START-END in 0x hex with END exclusive (one past the last byte, unlike /proc/iomem's inclusive "
        "END), so it can be pasted back into dump, devmem or iomem.",
    )
    p.add_argument("addrs", nargs="*", metavar="ADDR", help="physical addresses to locate")
    p.add_argument("--ram", dest="ram_only", action="store_true", help="only System RAM and what it contains")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
