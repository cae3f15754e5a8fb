"""Lab 8's grader: one page of the lab 8 process sent to swap and brought back, judged by the raw
pagemap entries the process recorded of itself at each step, /proc/swaps, and the swap device's
bytes at the offset the entry names (read by the checker itself)."""

from __future__ import annotations

import os

from pyphys.labs import probes
from pyphys.labs.grading import pfn_slips
from pyphys.labs.probes import PAGE_SIZE, PM_PFN_MASK, PM_PRESENT, PM_SWAP, PM_SWAP_TYPE_BITS, ProbeError


def grade(g) -> None:
    st = probes.lab_process(8)
    entries = st.get("entries", {})
    g.expect("pid", int(st["pid"]), wrong="is not the lab 8 process (it prints its pid)")
    g.expect("vaddr", int(st["vaddr"]), wrong="is not the page's address (the process prints it)", show=hex)
    start = entries.get("start", 0)
    with g.needs("pfn_before"):
        if not start & PM_PRESENT:
            raise ProbeError("the process's page was not present when it started")
        pfn = start & PM_PFN_MASK
        g.expect("pfn_before", pfn, "(pagemap before the page-out)", "is not the page's frame", slips=pfn_slips(pfn))
    _swapped(g, st, entries.get("pageout"))
    after = entries.get("swapin")
    with g.needs("pfn_after"):
        if after is None or not after & PM_PRESENT:
            raise ProbeError("the process has not read its page back yet: kill -USR2 PID, then pagemap again")
        pfn = after & PM_PFN_MASK
        same = "the same frame as before" if pfn == start & PM_PFN_MASK else "a different frame from before"
        g.expect("pfn_after", pfn, f"({same}: the swap-in chose it)", "is not the frame after the swap-in")


def _swapped(g, st: dict, entry: int | None) -> None:
    keys = ("swap_device", "swap_type", "swap_offset", "swap_text")
    with g.needs(*keys):
        if entry is None:
            raise ProbeError("the page has not been paged out yet: swapon, then kill -USR1 PID")
        if not entry & PM_SWAP:
            raise ProbeError(
                "after MADV_PAGEOUT the page was not in swap (no swap area on, or reclaim skipped a page "
                "it had not queued yet): swapon if needed, then kill -USR1 PID again"
            )
        frame = entry & PM_PFN_MASK
        swap_type, offset = frame & ((1 << PM_SWAP_TYPE_BITS) - 1), frame >> PM_SWAP_TYPE_BITS
        areas = probes.swap_areas()
        device = g.text("swap_device")
        if device is not None:
            real = os.path.realpath(device)
            truth = areas[swap_type] if swap_type < len(areas) else None
            if truth is not None and os.path.realpath(truth) == real:
                g.ok("swap_device", f"{device} is swap area {swap_type} in /proc/swaps")
            else:
                g.wrong("swap_device", f"{device} is not the swap area of type {swap_type} (/proc/swaps lists them)")
        g.expect("swap_type", swap_type, "(pagemap bits 0-4)", "is not the entry's swap type (bits 0-4)")
        g.expect(
            "swap_offset",
            offset,
            "(pagemap bits 5-54, in pages)",
            "is not the entry's swap offset (bits 5-54, in pages from the start of the swap area)",
            show=hex,
            slips={offset * PAGE_SIZE: "that is in bytes; the entry counts pages"},
        )
        if swap_type >= len(areas):
            raise ProbeError(f"swap area {swap_type} is no longer in /proc/swaps (swapoff?)")
        text = st["text"].encode()
        on_disk = probes.file_bytes(areas[swap_type], len(text), offset * PAGE_SIZE)
        if on_disk != text:
            raise ProbeError(f"{areas[swap_type]} at page {offset:#x} holds {on_disk[:40]!r}, not the process's text")
        g.expect(
            "swap_text",
            st["text"].strip(),
            f"is on {areas[swap_type]} at byte {offset * PAGE_SIZE:#x}",
            "is not the text at that offset of the swap device: dd if=DEVICE bs=4096 skip=OFFSET count=1",
            normalize=str.strip,
        )
