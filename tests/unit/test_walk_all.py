"""`pyphys walk PROCESS --all` on page tables made of bytes.

Ground truth: the tables are written here by hand in the SDM's entry format (as in
test_walk.py, whose fake physical memory is reused), and the pagemap entries beside them in
pagemap.rst's format (bit 63 present + PFN, bit 62 swapped + ``type | offset << 5``), built
independently of the walker. Swap PTEs are made with the kernel's ``__swp_entry()`` formula.
"""

from __future__ import annotations

import struct

from helpers import validate_json
from test_walk import ACC, LINUX_PAT, PCD, PRESENT, PS, PWT, RW, USER, Memory, swp_pte, vaddr_of

from pyphys import walk
from pyphys.commands.walk import format_all
from pyphys.walk_all import Result, TableCache, compare, walk_range

TABLE = PRESENT | RW | USER | ACC
PM_PRESENT, PM_SWAP = 1 << 63, 1 << 62
PAGE = 4096


def pm_page(pfn: int) -> int:
    return PM_PRESENT | pfn


def pm_swap(typ: int, offset: int) -> int:
    return PM_SWAP | offset << 5 | typ


class Tables:
    """pgd 0x1000; pud 0x2000; pmd 0x3000; PTE tables 0x4000 and 0x5000."""

    def __init__(self) -> None:
        self.mem = Memory()
        self.mem.set(0x1000, 1, 0x2000 | TABLE)
        self.mem.set(0x2000, 2, 0x3000 | TABLE)
        self.mem.set(0x3000, 3, 0x4000 | TABLE)
        self.mem.set(0x3000, 6, 0x5000 | TABLE)
        self.page_reads: list[int] = []

    def read_page(self, phys: int) -> bytes:
        self.page_reads.append(phys)
        return bytes(self.mem.data[phys : phys + PAGE])


def entries(words) -> memoryview:
    return memoryview(struct.pack(f"<{len(words)}Q", *words)).cast("Q")


def run(t: Tables, lo: int, hi: int, pagemap, pfnmap: bool = False, res: Result | None = None, cache=None):
    res = res or Result(pid=1, levels=4, top=0x1000, pat=LINUX_PAT)
    cache = cache or TableCache(t.read_page)
    leaves = list(walk_range(cache, 0x1000, 4, lo, hi))
    for lf in leaves:  # each leaf is what the one-address walker, entry by entry, finds there
        w = walk.walk_tables(t.mem.read_u64, 0x1000, lf.vaddr, 4, LINUX_PAT)
        assert (lf.pfn, lf.pat_index) == (None if w.pfn is None else w.pfn, w.pat_index)
        assert (lf.swap_type, lf.swap_offset, lf.level) == (w.swap_type, w.swap_offset, w.steps[-1].level)
    compare(res, leaves, lo, entries(pagemap), pfnmap)
    return res, leaves


def test_4k_pages_swap_and_holes_agree_with_pagemap():
    t = Tables()
    for i in range(4):
        t.mem.set(0x4000, i, (0x10000 + i) << 12 | PRESENT | RW | USER)
    t.mem.set(0x4000, 4, swp_pte(1, 0x1234))
    t.mem.set(0x4000, 5, (0x20000 << 12) | PRESENT | USER | PCD)  # UC-
    lo = vaddr_of(1, 2, 3, 0)
    pm = [pm_page(0x10000 + i) for i in range(4)] + [pm_swap(1, 0x1234), pm_page(0x20000), 0, 0]
    res, leaves = run(t, lo, lo + 8 * PAGE, pm)
    assert [lf.level for lf in leaves] == ["pte"] * 6
    assert leaves[4].kind == "swap" and (leaves[4].swap_type, leaves[4].swap_offset) == (1, 0x1234)
    assert (res.pages, res.present, res.swap, res.none) == (8, 5, 1, 2)
    assert res.agree == 8 and res.disagreements == []
    assert res.by_level["pte"] == {"leaves": 5, "pages": 5}
    assert res.by_type == {"WB": 4, "UC-": 1}
    # the PTE table was read once, whole, not entry by entry
    assert t.page_reads == [0x1000, 0x2000, 0x3000, 0x4000]


def test_a_2m_leaf_covers_512_pages_each_checked():
    t = Tables()
    t.mem.set(0x3000, 4, 0x4060_0000 | PRESENT | RW | USER | PS)
    lo = vaddr_of(1, 2, 4, 0)
    head = 0x4060_0000 >> 12
    res, leaves = run(t, lo, lo + (2 << 20), [pm_page(head + i) for i in range(512)])
    assert len(leaves) == 1 and leaves[0].level == "pmd" and leaves[0].page_size == 2 << 20
    assert res.by_level["pmd"] == {"leaves": 1, "pages": 512} and res.agree == 512
    # one tail page that pagemap puts elsewhere is one disagreement, named by its address
    pm = [pm_page(head + i) for i in range(512)]
    pm[7] = pm_page(0x999)
    res, _ = run(t, lo, lo + (2 << 20), pm)
    assert res.agree == 511 and len(res.disagreements) == 1
    d = res.disagreements[0]
    assert d.vaddr == lo + 7 * PAGE and d.level == "pmd"
    assert d.walk == f"frame {head + 7:#x}" and d.pagemap == "frame 0x999"


