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
    p.add_argument("address", metavar="ADDRESS", nargs="?", help="virtual address (decimal or 0x-hex)")
    p.add_argument(
        "--all",
        action="store_true",
        help="walk every mapped page of PROCESS in one pass (every mapping of /proc/PID/maps), each checked "
        "against pagemap: a summary, and every disagreement listed",
    )
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
    from pyphys.errors import UsageError

    if args.all:
        if args.address is not None:
            raise UsageError("give ADDRESS or --all, not both")
        if args.process == "kernel":
            raise UsageError("--all walks a process's mappings, not the kernel's", "give a pid or a process name")
        return run_all(args)
    if args.address is None:
        raise UsageError("give an ADDRESS to walk, or --all for every mapped page")
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


def run_all(args) -> int:
    from pyphys.walk_all import walk_process_all

    r = walk_process_all(args.process, backend=args.backend)
    if args.json:
        emit_json(r.to_json())
    else:
        emit(format_all(r))
    return 1 if r.disagreements else 0


def format_all(r) -> str:
    from pyphys.walk_all import LEVEL_NAMES

    lines = [
        f"pid {r.pid}, {r.levels}-level paging, walk starts at {r.top:#x}: {r.vmas} mappings, "
        f"{r.pages} pages walked ({r.tables_read} page-table pages read)",
        f"  present {r.present}, swap {r.swap}, none {r.none}",
    ]
    for lv, name in LEVEL_NAMES.items():
        c = r.by_level[lv]
        lines.append(f"  {name}: {c['leaves']} leaves, {c['pages']} pages")
    if r.by_type:
        lines.append("  memory types: " + ", ".join(f"{k} {v}" for k, v in sorted(r.by_type.items())))
    lines.append(
        f"check (pagemap): {r.agree} pages agree, {len(r.disagreements)} disagree"
        + (f", {r.unchecked} unchecked (pagemap hides the frame)" if r.unchecked else "")
        + (f", {r.pfnmap_pages} pfnmap, not checked" if r.pfnmap else "")
    )
    for a, b, path, n in r.pfnmap:
        lines.append(
            f"  pfnmap, not checked: {a:#x}-{b:#x} {path or '[anon]'}: {n} pages (pagemap skips VM_PFNMAP/VM_IO)"
        )
    for d in r.disagreements:
        lines.append(
            f"  DISAGREE {d.vaddr:#x} ({d.level}): walk {d.walk}, pagemap {d.pagemap}"
            + (f"; {d.recheck}" if d.recheck else "")
        )
    lines.extend(f"note: {n}" for n in r.notes)
    return "\n".join(lines)


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
