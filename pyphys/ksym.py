"""Virtual and physical address of a kernel symbol, from independent sources, and whether they agree.

Sources:

``module``
    pyphys.ko's ``nodename_phys`` (``__pa_symbol(init_uts_ns.name.nodename)`` computed in the
    kernel). Only for ``nodename`` / ``init_uts_ns``.
``kallsyms+iomem``
    /proc/kallsyms gives the virtual address; the kernel image is mapped at
    ``__START_KERNEL_map`` (0xffffffff80000000) and x86-64's ``__pa_symbol(x) = x -
    __START_KERNEL_map + phys_base`` (arch/x86/include/asm/page_64.h). /proc/iomem's "Kernel
    code" starts at ``__pa_symbol(_text)`` (arch/x86/kernel/setup.c ``code_resource``), so
    ``phys_base = code_start - (_text - __START_KERNEL_map)``.
``kcore``
    /proc/kcore's PT_LOAD program headers (fs/proc/kcore.c): ``p_paddr = __pa_symbol(addr)``
    for the kernel text mapping, ``__pa(addr)`` for the direct map, -1 for the rest; read with
    pyelftools. The virtual address comes from kallsyms, or, when kptr_restrict hides it, from
    the VMCOREINFO note's ``SYMBOL(name)=`` line (kcore copies the note whatever kptr_restrict
    says; opening /proc/kcore needs CAP_SYS_RAWIO).

kallsyms addresses are all zeros when kptr_restrict hides them (lib/vsprintf.c ``%pK``):
:attr:`Source.note` says so rather than reporting address 0.
"""

from __future__ import annotations

import bisect
import errno
import os
import re
from collections.abc import Iterable
from typing import IO

from pyphys import paths
from pyphys.dialect import U64_MAX, parse_number
from pyphys.errors import NotFoundError, PyphysError, UsageError, from_oserror, root_hint
from pyphys.record import Record

START_KERNEL_MAP = 0xFFFFFFFF80000000  # arch/x86/include/asm/page_64_types.h __START_KERNEL_map
#: include/uapi/linux/utsname.h: struct new_utsname { char sysname[65]; char nodename[65]; ... }
UTS_FIELD_LEN = 65
NODENAME_OFFSET = UTS_FIELD_LEN  # struct uts_namespace starts with `struct new_utsname name`
KCORE_NO_PADDR = 0xFFFFFFFFFFFFFFFF  # fs/proc/kcore.c: p_paddr = (elf_addr_t)-1 for vmalloc/modules
KCORE_NOTES_MAX = 1 << 20  # read at most this much of a PT_NOTE (kcore's notes are a few pages)
#: names accepted for the nodename string itself
NODENAME_ALIASES = ("nodename", "init_uts_ns.name.nodename")


class Source(Record):
    """One source's answer: ``virt``/``phys`` (None if it has none) and a ``note``."""

    __slots__ = ("name", "virt", "phys", "note")
    _defaults = {"virt": None, "phys": None, "note": ""}
    _json = {"virt": "hex", "phys": "hex"}

    name: str
    virt: int | None
    phys: int | None
    note: str


class SymbolReport(Record):
    """All sources for ``name``: ``phys``/``virt`` are the agreed values, ``agree`` whether they do."""

    __slots__ = ("name", "sources", "size")
    _defaults = {"sources": [], "size": None}

    name: str
    sources: list[Source]
    size: int | None

    @property
    def physes(self) -> list[int]:
        return [s.phys for s in self.sources if s.phys is not None]

    @property
    def phys(self) -> int | None:
        """The physical address if at least one source gave it and all that did agree."""
        vals = set(self.physes)
        return vals.pop() if len(vals) == 1 else None

    @property
    def virt(self) -> int | None:
        vals = {s.virt for s in self.sources if s.virt is not None}
        return vals.pop() if len(vals) == 1 else None

    @property
    def agree(self) -> bool | None:
        """True if 2+ sources gave the same phys, False if they differ, None if fewer than 2 answered."""
        vals = self.physes
        if len(vals) < 2:
            return None if vals else False
        return len(set(vals)) == 1

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "virt": None if self.virt is None else f"{self.virt:#x}",
            "phys": None if self.phys is None else f"{self.phys:#x}",
            "size": self.size,
            "agree": self.agree,
            "sources": [s.to_json() for s in self.sources],
        }


