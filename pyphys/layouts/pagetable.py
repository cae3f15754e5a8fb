"""x86-64 page-table entry layout, PAT memory types and the module's walk ioctl.

Bit positions from arch/x86/include/asm/pgtable_types.h (``_PAGE_BIT_*``) and the Intel SDM
vol. 3A, 4.5 (4-level and 5-level paging); swap entries from arch/x86/include/asm/pgtable_64.h
(``__swp_type``/``__swp_offset``: type in bits 59-63, the offset stored inverted in bits 9-58
since the L1TF mitigation); PAT from the SDM, 13.12.3.
"""

from __future__ import annotations

import struct

ENTRY_SIZE = 8
ENTRIES = 512
INDEX_BITS = 9
PAGE_SHIFT = 12

#: level names, top first (the kernel's names: pgd, p4d, pud, pmd, pte) and the shift of each
LEVELS_5 = (("pgd", 48), ("p4d", 39), ("pud", 30), ("pmd", 21), ("pte", 12))
LEVELS_4 = (("pgd", 39), ("pud", 30), ("pmd", 21), ("pte", 12))
#: levels whose entry may map a page itself when PS is set (1 GiB at pud, 2 MiB at pmd)
HUGE_LEVELS = ("pud", "pmd")

#: bits 12..51: the next table's or the page's physical address (MAXPHYADDR at most 52)
ADDR_MASK = ((1 << 52) - 1) & ~((1 << PAGE_SHIFT) - 1)

# (bit, short name, meaning); in a 4 KiB PTE bit 7 is PAT, in a pud/pmd entry it is PS
P, RW, US, PWT, PCD, A, D, PS, G = range(9)
PAT_4K = 7
SW1, SW2, SW3 = 9, 10, 11
PAT_LARGE = 12
SW4, SW5 = 57, 58
PKEY_SHIFT, PKEY_MASK = 59, 0xF
XD = 63
BITS = (
    (P, "P", "present"),
    (RW, "RW", "writable"),
    (US, "US", "user-accessible"),
    (PWT, "PWT", "write-through (PAT index bit 0)"),
    (PCD, "PCD", "cache disabled (PAT index bit 1)"),
    (A, "A", "accessed"),
    (D, "D", "dirty (leaf only)"),
    (PS, "PS", "page size: this pud/pmd entry maps a huge page (a PTE's bit 7 is PAT)"),
    (G, "G", "global (leaf only)"),
    (SW1, "SW1", "software: _PAGE_SPECIAL"),
    (SW2, "SW2", "software: _PAGE_UFFD_WP"),
    (SW3, "SW3", "software: _PAGE_SOFT_DIRTY"),
    (SW4, "SW4", "software: _PAGE_DEVMAP"),
    (SW5, "SW5", "software: _PAGE_SAVED_DIRTY"),
    (XD, "XD", "execute disable (NX)"),
)
#: with P clear and this bit (G) set the page is PROT_NONE: still present to the kernel, and
#: its frame is stored inverted (L1TF: pte_pfn() XORs protnone_mask())
PROTNONE = G

SWP_TYPE_BITS = 5
SWP_OFFSET_FIRST_BIT = PROTNONE + 1  # 9
SWP_OFFSET_SHIFT = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS
#: non-present swap entries keep these flags low (pgtable_64.h: E, F, SD)
SWP_EXCLUSIVE, SWP_UFFD_WP, SWP_SOFT_DIRTY = PWT, US, RW

#: IA32_PAT byte values (SDM table 13-10)
PAT_TYPES = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB", 7: "UC-"}
#: what the MSR holds at power-on (SDM 13.12.4): WB WT UC- UC, twice
PAT_RESET = 0x0007040600070406

# The module's ioctl (kmod/ABI.md, /dev/pyphys_walk)
PGD_STRUCT = struct.Struct("<iIQQQII")  # pid levels pgd_phys user_pgd_phys pat flags reserved
PGD_FIELDS = ("pid", "levels", "pgd_phys", "user_pgd_phys", "pat", "flags", "reserved")
PGD_PTI, PGD_PAT_VALID = 0x1, 0x2
_IOC_READ_WRITE = 3
PYPHYS_IOC_PGD = (_IOC_READ_WRITE << 30) | (PGD_STRUCT.size << 16) | (ord("p") << 8) | 0x01
