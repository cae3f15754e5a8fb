"""Lab 9's grader: a page-table walk by hand, judged by the checker's own walk of the same
addresses (the module's ioctl for the start, each entry read again), which it accepts only when
it ends where the raw pagemap entry (user pages) or the module's sysfs buffer_phys (the direct
map) says; the memory type from the IA32_PAT value the module read."""

from __future__ import annotations

import re

from pyphys.labs import probes
from pyphys.labs.grading import phys_slips, slips_of
from pyphys.labs.probes import PAGE_SIZE, ProbeError
from pyphys.layouts import pagetable as L
from pyphys.walk import PAGE_OFFSET_L4

#: accessed and dirty: the CPU sets them on its own, so an entry read earlier may lack them
AD = (1 << L.A) | (1 << L.D)


def grade(g) -> None:
    st = probes.lab_process(9)
    pid, buf, huge = int(st["pid"]), int(st["buffer"]), int(st["huge"])
    g.expect("pid", pid, wrong="is not the lab 9 process (its first line of output names it)")
    with g.needs("top", "indices", "pte_addr", "pte_entry", "buffer_phys", "pat_index", "memory_type"):
        w = probes.process_walk(pid, buf)
        _walk(g, w, buf)
        pfn, _ = probes.present_pfn(pid, buf)
        phys = pfn * PAGE_SIZE + buf % PAGE_SIZE
        g.expect(
            "buffer_phys",
            phys,
            "(pagemap agrees)",
            "is not where the buffer lives: the PTE's frame (bits 12-51) plus the address's low 12 bits",
            show=hex,
            slips=phys_slips(phys, buf),
        )
        _memory_type(g, w)
    with g.needs("huge_pmd_entry", "huge_phys"):
        _huge(g, pid, huge)
    with g.needs("direct_base", "direct_vaddr", "direct_page_size"):
        _direct(g)


def _walk(g, w, vaddr: int) -> None:
    s = w.start
    kpti = {s.pgd_phys: "that is mm->pgd, the kernel's half; with KPTI on, user mode walks from the user half"}
    g.expect(
        "top",
        w.top,
        f"(the table the CPU starts in: CR3 for pid {w.pid} in user mode)",
        "is not the process's top table: `top` in `pyphys walk PID ADDRESS --json`",
        show=hex,
        slips={**(kpti if s.user_pgd_phys is not None else {}), w.top >> L.PAGE_SHIFT: "that is a frame number"},
    )
    _indices(g, vaddr, w.levels)
    pte = w.steps[-1]
    if pte.level != "pte":
        raise ProbeError(f"the buffer is mapped by a {pte.level} entry, not a PTE: restart the lab 9 process")
    table = pte.entry_phys - 8 * pte.index
    g.expect(
        "pte_addr",
        pte.entry_phys,
        f"(the PTE: table {table:#x} + 8 x {pte.index})",
        "is not where the buffer's PTE lies: the PMD entry's frame + 8 x the PTE index",
        show=hex,
        slips={
            table: "that is the start of the page table; add 8 x the PTE index",
            table + pte.index: "an entry is 8 bytes: add 8 x the index, not the index",
        },
    )
    _entry(g, "pte_entry", pte.raw, "the buffer's PTE")


def _indices(g, vaddr: int, levels: int) -> None:
    text = g.text("indices")
    if text is None:
        return
    table = L.LEVELS_5 if levels == 5 else L.LEVELS_4
    names = [name for name, _shift in table]
    truth = [(vaddr >> shift) & (L.ENTRIES - 1) for _name, shift in table]
    try:
        got = [int(x, 0) for x in re.split(r"[\s/,;]+", text.strip()) if x]
    except ValueError:
        g.wrong("indices", f"{text!r}: write {levels} numbers, top level first, separated by spaces")
        return
    if len(got) != levels:
        g.wrong("indices", f"{len(got)} numbers: this kernel uses {levels}-level paging ({', '.join(names)})")
    elif got == truth:
        g.ok("indices", f"{' '.join(map(str, got))} ({', '.join(names)}: 9 bits each from bit 12)")
    elif got == truth[::-1]:
        g.wrong("indices", f"{' '.join(map(str, got))} -- that is bottom level first; the top level comes first")
    else:
        bad = next(i for i, (a, b) in enumerate(zip(got, truth)) if a != b)
        shift = table[bad][1]
        g.wrong(
            "indices",
            f"{' '.join(map(str, got))}: the {names[bad]} index is wrong -- it is bits {shift}-{shift + 8}: "
            f"(ADDRESS >> {shift}) & 511",
        )


