"""Pictures for the labs: which physical frames back which mappings of a process.

    python -m pyphys.labplot PID [PID ...] -o frames.png [--mark NAME=ADDR ...] [--lab1]

One panel per process: each column is one mapping of /proc/PID/maps that has pages in RAM
(left to right in address order), each dot or line a run of its pages, placed at the physical
address of the frames behind it (:func:`pyphys.pagemap.runs`). Physically contiguous runs
draw as slanted lines -- a transparent huge page is one long line -- and frames mapped by
more than one process (kpagecount > 1: shared libraries, pages shared after fork) are drawn
hollow. ``--lab1`` marks lab 1's buffer, huge, shared and cow pages from /tmp/lab1-process.json.

The data (:func:`layout`) needs nothing beyond pyphys; the drawing needs matplotlib, the
optional extra ``plot``: ``pip install 'pyphys[plot]'`` (or ``pip install matplotlib``).
"""

from __future__ import annotations

import os
import sys

from pyphys.errors import NO_ADMIN, PyphysError, UsageError, root_hint
from pyphys.record import Record

KINDS = ("code", "file data", "heap", "stack", "anonymous", "huge page (THP)")
COLORS = {
    "code": "#1f77b4",
    "file data": "#17becf",
    "heap": "#2ca02c",
    "stack": "#9467bd",
    "anonymous": "#ff7f0e",
    "huge page (THP)": "#d62728",
}
INSTALL_HINT = "the picture needs matplotlib: pip install 'pyphys[plot]' (or: pip install matplotlib)"


class Segment(Record):
    """Pages ``[first, first + pages)`` of one mapping on frames from ``pfn``."""

    __slots__ = ("first", "pages", "pfn", "kind", "shared", "step")
    _defaults = {"step": 1}

    first: int  # page index inside the column
    pages: int
    pfn: int  # frame of the first page
    kind: str
    shared: bool  # kpagecount > 1 on the first frame
    step: int  # +1 frames ascend along the run, -1 descend (pagemap.PageRun.step)

    def pfn_at(self, page: int) -> int:
        """Frame behind page index ``page`` of the column (inside this segment)."""
        return self.pfn + (self.step or 1) * (page - self.first)


class Column(Record):
    """One file (all its mappings), or one anonymous mapping, with pages in RAM."""

    __slots__ = ("label", "spans", "pages", "segments")
    _defaults = {"spans": [], "pages": 0, "segments": []}

    label: str
    spans: list[tuple[int, int, int]]  # (vaddr, pages, first page index)
    pages: int  # virtual pages in all spans
    segments: list[Segment]

    def add_span(self, start: int, pages: int) -> None:
        self.spans.append((start, pages, self.pages))
        self.pages += pages

    def index(self, vaddr: int, page_size: int) -> int | None:
        """Page index of ``vaddr`` inside this column, or None."""
        for start, pages, first in self.spans:
            if start <= vaddr < start + pages * page_size:
                return first + (vaddr - start) // page_size
        return None


class Layout(Record):
    """What one panel shows: a process's mappings and the frames behind them."""

    __slots__ = ("pid", "name", "page_size", "columns")

    pid: int
    name: str
    page_size: int
    columns: list[Column]

    def locate(self, vaddr: int) -> tuple[int, int] | None:
        """(column, page index) of a virtual address, or None if no column holds it."""
        for i, c in enumerate(self.columns):
            idx = c.index(vaddr, self.page_size)
            if idx is not None:
                return i, idx
        return None


def _kind(mapping, huge: str | None) -> str:
    if huge:
        return "huge page (THP)"
    if mapping.path == "[heap]":
        return "heap"
    if mapping.path.startswith("[stack"):
        return "stack"
    if mapping.anonymous:
        return "anonymous"
    return "code" if mapping.executable else "file data"


def _short(path: str) -> str:
    if not path:
        return "[anon]"
    return os.path.basename(path) if path.startswith("/") else path


