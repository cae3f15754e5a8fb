"""Lab 9's grader on page tables made of bytes: the right walk passes, each kind of wrong answer
fails with a message that says what went wrong (not the answer), and a region without its huge
page is an ERROR that says how to get one.

The truth is built here, not computed by the code under test: the tables are written entry by
entry at known physical addresses, so every right answer is known before the grader runs."""

from __future__ import annotations

import pytest

from pyphys import walk
from pyphys.labs import grading, probes

PAT_MSR = 0x0007040600070406  # the power-on value: WB WT UC- UC, twice
TOP, PUD, PMD, PT, KPUD, KPMD = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000
BUF = 0x7F1234567123  # indices 254 72 418 359, offset 0x123
BUF_IDX = (254, 72, 418, 359)
BUF_FRAME = 0x5A5A000
HUGE = 0x7F1234600000  # the same PGD and PUD entries, PMD index 419
HUGE_FRAME = 0x40000000
TABLE, XD, PS = 0x67, 1 << 63, 1 << 7  # P RW US A D
PTE = XD | BUF_FRAME | TABLE
HUGE_PMD = XD | HUGE_FRAME | PS | TABLE
BASE = 0xFFFF9A4000000000  # a KASLR'd page_offset_base
MOD_PHYS = 0x3A5000
MOD_VIRT = BASE + MOD_PHYS
POB_SYMBOL = 0xFFFFFFFF82A1C0E8  # where page_offset_base lives in the kernel image
KERNEL_FLAGS = 0x63  # P RW A D, no US


def _memory() -> dict[int, int]:
    mem = {
        TOP + 8 * 254: PUD | TABLE,
        PUD + 8 * 72: PMD | TABLE,
        PMD + 8 * 418: PT | TABLE,
        PT + 8 * 359: PTE,
        PMD + 8 * 419: HUGE_PMD,
        TOP + 8 * ((MOD_VIRT >> 39) & 511): KPUD | KERNEL_FLAGS,
        KPUD + 8 * ((MOD_VIRT >> 30) & 511): KPMD | KERNEL_FLAGS,
        KPMD + 8 * ((MOD_VIRT >> 21) & 511): XD | (MOD_PHYS & ~0x1FFFFF) | PS | KERNEL_FLAGS,
    }
    return mem


RIGHT = {
    "pid": "4242",
    "top": hex(TOP),
    "indices": "254 72 418 359",
    "pte_addr": hex(PT + 8 * 359),
    "pte_entry": hex(PTE),
    "buffer_phys": hex(BUF_FRAME + 0x123),
    "pat_index": "0",
    "memory_type": "WB",
    "huge_pmd_entry": hex(HUGE_PMD),
    "huge_phys": hex(HUGE_FRAME),
    "direct_base": hex(BASE),
    "direct_vaddr": hex(MOD_VIRT),
    "direct_page_size": str(2 << 20),
}


@pytest.fixture
def machine(monkeypatch):
    """The lab 9 process (pid 4242) and the module, on the page tables of :func:`_memory`."""
    mem = _memory()
    start = walk.Start(pid=4242, levels=4, pgd_phys=TOP, user_pgd_phys=None, pat=PAT_MSR)

    def read(phys):
        return mem.get(phys, 0)

    def process_walk(pid, vaddr):
        w = walk.walk_tables(read, TOP, vaddr, 4, PAT_MSR)
        w.start, w.pid = start, pid
        return w

    frames = {BUF: BUF_FRAME >> 12, HUGE: HUGE_FRAME >> 12}
    monkeypatch.setattr(
        probes, "lab_process", lambda n, keys=("pid",): {"pid": 4242, "buffer": BUF, "huge": HUGE, "text": "x"}
    )
    monkeypatch.setattr(probes, "process_walk", process_walk)
    monkeypatch.setattr(probes, "present_pfn", lambda pid, vaddr: (frames[vaddr], 1 << 63 | frames[vaddr]))
    monkeypatch.setattr(probes, "sysfs_number", lambda *parts: MOD_PHYS)
    monkeypatch.setattr(probes, "module_buffer_virt", lambda: MOD_VIRT)
    monkeypatch.setattr(probes, "kallsyms_address", lambda name: POB_SYMBOL)
    monkeypatch.setattr(probes, "kernel_walk", lambda vaddr, phys: walk.walk_tables(read, TOP, vaddr, 4, PAT_MSR))
    return mem


def _grade(tmp_path, **changes):
    values = {k: v for k, v in {**RIGHT, **changes}.items() if v is not None}
    path = tmp_path / "lab9.txt"
    path.write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    report = grading.check(9, str(path))
    return report, {i.key: (i.status, i.detail) for i in report.items}


def test_the_right_walk_passes(machine, tmp_path):
    report, got = _grade(tmp_path)
    assert report.passed, got
    assert "byte 0 of IA32_PAT" in got["memory_type"][1]
    assert "pmd level" in got["direct_page_size"][1]


