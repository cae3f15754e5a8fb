"""Lab 1's grader: the lab 1 process's buffer, huge page, shared page and copy-on-write page,
judged by its raw pagemap entries, kpageflags, /proc/PID/mem and `busybox devmem`."""

from __future__ import annotations

import struct

from pyphys.labs import probes
from pyphys.labs.grading import pfn_slips, phys_slips
from pyphys.labs.probes import PAGE_SIZE, PM_EXCLUSIVE, ProbeError


def grade(g) -> None:
    st = probes.lab_process(1, ("pid", "child_pid"))
    pid, child = int(st["pid"]), int(st["child_pid"])
    g.expect("pid", pid, wrong="is not the lab 1 process (its first line of output names it)")
    g.expect("child_pid", child, wrong="is not its child (`pgrep -P PID`, or the lab 1 process's output)")

    # the buffer: pagemap -> PFN -> physical address, and /dev/mem at that address holds its text
    buf = int(st["buffer"])
    with g.needs("buffer_pfn", "buffer_phys", "buffer_text"):
        pfn, _ = probes.present_pfn(pid, buf)
        phys = pfn * PAGE_SIZE + buf % PAGE_SIZE
        text = probes.proc_mem(pid, buf, 64).split(b"\0", 1)[0]
        if probes.busybox_devmem(phys, 32) != struct.unpack("<I", text[:4].ljust(4, b"\0"))[0]:
            raise ProbeError(f"busybox devmem at {phys:#x} does not show the buffer's text: the page moved?")
        where = f"`pyphys pagemap {pid} {buf:#x}`"
        g.expect(
            "buffer_pfn",
            pfn,
            "(pagemap)",
            f"is not the frame backing the buffer; {where}",
            show=hex,
            slips=pfn_slips(pfn, buf),
        )
        g.expect(
            "buffer_phys",
            phys,
            "(busybox devmem there reads the buffer's text)",
            "is not where the buffer lives",
            show=hex,
            slips=phys_slips(phys, buf),
        )
        g.expect(
            "buffer_text",
            text.decode("utf-8", "replace").strip(),
            "matches what the process wrote",
            "is not what the buffer holds: `pyphys devmem BUFFER_PHYS --range 64`, read the text column",
            normalize=str.strip,
        )

    # the huge page: a THP is one compound page, 512 frames, its head 2 MiB-aligned
    huge = int(st["huge"])
    with g.needs("huge_pfn", "huge_pages"):
        hpfn, _ = probes.present_pfn(pid, huge)
        span = probes.thp_frames(hpfn)
        g.expect(
            "huge_pfn",
            hpfn,
            ", a THP head (kpageflags)",
            f"is not the frame backing HUGE; `pyphys pagemap {pid} {huge:#x}`",
            show=hex,
            slips=pfn_slips(hpfn, huge),
        )
        g.expect(
            "huge_pages",
            span,
            "frames in one compound page",
            "frames is not the huge page's length; `pyphys pagemap` prints it as 'huge page: THP, ... pages'",
            slips={span * PAGE_SIZE: f"that is the size in bytes; the question asks for frames of {PAGE_SIZE} bytes"},
        )

    # fork: the shared page has one frame mapped twice, not exclusive
    shared = int(st["shared"])
    with g.needs("shared_pfn", "shared_exclusive"):
        spfn, se = probes.present_pfn(pid, shared)
        if probes.present_pfn(child, shared)[0] != spfn:
            raise ProbeError(
                "parent and child no longer share the shared page (was it written?): restart the lab 1 process"
            )
        g.expect(
            "shared_pfn",
            spfn,
            "in both processes",
            "is not the shared frame: look it up in both pids",
            show=hex,
            slips=pfn_slips(spfn, shared),
        )
        g.expect(
            "shared_exclusive",
            bool(se & PM_EXCLUSIVE),
            "(pagemap bit 56)",
            "-- pagemap bit 56 says otherwise: two processes map this frame",
        )

    # copy-on-write: after the child's write, the child has a new frame, the parent keeps the old
    cow = int(st["cow"])
    with g.needs("cow_pfn_before", "cow_child_pfn_after", "cow_exclusive_after"):
        ppfn, _ = probes.present_pfn(pid, cow)
        cpfn, ce = probes.present_pfn(child, cow)
        written = ppfn != cpfn
        g.expect(
            "cow_pfn_before",
            ppfn,
            "(the parent still has it)",
            "is not the frame both processes shared",
            show=hex,
            slips={
                **({cpfn: "that is the child's NEW frame; before the write both had the parent's"} if written else {}),
                **pfn_slips(ppfn, cow),
            },
        )
        if not written:
            g.wrong(
                "cow_child_pfn_after", f"the child has not written yet (both still on one frame): `kill -USR1 {child}`"
            )
            if g.text("cow_exclusive_after") is not None:
                g.wrong("cow_exclusive_after", "nothing to compare before the child writes")
            return
        g.expect(
            "cow_child_pfn_after",
            cpfn,
            ", a new frame: copy-on-write",
            "is not the child's frame",
            show=hex,
            slips={
                ppfn: f"that is the parent's frame; look the address up in the CHILD ({child}) after the write",
                **pfn_slips(cpfn, cow),
            },
        )
        g.expect(
            "cow_exclusive_after",
            bool(ce & PM_EXCLUSIVE),
            "(pagemap bit 56)",
            "-- pagemap bit 56 of the child's entry says otherwise",
        )
