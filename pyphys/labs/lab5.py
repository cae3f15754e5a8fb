"""Lab 5's grader: edu's and ivshmem's registers without a driver, judged by sysfs (IDs, BARs),
the devices themselves through sysfs resourceN mmaps (edu answers as QEMU docs/specs/edu.rst
documents), and the text the host left in ivshmem's backing file."""

from __future__ import annotations

from pyphys.labs import probes
from pyphys.labs.probes import EDU_ID, EDU_LIVENESS, ProbeError


def grade(g) -> None:
    edu, ivs = probes.pci_find(0x1234, 0x11E8), probes.pci_find(0x1AF4, 0x1110)
    if len(edu) != 1 or len(ivs) != 1:
        raise ProbeError(
            f"expected one edu and one ivshmem device, found {len(edu)} and {len(ivs)}: "
            "start the VM with `pyphys lab start 5`"
        )
    edu, ivs = edu[0], ivs[0]
    g.expect("edu_slot", edu, wrong="is not edu (1234:11e8): `pyphys pci list`", show=str, normalize=probes.pci_slot)
    g.expect("ivshmem_slot", ivs, wrong="is not ivshmem (1af4:1110)", show=str, normalize=probes.pci_slot)

    edu_keys = ("edu_id", "liveness_in", "liveness_out", "factorial_in", "factorial_out")
    with g.needs(*edu_keys), probes.BarMap(edu, 0, writable=True) as bar0:
        g.expect(
            "edu_id",
            bar0.read32(EDU_ID),
            "(BAR0 0x00, edu.rst: 0xRRrr00edu)",
            "is not the identification register: `pyphys pci read 1234:11e8 0 0`",
            show=hex,
        )
        lin = g.number("liveness_in")
        if lin is not None:
            # edu.rst: "liveness check register: value is bitwise NOT of the written one" -- ask the device
            bar0.write32(EDU_LIVENESS, lin & 0xFFFFFFFF)
            g.ok("liveness_in", hex(lin))
            g.expect(
                "liveness_out",
                bar0.read32(EDU_LIVENESS),
                "(the device returns the bitwise NOT)",
                f"is not what edu answers for {lin:#x}: write it to BAR0 0x04, then read 0x04",
                show=hex,
            )
        n = g.number("factorial_in")
        if n is not None and not 1 <= n <= 12:
            g.wrong("factorial_in", f"{n}: pick n in 1..12 (13! does not fit the 32-bit register)")
        elif n is not None:
            g.ok("factorial_in", str(n))
            g.expect(
                "factorial_out",
                probes.edu_factorial(bar0, n),
                f"= {n}! (the device computed it)",
                f"is not what edu computes for {n}: write n to BAR0 0x08, wait for status bit 0 (0x20) to clear, "
                "read 0x08",
            )

    bar2_keys = ("ivshmem_bar2_size", "host_message", "guest_message_offset", "guest_message")
    with g.needs(*bar2_keys):
        _start, size = probes.pci_bar(ivs, 2)
        with probes.BarMap(ivs, 2) as bar2:
            _bar2(g, bar2, size)


def _bar2(g, bar2: probes.BarMap, size: int) -> None:
    g.expect("ivshmem_bar2_size", size, "(sysfs resource)", "is not BAR2's size: `pyphys pci list 1af4:1110`", show=hex)
    host = bar2.read(0, 256).split(b"\0", 1)[0].decode("utf-8", "replace")
    with g.needs("host_message"):
        if not host:
            raise ProbeError(
                "BAR2 starts with a zero byte: the host left no message (start the VM with "
                "`pyphys lab start 5`, which writes one into the host file)"
            )
        g.expect(
            "host_message",
            host,
            "is what the host file holds at offset 0",
            "is not the text at BAR2 offset 0: `pyphys pci read 1af4:1110 2 0 -l 64`",
            normalize=str.strip,
        )

    off, msg = g.number("guest_message_offset"), g.text("guest_message")
    if off is None or msg is None:
        return
    data = msg.encode("utf-8")
    if not data or not 0 <= off <= size - len(data):
        g.wrong("guest_message_offset", f"{off:#x} with a {len(data)}-byte text is outside BAR2")
    elif off < len(host.encode()) + 1:
        g.wrong("guest_message_offset", f"{off:#x} overwrites the host's message: use 0x100")
    elif bar2.read(off, len(data)) != data:
        g.ok("guest_message_offset", f"{off:#x}")
        g.wrong(
            "guest_message",
            f"BAR2 does not hold {msg!r} at {off:#x}: "
            "`pyphys pci write 1af4:1110 2 OFF --string TEXT` (quotes keep \\r)",
        )
    else:
        g.ok("guest_message_offset", f"{off:#x}")
        if bar2.read(off, min(size - off, 4096)).split(b"\0", 1)[0] == data:
            g.ok("guest_message", f"{msg!r} is in BAR2, i.e. in the host's file")
        else:
            g.wrong(
                "guest_message",
                "your text is only the beginning of the text at that offset (up to the first NUL byte): "
                "write all of it",
            )
