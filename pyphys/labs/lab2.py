"""Lab 2's grader: the module's buffer, judged by its sysfs files (the kernel's own view, with
virt_to_phys), `busybox devmem` and a pread(2) of /dev/mem."""

from __future__ import annotations

import struct

from pyphys.labs import probes
from pyphys.labs.grading import phys_slips
from pyphys.labs.probes import ProbeError

PATTERN = 0x50590000  # kmod/pyphys.c fills word i of the buffer with 0x50590000 | i at load


def _word(data: bytes, off: int) -> int:
    return struct.unpack_from("<I", data, off)[0]


def grade(g) -> None:
    phys, content = probes.module_buffer()
    g.expect(
        "buffer_phys",
        phys,
        "(the module's sysfs)",
        "is not the buffer's address: `cat /sys/kernel/pyphys/buffer_phys`",
        show=hex,
        slips=phys_slips(phys),
    )

    with g.needs("word7_value"):
        truth, kernel = probes.busybox_devmem(phys + 0x1C, 32), _word(content, 0x1C)
        if truth != kernel:
            raise ProbeError(
                f"busybox devmem reads {truth:#x} at buffer_phys + 0x1c, the kernel {kernel:#x} (report this)"
            )
        swapped = int.from_bytes(truth.to_bytes(4, "big"), "little")
        g.expect(
            "word7_value",
            truth,
            "(busybox devmem and the kernel agree)",
            "is not the word at buffer_phys + 0x1c: `pyphys devmem $((BUF + 0x1c)) 32`",
            show=hex,
            slips={
                _word(content, 0): "that is word 0; word 7 is 0x1c bytes further",
                swapped: "its bytes are reversed: x86 is little-endian",
            },
        )

    off = g.number("poke_offset")
    if off is not None:
        if off % 4 or not 0 <= off <= len(content) - 4:
            g.wrong("poke_offset", f"{off:#x} is not a 4-byte aligned offset inside the {len(content)}-byte buffer")
        elif _word(content, off) == PATTERN | (off // 4):
            g.wrong("poke_offset", f"{off:#x}: nothing was written there")
            g.wrong(
                "poke_value",
                f"the kernel still sees the load-time pattern {PATTERN | (off // 4):#x} at offset {off:#x}: write "
                "your value there through /dev/mem (`pyphys devmem $((BUF + OFF)) 32 VALUE`)",
            )
        else:
            g.ok("poke_offset", f"{off:#x} was written")
            g.expect(
                "poke_value",
                _word(content, off),
                ": the kernel reads it in its buffer (sysfs)",
                f"is not what the kernel now reads at offset {off:#x}; "
                "`hexdump -C -s OFF -n 4 /sys/kernel/pyphys/buffer`",
                show=hex,
            )

    off, msg = g.number("message_offset"), g.text("message")
    if off is None or msg is None:
        return
    data = msg.encode("utf-8")
    if not 0 <= off < len(content) or len(data) < 4:
        g.wrong("message_offset", f"{off:#x}: the message must lie inside the {len(content)}-byte buffer")
        g.wrong("message", "write a message of at least 4 characters inside the buffer")
        return
    with g.needs("message"):
        seen = probes.dev_read(phys + off, len(content) - off)
        kernel = content[off:]
        if kernel[: len(data)] != data:
            g.wrong(
                "message",
                f"the buffer does not hold {msg[:30]!r} at offset {off:#x}: write it through sysfs "
                "(dd of=/sys/kernel/pyphys/buffer bs=1 seek=OFF conv=notrunc), then read it through /dev/mem",
            )
            return
        if seen != kernel:
            raise ProbeError("the kernel holds it but a /dev/mem read disagrees (report this)")
        g.ok("message_offset", f"{off:#x}")
        if kernel.split(b"\0", 1)[0] != data:
            g.wrong(
                "message",
                "your text is only the beginning of what is there: no NUL byte ends it, so the "
                "bytes after it read as part of it (write 'TEXT\\0')",
            )
        else:
            g.ok("message", "the kernel's buffer holds it, and /dev/mem reads it at buffer_phys + offset")
