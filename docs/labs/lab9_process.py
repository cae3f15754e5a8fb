#!/usr/bin/env python3
"""Lab 9's process: two pieces of memory whose page tables you walk by hand.

  buffer  one page, mlock()ed and MADV_NOHUGEPAGE, holding a line of text: a 4 KiB page,
          mapped by a PTE at the bottom of a four- (or five-) level walk
  huge    2 MiB at a 2 MiB-aligned address, madvise(MADV_HUGEPAGE): a transparent huge page,
          mapped by one PMD entry with the PS bit set (the walk ends one level early)

It prints its pid and both addresses, writes them to /tmp/lab9-process.json (which
`pyphys lab check 9` reads to find this process), and waits (stop it with ``kill PID``).
Standard library only: read it, it is part of the lab.
"""

import ctypes
import json
import mmap
import os
import secrets
import signal
import sys
import time

PAGE = mmap.PAGESIZE
HUGE = 2 << 20  # an x86-64 PMD entry with PS set maps 2 MiB
STATE = "/tmp/lab9-process.json"
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15  # include/uapi/asm-generic/mman-common.h

libc = ctypes.CDLL(None, use_errno=True)


def address(m: mmap.mmap) -> int:
    """The virtual address of an mmap object's first byte."""
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def anonymous(size: int) -> mmap.mmap:
    # private anonymous memory: ordinary process pages (fd -1 alone would be MAP_SHARED: shmem)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def advise(m: mmap.mmap, advice: int, *args: int) -> None:
    try:
        m.madvise(advice, *args)
    except OSError as err:
        print(f"warning: madvise({advice}): {err.strerror}", file=sys.stderr)


def main() -> int:
    buffer = anonymous(PAGE)
    advise(buffer, MADV_NOHUGEPAGE)  # a 4 KiB page even where THP is "always"
    text = f"lab 9 walked here, secret {secrets.token_hex(4)}".encode()
    buffer[: len(text)] = text
    buf = address(buffer)
    if libc.mlock(ctypes.c_void_p(buf), ctypes.c_size_t(PAGE)) != 0:  # it stays on one frame
        print(f"warning: mlock failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)

    # 4 MiB reserved so that a 2 MiB-aligned 2 MiB piece surely lies inside
    region = anonymous(2 * HUGE)
    base = address(region)
    huge = (base + HUGE - 1) & ~(HUGE - 1)
    off = huge - base
    advise(region, MADV_HUGEPAGE, off, HUGE)
    region[off : off + 16] = b"lab 9 huge page\0"  # the first touch faults in a whole 2 MiB page
    for i in range(off, off + HUGE, PAGE):
        region[i + 16] = 1

    def stop(_sig, _frame):
        try:
            os.unlink(STATE)
        except FileNotFoundError:
            pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = {"pid": os.getpid(), "buffer": buf, "huge": huge, "text": text.decode()}
    with open(STATE + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(STATE + ".tmp", STATE)  # the checker never sees half a file
    print(
        f"lab 9 process: pid {os.getpid()}\n"
        f"  buffer  {buf:#x}  one mlocked 4 KiB page; its text starts with 'lab 9 walked here'\n"
        f"  huge    {huge:#x}  2 MiB, MADV_HUGEPAGE: a transparent huge page\n"
        f"  (also in {STATE}; stop with: kill {os.getpid()})",
        flush=True,
    )
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
