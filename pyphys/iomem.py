"""/proc/iomem as a tree of regions, and which region an address lies in.

Format (kernel/resource.c ``r_show``): one resource a line, ``START-END : NAME``, START and
END inclusive hex, nested resources indented two spaces per level. Without CAP_SYS_ADMIN
the kernel prints every address as zero (``r_show``: ``if (file_ns_capable(..., CAP_SYS_ADMIN))``
else ``start = end = 0``); :attr:`IomemTree.hidden` says so instead of calling everything
address 0.
"""

from __future__ import annotations

import bisect

from pyphys import TYPE_CHECKING, paths
from pyphys.errors import NO_ADMIN, PyphysError, UsageError, from_oserror, root_hint
from pyphys.record import Record

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import IO

SYSTEM_RAM = "System RAM"


def hidden_hint() -> str:
    """Why /proc/iomem shows zeros (kernel/resource.c shows addresses to CAP_SYS_ADMIN only)."""
    return "the kernel shows /proc/iomem addresses as zeros without CAP_SYS_ADMIN: " + root_hint(
        NO_ADMIN, "run as root"
    )


class Region(Record):
    """One resource: ``start``..``end`` inclusive, its ``name``, nested ``children``, its
    ``depth`` in the tree (0 at the top). The JSON form leaves ``depth`` out: the nesting says it.
    """

    __slots__ = ("start", "end", "name", "children", "depth")
    _defaults = {"children": [], "depth": 0}

    def __repr__(self) -> str:  # short: a whole tree's repr would print every descendant
        return f"Region({self.start:#x}, {self.end:#x}, {self.name!r}, children={len(self.children)})"

    @property
    def size(self) -> int:
        """Bytes covered (end is inclusive)."""
        return self.end - self.start + 1

    def contains(self, addr: int, length: int = 1) -> bool:
        """True if [addr, addr+length) lies inside this region."""
        return self.start <= addr and addr + max(length, 1) - 1 <= self.end

    def walk(self) -> Iterable[Region]:
        """This region's descendants, depth first, in address order."""
        for child in self.children:
            yield child
            yield from child.walk()

    def to_json(self) -> dict:
        """The JSON form by docs/json.md: hex strings, END exclusive (one past /proc/iomem's)."""
        return {
            "start": f"{self.start:#x}",
            "end": f"{self.end + 1:#x}",
            "size": self.size,
            "name": self.name,
            "children": [c.to_json() for c in self.children],
        }


class IomemTree:
    """The parsed /proc/iomem: top-level ``regions`` (children nested), ``hidden`` if zeroed."""

    def __init__(self, regions: list[Region], hidden: bool = False):
        self.regions = regions
        self.hidden = hidden
        self._starts = [r.start for r in self.regions]
        self._sorted = sorted(self.regions, key=lambda r: r.start)

    def __repr__(self) -> str:
        return f"IomemTree({len(self.regions)} top-level regions, hidden={self.hidden})"

    def region_of(self, addr: int) -> list[Region]:
        """Chain of nested regions holding ``addr``, outermost first; [] for a hole."""
        chain: list[Region] = []
        level = self.regions
        starts = self._starts
        while True:
            i = bisect.bisect_right(starts, addr) - 1
            # siblings may overlap in odd firmware maps: look back a little
            found = None
            for j in range(i, max(i - 4, -1), -1):
                if level[j].contains(addr):
                    found = level[j]
                    break
            if found is None:
                return chain
            chain.append(found)
            level = found.children
            starts = [r.start for r in level]

    def describe(self, addr: int) -> str:
        """'System RAM > Kernel data', or 'a hole (no region in /proc/iomem)'."""
        if self.hidden:
            return f"unknown region (/proc/iomem hidden: {root_hint('no CAP_SYS_ADMIN', 'not root')})"
        chain = self.region_of(addr)
        if not chain:
            return "a hole (no region in /proc/iomem)"
        return " > ".join(r.name for r in chain)

    def is_ram(self, addr: int, length: int = 1) -> bool:
        """True if all of [addr, addr+length) is inside one top-level System RAM region."""
        for top in self.regions:
            if top.name == SYSTEM_RAM and top.contains(addr, length):
                return True
        return False

    def holes(self, addr: int, length: int = 1) -> list[tuple[int, int]]:
        """Stretches (start, end inclusive) of [addr, addr+length) that no top-level region covers."""
        out = []
        pos, last = addr, addr + max(length, 1) - 1
        for r in self._sorted:
            if r.end < pos:
                continue
            if r.start > last:
                break
            if r.start > pos:
                out.append((pos, r.start - 1))
            pos = max(pos, r.end + 1)
            if pos > last:
                return out
        if pos <= last:
            out.append((pos, last))
        return out

    def ram_regions(self) -> list[Region]:
        """The top-level System RAM regions."""
        return [r for r in self.regions if r.name == SYSTEM_RAM]

    @property
    def ram_end(self) -> int:
        """One past the last System RAM byte (0 if none)."""
        ram = self.ram_regions()
        return max((r.end + 1 for r in ram), default=0)

    def first_ram_page(self, page_size: int = 4096, above: int = 0) -> int | None:
        """Start of the first whole System RAM page at or above ``above`` (falls back to any)."""
        fallback = None
        for r in self.ram_regions():
            start = -(-max(r.start, above) // page_size) * page_size
            if start + page_size - 1 <= r.end:
                return start
            first = -(-r.start // page_size) * page_size
            if fallback is None and first + page_size - 1 <= r.end:
                fallback = first
        return fallback

    def find(self, name: str) -> list[Region]:
        """All regions (any depth) whose name equals ``name``."""
        return [r for top in self.regions for r in (top, *top.walk()) if r.name == name]

    def to_list(self) -> list[dict]:
        """JSON-able tree."""
        return [r.to_json() for r in self.regions]


def parse(stream: IO[str]) -> IomemTree:
    """Parse /proc/iomem text from ``stream``; UsageError on a malformed line."""
    roots: list[Region] = []
    stack: list[Region] = []
    all_zero = True
    seen = False
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        body = line.rstrip("\n")
        indent = len(body) - len(body.lstrip(" "))
        rng, sep, name = body.lstrip(" ").partition(" : ")
        lo, dash, hi = rng.partition("-")
        try:
            if not sep or not dash:
                raise ValueError
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            raise UsageError(f"/proc/iomem line {lineno} is not 'START-END : NAME': {body!r}") from None
        if end < start:
            raise UsageError(f"/proc/iomem line {lineno}: end {end:#x} is below start {start:#x}")
        seen = True
        if start or end:
            all_zero = False
        depth = indent // 2
        region = Region(start, end, name.strip(" "), depth=depth)  # control characters stay: names are verbatim
        while stack and stack[-1].depth >= depth:
            stack.pop()
        if stack:
            stack[-1].children.append(region)
        else:
            roots.append(region)
        stack.append(region)
    return IomemTree(roots, hidden=seen and all_zero)


def load() -> IomemTree:
    """Parse the running kernel's /proc/iomem (through paths.proc); PyphysError if unreadable."""
    path = paths.proc("iomem")
    try:
        # names are the drivers' bytes: never let one undecodable byte stop every command; lines
        # end at \n only (the kernel's), so a \r inside a name stays in the name
        with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
            return parse(f)
    except OSError as err:
        raise from_oserror(err, f"read {path}") from err


def require_visible(tree: IomemTree) -> IomemTree:
    """Return ``tree``; PyphysError if the kernel hid the addresses (not root)."""
    if tree.hidden:
        raise PyphysError("/proc/iomem shows every address as 0", hidden_hint())
    return tree