def _entry(g, key: str, raw: int, what: str, huge: bool = False) -> int | None:
    """Grade a raw 64-bit entry the student read; accessed and dirty may differ."""
    v = g.number(key)
    if v is None:
        return None
    if (v ^ raw) & ~AD == 0:
        g.ok(key, f"{v:#x} ({what}; frame {raw & L.ADDR_MASK:#x})")
    elif huge and not v >> L.PS & 1:
        g.wrong(key, f"{v:#x} has bit 7 (PS) clear: that entry points to a page table, not to a huge page")
    elif v == raw & L.ADDR_MASK:
        g.wrong(key, f"{v:#x} is only the frame: write the whole 64-bit entry as devmem read it")
    elif v == raw & 0xFFFFFFFF:
        g.wrong(key, f"{v:#x} is only the low 32 bits: read 64 (`pyphys devmem ADDR 64`)")
    elif v == raw >> 32:
        g.wrong(key, f"{v:#x} is only the high 32 bits: read 64 (`pyphys devmem ADDR 64`)")
    else:
        g.wrong(key, f"{v:#x} is not {what}: read the 8 bytes at the entry's address")
    return v


def _memory_type(g, w) -> None:
    g.expect(
        "pat_index",
        w.pat_index,
        "(PAT<<2 | PCD<<1 | PWT of the PTE: bits 7, 4, 3)",
        "is not the PTE's PAT index: PAT (bit 7) x 4 + PCD (bit 4) x 2 + PWT (bit 3)",
    )
    pat = w.start.pat
    if pat is None:
        raise ProbeError("the module could not read the IA32_PAT MSR: no memory type to compare with")
    byte = pat >> (8 * w.pat_index) & 0xFF
    g.expect(
        "memory_type",
        w.memory_type,
        f"(byte {w.pat_index} of IA32_PAT {pat:#018x} is {byte})",
        f"is not the type byte {w.pat_index} of IA32_PAT names (0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-)",
        show=str,
        normalize=lambda t: str(t).strip().upper(),
    )


def _huge(g, pid: int, huge: int) -> None:
    w = probes.process_walk(pid, huge)
    pmd = w.steps[-1]
    if pmd.level != "pmd" or w.page_size != 2 << 20:
        raise ProbeError(
            f"no 2 MiB page maps the huge region (the walk ends at {pmd.level}): is THP on? "
            "`cat /sys/kernel/mm/transparent_hugepage/enabled`, then restart the lab 9 process"
        )
    _entry(g, "huge_pmd_entry", pmd.raw, "the huge region's PMD entry, PS set", huge=True)
    phys = w.phys_addr
    g.expect(
        "huge_phys",
        phys,
        "(pagemap agrees: a 2 MiB-aligned frame)",
        "is not where the huge region starts: the PMD entry's bits 21-51, plus the address's low 21 bits",
        show=hex,
        slips={
            **phys_slips(phys, huge),
            pmd.raw & ~0xFFF: "that still holds the entry's high flag bits (XD, pkey): mask bits 21-51",
        },
    )


def _direct(g) -> None:
    phys = probes.sysfs_number("kernel", "pyphys", "buffer_phys")
    virt = probes.module_buffer_virt()
    base = virt - phys  # the direct map: virtual = page_offset_base + physical
    g.expect(
        "direct_base",
        base,
        "(the module's buffer pointer minus its virt_to_phys)",
        "is not where the direct map starts: `pyphys devmem sym:page_offset_base 64`",
        show=hex,
        slips=slips_of(
            (probes.kallsyms_address("page_offset_base"), "that is where the variable lives; read the 8 bytes there"),
            (PAGE_OFFSET_L4, "that is the base without KASLR: this kernel randomizes it, read page_offset_base"),
            (phys, "that is the buffer's physical address; the base is the value of page_offset_base"),
        ),
    )
    g.expect(
        "direct_vaddr",
        virt,
        "(the module's pyphys_buffer pointer)",
        "is not the buffer's direct-map address: direct_base + buffer_phys",
        show=hex,
        slips={phys: "that is the physical address; add direct_base"},
    )
    w = probes.kernel_walk(virt, phys)
    size = w.page_size
    where = w.steps[-1].level
    g.expect(
        "direct_page_size",
        size,
        f"bytes: the walk ends at the {where} level (PS set)" if where != "pte" else "bytes: a 4 KiB page",
        "is not the size of the page that maps the buffer in the direct map: `pyphys walk kernel DIRECT_VADDR`",
        slips=slips_of((size // PAGE_SIZE, "that counts 4 KiB pages; give bytes"), (size >> 20 or None, "give bytes")),
    )
