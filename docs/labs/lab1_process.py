#!/usr/bin/env python3
"""Lab 1's process: memory for you to find in physical memory.

It maps and fills four pieces of anonymous memory, forks once, prints where everything is,
and waits (stop it with ``kill PID``):

  buffer  one page, mlock()ed, holding a line of text with a random secret
  huge    2 MiB at a 2 MiB-aligned address, madvise(MADV_HUGEPAGE): a transparent huge page
  shared  one page written before fork(): parent and child map the same frame
  cow     one page written before fork(); on SIGUSR1 the CHILD writes it again, and
          copy-on-write gives the child its own frame

buffer and huge are MADV_DONTFORK where madvise(2) exists: then the child does not get them.
The addresses also go to /tmp/lab1-process.json, which `pyphys lab check 1` reads to find this process.
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
HUGE = 2 << 20  # an x86-64 PMD maps 2 MiB: the size of a transparent huge page
STATE = "/tmp/lab1-process.json"
PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h

libc = ctypes.CDLL(None, use_errno=True)


def address(m: mmap.mmap) -> int:
    """The virtual address of an mmap object's first byte."""
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def anonymous(size: int) -> mmap.mmap:
    # MAP_PRIVATE | MAP_ANONYMOUS: ordinary process memory. (Python's default for fd -1 is
    # MAP_SHARED, which is shmem: a different kind of page, and no THP unless shmem_enabled.)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def advise(m: mmap.mmap, advice: int, *args: int) -> bool:
    """madvise(2), best effort: a kernel built without CONFIG_ADVISE_SYSCALLS answers ENOSYS,
    and where THP is "always" (/sys/kernel/mm/transparent_hugepage/enabled) it is not needed."""
    try:
        m.madvise(advice, *args)
        return True
    except OSError:
        return False


def thp_kib(start: int) -> int:
    """AnonHugePages of the mapping containing ``start``, from /proc/self/smaps (0 if none)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= start < hi
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    return 0


def main() -> int:
    secret = secrets.token_hex(4)

    buffer = anonymous(PAGE)
    advise(buffer, mmap.MADV_DONTFORK)
    text = f"lab 1 secret {secret} from pid {os.getpid()}".encode()
    buffer[: len(text)] = text
    buf = address(buffer)
    if libc.mlock(ctypes.c_void_p(buf), ctypes.c_size_t(PAGE)) != 0:  # keep it in RAM, on one frame
        print(f"warning: mlock failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)

    # 4 MiB reserved so that a 2 MiB-aligned 2 MiB piece surely lies inside
    region = anonymous(2 * HUGE)
    base = address(region)
    huge = (base + HUGE - 1) & ~(HUGE - 1)
    off = huge - base
    advise(region, mmap.MADV_DONTFORK)
    advise(region, mmap.MADV_HUGEPAGE, off, HUGE)
    region[off : off + 16] = b"lab 1 huge page\0"  # the first touch faults in a whole 2 MiB page
    for i in range(off, off + HUGE, PAGE):
        region[i + 16] = 1

    shared = anonymous(PAGE)
    shared[:40] = b"shared page: written before fork()".ljust(40, b"\0")
    cow = anonymous(PAGE)
    cow[:40] = b"cow page: written by the parent".ljust(40, b"\0")

    child = os.fork()
    if child == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # die with the parent

        def on_usr1(_sig, _frame):
            cow[:40] = b"cow page: rewritten by the child".ljust(40, b"\0")
            print(f"[lab1 child {os.getpid()}] wrote to the cow page: copy-on-write", flush=True)

        signal.signal(signal.SIGUSR1, on_usr1)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        while True:
            signal.pause()

    def stop(_sig, _frame):
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            os.unlink(STATE)
        except FileNotFoundError:
            pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = {
        "pid": os.getpid(),
        "child_pid": child,
        "buffer": buf,
        "huge": huge,
        "shared": address(shared),
        "cow": address(cow),
        "page_size": PAGE,
    }
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.rename(tmp, STATE)  # the checker never sees half a file
    thp = thp_kib(huge)
    print(
        f"lab 1 process: pid {os.getpid()}, child pid {child}\n"
        f"  buffer  {buf:#x}  one mlocked page; its text starts with 'lab 1 secret'\n"
        f"  huge    {huge:#x}  2 MiB, MADV_HUGEPAGE"
        f" ({'backed by a transparent huge page' if thp >= 2048 else 'NOT backed by a huge page: THP is off?'})\n"
        f"  shared  {address(shared):#x}  written before fork(), never after\n"
        f"  cow     {address(cow):#x}  `kill -USR1 {child}` makes the child write it\n"
        f"  (also in {STATE}; stop with: kill {os.getpid()})",
        flush=True,
    )
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