def test_accessed_and_dirty_may_differ_the_rest_may_not(machine, tmp_path):
    _report, got = _grade(tmp_path, pte_entry=hex(PTE & ~0x60), huge_pmd_entry=hex(HUGE_PMD & ~0x20))
    assert got["pte_entry"][0] == got["huge_pmd_entry"][0] == "OK"
    _report, got = _grade(tmp_path, pte_entry=hex(PTE & ~0x2))  # RW clear: another entry
    assert got["pte_entry"][0] == "WRONG"


@pytest.mark.parametrize(
    "key,answer,words",
    [
        ("pid", "1", "not the lab 9 process"),
        ("top", hex(TOP >> 12), "frame number"),
        ("indices", "359 418 72 254", "bottom level first"),
        ("indices", "254 72 418", "4-level paging"),
        ("indices", "254 73 418 359", "the pud index is wrong -- it is bits 30-38"),
        ("indices", "254, seventy-two", "top level first"),
        ("pte_addr", hex(PT), "start of the page table; add 8 x the PTE index"),
        ("pte_addr", hex(PT + 359), "an entry is 8 bytes"),
        ("pte_entry", hex(PTE & 0xFFFFFFFF), "only the low 32 bits"),
        ("pte_entry", hex(BUF_FRAME), "only the frame"),
        ("pte_entry", hex(PT | TABLE), "not the buffer's PTE"),
        ("buffer_phys", hex(BUF_FRAME), "start of the page; add the offset"),
        ("buffer_phys", hex(BUF_FRAME >> 12), "that is the PFN"),
        ("buffer_phys", hex(BUF), "virtual address"),
        ("pat_index", "6", "PAT (bit 7) x 4"),
        ("memory_type", "UC", "byte 0 of IA32_PAT names"),
        ("huge_pmd_entry", hex(HUGE_PMD & ~PS), "bit 7 (PS) clear"),
        ("huge_phys", hex(HUGE_PMD & ~0xFFF), "mask bits 21-51"),
        ("direct_base", hex(POB_SYMBOL), "where the variable lives"),
        ("direct_base", hex(walk.PAGE_OFFSET_L4), "without KASLR"),
        ("direct_vaddr", hex(MOD_PHYS), "physical address; add direct_base"),
        ("direct_page_size", "512", "counts 4 KiB pages"),
        ("direct_page_size", "4096", "not the size of the page that maps the buffer"),
    ],
)
def test_each_kind_of_wrong_answer_fails_and_says_why(machine, tmp_path, key, answer, words):
    report, got = _grade(tmp_path, **{key: answer})
    assert not report.passed
    status, detail = got[key]
    assert status == "WRONG" and words in detail, detail
    assert all(s == "OK" for k, (s, _d) in got.items() if k != key), got


def test_memory_type_follows_the_pat_bits_and_the_msr(machine, tmp_path):
    machine[PT + 8 * 359] = PTE | 1 << 4 | 1 << 3  # PCD and PWT: index 3, byte 3 of the MSR is 0 (UC)
    pte = hex(PTE | 0x18)
    report, got = _grade(tmp_path, pte_entry=pte, pat_index="3", memory_type="uc")
    assert report.passed, got
    _report, got = _grade(tmp_path, pte_entry=pte, pat_index="3", memory_type="UC-")
    assert got["memory_type"][0] == "WRONG"


def test_a_missing_value_is_missing(machine, tmp_path):
    _report, got = _grade(tmp_path, huge_phys=None, indices="")
    assert got["huge_phys"][0] == got["indices"][0] == "MISSING"
    assert got["huge_pmd_entry"][0] == "OK"


def test_no_huge_page_is_an_error_that_says_how_to_get_one(machine, tmp_path):
    del machine[PMD + 8 * 419]  # the huge region is not mapped by a 2 MiB page any more
    report, got = _grade(tmp_path)
    assert got["huge_pmd_entry"][0] == got["huge_phys"][0] == "ERROR"
    assert "transparent_hugepage" in got["huge_phys"][1]
    assert got["buffer_phys"][0] == got["direct_vaddr"][0] == "OK"
    assert not report.passed


def test_kpti_user_half_and_the_kernel_half(machine, tmp_path, monkeypatch):
    """With KPTI, user mode walks from the user half: mm->pgd is a recognised slip."""
    real = probes.process_walk

    def with_kpti(pid, vaddr):
        w = real(pid, vaddr)
        w.start = walk.Start(pid=pid, levels=4, pgd_phys=TOP - 0x1000, user_pgd_phys=TOP, pat=PAT_MSR)
        return w

    monkeypatch.setattr(probes, "process_walk", with_kpti)
    _report, got = _grade(tmp_path, top=hex(TOP - 0x1000))
    assert got["top"][0] == "WRONG" and "user half" in got["top"][1]