# -- kallsyms -----------------------------------------------------------------------------
class Kallsyms(Record):
    """Parsed /proc/kallsyms: sorted (addr, name) of the core kernel; ``hidden`` if all zero."""

    __slots__ = ("addrs", "names", "by_name", "hidden", "wanted")

    addrs: list[int]
    names: list[str]
    by_name: dict[str, int]
    hidden: bool
    wanted: frozenset[str] | None  # parsed for these names only (None: every symbol)

    def lookup(self, name: str) -> int | None:
        if self.wanted is not None and name not in self.wanted:
            raise ValueError(f"kallsyms was parsed for {sorted(self.wanted)}, not {name!r}")  # a caller's bug
        return self.by_name.get(name)

    def size_of(self, name: str) -> int | None:
        """Distance to the next higher symbol (kallsyms has no sizes): an upper bound."""
        addr = self.by_name.get(name)
        if addr is None or self.hidden or self.wanted is not None:  # a picked parse has no neighbours
            return None
        i = bisect.bisect_right(self.addrs, addr)
        return self.addrs[i] - addr if i < len(self.addrs) else None


def parse_kallsyms(stream: IO[str], wanted: Iterable[str] | None = None, module: str | None = None) -> Kallsyms:
    """Parse /proc/kallsyms lines 'ADDR TYPE NAME [module]' (module symbols are skipped).

    With ``wanted``, only those names are kept, found by a substring search per name instead of
    a Python loop over every line (some 100 000 of them: seconds in the TCG lab guest, where a
    dump looks up a few symbols); ``size_of`` then knows no neighbours. With ``module`` too,
    the names are that module's symbols ('ADDR TYPE NAME\t[module]'), not the core kernel's."""
    if wanted is not None:
        return _pick_kallsyms(stream.read(), wanted, module)
    if module is not None:
        raise ValueError("a module's symbols are looked up by name only")  # a caller's bug
    pairs: list[tuple[int, str]] = []
    by_name: dict[str, int] = {}
    nonzero = False
    for line in stream:
        parts = line.split()
        if len(parts) < 3 or len(parts) > 3:
            continue  # module symbols carry a 4th field "[mod]"
        try:
            addr = int(parts[0], 16)
        except ValueError:
            continue
        nonzero = nonzero or addr != 0
        name = parts[2]
        by_name.setdefault(name, addr)
        pairs.append((addr, name))
    pairs.sort()
    return Kallsyms(
        [a for a, _ in pairs], [n for _, n in pairs], by_name, hidden=bool(pairs) and not nonzero, wanted=None
    )


_HEX = frozenset("0123456789abcdefABCDEF")


def _pick_kallsyms(text: str, wanted: Iterable[str], module: str | None) -> Kallsyms:
    names = sorted(set(wanted))
    end = "\n" if module is None else f"\t[{module}]"
    by_name: dict[str, int] = {}
    if not text.endswith("\n"):
        text += "\n"
    for name in names:
        # a plain substring search per name (C speed; a regular expression tried at every line
        # start took 0.55 s of a 64 MiB dump in the TCG guest): " NAME\n" ends a core-kernel
        # line, and " NAME\t[module]" one of that module's symbols
        key = f" {name}{end}"
        pos = text.find(key)
        while pos >= 0:
            line = text[text.rfind("\n", 0, pos) + 1 : pos].split(" ")
            if len(line) == 2 and line[0] and line[1] and set(line[0]) <= _HEX:
                by_name[name] = int(line[0], 16)
                break
            pos = text.find(key, pos + 1)
    pairs = sorted((a, n) for n, a in by_name.items())
    # hidden (kptr_restrict): every address reads zero, the wanted ones and the first lines alike
    first = re.findall(r"^([0-9a-fA-F]+) ", text[:4096], re.M)
    hidden = bool(first) and not any(by_name.values()) and not any(int(a, 16) for a in first)
    return Kallsyms([a for a, _ in pairs], [n for _, n in pairs], by_name, hidden=hidden, wanted=frozenset(names))


