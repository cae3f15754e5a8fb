"""``pyphys pagemap``: where does a virtual address live in physical memory?

Parses arguments, calls :mod:`pyphys.pagemap`, formats. Nothing heavy is imported before a
subcommand runs (psutil only when a process is named by name).
"""

from __future__ import annotations

import sys

from pyphys import dialect
from pyphys.commands._common import note
from pyphys.dialect import fmt_size, json_raw, parse_number
from pyphys.errors import NO_ADMIN, UsageError, root_hint
from pyphys.layouts import pagemap as L  # constants only: cheap

DESCRIPTION = """\
Translate a virtual address of a process to its physical frame and decode everything the
kernel says about it: /proc/PID/pagemap (present, PFN, swap, soft-dirty, exclusive, uffd-wp,
guard region, file/shared-anon), /proc/kpageflags (with the flags page-types expands, e.g.
anon_exclusive, thp) and /proc/kpagecount. PROCESS is a pid, `self` or a process name.
With START-END (END exclusive, like /proc/PID/maps) or START+LENGTH (4K, 2M ...), or --all, list every
page, runs of physically contiguous pages (default for ranges), or a summary of page counts
by flag set like `page-types -p PID` (default for --all). PFNs need root (CAP_SYS_ADMIN);
without it they are shown as hidden, never as frame 0."""


#: the options' defaults: the parser's, and the namespace of pyphys.cli's argparse-free path
DEFAULTS = {"all": False, "mode": None, "view": "expanded", "count": False, "json": False}


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    p.add_argument(
        "process", metavar="PROCESS", help="pid, `self` (this pyphys process itself), or a process name (needs psutil)"
    )
    p.add_argument(
        "address",
        metavar="ADDRESS|START-END",
        nargs="?",
        help="virtual address (decimal or 0x-hex), or a range START-END / START+LENGTH (LENGTH may end in K/M/G)",
    )
    p.add_argument("--all", action="store_true", help="every mapping of the process")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--pages", dest="mode", action="store_const", const="pages", help="one line per page")
    mode.add_argument(
        "--runs",
        dest="mode",
        action="store_const",
        const="runs",
        help="one line per run of contiguous frames with equal flags",
    )
    mode.add_argument(
        "--summary", dest="mode", action="store_const", const="summary", help="page counts by flag set, like page-types"
    )
    p.add_argument(
        "--view",
        choices=("expanded", "well-known", "raw"),
        default="expanded",
        help="summary flags: expanded like page-types -r plus uffd-wp/guard (default), "
        "well-known like plain page-types, raw kernel words",
    )
    p.add_argument("--count", action="store_true", help="also read kpagecount for --pages/--runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run, **DEFAULTS)


def parse_range(text: str) -> tuple[int, int] | None:
    """``(start, end)`` for ``START-END`` or ``START+LENGTH`` (:func:`pyphys.dialect.parse_range`);
    None for a single address."""
    t = text.strip()
    if "+" in t or "-" in t[1:]:
        return dialect.parse_range(text)
    return None


def run(args) -> int:
    from pyphys import pagemap

    if args.all and args.address:
        raise UsageError("give either ADDRESS|START-END or --all, not both")
    if not args.all and not args.address:
        raise UsageError("give an ADDRESS, a START-END range, or --all")
    rng = None if args.all else parse_range(args.address)
    out = sys.stdout
    if not args.all and rng is None:
        vaddr = parse_number(args.address, "address")
        if args.mode is None:
            t = pagemap.translate(args.process, vaddr)
            if args.json:
                import json

                json.dump(t.to_json(), out, indent=2)
                out.write("\n")
            else:
                out.write(format_translation(t))
                _notes(t.notes)
            return 0
        ps = pagemap.PAGE_SIZE
        rng = (vaddr - vaddr % ps, vaddr - vaddr % ps + ps)
    start, end = rng if rng is not None else (None, None)
    mode = args.mode or ("summary" if args.all else "runs")
    if mode == "summary":
        summ = pagemap.summarize(args.process, start, end)
        if args.json:
            import json

            json.dump(summ.to_json(args.view), out, indent=2)
            out.write("\n")
        else:
            out.write(format_summary(summ, args.view))
            _notes(summ.notes)
        return 0
    if mode == "pages" and not args.json:
        # straight from the chunk arrays: one line per page without a record object per page
        write_pages(pagemap.scan_chunks(args.process, start, end, kpagecount=args.count), out, PAGE_HEADER)
        return 0
    if args.json:
        scan = pagemap.scan_pages(args.process, start, end, kpagecount=args.count, runs=mode == "runs")
        write_scan_json(scan, "pages" if mode == "pages" else "runs", page_dict if mode == "pages" else run_dict, out)
        return 0
    items = pagemap.runs(args.process, start, end, kpagecount=args.count)
    mapping = None
    # the header goes out with the first row: a range that fails to scan prints nothing
    lines: list[str] = []  # written in blocks: one write per line is slow when stdout is unbuffered
    header = RUN_HEADER
    for item in items:
        if header:
            lines.append(header)
            header = ""
        if item.mapping is not mapping:
            mapping = item.mapping
            lines.append(f"# {dialect.printable(mapping.maps_line())}\n")
        lines.append(format_run(item))
        if len(lines) >= 4096:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))
    return 0


