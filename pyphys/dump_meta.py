"""What a dump carries besides memory: the kernel it came from, KASLR, the iomem map, hashes.

One JSON document (docs/schema/dump.json) is both ``pyphys dump --json``'s answer and the
metadata sidecar ``FILE.json``, so an analyst never has to guess the kernel, the KASLR
offset or what was left out (what LiME's and volatility3's users keep asking for).

Sources, each read once:

``VMCOREINFO``
    ``/sys/kernel/vmcoreinfo`` holds ``"PADDR SIZE"``: where the kernel keeps its VMCOREINFO
    note (kernel/ksysfs.c ``vmcoreinfo_show``: ``paddr_vmcoreinfo_note()`` and
    ``VMCOREINFO_NOTE_SIZE``). The note itself, an ELF note in a page of RAM, is read from
    physical memory through the dump's own source; its text (kernel/vmcore_info.c,
    arch/x86/kernel/vmcore_info_64.c) has ``OSRELEASE``, ``KERNELOFFSET`` (= kaslr_offset()),
    ``NUMBER(phys_base)`` and ``SYMBOL(...)`` lines. Needs CONFIG_VMCORE_INFO (selected by
    CRASH_DUMP / KEXEC).
``kallsyms``
    ``_text`` minus its link-time address ``__START_KERNEL`` (0xffffffff81000000 with x86-64's
    default CONFIG_PHYSICAL_START 0x1000000) is the KASLR offset again, independently
    (arch/x86/include/asm/kaslr.h ``kaslr_offset()``); ``page_offset_base`` is the variable
    holding the randomized direct-map base (arch/x86/mm/kaslr.c, CONFIG_RANDOMIZE_MEMORY),
    read through physical memory at ``__pa_symbol()``.
``boot_id``
    ``/proc/sys/kernel/random/boot_id``, new at every boot (drivers/char/random.c): what makes a
    resumed dump refuse a file begun under another boot.
"""

from __future__ import annotations

import os

from pyphys import __version__, paths
from pyphys.record import Record

START_KERNEL = 0xFFFFFFFF81000000  # __START_KERNEL_map + the default __PHYSICAL_START
#: the direct-map base without CONFIG_DYNAMIC_MEMORY_LAYOUT (Documentation/arch/x86/x86_64/mm.rst)
PAGE_OFFSET_FIXED = 0xFFFF888000000000
NOTE = "pyphys dump"


class VmcoreInfo(Record):
    """The kernel's VMCOREINFO note: where it is (``phys``, ``size``) and its ``text``."""

    __slots__ = ("phys", "size", "text")
    _json = {"phys": "hex"}

    def fields(self) -> dict[str, str]:
        """KEY=VALUE lines of the text as a dict (``SYMBOL(_stext)`` -> ``ffffffff...``)."""
        out = {}
        for line in self.text.splitlines():
            key, eq, value = line.partition("=")
            if eq:
                out[key] = value
        return out

    def number(self, key: str, base: int = 16) -> int | None:
        value = self.fields().get(key)
        try:
            return int(value, base) if value is not None else None
        except ValueError:
            return None


class Kaslr(Record):
    """The KASLR offset from VMCOREINFO and from kallsyms, and whether they agree."""

    __slots__ = ("offset", "vmcoreinfo", "kallsyms", "agree", "direct_map", "note")
    _json = {"offset": "hex", "vmcoreinfo": "hex", "kallsyms": "hex", "direct_map": "hex"}


class Kernel(Record):
    """The running kernel: ``release`` (uname -r), ``banner`` (/proc/version), ``boot_id``."""

    __slots__ = ("release", "banner", "boot_id")


class IomemEntry(Record):
    """One line of /proc/iomem, END exclusive (docs/json.md), ``depth`` its indentation."""

    __slots__ = ("start", "end", "name", "depth")
    _json = {"start": "hex", "end": "hex"}


class Skipped(Record):
    """Physical bytes ``start``..``end`` (exclusive) that are not in the dump, and why."""

    __slots__ = ("start", "end", "reason")
    _json = {"start": "hex", "end": "hex"}


class RangeInfo(Record):
    """One dumped range: physical ``start``..``end`` (exclusive), its ``virt`` address in the
    direct map (None if unknown), where its bytes begin in the file, their SHA-256."""

    __slots__ = ("start", "end", "length", "virt", "file_offset", "sha256")
    _json = {"start": "hex", "end": "hex", "virt": "hex", "file_offset": "hex"}


class Metadata(Record):
    """The dump's document (docs/schema/dump.json): ``FILE.json`` and ``--json``."""

    __slots__ = (
        "tool",
        "version",
        "path",
        "format",
        "size",
        "sha256",
        "started",
        "finished",
        "seconds",
        "backend",
        "backend_reason",
        "direct",
        "kernel",
        "kaslr",
        "vmcoreinfo",
        "ranges",
        "skipped",
        "iomem",
        "resumed_from",
        "warnings",
        "sidecars",
    )
    _defaults = {"tool": "pyphys", "version": __version__, "resumed_from": None, "warnings": [], "sidecars": []}
    _json = {"resumed_from": "hex"}


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def kernel_facts() -> Kernel:
    banner = (_read_text(paths.proc("version")) or "").strip() or None
    release = os.uname().release
    return Kernel(release, banner, boot_id())


