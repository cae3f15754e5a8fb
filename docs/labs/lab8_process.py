#!/usr/bin/env python3
"""Lab 8's process: one page of text to send to swap and bring back.

It maps one anonymous page, writes a line of text with a random secret into it, prints its pid
and the page's address, and waits (stop it with ``kill PID``):

  kill -USR1 PID   madvise(MADV_PAGEOUT) on the page: the kernel writes it to swap and unmaps it
  kill -USR2 PID   read the page: a page fault brings it back from swap into some frame

After each step it writes its own raw pagemap entry for the page into /tmp/lab8-process.json
(``entries``: "start", "pageout", "swapin"), which `pyphys lab check 8` compares with yours.
Standard library only: read it, it is part of the lab.
"""

import ctypes
import json
import mmap
import os
import secrets
import signal
import struct
import sys
import time

PAGE = mmap.PAGESIZE
STATE = "/tmp/lab8-process.json"
MADV_PAGEOUT = 21  # include/uapi/asm-generic/mman-common.h (Linux 5.4)

page = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
vaddr = ctypes.addressof(ctypes.c_char.from_buffer(page))
secret = secrets.token_hex(8)
text = f"lab 8 was here, secret {secret}\n".encode()
state = {"pid": os.getpid(), "vaddr": vaddr, "secret": secret, "text": text.decode(), "entries": {}}


def entry() -> int:
    """This page's raw 64-bit entry in /proc/self/pagemap (Documentation/admin-guide/mm/pagemap.rst)."""
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(vaddr // PAGE * 8)
        return struct.unpack("<Q", f.read(8))[0]


def save(stage: str) -> None:
    state["entries"][stage] = entry()
    with open(STATE + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(STATE + ".tmp", STATE)


def pageout(_sig, _frame) -> None:
    try:
        page.madvise(MADV_PAGEOUT)
    except OSError as err:
        print(f"madvise(MADV_PAGEOUT): {err.strerror}", flush=True)
        return
    save("pageout")
    swapped = state["entries"]["pageout"] >> 62 & 1
    print("paged out: in swap now" if swapped else "paged out, but not in swap: is swap on? (swapon)", flush=True)


def swapin(_sig, _frame) -> None:
    back = page[: len(text)]  # this read faults the page back in
    save("swapin")
    print(f"read back: {back.decode(errors='replace').strip()!r}", flush=True)


page[: len(text)] = text
save("start")
signal.signal(signal.SIGUSR1, pageout)
signal.signal(signal.SIGUSR2, swapin)
print(f"pid {os.getpid()}: page at {vaddr:#x} holds {text.decode().strip()!r}", flush=True)
print(f"  kill -USR1 {os.getpid()}   page it out;   kill -USR2 {os.getpid()}   read it back", flush=True)
sys.stdout.flush()
while True:
    time.sleep(3600)