def write_scan_json(scan, key: str, js, out) -> None:
    """A :class:`pyphys.pagemap.PageScan` as one document (docs/json.md): the process and
    ranges, then ``key`` with one record a line, written in blocks as the scan goes (memory
    stays bounded), then the notes. Nothing is written before the first block is full (or the
    scan ends), so a scan that fails early prints nothing."""
    import json

    head = {
        "pid": scan.pid,
        "process": scan.process,
        "page_size": scan.page_size,
        "ranges": [[hex(a), hex(b)] for a, b in scan.ranges],
        "pfns_hidden": scan.pfns_hidden,
    }
    lines = [json.dumps(head, indent=2)[:-2] + f',\n  "{key}": [']
    sep = "\n    "
    for item in scan.items:
        lines.append(sep + json.dumps(js(item)))
        sep = ",\n    "
        if len(lines) >= 4096:
            out.write("".join(lines))
            lines.clear()
    lines.append("]" if sep == "\n    " else "\n  ]")  # [] when the scan found no page
    lines.append(f',\n  "notes": {json.dumps(list(scan.notes))}\n}}\n')
    out.write("".join(lines))


def _notes(notes) -> None:
    """The answer's notes, on stderr (in --json they stay in the document)."""
    for text in notes:
        note("pagemap", f"note: {text}")


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------
def _yn(v: bool) -> str:
    return "yes" if v else "no"


def format_translation(t) -> str:
    """Text for a :class:`pyphys.pagemap.Translation`."""
    from pyphys.pagemap import entry_kind, flag_names, symbolic_flags

    e, m, h = t.entry, t.mapping, t.huge
    lines = [
        f"pid {t.pid} ({t.process}), virtual address {t.vaddr:#x}",
        f"  mapping            {dialect.printable(m.maps_line())}",
        f"  virtual page       {t.vpage:#x} + offset {t.offset:#x} (page size {t.page_size})",
        f"  pagemap entry      {e.raw:#018x}: {entry_kind(e.raw)}",
        f"    present          {_yn(e.present)}",
    ]
    if e.present:
        if e.pfn_hidden:
            why = root_hint(NO_ADMIN, "run as root")
            lines.append(f"    PFN              hidden (the kernel zeroes it without CAP_SYS_ADMIN: {why})")
            lines.append("    physical address hidden")
        else:
            lines.append(f"    PFN              {e.pfn:#x}")
            lines.append(f"    physical address {t.phys_addr:#x}")
    lines.append(f"    swapped          {_yn(e.swapped)}")
    if e.swapped and not e.present:
        if e.pfn_hidden:
            lines.append("    swap type/offset hidden (needs CAP_SYS_ADMIN)")
        else:
            lines.append(f"    swap type        {e.swap_type}")
            lines.append(f"    swap offset      {e.swap_offset:#x}")
    lines += [
        f"    soft-dirty       {_yn(e.soft_dirty)}",
        f"    exclusive        {_yn(e.exclusive)}" + (" (mapped by this process only)" if e.exclusive else ""),
        f"    uffd-wp          {_yn(e.uffd_wp)}",
        f"    guard region     {_yn(e.guard_region)}",
        f"    file/shared-anon {_yn(e.file_or_shared_anon)}",
    ]
    if t.kpageflags is not None:
        lines.append(f"  kpageflags         {t.kpageflags:#018x} (kernel word)")
        lines.append(f"    flags            {','.join(flag_names(t.flags))}")
        lines.append(f"    symbolic         {symbolic_flags(t.flags)}")
    elif e.present or e.swapped:
        lines.append(f"  pagemap flags      {','.join(t.flag_names) or '-'}")
    if t.kpagecount is not None:
        lines.append(f"  kpagecount         {t.kpagecount}")
    if e.pfn is not None:
        if h is None:
            lines.append("  huge page          no")
        else:
            lines.append(
                f"  huge page          {h.kind}, {fmt_size(h.size)} ({h.pages} pages), head PFN "
                f"{h.head_pfn:#x}, this is page {h.index}"
            )
    return "\n".join(lines) + "\n"


PAGE_HEADER = "VADDR              PFN            COUNT  FLAGS\n"
RUN_HEADER = "VADDR-END                               PAGES  FIRST..LAST PFN            FLAGS\n"