def layout(pid: int | str) -> Layout:
    """Scan ``pid`` (every mapping) into plot columns: one per file, one per anonymous mapping.

    Raises what :func:`pyphys.pagemap.runs` raises, and PyphysError when no frame is visible.
    """
    from pyphys import pagemap, procmaps

    ps = pagemap.PAGE_SIZE
    columns: dict[str, Column] = {}
    spans: dict[int, Column] = {}  # mapping start -> its column
    info = procmaps.resolve_process(pid)
    for run in pagemap.runs(info, kpagecount=True):
        pfn = run.pfn
        if pfn is None:
            continue  # not present, swapped, or hidden (not root)
        m = run.mapping
        col = spans.get(m.start)
        if col is None:
            key = m.path if m.path.startswith("/") else f"{m.path or '[anon]'}@{m.start:x}"
            col = columns.get(key)
            if col is None:
                col = columns[key] = Column(_short(m.path))
            col.add_span(m.start, m.size // ps)
            spans[m.start] = col
        first = col.index(run.vaddr, ps)
        col.segments.append(
            Segment(first, run.pages, pfn, _kind(m, run.huge), (run.kpagecount or 0) > 1, getattr(run, "step", 1) or 1)
        )
    if not columns:
        raise PyphysError(
            f"process {info.pid} has no page with a visible frame",
            root_hint(NO_ADMIN, "PFNs need root (CAP_SYS_ADMIN): run as root"),
        )
    ordered = sorted(columns.values(), key=lambda c: c.spans[0][0])
    return Layout(info.pid, info.name, ps, ordered)


def lab1_marks() -> tuple[list[int], dict[str, int]]:
    """([parent, child], {name: vaddr}) of lab 1's process, from /tmp/lab1-process.json."""
    import json

    path = "/tmp/lab1-process.json"
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError) as err:
        raise PyphysError(f"cannot read {path}: {err}", "start it: python3 docs/labs/lab1_process.py &") from err
    return [st["pid"], st["child_pid"]], {k: st[k] for k in ("buffer", "huge", "shared", "cow")}