def load_kallsyms(wanted: Iterable[str] | None = None, module: str | None = None) -> Kallsyms:
    """/proc/kallsyms parsed; with ``wanted``, only those symbols (much faster), of ``module``
    if given."""
    path = paths.proc("kallsyms")
    try:
        with open(path) as f:
            return parse_kallsyms(f, wanted, module)
    except OSError as err:
        raise from_oserror(err, f"read {path}", "needs CONFIG_KALLSYMS") from err


def symbol_address(name: str, module: str | None = None) -> int | None:
    """Where /proc/kallsyms puts the core kernel's symbol ``name`` (or ``module``'s): None when
    it is not listed or its address is hidden as zero."""
    return load_kallsyms((name,), module).lookup(name) or None


def kallsyms_shows_addresses(lines: int = 16) -> bool | None:
    """What this process sees in /proc/kallsyms: True if any of the first ``lines`` addresses is
    non-zero, False if all are zero (hidden by kptr_restrict), None if unreadable or empty."""
    seen = False
    try:
        with open(paths.proc("kallsyms"), errors="replace") as f:
            for _, line in zip(range(lines), f):
                field = line.split(maxsplit=1)[:1]
                try:
                    addr = int(field[0], 16) if field else None
                except ValueError:
                    continue
                if addr is None:
                    continue
                if addr:
                    return True
                seen = True
    except OSError:
        return None
    return False if seen else None


