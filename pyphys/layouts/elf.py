"""ELF core (``ET_CORE``) of physical memory, the shape of a kdump ``/proc/vmcore``.

What readers need, and where it is defined:

* the ELF header and program headers: the System V gABI, ``include/uapi/linux/elf.h``
  (``Elf64_Ehdr``, ``Elf64_Phdr``, ``Elf64_Nhdr``); x86-64 is ``EM_X86_64`` (62),
  little-endian, 64-bit.
* one ``PT_LOAD`` per range: ``p_paddr`` its physical address, ``p_vaddr`` its address in the
  kernel's direct map (``__va(p_paddr)``, as kexec's ``crash_prepare_elf64_headers()``
  writes it, kernel/crash_core.c), or 0 when that is unknown; ``p_filesz == p_memsz``.
* a ``PT_NOTE`` holding the ``VMCOREINFO`` note (name ``"VMCOREINFO"``, type 0, the text of
  kernel/vmcore_info.c), which is how drgn (libdrgn/program.c) and crash tell a kernel core
  from a process core, and where they find ``KERNELOFFSET`` (KASLR), ``SYMBOL(init_top_pgt)``
  and ``NUMBER(phys_base)`` to walk the page tables. Notes are 4-byte aligned
  (``Elf64_Nhdr`` followed by the padded name and descriptor), as in a vmcore.

Everything is known before the first byte of memory is read, so the header is written first
and the file can be streamed; the data of the first range starts on a page boundary.
"""

from __future__ import annotations

import struct

from pyphys import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align
NHDR = struct.Struct("<III")  # Elf64_Nhdr: namesz, descsz, type
IDENT = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE
ET_CORE = 4
EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
PF_RWX = 7  # PF_R | PF_W | PF_X, as kexec-tools and the kernel's crash headers mark RAM
VMCOREINFO_NAME = b"VMCOREINFO"
DATA_ALIGN = 4096

assert EHDR.size == 64 and PHDR.size == 56 and NHDR.size == 12


def _pad4(n: int) -> int:
    return -(-n // 4) * 4


def note(name: bytes, kind: int, desc: bytes) -> bytes:
    """One ELF note: header, NUL-terminated ``name`` and ``desc``, each padded to 4 bytes."""
    name0 = name + b"\0"
    return (
        NHDR.pack(len(name0), len(desc), kind)
        + name0.ljust(_pad4(len(name0)), b"\0")
        + desc.ljust(_pad4(len(desc)), b"\0")
    )


def parse_notes(data: bytes) -> list[tuple[bytes, int, bytes]]:
    """``(name, type, desc)`` of each note in ``data``, up to an empty (all-zero) header, as
    the kernel ends its in-memory VMCOREINFO note (``final_note()``, kernel/vmcore_info.c)."""
    out, off = [], 0
    while off + NHDR.size <= len(data):
        namesz, descsz, kind = NHDR.unpack_from(data, off)
        if namesz == 0 and descsz == 0:
            break
        name_at = off + NHDR.size
        desc_at = name_at + _pad4(namesz)
        if desc_at + descsz > len(data):
            raise ValueError(f"ELF note at {off:#x} runs past the end ({descsz} bytes of descriptor)")
        out.append((data[name_at : name_at + namesz].rstrip(b"\0"), kind, data[desc_at : desc_at + descsz]))
        off = desc_at + _pad4(descsz)
    return out


def header(loads: Sequence[tuple[int, int, int]], notes: bytes) -> tuple[bytes, list[int]]:
    """The ELF header, program headers and ``notes``, padded to :data:`DATA_ALIGN`.

    ``loads`` is ``(paddr, vaddr, length)`` per range, in file order; their data follows the
    returned bytes back to back. Returns ``(bytes, data file offset of each range)``.
    """
    count = len(loads) + (1 if notes else 0)
    if count >= 0xFFFF:  # PN_XNUM: would need section header 0 to hold the count
        raise ValueError(f"{len(loads)} ranges: an ELF core holds at most 65534")
    phoff = EHDR.size
    note_off = phoff + PHDR.size * count
    pos = -(-(note_off + len(notes)) // DATA_ALIGN) * DATA_ALIGN
    phdrs = []
    if notes:
        phdrs.append(PHDR.pack(PT_NOTE, 0, note_off, 0, 0, len(notes), len(notes), 4))
    offsets = []
    for paddr, vaddr, length in loads:
        phdrs.append(PHDR.pack(PT_LOAD, PF_RWX, pos, vaddr, paddr, length, length, 0))
        offsets.append(pos)
        pos += length
    ehdr = EHDR.pack(IDENT, ET_CORE, EM_X86_64, 1, 0, phoff, 0, 0, EHDR.size, PHDR.size, count, 0, 0, 0)
    head = ehdr + b"".join(phdrs) + notes
    return head.ljust(offsets[0] if offsets else len(head), b"\0"), offsets
