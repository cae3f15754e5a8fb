"""``pyphys walk PROCESS ADDRESS`` / ``pyphys walk kernel ADDRESS``: the page-table walk, level by level."""

from __future__ import annotations

from pyphys.commands._common import add_json, emit, emit_json, note, warn
from pyphys.dialect import fmt_size, parse_number

_FLAGS = ("P", "RW", "US", "PWT", "PCD", "A", "D", "PS", "PAT", "G", "XD", "SW1", "SW2", "SW3", "SW4", "SW5")


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Walk the x86-64 page table for ADDRESS, level by level: each entry's index, physical address, raw value "
            "and bits, huge pages, swap entries, the memory type from the PAT, and the physical address. "
            "pyphys.ko says where the table starts (root only); the entries are read through /dev/mem or the "
            "module's device. The answer is checked against pagemap (user addresses) or the kernel's own "
            "arithmetic (kernel image, direct map); a disagreement is printed and the exit status is 1."
        ),
    )
    p.add_argument("process", metavar="PROCESS", help="pid, `self`, a process name, or `kernel` for a kernel address")
    p.add_argument("address", metavar="ADDRESS", help="virtual address (decimal or 0x-hex)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "mmap", "rw", "module"),
        help="how to reach physical memory (default: auto)",
    )
    add_json(p, "the walk")
    p.set_defaults(func=run)


def run(args) -> int:
    from pyphys import walk

    vaddr = parse_number(args.address, "address")
    if args.process == "kernel":
        w = walk.walk_kernel(vaddr, backend=args.backend)
    else:
        w = walk.walk_process(args.process, vaddr, backend=args.backend)
    if args.json:
        emit_json(w)
    else:
        emit(format_walk(w))
    for n in w.notes:  # on stderr: stdout holds the walk alone (its notes are in --json's document too)
        (warn if "stale" in n else note)("walk", n)
    return 1 if w.check.get("agree") is False else 0


def format_walk(w) -> str:
    s = w.start
    who = "kernel" if w.pid is None else f"pid {w.pid}"
    lines = [f"{who}, virtual address {w.vaddr:#x}, {w.levels}-level paging, walk starts at {w.top:#x}"]
    if s is not None:
        lines[0] += f" (mm->pgd {s.pgd_phys:#x}" + (
            f", KPTI user half {s.user_pgd_phys:#x})" if s.user_pgd_phys else ")"
        )
    for st in w.steps:
        on = [k for k in _FLAGS if st.bits.get(k)]
        extra = f" pkey={st.bits['pkey']}" if st.bits.get("pkey") else ""
        what = st.kind
        if st.page_size:
            what += f" {fmt_size(st.page_size)}"
        lines.append(
            f"  {st.level:<4} index {st.index:3d}  entry at {st.entry_phys:#014x}  raw {st.raw:#018x}  "
            f"{what:<14} frame {st.bits['frame']:#x}  [{' '.join(on) or '-'}]{extra}"
        )
    if w.phys_addr is not None:
        mt = f"{w.memory_type} (PAT index {w.pat_index})" if w.memory_type else f"PAT index {w.pat_index} (MSR unknown)"
        size = fmt_size(w.page_size) if w.page_size else "?"
        lines.append(f"physical address {w.phys_addr:#x} ({size} page), memory type {mt}")
    elif w.swap_type is not None:
        lines.append(f"swapped out: swap type {w.swap_type}, offset {w.swap_offset:#x}")
    else:
        lines.append("not mapped: no page at this address")
    c = w.check
    if c:
        src = f" ({c['source']})" if c.get("source") else ""
        lines.append(f"check{src}: {c.get('note')}")
    return "\n".join(lines)