def test_a_1g_leaf_clipped_to_its_mapping():
    t = Tables()
    t.mem.set(0x2000, 5, 0x8000_0000 | PRESENT | RW | USER | PS | PWT)  # WC under Linux's PAT
    lo = vaddr_of(1, 5, 3, 7)  # 3 MiB + 7 pages into the 1 GiB page
    base = 0x8000_0000 >> 12
    first = base + 3 * 512 + 7
    res, leaves = run(t, lo, lo + 16 * PAGE, [pm_page(first + i) for i in range(16)])
    assert len(leaves) == 1 and leaves[0].level == "pud" and leaves[0].pages == 16
    assert leaves[0].pfn == first
    assert res.by_level["pud"] == {"leaves": 1, "pages": 16} and res.agree == 16
    assert res.by_type == {"WC": 16}


def test_pfnmap_pages_are_reported_apart_not_as_disagreements():
    t = Tables()
    t.mem.set(0x5000, 0, 0xFEB0_0000 | PRESENT | USER | PCD | PWT)
    lo = vaddr_of(1, 2, 6, 0)
    res, _ = run(t, lo, lo + 2 * PAGE, [0, 0], pfnmap=True)
    assert res.disagreements == [] and res.present == 1
    assert res.leaves[0][1] == "pfnmap, not checked"
    # the same mapping not known to be VM_PFNMAP: pagemap's silence is a disagreement
    res, _ = run(t, lo, lo + 2 * PAGE, [0, 0])
    assert len(res.disagreements) == 1 and res.disagreements[0].pagemap == "not present"


def test_swap_entries_must_match_pagemaps_type_and_offset():
    t = Tables()
    t.mem.set(0x4000, 0, swp_pte(0, 0x77))
    lo = vaddr_of(1, 2, 3, 0)
    res, _ = run(t, lo, lo + PAGE, [pm_swap(0, 0x78)])
    assert len(res.disagreements) == 1
    assert res.disagreements[0].walk == "swap 0/0x77" and res.disagreements[0].pagemap == "swap 0/0x78"
    res, _ = run(t, lo, lo + PAGE, [pm_swap(0, 0x77)])
    assert res.disagreements == [] and res.swap == 1


def test_pagemap_present_where_the_walk_finds_nothing_is_a_disagreement():
    t = Tables()
    lo = vaddr_of(1, 2, 3, 0)
    res, leaves = run(t, lo, lo + 2 * PAGE, [0, pm_page(0x1234)])
    assert leaves == [] and res.none == 2
    assert [(d.vaddr, d.walk, d.pagemap) for d in res.disagreements] == [(lo + PAGE, "not present", "frame 0x1234")]


def test_tables_are_cached_across_mappings():
    t = Tables()
    t.mem.set(0x4000, 0, 0x10000 << 12 | PRESENT)
    t.mem.set(0x4000, 9, 0x10001 << 12 | PRESENT)
    cache = TableCache(t.read_page)
    res = Result(pid=1, levels=4, top=0x1000, pat=LINUX_PAT)
    lo = vaddr_of(1, 2, 3, 0)
    run(t, lo, lo + PAGE, [pm_page(0x10000)], res=res, cache=cache)
    run(t, lo + 9 * PAGE, lo + 10 * PAGE, [pm_page(0x10001)], res=res, cache=cache)
    assert len(t.page_reads) == len(set(t.page_reads)) == 4
    assert res.agree == 2 and res.pages == 2


def test_five_level_tables():
    mem = Memory()
    mem.set(0x1000, 7, 0x2000 | TABLE)
    mem.set(0x2000, 1, 0x3000 | TABLE)
    mem.set(0x3000, 2, 0x4000 | TABLE)
    mem.set(0x4000, 3, 0x5000 | TABLE)
    mem.set(0x5000, 4, 0x9000 | PRESENT)
    cache = TableCache(lambda p: bytes(mem.data[p : p + PAGE]))
    lo = vaddr_of(7, 1, 2, 3, 0)
    leaves = list(walk_range(cache, 0x1000, 5, lo, lo + 8 * PAGE))
    assert [(lf.vaddr, lf.pfn) for lf in leaves] == [(lo + 4 * PAGE, 9)]


def test_summary_text_and_json_list_every_disagreement():
    t = Tables()
    t.mem.set(0x4000, 0, 0x10000 << 12 | PRESENT)
    t.mem.set(0x4000, 1, 0x10001 << 12 | PRESENT)
    t.mem.set(0x4000, 2, swp_pte(2, 5))
    lo = vaddr_of(1, 2, 3, 0)
    res, _ = run(t, lo, lo + 3 * PAGE, [pm_page(0x10005), pm_page(0x10006), pm_swap(2, 5)])
    res.vmas = 1
    text = format_all(res)
    assert text.count("DISAGREE") == 2 and "1 pages agree, 2 disagree" in text
    assert "PMD 2M: 0 leaves" in text and "present 2, swap 1, none 0" in text
    d = res.to_json()
    validate_json(d, "walk-all")
    assert d["disagree"] == 2 and len(d["disagreements"]) == 2
    assert [x["check"] for x in d["leaves"]] == ["disagree", "disagree", "agree"]
    assert d["leaves"][2]["swap_type"] == 2 and d["leaves"][2]["swap_offset"] == "0x5"
    assert d["leaves"][0]["pfn"] == 0x10000 and d["leaves"][0]["memory_type"] == "WB"