def kptr_restrict() -> int | None:
    """/proc/sys/kernel/kptr_restrict (0, 1, 2), or None if unreadable."""
    try:
        with open(paths.proc("sys", "kernel", "kptr_restrict")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kptr_hint() -> str:
    level = kptr_restrict()
    if level == 2:
        return "kptr_restrict=2 hides kernel addresses even from root: sysctl kernel.kptr_restrict=1 (as root)"
    setting = f"kptr_restrict={level if level is not None else '?'}"
    return f"{setting} hides kernel addresses from users without CAP_SYSLOG (lib/vsprintf.c %pK): " + root_hint(
        "%pK also wants the real and effective IDs equal: this process lacks CAP_SYSLOG (a container, or a "
        "dropped capability) or runs set-uid",
        "run as root",
    )


# -- iomem + kallsyms -------------------------------------------------------------------------
def phys_base(text_virt: int, kernel_code_start: int) -> int:
    """x86-64 phys_base from _text's virtual address and iomem's "Kernel code" start."""
    return kernel_code_start - (text_virt - START_KERNEL_MAP)


def image_phys(virt: int, base: int) -> int:
    """__pa_symbol(): physical address of a kernel-image virtual address."""
    return virt - START_KERNEL_MAP + base


def _kallsyms_source(name: str, syms: Kallsyms | None, offset: int) -> tuple[Source, int | None]:
    src = Source("kallsyms+iomem")
    if syms is None:
        src.note = "/proc/kallsyms unreadable"
        return src, None
    virt = syms.lookup(name)
    if virt is None:
        src.note = f"{name} is not in /proc/kallsyms"
        return src, None
    if syms.hidden:
        src.note = f"addresses are all zeros: {kptr_hint()}"
        return src, None
    src.virt = virt + offset
    text = syms.lookup("_text")
    end = syms.lookup("_end")
    if text is None:
        src.note = "_text missing from kallsyms"
        return src, src.virt
    if not (text <= virt and (end is None or virt < end)):
        src.note = "not in the kernel image (module/vmalloc symbol): no fixed virt->phys offset"
        return src, src.virt
    try:
        from pyphys import iomem

        tree = iomem.load()
    except PyphysError as err:
        src.note = f"/proc/iomem unreadable: {err}"
        return src, src.virt
    if tree.hidden:
        src.note = f"/proc/iomem addresses hidden: {iomem.hidden_hint()}"
        return src, src.virt
    code = tree.find("Kernel code")
    if not code:
        src.note = "/proc/iomem has no 'Kernel code' region"
        return src, src.virt
    base = phys_base(text, code[0].start)
    src.phys = image_phys(src.virt, base)
    src.note = f"phys_base={base:#x} (Kernel code at {code[0].start:#x}, _text={text:#x})"
    return src, src.virt


# -- kcore -----------------------------------------------------------------------------------
class Segment(Record):
    __slots__ = ("vaddr", "paddr", "size", "offset")

    vaddr: int
    paddr: int
    size: int
    offset: int


def parse_kcore_segments(stream: IO[bytes]) -> list[Segment]:
    """PT_LOAD program headers of an ELF core (/proc/kcore) via pyelftools; PyphysError if not ELF."""
    return _parse_kcore(stream)[0]


def parse_kcore(stream: IO[bytes]) -> tuple[list[Segment], str]:
    """PT_LOAD program headers and the VMCOREINFO note's text ('' if none) of an ELF core."""
    return _parse_kcore(stream)


def _parse_kcore(stream: IO[bytes]) -> tuple[list[Segment], str]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(stream)
        segs, notes = [], []
        for seg in elf.iter_segments():  # headers only: PT_LOAD data is never read
            h = seg.header
            if h["p_type"] == "PT_LOAD":
                segs.append(Segment(h["p_vaddr"], h["p_paddr"], h["p_memsz"], h["p_offset"]))
            elif h["p_type"] == "PT_NOTE":
                notes.append((h["p_offset"], h["p_filesz"]))
        little = elf.little_endian
    except (ELFError, ValueError, OSError) as err:
        raise PyphysError(f"cannot parse kcore program headers: {err}") from None
    info = ""
    for off, size in notes:
        try:
            stream.seek(off)
            data = stream.read(min(size, KCORE_NOTES_MAX))
        except OSError:
            continue
        info = vmcoreinfo_from_notes(data, little) or info
    return segs, info


def vmcoreinfo_from_notes(data: bytes, little: bool = True) -> str:
    """The desc text of the "VMCOREINFO" note in a PT_NOTE segment's bytes ('' if absent).

    Elf64_Nhdr and Elf32_Nhdr are both three 32-bit words (namesz, descsz, type); name and desc
    are padded to 4 bytes (fs/proc/kcore.c append_kcore_note). A desc cut short by the end of
    ``data`` yields its complete lines.
    """
    import struct

    fmt = "<III" if little else ">III"
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, _type = struct.unpack_from(fmt, data, pos)
        name = data[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
        desc_at = pos + 12 + (namesz + 3) // 4 * 4
        if name == b"VMCOREINFO":
            desc = data[desc_at : desc_at + descsz]
            if desc_at + descsz > len(data):  # truncated: keep whole lines only
                desc = desc[: desc.rfind(b"\n") + 1]
            return desc.decode("ascii", "replace")
        if namesz == 0 and descsz == 0:
            break
        pos = desc_at + (descsz + 3) // 4 * 4
    return ""


def vmcoreinfo_symbol(info: str, name: str) -> int | None:
    """``SYMBOL(name)=hex`` from VMCOREINFO text (kernel/vmcore_info.c VMCOREINFO_SYMBOL), or None."""
    key = f"SYMBOL({name})="
    for line in info.splitlines():
        if line.startswith(key):
            try:
                return int(line[len(key) :].strip(), 16)
            except ValueError:
                return None
    return None


def kcore_translate(segments: list[Segment], virt: int) -> tuple[int | None, str]:
    """(phys, note) for ``virt`` from the PT_LOAD that holds it."""
    for seg in segments:
        if seg.vaddr <= virt < seg.vaddr + seg.size:
            if seg.paddr == KCORE_NO_PADDR:
                return None, f"in a PT_LOAD at {seg.vaddr:#x} with no physical address (vmalloc/module area)"
            return seg.paddr + (virt - seg.vaddr), f"PT_LOAD vaddr {seg.vaddr:#x} -> paddr {seg.paddr:#x}"
    return None, "no /proc/kcore PT_LOAD covers this address"


def _kcore_source(virt: int | None, name: str = "", offset: int = 0) -> Source:
    """kcore's PT_LOAD for ``virt`` (from kallsyms); without it, the virtual address of ``name``
    from the VMCOREINFO note (``SYMBOL(name)``, shown whatever kptr_restrict says) plus ``offset``."""
    src = Source("kcore")
    path = paths.proc("kcore")
    try:
        with open(path, "rb") as f:
            segs, info = parse_kcore(f)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno in (errno.EPERM, errno.EACCES):
            src.note = f"{path}: {reason}: opening it needs CAP_SYS_RAWIO (fs/proc/kcore.c open_kcore)"
        else:
            src.note = f"{path}: {reason} (needs CONFIG_PROC_KCORE)"
        return src
    except PyphysError as err:
        src.note = str(err)
        return src
    how = ""
    if virt is None:
        sym = vmcoreinfo_symbol(info, name) if name else None
        if sym is None:
            src.note = (
                f"needs the virtual address from kallsyms (VMCOREINFO has no SYMBOL({name}))"
                if info
                else "needs the virtual address from kallsyms (no VMCOREINFO note)"
            )
            return src
        virt = sym + offset
        how = f"VMCOREINFO SYMBOL({name})={sym:#x}; "
    src.virt = virt
    src.phys, note = kcore_translate(segs, virt)
    src.note = how + note
    return src


# -- module ------------------------------------------------------------------------------------
def _module_source(offset_in_nodename: int) -> Source:
    src = Source("module")
    try:
        from pyphys import kmod

        info = kmod.info()
    except ImportError:
        src.note = "pyphys.kmod unavailable"
        return src
    except PyphysError as err:
        src.note = err.message
        return src
    src.phys = info.nodename_phys + offset_in_nodename
    src.note = "sysfs nodename_phys (__pa_symbol in the kernel)"
    return src


def split_offset(text: str) -> tuple[str, int]:
    """'init_uts_ns+0x41' -> ('init_uts_ns', 0x41); UsageError on a bad offset."""
    name, plus, off = text.partition("+")
    if not plus:
        return text, 0
    try:
        return name, parse_number(off, "offset")
    except UsageError as err:
        raise UsageError(f"{err.message} in {text!r}", err.hint) from None


def lookup(symbol: str, *, use_kcore: bool = True) -> SymbolReport:
    """Every available source for ``symbol`` (``name`` or ``name+OFFSET``); NotFoundError if none knows it.

    ``nodename`` means ``init_uts_ns.name.nodename`` (init_uts_ns + 65).
    """
    name, offset = split_offset(symbol.strip())
    if not name or not name.isascii() or not all(c.isalnum() or c in "_.$" for c in name):
        raise UsageError(f"{symbol!r} is not a kernel symbol name")
    kal_name, kal_offset = name, offset
    module_offset: int | None = None
    if name in NODENAME_ALIASES:
        kal_name, kal_offset = "init_uts_ns", NODENAME_OFFSET + offset
        module_offset = offset
    elif name == "init_uts_ns":
        module_offset = offset - NODENAME_OFFSET
    try:
        syms: Kallsyms | None = load_kallsyms()
    except PyphysError:
        syms = None
    report = SymbolReport(symbol)
    kal, virt = _kallsyms_source(kal_name, syms, kal_offset)
    if virt is not None and virt > U64_MAX:
        raise UsageError(f"{symbol!r} is past the top of the 64-bit address space", "use a smaller offset")
    report.sources.append(kal)
    if use_kcore:
        report.sources.append(_kcore_source(virt, kal_name, kal_offset))
    if module_offset is not None:
        report.sources.append(_module_source(module_offset))
    if any(s.phys is not None and s.phys > U64_MAX for s in report.sources):
        raise UsageError(f"{symbol!r} is past the top of the 64-bit physical address space", "use a smaller offset")
    if syms is not None and not syms.hidden:
        size = syms.size_of(kal_name)
        if name in NODENAME_ALIASES:
            size = UTS_FIELD_LEN
        report.size = None if size is None else max(size - offset, 0)
    if not report.physes and virt is None:
        notes = "; ".join(f"{s.name}: {s.note}" for s in report.sources if s.note)
        raise NotFoundError(f"no source knows {symbol!r}", notes or None)
    return report
