"""Lab 6's grader: the dumps of the module's buffer page, judged by a fresh /dev/mem read of it
(and its SHA-256), the LiME v1 header layout as LiME documents it, and a repeat of the O_DIRECT
write from a /dev/mem mapping."""

from __future__ import annotations

import hashlib
import os

from pyphys.errors import PyphysError
from pyphys.labs import probes
from pyphys.labs.grading import phys_slips
from pyphys.labs.probes import LIME_HEADER, ProbeError


def grade(g) -> None:
    phys, content = probes.module_buffer()
    if probes.dev_read(phys, len(content)) != content:
        raise ProbeError("a /dev/mem read of the buffer differs from its sysfs content (report this)")
    n = len(content)
    g.expect("buffer_phys", phys, wrong="is not the buffer's address", show=hex, slips=phys_slips(phys))

    path = g.path("raw_file")
    if path:
        data = probes.file_bytes(path, n + 1)
        if data == content:
            g.ok("raw_file", f"{n} bytes, equal to the buffer read afresh from /dev/mem")
        elif len(data) != n:
            size = os.path.getsize(path)
            g.wrong(
                "raw_file",
                f"it holds {size} bytes; dump exactly the buffer's page: `pyphys dump $BUF+{n} -f raw -o FILE`",
            )
        else:
            g.wrong("raw_file", "its bytes are not the buffer's (sha256 differs): dump BUFFER_PHYS, not another page")
    g.expect(
        "raw_sha256",
        hashlib.sha256(content).hexdigest(),
        "matches a fresh /dev/mem read of the buffer",
        "not the SHA-256 of the buffer's page: `sha256sum RAW_FILE` or its .sha256 sidecar",
        show=lambda v: "",
        normalize=lambda s: (s.strip().lower().split() or [""])[0],
    )

    path = g.path("padded_file")
    if path and probes.file_bytes(path, n, phys) == content:
        st = os.stat(path)
        sparse = "; sparse: the holes take no disk space" if st.st_blocks * 512 < st.st_size else ""
        g.ok("padded_file", f"holds the buffer at offset {phys:#x}{sparse}")
    elif path:
        g.wrong("padded_file", f"no buffer at file offset {phys:#x}: padded keeps file offset = physical address")
    g.expect(
        "padded_offset",
        phys,
        "= buffer_phys",
        "-- in the padded format the file offset of a byte is its physical address",
        show=hex,
    )

    lime_off = _lime(g, phys, content)
    with g.needs("lime_data_offset"):
        if lime_off is None:
            raise ProbeError("needs a valid lime_file")
        g.expect(
            "lime_data_offset",
            lime_off,
            f"(a {LIME_HEADER.size}-byte header precedes the data)",
            "-- how long is a LiME v1 header? (`hexdump -C -n 64 LIME_FILE`)",
        )

    path = g.path("direct_file")
    if path:
        if probes.file_bytes(path, n + 1) == content:
            g.ok("direct_file", "identical to the buffer")
        else:
            g.wrong("direct_file", "not the buffer's page: `pyphys dump $BUF+4096 -f raw --direct -o $LABDIR/...`")

    if g.text("efault_errno") is None:
        return
    with g.needs("efault_errno"):
        where = os.environ.get("LABDIR") or (os.path.dirname(path) if path else None)
        if not where or not os.path.isdir(where):
            raise ProbeError("no $LABDIR to repeat the experiment in: start the VM with `pyphys lab start 6`")
        g.expect(
            "efault_errno",
            probes.odirect_write_errno(phys, where),
            ": O_DIRECT must pin the source pages, and a /dev/mem mapping (VM_IO|VM_PFNMAP) has no pages to "
            "pin (mm/gup.c check_vma_flags)",
            "is not what write(2) from the mapping to an O_DIRECT file returns here: "
            "run `python3 docs/labs/lab6_efault.py $LABDIR`",
            show=str,
            normalize=lambda s: probes.errno_name(s) or s,
        )


def _lime(g, phys: int, content: bytes) -> int | None:
    """Grade lime_file; the file offset of the buffer's first byte in it, when it holds the buffer."""
    path = g.path("lime_file")
    if not path:
        return None
    try:
        ranges = probes.lime_ranges(path)
    except PyphysError as err:
        g.wrong("lime_file", str(err))
        return None
    hit = [r for r in ranges if r[0] <= phys and phys + len(content) - 1 <= r[1]]
    if not hit:
        g.wrong("lime_file", "no LiME range covers the buffer: " + ", ".join(f"{s:#x}-{e:#x}" for s, e, _ in ranges))
        return None
    s, e, data_at = hit[0]
    off = data_at + (phys - s)
    if probes.file_bytes(path, len(content), off) != content:
        g.wrong("lime_file", "the header is right but the data after it is not the buffer's")
        return off
    g.ok("lime_file", f"LiME v1, range {s:#x}-{e:#x}, the buffer's bytes after the header")
    return off
