"""Bit layouts of /proc/PID/pagemap, /proc/kpageflags and /proc/kpagecount.

Sources (Linux 6.1 unless noted; later additions say "since"):

* Documentation/admin-guide/mm/pagemap.rst: the pagemap entry, the kpageflags bits 0-26,
  kpagecount.
* fs/proc/task_mmu.c (``PM_*`` defines above pagemap_read): the same entry bits as code.
* include/uapi/linux/kernel-page-flags.h: the stable kpageflags bits (``KPF_*``, 0-26).
* include/linux/kernel-page-flags.h: the "kernel hacking assistances" bits 32-42 that
  fs/proc/page.c also exports ("subject to change, never rely on them"), 6.1 and 6.12.
* tools/vm/page-types.c (tools/mm/ since 6.3): the one-letter and long names the kernel's own
  tool prints, per release (:data:`PAGE_FLAG_NAMES`), and the bits it invents to expand
  overloaded page flags (47-51) and to fold pagemap bits into its flag word (40, 61-63).

Everything here is a constant: the decoding logic lives in :mod:`pyphys.pagemap`.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------
# /proc/PID/pagemap: one little-endian u64 per virtual page (pagemap.rst, "Bits 0-54 ...")
# ---------------------------------------------------------------------------------------
PAGEMAP_ENTRY_BYTES = 8

PM_PFRAME_BITS = 55  # bits 0-54: PFN if present
PM_PFRAME_MASK = (1 << PM_PFRAME_BITS) - 1
PM_SWAP_TYPE_BITS = 5  # bits 0-4: swap type if swapped (MAX_SWAPFILES_SHIFT)
PM_SWAP_TYPE_MASK = (1 << PM_SWAP_TYPE_BITS) - 1
# bits 5-54: swap offset if swapped

PM_SOFT_DIRTY_BIT = 55  # pte is soft-dirty (soft-dirty.rst)
PM_MMAP_EXCLUSIVE_BIT = 56  # page exclusively mapped (since 4.2)
PM_UFFD_WP_BIT = 57  # pte is uffd-wp write-protected (since 5.13)
PM_GUARD_REGION_BIT = 58  # pte is a guard region, MADV_GUARD_INSTALL (since 6.15)
PM_ZERO_BITS = (59, 60)  # documented as zero
PM_FILE_BIT = 61  # page is file-page or shared-anon (since 3.5)
PM_SWAP_BIT = 62  # page swapped
PM_PRESENT_BIT = 63  # page present

PM_SOFT_DIRTY = 1 << PM_SOFT_DIRTY_BIT
PM_MMAP_EXCLUSIVE = 1 << PM_MMAP_EXCLUSIVE_BIT
PM_UFFD_WP = 1 << PM_UFFD_WP_BIT
PM_GUARD_REGION = 1 << PM_GUARD_REGION_BIT
PM_FILE = 1 << PM_FILE_BIT
PM_SWAP = 1 << PM_SWAP_BIT
PM_PRESENT = 1 << PM_PRESENT_BIT
PM_FLAGS_MASK = ((1 << 64) - 1) ^ PM_PFRAME_MASK  # bits 55-63

# (bit, attribute name in pyphys, what pagemap.rst says)
PAGEMAP_BITS: tuple[tuple[int, str, str], ...] = (
    (PM_SOFT_DIRTY_BIT, "soft_dirty", "pte is soft-dirty"),
    (PM_MMAP_EXCLUSIVE_BIT, "exclusive", "page exclusively mapped"),
    (PM_UFFD_WP_BIT, "uffd_wp", "pte is uffd-wp write-protected"),
    (PM_GUARD_REGION_BIT, "guard_region", "pte is a guard region"),
    (PM_FILE_BIT, "file_or_shared_anon", "page is file-page or shared-anon"),
    (PM_SWAP_BIT, "swapped", "page swapped"),
    (PM_PRESENT_BIT, "present", "page present"),
)

# ---------------------------------------------------------------------------------------
# The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (since 6.7): include/uapi/linux/fs.h
# ---------------------------------------------------------------------------------------
# struct pm_scan_arg: size, flags, start, end, walk_end, vec, vec_len, max_pages,
# category_inverted, category_mask, category_anyof_mask, return_mask (all __u64)
PM_SCAN_ARG_FORMAT = "<12Q"
PM_SCAN_ARG_BYTES = 96
PM_SCAN_WALK_END = 4  # index of walk_end, which the kernel writes back
# struct page_region: start, end, categories (__u64)
PAGE_REGION_FORMAT = "<3Q"
PAGE_REGION_BYTES = 24
# _IOWR(PROCFS_IOCTL_MAGIC 'f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = (3 << 30) | (PM_SCAN_ARG_BYTES << 16) | (ord("f") << 8) | 16
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_GUARD = 1 << 8  # later than 6.12 (with pagemap bit 58): probed, as CRIU probes

# ---------------------------------------------------------------------------------------
# /proc/kpageflags: one u64 of flags per PFN; /proc/kpagecount: one u64 map count per PFN
# ---------------------------------------------------------------------------------------
KPAGEFLAGS_ENTRY_BYTES = 8
KPAGECOUNT_ENTRY_BYTES = 8

# include/uapi/linux/kernel-page-flags.h (stable ABI)
KPF_LOCKED = 0
KPF_ERROR = 1
KPF_REFERENCED = 2
KPF_UPTODATE = 3
KPF_DIRTY = 4
KPF_LRU = 5
KPF_ACTIVE = 6
KPF_SLAB = 7
KPF_WRITEBACK = 8
KPF_RECLAIM = 9
KPF_BUDDY = 10
KPF_MMAP = 11
KPF_ANON = 12
KPF_SWAPCACHE = 13
KPF_SWAPBACKED = 14
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17
KPF_UNEVICTABLE = 18
KPF_HWPOISON = 19
KPF_NOPAGE = 20
KPF_KSM = 21
KPF_THP = 22
KPF_OFFLINE = 23
KPF_ZERO_PAGE = 24
KPF_IDLE = 25
KPF_PGTABLE = 26

# include/linux/kernel-page-flags.h: "kernel hacking assistances", exported raw
KPF_RESERVED = 32
KPF_MLOCKED = 33
KPF_MAPPEDTODISK = 34  # PG_mappedtodisk, renamed PG_owner_2 (KPF_OWNER_2 in the 6.12 tree)
KPF_OWNER_2 = KPF_MAPPEDTODISK
KPF_PRIVATE = 35
KPF_PRIVATE_2 = 36
KPF_OWNER_PRIVATE = 37
KPF_ARCH = 38
KPF_UNCACHED = 39  # gone from the 6.12 header; page-types.c keeps the number, "unused"
KPF_SOFTDIRTY = 40  # page-types folds pagemap bit 55 in here
KPF_ARCH_2 = 41
KPF_ARCH_3 = 42  # in the 6.12 header; page-types (6.12 and mainline) gives it no name

# tools/vm/page-types.c: "arbitrary free slots for expanding overloaded flags, not part of
# kernel API", and the slots where it folds pagemap bits into its flag word.
KPF_ANON_EXCLUSIVE = 47  # PG_mappedtodisk (PG_owner_2) on an anonymous page
KPF_READAHEAD = 48  # PG_reclaim without PG_writeback
KPF_SLOB_FREE = 49  # PG_private on a slab page (SLOB, which 6.4 removed)
KPF_SLUB_FROZEN = 50  # PG_active on a slab page
KPF_SLUB_DEBUG = 51  # PG_error on a slab page
KPF_FILE = 61  # pagemap PM_FILE
KPF_SWAP = 62  # pagemap PM_SWAP
KPF_MMAP_EXCLUSIVE = 63  # pagemap PM_MMAP_EXCLUSIVE

# pyphys' own: page-types predates these pagemap bits; pyphys folds them into its flag word
# at the same bit numbers they have in the pagemap entry (slots page-types leaves free).
KPF_UFFD_WP = PM_UFFD_WP_BIT  # 57
KPF_GUARD_REGION = PM_GUARD_REGION_BIT  # 58

# page-types.c masks
KPF_HACKERS_BITS = 0xFFFF << 32  # hidden unless -r (raw)
KPF_OVERLOADED_BITS = 0xFFFF << 48

# page_flag_names[] of the kernel's page-types, for every release: (bit, "letter:long-name",
# first release that names it, first release that no longer does), releases as (major, minor).
# page-types prints one letter per named bit, so a name added or dropped shifts every letter
# after it: the symbolic-flags column must follow the page-types of the running kernel.
#
# * up to 6.3: tools/vm/page-types.c as in linux-source-6.1 (read from that tree);
# * 6.4 removed SLOB, and page-types' slob_free (and its expansion of PG_private on slab
#   pages) with it;
# * 6.12: tools/mm/page-types.c as in linux-source-6.12 (read from that tree): PG_uncached is
#   gone (x86 PAT's memtype tracking uses PG_arch_2 instead, arch/x86/mm/pat/memtype.c) so
#   "c:uncached" is no longer named, and bit 34 is "d:owner_2" (PG_mappedtodisk renamed
#   PG_owner_2). Mainline's tools/mm/page-types.c (2025) has the same table.
PAGE_FLAG_NAMES: tuple[tuple[int, str, tuple[int, int] | None, tuple[int, int] | None], ...] = (
    (KPF_LOCKED, "L:locked", None, None),
    (KPF_ERROR, "E:error", None, None),
    (KPF_REFERENCED, "R:referenced", None, None),
    (KPF_UPTODATE, "U:uptodate", None, None),
    (KPF_DIRTY, "D:dirty", None, None),
    (KPF_LRU, "l:lru", None, None),
    (KPF_ACTIVE, "A:active", None, None),
    (KPF_SLAB, "S:slab", None, None),
    (KPF_WRITEBACK, "W:writeback", None, None),
    (KPF_RECLAIM, "I:reclaim", None, None),
    (KPF_BUDDY, "B:buddy", None, None),
    (KPF_MMAP, "M:mmap", None, None),
    (KPF_ANON, "a:anonymous", None, None),
    (KPF_SWAPCACHE, "s:swapcache", None, None),
    (KPF_SWAPBACKED, "b:swapbacked", None, None),
    (KPF_COMPOUND_HEAD, "H:compound_head", None, None),
    (KPF_COMPOUND_TAIL, "T:compound_tail", None, None),
    (KPF_HUGE, "G:huge", None, None),
    (KPF_UNEVICTABLE, "u:unevictable", None, None),
    (KPF_HWPOISON, "X:hwpoison", None, None),
    (KPF_NOPAGE, "n:nopage", None, None),
    (KPF_KSM, "x:ksm", None, None),
    (KPF_THP, "t:thp", None, None),
    (KPF_OFFLINE, "o:offline", None, None),
    (KPF_ZERO_PAGE, "z:zero_page", None, None),
    (KPF_IDLE, "i:idle_page", None, None),
    (KPF_PGTABLE, "g:pgtable", None, None),
    (KPF_RESERVED, "r:reserved", None, None),
    (KPF_MLOCKED, "m:mlocked", None, None),
    (KPF_MAPPEDTODISK, "d:mappedtodisk", None, (6, 12)),
    (KPF_OWNER_2, "d:owner_2", (6, 12), None),
    (KPF_PRIVATE, "P:private", None, None),
    (KPF_PRIVATE_2, "p:private_2", None, None),
    (KPF_OWNER_PRIVATE, "O:owner_private", None, None),
    (KPF_ARCH, "h:arch", None, None),
    (KPF_UNCACHED, "c:uncached", None, (6, 12)),
    (KPF_SOFTDIRTY, "f:softdirty", None, None),
    (KPF_ARCH_2, "H:arch_2", None, None),
    (KPF_ANON_EXCLUSIVE, "d:anon_exclusive", None, None),
    (KPF_READAHEAD, "I:readahead", None, None),
    (KPF_SLOB_FREE, "P:slob_free", None, (6, 4)),
    (KPF_SLUB_FROZEN, "A:slub_frozen", None, None),
    (KPF_SLUB_DEBUG, "E:slub_debug", None, None),
    (KPF_FILE, "F:file", None, None),
    (KPF_SWAP, "w:swap", None, None),
    (KPF_MMAP_EXCLUSIVE, "1:mmap_exclusive", None, None),
)

# Names pyphys adds for bits no page-types names (so that every bit a kernel sets has a name).
PYPHYS_EXTRA_NAMES: tuple[tuple[int, str], ...] = (
    (KPF_ARCH_3, "arch_3"),
    (KPF_UFFD_WP, "uffd_wp"),
    (KPF_GUARD_REGION, "guard_region"),
)

# include/linux/sched.h: task->flags bit of a kernel thread, field 9 of /proc/PID/stat.
PF_KTHREAD = 0x00200000

# x86-64 TASK_SIZE_MAX (arch/x86/include/asm/page_64_types.h): 47-bit user space with
# 4-level paging, 56-bit with 5-level paging (LA57); minus one guard page.
X86_64_USER_VA_BITS = 47
X86_64_USER_VA_BITS_LA57 = 56