def plot(pids: list[int | str], output: str, marks: dict[str, int] | None = None, title: str | None = None) -> str:
    """Draw one panel per process into ``output`` (PNG, SVG or PDF by its extension); returns it.

    Raises PyphysError when matplotlib is missing (with how to install it) or a scan fails.
    """
    layouts = [layout(p) for p in pids]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        raise PyphysError("matplotlib is not installed", INSTALL_HINT) from None

    from matplotlib.collections import LineCollection

    gib = float(1 << 30)
    widths = [max(len(lay.columns), 4) for lay in layouts]
    fig, axes = plt.subplots(
        1,
        len(layouts),
        sharey=True,
        squeeze=False,
        figsize=(min(4 + 0.2 * sum(widths), 16), 6.6),
        gridspec_kw={"width_ratios": widths},
    )
    for ax, lay in zip(axes[0], layouts):

        def x_of(i: int, col: Column, page: float) -> float:
            return i + 0.1 + 0.8 * page / max(col.pages, 1)

        names = {}
        for name, vaddr in (marks or {}).items():
            where = lay.locate(vaddr)
            if where is not None:
                names.setdefault(where[0], []).append(name)
        lines: dict[str, list] = {k: [] for k in KINDS}
        dots: dict[tuple[str, bool], list] = {}
        for i, col in enumerate(lay.columns):
            if i % 2:
                ax.axvspan(i, i + 1, color="#ececec", zorder=0, lw=0)
            for s in col.segments:
                x0, y0 = x_of(i, col, s.first), s.pfn * lay.page_size / gib
                if s.pages > 1:
                    lines[s.kind].append(
                        [(x0, y0), (x_of(i, col, s.first + s.pages), s.pfn_at(s.first + s.pages) * lay.page_size / gib)]
                    )
                dots.setdefault((s.kind, s.shared), []).append((x0, y0))
        for kind, segs in lines.items():
            if segs:
                ax.add_collection(
                    LineCollection(
                        segs, colors=COLORS[kind], zorder=3, linewidths=2.5 if kind == "huge page (THP)" else 1.2
                    )
                )
        for (kind, shared), pts in dots.items():
            xs, ys = zip(*pts)
            ax.scatter(
                xs,
                ys,
                s=11,
                zorder=4,
                linewidths=0.8,
                edgecolors=COLORS[kind],
                facecolors="none" if shared else COLORS[kind],
            )
        # labels in a column of their own height (axes fraction), so that marks on neighbouring
        # pages (shared and cow) do not pile their boxes on top of each other
        for n, (name, vaddr) in enumerate(sorted((marks or {}).items(), key=lambda kv: kv[1])):
            where = lay.locate(vaddr)
            if where is None:
                continue
            i, page = where
            col = lay.columns[i]
            seg = next((s for s in col.segments if s.first <= page < s.first + s.pages), None)
            if seg is None:
                continue
            pfn = seg.pfn_at(page)
            x = x_of(i, col, page)
            tx = x + 1.5 if x < len(lay.columns) - 8 else x - 7
            ax.annotate(
                f"{name}\nPFN {pfn:#x}",
                (x, pfn * lay.page_size / gib),
                xytext=(tx, 0.93 - 0.12 * n),
                textcoords=("data", "axes fraction"),
                fontsize=7.5,
                zorder=6,
                arrowprops={"arrowstyle": "->", "lw": 0.8},
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6", "lw": 0.6},
            )
        ax.set_xlim(0, max(len(lay.columns), 1))
        ax.set_xticks([i + 0.5 for i in range(len(lay.columns))])
        ax.set_xticklabels(
            [(c.label if i not in names else "+".join(names[i]))[:24] for i, c in enumerate(lay.columns)],
            rotation=90,
            fontsize=6.5,
        )
        for i in names:
            ax.get_xticklabels()[i].set_fontweight("bold")
        ax.tick_params(axis="x", length=0)
        ax.set_title(
            f"pid {lay.pid} ({lay.name}): {len(lay.columns)} files or anonymous mappings with pages in RAM",
            fontsize=8.5,
        )
        ax.grid(axis="y", color="0.85", lw=0.6)
    axes[0][0].set_ylabel("physical address (GiB)")
    handles = [Line2D([], [], color=COLORS[k], marker="o", ms=4, lw=1.5, label=k) for k in KINDS]
    handles.append(
        Line2D([], [], color="0.3", marker="o", ms=4, lw=0, markerfacecolor="none", label="frame mapped more than once")
    )
    fig.suptitle(title or "Which physical frames back which mappings (pyphys pagemap)", y=0.99, fontsize=10.5)
    fig.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(handles), fontsize=7.5, frameon=False
    )
    fig.text(
        0.5,
        0.005,
        "columns: each file (all its mappings) or anonymous mapping, in address order; within a "
        "column, virtual pages left to right; a slanted line = physically contiguous frames",
        ha="center",
        fontsize=7.5,
        color="0.35",
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.93))
    fig.savefig(output, dpi=110)
    plt.close(fig)
    if output.lower().endswith(".png"):
        _shrink_png(output)
    return output


def _shrink_png(path: str) -> None:
    """Re-save a PNG with a 64-colour palette (a third of the size, small enough to commit)."""
    try:
        from PIL import Image  # Pillow: a dependency of matplotlib
    except ImportError:
        return
    with Image.open(path) as im:
        # FASTOCTREE keeps the few saturated plot colours distinct (MEDIANCUT merged red into orange)
        small = im.convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m pyphys.labplot", description=__doc__.split("\n\n")[1], epilog=INSTALL_HINT
    )
    ap.add_argument("pids", nargs="*", metavar="PID", help="processes (pid, self, or name); one panel each")
    ap.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    ap.add_argument("--mark", action="append", default=[], metavar="NAME=ADDR", help="label a virtual address")
    ap.add_argument("--lab1", action="store_true", help="lab 1's process and child, with its four pages marked")
    ap.add_argument("--title", help="figure title")
    args = ap.parse_args(argv)
    try:
        pids: list[int | str] = [int(p) if p.isdigit() else p for p in args.pids]
        marks: dict[str, int] = {}
        if args.lab1:
            lab_pids, marks = lab1_marks()
            pids = pids or lab_pids
        for m in args.mark:
            name, sep, addr = m.partition("=")
            try:
                marks[name] = int(addr, 0)
            except ValueError:
                raise UsageError(f"--mark {m!r}: give NAME=ADDR with a number") from None
        if not pids:
            raise UsageError("name at least one PID (or --lab1)")
        print(plot(pids, args.output, marks, args.title))
    except PyphysError as err:
        print(f"labplot: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
