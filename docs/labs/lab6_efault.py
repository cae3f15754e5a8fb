#!/usr/bin/env python3
"""Lab 6, step 3, in Python: write a page of physical memory to a file, with and without O_DIRECT.

    python3 docs/labs/lab6_efault.py DIR [PHYS]

Maps one page of physical memory through /dev/mem (default: pyphys.ko's buffer, from
/sys/kernel/pyphys/buffer_phys) and writes it to DIR/lab6-efault.bin three ways:

  1. write(2) straight from the /dev/mem mapping, buffered
  2. write(2) straight from the /dev/mem mapping, O_DIRECT        <- EFAULT
  3. write(2) from a page-aligned anonymous bounce buffer, O_DIRECT (copy first)

and says what each returned and whether the file then holds the page. Standard library only.
"""

from __future__ import annotations

import errno
import mmap
import os
import sys

PAGE = mmap.PAGESIZE


def outcome(err: OSError | None) -> str:
    if err is None:
        return "ok"
    name = errno.errorcode.get(err.errno, str(err.errno))
    return f"{name} ({os.strerror(err.errno)})"


def attempt(path: str, source, direct: bool) -> OSError | None:
    """One open+write(2)+close of ``source`` (a buffer) into ``path``; the error, or None."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags, 0o600)
    try:
        n = os.write(fd, source)
        if n != PAGE:
            return OSError(errno.EIO, f"short write of {n} bytes")
    except OSError as err:
        return err
    finally:
        os.close(fd)
    return None


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    directory = sys.argv[1]
    if len(sys.argv) == 3:
        phys = int(sys.argv[2], 0)
    else:
        with open("/sys/kernel/pyphys/buffer_phys") as f:
            phys = int(f.read(), 16)
    path = os.path.join(directory, "lab6-efault.bin")

    fd = os.open("/dev/mem", os.O_RDONLY | os.O_SYNC)
    # remap_pfn_range() (drivers/char/mem.c, mmap_mem) marks this mapping VM_IO | VM_PFNMAP:
    # page table entries with no struct page behind them as far as GUP is concerned
    page = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ, offset=phys - phys % PAGE)
    os.close(fd)
    want = bytes(page)
    print(f"physical page {phys - phys % PAGE:#x} mapped through /dev/mem; writing it to {path}")

    def holds_page() -> str:
        with open(path, "rb") as f:
            return "file holds the page" if f.read() == want else "file does NOT hold the page"

    err = attempt(path, page, direct=False)
    print(f"1. buffered, straight from the mapping:  {outcome(err)}" + ("" if err else f"; {holds_page()}"))
    if err is not None and err.errno == errno.EFAULT:
        print(
            "   (this filesystem pins the source pages even without O_DIRECT: 9p's virtio transport "
            "sends large writes zero-copy, net/9p/client.c p9_client_write)"
        )

    try:
        err = attempt(path, page, direct=True)
    except OSError as open_err:
        print(
            f"2. O_DIRECT, straight from the mapping:  open failed: {outcome(open_err)} -- this filesystem "
            "has no O_DIRECT (tmpfs before Linux 6.6): use $LABDIR"
        )
        return 1
    print(f"2. O_DIRECT, straight from the mapping:  {outcome(err)}" + ("" if err else f"; {holds_page()}"))

    bounce = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # page-aligned, real pages
    bounce[:] = want
    err = attempt(path, bounce, direct=True)
    print(f"3. O_DIRECT, from a bounce buffer:       {outcome(err)}" + ("" if err else f"; {holds_page()}"))
    os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
