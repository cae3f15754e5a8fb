"""The page-table walker on page tables made of bytes.

Ground truth: the entry formats of the Intel SDM vol. 3A 4.5 and arch/x86/include/asm/
pgtable_types.h, written out here by hand as tables in a fake physical memory; swap entries
made with the kernel's own ``__swp_entry()`` formula (pgtable_64.h) and read back both by the
walker and by pagemap's decoder (which follows pagemap.rst's ``type | offset << 5``).
"""

from __future__ import annotations

import struct

import pytest

from pyphys import pagemap, walk
from pyphys.commands.walk import format_walk
from pyphys.layouts import pagetable as L

#: what Linux programs into IA32_PAT (arch/x86/mm/pat/memtype.c): WB WC UC- UC WB WP UC- WT
LINUX_PAT = 0x0407050600070106
PRESENT, RW, USER, PWT, PCD, ACC, DIRTY, PS, GLOBAL = (1 << b for b in range(9))
NX = 1 << 63


class Memory:
    """Physical memory as a bytearray of 4 KiB tables."""

    def __init__(self, size: int = 64 << 12) -> None:
        self.data = bytearray(size)
        self.reads: list[int] = []

    def set(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.data, table + 8 * index, value)

    def read_u64(self, phys: int) -> int:
        self.reads.append(phys)
        return struct.unpack_from("<Q", self.data, phys)[0]


def vaddr_of(*indexes: int, offset: int = 0) -> int:
    """The virtual address whose indexes, top level first, are ``indexes`` (4 or 5 of them)."""
    v = 0
    for i in indexes:
        v = v << 9 | i
    return v << 12 | offset


def four_level(mem: Memory, leaf_pte: int, *, idx=(1, 2, 3, 4)) -> int:
    """pgd at 0x1000 -> pud 0x2000 -> pmd 0x3000 -> pt 0x4000 with ``leaf_pte`` at idx[3]."""
    mem.set(0x1000, idx[0], 0x2000 | PRESENT | RW | USER | ACC)
    mem.set(0x2000, idx[1], 0x3000 | PRESENT | RW | USER | ACC)
    mem.set(0x3000, idx[2], 0x4000 | PRESENT | RW | USER | ACC)
    mem.set(0x4000, idx[3], leaf_pte)
    return vaddr_of(*idx, offset=0x123)


def test_a_4k_page_every_level_and_bit():
    mem = Memory()
    pte = 0x1234_5000 | PRESENT | RW | USER | ACC | DIRTY | NX | (1 << L.SW3) | (3 << L.PKEY_SHIFT)
    v = four_level(mem, pte)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4, LINUX_PAT)
    assert [s.level for s in w.steps] == ["pgd", "pud", "pmd", "pte"]
    assert [s.index for s in w.steps] == [1, 2, 3, 4]
    assert [s.entry_phys for s in w.steps] == [0x1008, 0x2010, 0x3018, 0x4020]
    assert [s.kind for s in w.steps] == ["table", "table", "table", "page"]
    leaf = w.steps[-1]
    assert leaf.raw == pte
    assert leaf.bits["frame"] == 0x1234_5000
    for name, on in dict(P=1, RW=1, US=1, PWT=0, PCD=0, A=1, D=1, PAT=0, G=0, XD=1, SW3=1, SW1=0).items():
        assert leaf.bits[name] == bool(on), name
    assert leaf.bits["pkey"] == 3
    assert "PS" not in leaf.bits  # bit 7 of a PTE is PAT
    assert w.phys_addr == 0x1234_5123 and w.page_size == 4096
    assert (w.pat_index, w.memory_type) == (0, "WB")


@pytest.mark.parametrize(
    ("bits", "index", "mtype"),
    [(PWT, 1, "WC"), (PCD, 2, "UC-"), (PCD | PWT, 3, "UC"), (1 << 7, 4, "WB"), ((1 << 7) | PWT, 5, "WP")],
)
def test_memory_type_from_the_pat_index_and_the_msr(bits, index, mtype):
    mem = Memory()
    v = four_level(mem, 0x5000 | PRESENT | bits)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4, LINUX_PAT)
    assert (w.pat_index, w.memory_type) == (index, mtype)
    # the power-on MSR gives other types for the same index
    assert walk.memory_type(L.PAT_RESET, 1) == "WT"
    assert walk.memory_type(None, 1) is None