def _frame(entry: int, pages: int = 1, step: int = 0) -> str:
    frame = entry & L.PM_PFRAME_MASK
    if entry & L.PM_PRESENT:
        if not frame:
            return "hidden"
        return f"{frame:#x}" if pages == 1 else f"{frame:#x}..{frame + (pages - 1) * step:#x}"
    if entry & L.PM_SWAP:
        if not frame:
            return "swap (hidden)"
        off = frame >> L.PM_SWAP_TYPE_BITS
        last = f"..{off + (pages - 1) * step:#x}" if pages > 1 else ""
        return f"swap {frame & L.PM_SWAP_TYPE_MASK}:{off:#x}{last}"
    return "-"


_JOINED: dict[tuple[str, ...], str] = {}


def _names(item) -> str:
    e = item.entry
    if not e & (L.PM_PRESENT | L.PM_SWAP):
        return "not present"
    if e & L.PM_GUARD_REGION:
        return "guard region"
    names = item.flag_names
    joined = _JOINED.get(names)
    if joined is None:
        joined = _JOINED[names] = ",".join(names) or "-"
    return joined


def write_pages(chunks, out, header: str = "") -> None:
    """``--pages`` text for :func:`pyphys.pagemap.scan_chunks` output (same as format_page);
    ``header`` goes out with the first chunk, so a scan that fails prints nothing."""
    from pyphys.pagemap import expand_flags, flag_names

    names: dict[tuple[int, int], str] = {}
    mapping = None
    for c in chunks:
        lines = [header] if header else []
        header = ""
        if c.mapping is not mapping:
            mapping = c.mapping
            lines.append(f"# {dialect.printable(mapping.maps_line())}\n")
        kf, kc, va, ps = c.kpageflags, c.kpagecount, c.vaddr, c.page_size
        for i, e in enumerate(c.entries):
            present = e >> 63
            f = kf[i] if kf is not None and present else 0
            key = (f, e & L.PM_FLAGS_MASK)
            text = names.get(key)
            if text is None:
                if not e >> 62:
                    text = "not present"
                elif e & L.PM_GUARD_REGION:
                    text = "guard region"
                else:
                    text = ",".join(flag_names(expand_flags(f, e))) or "-"
                names[key] = text
            count = kc[i] if kc is not None and present else "-"
            lines.append(f"{va + i * ps:#014x}  {_frame(e):<13}  {count:>5}  {text}\n")
        out.write("".join(lines))


def format_run(r) -> str:
    count = "" if r.kpagecount is None else f" count={r.kpagecount}"
    huge = f" [{r.huge}]" if r.huge else ""
    span = f"{r.vaddr:#x}-{r.end:#x}"
    return f"{span:<34} {r.pages:>10}  {_frame(r.entry, r.pages, r.step):<25}  {_names(r)}{huge}{count}\n"


def _page_size() -> int:
    from pyphys.pagemap import PAGE_SIZE

    return PAGE_SIZE


def page_dict(r) -> dict:
    d = r.decoded
    return {
        "virt": hex(r.vaddr),
        "raw": json_raw(r.entry),
        "kind": d.kind,
        "pfn": d.pfn,
        "phys": None if d.pfn is None else hex(d.pfn * _page_size()),
        "pfn_hidden": d.pfn_hidden,
        "swap_type": d.swap_type,
        "swap_offset": None if d.swap_offset is None else hex(d.swap_offset),
        "kpageflags": json_raw(r.kpageflags),
        "kpagecount": r.kpagecount,
        "flags": list(r.flag_names),
        "flags_raw": json_raw(r.flags),
        "mapping": r.mapping.label,
    }


def run_dict(r) -> dict:
    d = r.decoded
    return {
        "start": hex(r.vaddr),
        "end": hex(r.end),
        "pages": r.pages,
        "raw": json_raw(r.entry),
        "kind": d.kind,
        "pfn": d.pfn,
        "step": r.step,
        "last_pfn": r.last_pfn,
        "pfn_hidden": d.pfn_hidden,
        "kpageflags": json_raw(r.kpageflags),
        "kpagecount": r.kpagecount,
        "flags": list(r.flag_names),
        "flags_raw": json_raw(r.flags),
        "huge": r.huge,
        "mapping": r.mapping.label,
    }


def format_summary(summ, view: str) -> str:
    """page-types' summary table for a :class:`pyphys.pagemap.Summary`."""
    mb, ps = 1 << 20, summ.page_size
    total = summ.total
    lines = ["             flags\tpage-count       MB  symbolic-flags\t\t\tlong-symbolic-flags"]
    for r in summ.rows(view):
        n = r.pages
        lines.append(f"{r.flags:#018x}\t{n:10d} {n * ps // mb:8d}  {r.symbolic}\t{','.join(r.names)}")
    lines.append(f"             total\t{total:10d} {total * ps // mb:8d}")
    huge = summ.huge_pages()
    lines.append(
        f"pid {summ.pid} ({summ.process}): {summ.present} present, {summ.swapped} swapped, "
        f"{summ.not_present} not present in the mappings scanned; THP pages {huge['THP']}, "
        f"hugetlb pages {huge['hugetlb']} (view: {view})"
    )
    return "\n".join(lines) + "\n"