def boot_id() -> str | None:
    """This boot's identity: the kernel's boot_id, else the boot time from /proc/stat."""
    text = _read_text(paths.proc("sys", "kernel", "random", "boot_id"))
    if text and text.strip():
        return text.strip()
    for line in (_read_text(paths.proc("stat")) or "").splitlines():
        if line.startswith("btime "):
            return "btime:" + line.split()[1]
    return None


def vmcoreinfo(pm) -> tuple[VmcoreInfo | None, str]:
    """The VMCOREINFO note read through ``pm`` (a :class:`physmem.PhysMem`), or (None, why)."""
    from pyphys.errors import PyphysError
    from pyphys.layouts import elf

    where = paths.sys("kernel", "vmcoreinfo")
    text = _read_text(where)
    if text is None:
        return None, f"{where} is missing (a kernel without CONFIG_VMCORE_INFO: no KEXEC or CRASH_DUMP)"
    try:
        addr_text, size_text = text.split()
        addr, size = int(addr_text, 16), int(size_text, 16)
    except ValueError:
        return None, f"{where} says {text.strip()!r}, not 'PADDR SIZE'"
    try:
        raw = pm.read(addr, size)
    except PyphysError as err:
        return None, f"reading the VMCOREINFO note at {addr:#x}: {err.message}"
    try:
        notes = elf.parse_notes(raw)
    except ValueError as err:
        return None, f"the VMCOREINFO note at {addr:#x} is damaged: {err}"
    for name, _kind, desc in notes:
        if name == elf.VMCOREINFO_NAME:
            return VmcoreInfo(addr, size, desc.rstrip(b"\0").decode("ascii", "replace")), ""
    return None, f"no VMCOREINFO note at {addr:#x} (found {[n.decode('ascii', 'replace') for n, _, _ in notes]})"


def _kallsyms():
    from pyphys import ksym
    from pyphys.errors import PyphysError

    try:
        syms = ksym.load_kallsyms(("_text", "_stext", "page_offset_base"))
    except PyphysError:
        return None
    return None if syms.hidden else syms


def kaslr(pm, info: VmcoreInfo | None, iomem_tree) -> Kaslr:
    """The KASLR offset by both sources, and the direct-map base (for ELF ``p_vaddr``)."""
    from pyphys import ksym
    from pyphys.errors import PyphysError

    from_note = info.number("KERNELOFFSET") if info else None
    syms = _kallsyms()
    text = syms.lookup("_text") if syms else None
    from_syms = text - START_KERNEL if text else None
    notes = []
    if syms is None:
        notes.append("kallsyms unreadable or hidden (" + ksym.kptr_hint() + ")")
    agree = None
    if from_note is not None and from_syms is not None:
        agree = from_note == from_syms
        stext = info.number("SYMBOL(_stext)") if info else None
        if stext is not None and syms.lookup("_stext") not in (None, stext):
            agree = False
            notes.append(f"SYMBOL(_stext) {stext:#x} differs from kallsyms {syms.lookup('_stext'):#x}")
        if not agree:
            notes.append("VMCOREINFO and kallsyms disagree: trust VMCOREINFO (CONFIG_PHYSICAL_START may differ)")
    # the direct map: page_offset_base's value, read where the kernel image keeps it
    direct = None
    if syms is not None:
        where = syms.lookup("page_offset_base")
        if where is None:
            direct = PAGE_OFFSET_FIXED  # no CONFIG_DYNAMIC_MEMORY_LAYOUT: the fixed base
        else:
            base = info.number("NUMBER(phys_base)", 10) if info else None
            if base is None and text is not None:
                code = iomem_tree.find("Kernel code")
                base = ksym.phys_base(text, code[0].start) if code else None
            if base is not None:
                try:
                    direct = int.from_bytes(pm.read(ksym.image_phys(where, base), 8), "little")
                except PyphysError as err:
                    notes.append(f"page_offset_base unreadable: {err.message}")
    if direct is None:
        notes.append("direct-map base unknown: ELF p_vaddr is 0")
    offset = from_note if from_note is not None else from_syms
    return Kaslr(offset, from_note, from_syms, agree, direct, "; ".join(notes) or None)


def iomem_map(tree) -> list[IomemEntry]:
    """Every /proc/iomem line, END exclusive, in address order with its depth."""
    out = []

    def walk(regions, depth):
        for r in regions:
            out.append(IomemEntry(r.start, r.end + 1, r.name, depth))
            walk(r.children, depth + 1)

    walk(tree.regions, 0)
    return out


def skipped(tree, ranges, explicit: bool) -> list[Skipped]:
    """The top-level iomem regions (and parts of them) the dump leaves out, with the reason."""
    out = []
    pos = 0
    for region in sorted(tree.regions, key=lambda r: r.start):
        lo, hi = region.start, region.end + 1
        if lo > pos:
            out.append(Skipped(pos, lo, "not in /proc/iomem (a hole)"))
        pos = max(pos, hi)
        if region.name != "System RAM":
            out.append(Skipped(lo, hi, f"not System RAM ({region.name})"))
            continue
        cursor = lo
        for r in ranges:
            if r.end <= lo or r.start >= hi:
                continue
            if r.start > cursor:
                out.append(Skipped(cursor, r.start, _why_not(cursor, r.start, explicit)))
            cursor = max(cursor, r.end)
        if cursor < hi:
            out.append(Skipped(cursor, hi, _why_not(cursor, hi, explicit)))
    return out


def _why_not(start: int, end: int, explicit: bool) -> str:
    if explicit:
        return "System RAM, not requested"
    return "part of a page that is only partly System RAM (dumps hold whole pages, as AVML's)"