def test_a_2m_huge_page_at_the_pmd_with_pat_in_bit_12():
    mem = Memory()
    mem.set(0x1000, 1, 0x2000 | PRESENT)
    mem.set(0x2000, 2, 0x3000 | PRESENT)
    mem.set(0x3000, 3, 0x4060_0000 | PRESENT | PS | (1 << L.PAT_LARGE) | PWT)
    v = vaddr_of(1, 2, 3, 0x1AB, offset=0x45)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4, LINUX_PAT)
    assert len(w.steps) == 3 and w.steps[-1].kind == "page"
    assert w.page_size == 2 << 20
    assert w.steps[-1].bits["frame"] == 0x4060_0000  # bit 12 (PAT) is not an address bit here
    assert w.phys_addr == 0x4060_0000 + 0x1AB * 4096 + 0x45
    assert (w.pat_index, w.memory_type) == (5, "WP")


def test_a_1g_huge_page_at_the_pud():
    mem = Memory()
    mem.set(0x1000, 0x1FF, 0x2000 | PRESENT)
    mem.set(0x2000, 0x1FE, 0x8000_0000 | PRESENT | RW | PS | GLOBAL)
    v = 0xFFFF_FF80_0000_0000 | vaddr_of(0, 0x1FE, 5, 6, offset=7)
    v |= 0x1FF << 39
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4, LINUX_PAT)
    assert [s.level for s in w.steps] == ["pgd", "pud"]
    assert w.page_size == 1 << 30 and w.steps[-1].bits["G"]
    assert w.phys_addr == 0x8000_0000 + (5 << 21) + (6 << 12) + 7


def test_five_levels():
    mem = Memory()
    mem.set(0x1000, 7, 0x2000 | PRESENT)
    mem.set(0x2000, 1, 0x3000 | PRESENT)
    mem.set(0x3000, 2, 0x4000 | PRESENT)
    mem.set(0x4000, 3, 0x5000 | PRESENT)
    mem.set(0x5000, 4, 0x9000 | PRESENT)
    v = vaddr_of(7, 1, 2, 3, 4, offset=0x10)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 5)
    assert [s.level for s in w.steps] == ["pgd", "p4d", "pud", "pmd", "pte"]
    assert [s.index for s in w.steps] == [7, 1, 2, 3, 4]
    assert w.phys_addr == 0x9010
    assert w.memory_type is None  # no MSR given
    # the same address under 4 levels uses bits 39-47 only: index 1 at the top, so a different walk
    assert walk.walk_tables(mem.read_u64, 0x1000, v, 4).steps[0].index == 1


def test_not_present_in_the_middle_stops_the_walk():
    mem = Memory()
    mem.set(0x1000, 1, 0x2000 | PRESENT)
    v = vaddr_of(1, 2, 3, 4)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4)
    assert [s.kind for s in w.steps] == ["table", "not present"]
    assert w.phys_addr is None and w.swap_type is None


def swp_pte(typ: int, offset: int) -> int:
    """arch/x86/include/asm/pgtable_64.h __swp_entry(): ~offset in bits 9-58, type in 59-63."""
    mask = (1 << 64) - 1
    return ((~offset << L.SWP_OFFSET_SHIFT) & mask) >> L.SWP_TYPE_BITS | typ << (64 - L.SWP_TYPE_BITS)


@pytest.mark.parametrize(("typ", "offset"), [(0, 1), (1, 0x1234), (3, (1 << 40) + 5)])
def test_a_swap_entry_agrees_with_pagemaps_decoding(typ, offset):
    mem = Memory()
    raw = swp_pte(typ, offset)
    v = four_level(mem, raw)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4)
    assert w.steps[-1].kind == "swap" and not w.steps[-1].bits["P"]
    assert (w.swap_type, w.swap_offset) == (typ, offset)
    # pagemap.rst: bits 0-4 swap type, 5-54 swap offset, bit 62 swapped
    pm = pagemap.decode_entry(1 << 62 | offset << 5 | typ, pfn_visible=True)
    assert (pm.swap_type, pm.swap_offset) == (w.swap_type, w.swap_offset)


def test_prot_none_keeps_its_frame_inverted():
    mem = Memory()
    frame = 0x7_6543_2000
    # pgtable.h: a PROT_NONE PTE has P clear, the PROTNONE (G) bit set, and the frame inverted (L1TF)
    raw = (~frame & L.ADDR_MASK) | (1 << L.PROTNONE) | ACC | USER
    v = four_level(mem, raw)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4)
    assert w.steps[-1].kind == "PROT_NONE page"
    assert w.phys_addr == frame + 0x123


