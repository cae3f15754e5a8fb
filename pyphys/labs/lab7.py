"""Lab 7's grader: edu's DMA engine copies the module's buffer into the device and back.

Ground truth: the COMMAND register from sysfs config, the module's buffer from its sysfs file,
the device's own buffer as the device itself copies it out (the checker runs one DMA of its own
into the last 256 bytes of the module's buffer and puts those bytes back), and the journal.
"""

from __future__ import annotations

from pyphys.labs import probes
from pyphys.labs.grading import phys_slips
from pyphys.labs.probes import ProbeError

SCRATCH = 256  # the checker's own DMA lands in the buffer's last SCRATCH bytes
MASTER = 0x4  # PCI COMMAND bit 2: bus master enable


def grade(g) -> None:
    edu = probes.pci_find(0x1234, 0x11E8)
    if len(edu) != 1:
        raise ProbeError(f"expected one edu device, found {len(edu)}: start the VM with `pyphys lab start 7`")
    edu = edu[0]
    g.expect("edu_slot", edu, wrong="is not edu (1234:11e8): `pyphys pci list`", show=str, normalize=probes.pci_slot)
    phys, buf = probes.module_buffer()
    g.expect(
        "buffer_phys",
        phys,
        "(the module's sysfs buffer_phys)",
        "is not the buffer's physical address: `cat /sys/kernel/pyphys/buffer_phys`",
        show=hex,
        slips=phys_slips(phys),
    )
    _command(g, probes.pci_command(edu))
    _copies(g, edu, phys, buf)


def _command(g, cmd: int) -> None:
    before = g.number("command_before")
    if before is not None:
        if before & MASTER:
            g.wrong("command_before", f"{before:#06x} has bit 2 set: that is the value after bus mastering was on")
        elif before | MASTER != cmd | MASTER:
            g.wrong("command_before", f"{before:#06x} differs from COMMAND ({cmd:#06x}) in bits other than bit 2")
        else:
            g.ok("command_before", f"{before:#06x} (bit 2, bus master, clear)")
    if not cmd & MASTER:
        g.wrong("command_after", f"COMMAND is {cmd:#06x} now: bus mastering is off again, so edu cannot reach RAM")
        return
    g.expect(
        "command_after",
        cmd,
        "(COMMAND now, bit 2 set)",
        "is not the COMMAND register now: `pyphys pci config EDU 0x04 16`",
        show=lambda v: f"{v:#06x}",
    )


def _copies(g, edu: str, phys: int, buf: bytes) -> None:
    msg_off, msg = g.number("message_offset"), g.text("message")
    changed, copy_off = g.text("changed_text"), g.number("copy_offset")
    dev_off, entry = g.number("device_offset"), g.number("journal_entry")
    if msg is None:
        return
    data = msg.encode("utf-8")
    if not 1 <= len(data) <= SCRATCH:
        g.wrong("message", f"{len(data)} bytes: use a text of 1 to {SCRATCH} bytes")
        return
    if copy_off is not None:
        at = buf[copy_off : copy_off + len(data)] if 0 <= copy_off < len(buf) else b""
        if at == data:
            g.ok("copy_offset", f"{copy_off:#x}: the buffer holds the message there")
            g.ok("message", f"{msg!r} came back from the device")
        else:
            g.wrong("copy_offset", f"{copy_off:#x}: the buffer holds {at[:32]!r} there, not the message")
            g.error("message", "not checked: the copy back into RAM is not where copy_offset says")
    if msg_off is not None and changed is not None:
        new = changed.encode("utf-8")
        if new[: len(data)] == data[: len(new)]:
            g.wrong("changed_text", f"{changed!r} begins like the message: overwrite it with a different text")
        elif buf[msg_off : msg_off + len(new)] == new:
            g.ok("message_offset", f"{msg_off:#x}")
            g.ok("changed_text", f"{changed!r} is at message_offset: the device's copy did not follow it")
        else:
            g.wrong("changed_text", f"the buffer does not hold {changed!r} at {msg_off:#x}")
            g.error("message_offset", "not checked: changed_text is not there")
    if dev_off is not None:
        _device(g, edu, phys, buf, dev_off, data)
    if entry is not None and copy_off is not None:
        _journal(g, entry, phys + copy_off, len(data))


def _device(g, edu: str, phys: int, buf: bytes, dev_off: int, data: bytes) -> None:
    if not 0 <= dev_off <= 4096 - len(data):
        g.wrong("device_offset", f"{dev_off:#x} with a {len(data)}-byte message is outside edu's 4 KiB buffer")
        return
    if not probes.pci_command(edu) & MASTER:
        g.error("device_offset", "not checked: bus mastering is off, so the checker's own DMA cannot run")
        return
    scratch = len(buf) - SCRATCH
    old = buf[scratch:]
    with probes.BarMap(edu, 0, writable=True) as bar0:
        probes.edu_dma_to_ram(bar0, dev_off, phys + scratch, len(data))
    _phys, now = probes.module_buffer()
    probes.module_buffer_write(scratch, old)  # the checker's DMA is undone at once
    if now[scratch : scratch + len(data)] == data:
        g.ok("device_offset", f"{dev_off:#x}: edu's own buffer holds the message there (the device copied it out)")
    else:
        got = now[scratch : scratch + len(data)]
        g.wrong("device_offset", f"{dev_off:#x}: edu's buffer holds {got[:32]!r} there, not the message")


def _journal(g, entry: int, addr: int, n: int) -> None:
    found = [e for e in probes.journal_entries() if e.id == entry]
    if not found:
        g.wrong("journal_entry", f"{entry}: no such entry in the journal (`pyphys journal` lists them)")
    elif found[0].kind != "phys" or not found[0].addr <= addr < found[0].addr + len(found[0].old):
        g.wrong(
            "journal_entry",
            f"{entry} records {found[0].kind} {found[0].addr:#x}, not the RAM the device wrote at {addr:#x}",
        )
    elif len(found[0].old) < n:
        g.wrong("journal_entry", f"{entry} covers {len(found[0].old)} bytes, fewer than the message's {n}")
    else:
        g.ok("journal_entry", f"{entry}: the RAM's old bytes, so `pyphys undo {entry}` can put them back")