def test_canonical_addresses():
    assert walk.canonical(0x7FFF_FFFF_F000, 4) and walk.canonical(0xFFFF_8000_0000_0000, 4)
    assert not walk.canonical(0x8000_0000_0000, 4) and walk.canonical(0x8000_0000_0000, 5)
    assert not walk.canonical(0x0100_0000_0000_0000, 5) and walk.canonical(0xFF00_0000_0000_0000, 5)
    assert not walk.canonical(0x8000_0000_0000_0000, 5)


def test_an_entry_that_changes_during_the_walk_is_walked_again_and_said():
    mem = Memory()
    v = four_level(mem, 0x5000 | PRESENT)
    calls = {"n": 0}

    def flaky(phys: int) -> int:
        calls["n"] += 1
        if phys == 0x4020 and calls["n"] <= 4:  # the first walk sees another frame
            return 0x6000 | PRESENT
        return mem.read_u64(phys)

    w = walk.stable_walk(flaky, 0x1000, v, 4)
    assert w.phys_addr == 0x5123 and any("changed" in n for n in w.notes)
    steady = walk.stable_walk(mem.read_u64, 0x1000, v, 4)
    assert steady.phys_addr == 0x5123 and steady.notes == []


def test_text_and_json_name_every_level():
    mem = Memory()
    v = four_level(mem, 0x5000 | PRESENT | RW | NX)
    w = walk.walk_tables(mem.read_u64, 0x1000, v, 4, LINUX_PAT)
    text = format_walk(w)
    for needle in ("pgd", "pud", "pmd", "pte", "0x5123", "WB", "XD"):
        assert needle in text
    d = w.to_json()
    assert d["phys"] == "0x5123" and d["pfn"] == 5 and d["steps"][-1]["bits"]["XD"] is True
    assert d["steps"][0]["entry_phys"] == "0x1008" and d["virt"] == hex(v)
    assert d["steps"][-1]["raw"] == f"{0x5000 | PRESENT | RW | NX:#018x}"
    from helpers import validate_json

    validate_json(d, "walk")


def test_the_ioctl_number_and_struct_match_the_module():
    # _IOWR('p', 0x01, struct pyphys_pgd): 40 bytes
    assert L.PGD_STRUCT.size == 40
    assert L.PYPHYS_IOC_PGD == 0xC0287001


def _run(monkeypatch, capsys, w, *argv):
    from pyphys import cli

    monkeypatch.setattr(walk, "walk_process", lambda *a, **k: w)
    code = cli.main(["walk", "self", "0x1000", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_notes_go_to_stderr_and_sizes_read_back(monkeypatch, capsys):
    """stdout holds the walk alone; its notes are on stderr (the stale one as a warning), and the
    page sizes it prints are sizes the dialect reads back as the page's size."""
    from pyphys.dialect import parse_size

    mem = Memory()
    mem.set(0x1000, 1, 0x2000 | PRESENT | RW | USER | ACC)
    mem.set(0x2000, 2, 0x3000 | PRESENT | RW | USER | ACC)
    mem.set(0x3000, 3, 0x40000000 | PRESENT | RW | USER | ACC | PS)  # a 2 MiB page at pmd
    w = walk.walk_tables(mem.read_u64, 0x1000, vaddr_of(1, 2, 3, 4, offset=0x123), 4, LINUX_PAT)
    w.pid = 1
    w.notes = ["KPTI is on: walked the user half", "the page table changed during the walk, twice: maybe stale"]
    w.check = {"source": "pagemap", "agree": True, "note": "pagemap agrees"}
    code, out, err = _run(monkeypatch, capsys, w)
    assert code == 0
    assert "KPTI" not in out and "stale" not in out and "note" not in out
    assert "pyphys walk: KPTI is on: walked the user half\n" in err
    assert "pyphys walk: warning: the page table changed during the walk, twice: maybe stale\n" in err
    last = [ln for ln in out.splitlines() if ln.startswith("physical address")][0]
    size = last.split("(", 1)[1].split(" page)", 1)[0]
    assert parse_size(size) == 2 << 20 == w.page_size
    pmd = [ln for ln in out.splitlines() if ln.lstrip().startswith("pmd")][0]
    assert parse_size(pmd.split("page ", 1)[1].split()[0]) == 2 << 20
    code, out, err = _run(monkeypatch, capsys, w, "--json")
    assert json_notes(out) == w.notes and "KPTI is on" in err


def json_notes(text: str) -> list:
    import json

    return json.loads(text)["notes"]
