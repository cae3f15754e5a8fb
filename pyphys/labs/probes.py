"""Ground truth for the lab graders, read straight from the kernel's interfaces.

These readers deliberately do NOT use the pyphys code a student uses to find the values
(pyphys.pagemap, physmem, pci, dump): raw /proc/PID/pagemap words decoded per
Documentation/admin-guide/mm/pagemap.rst, `busybox devmem`, the module's sysfs (computed in the
kernel with virt_to_phys / __pa_symbol), uname(2), /proc/iomem, sysfs PCI ``resourceN`` mmaps with the
device's documented register semantics (QEMU docs/specs/edu.rst), the LiME header layout as
LiME documents it. Lab 9's page-table walk is the one exception: the checker runs
`pyphys walk` itself (no other reader knows CR3), and accepts its answer only where the raw
pagemap entry or the module's virt_to_phys says the same. Each failure is one
:class:`~pyphys.errors.PyphysError` saying what could not be read (``OSError`` is converted by
:class:`~pyphys.errors.oserrors`); a grader turns it into ERROR verdicts for the values that
needed it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct

from pyphys import paths
from pyphys.errors import NO_ADMIN, PyphysError, oserrors, root_hint

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# Documentation/admin-guide/mm/pagemap.rst: the /proc/PID/pagemap entry
PM_PFN_MASK = (1 << 55) - 1  # bits 0-54: page frame number if present
PM_EXCLUSIVE = 1 << 56  # bit 56: page exclusively mapped (since 4.2)
PM_SWAP = 1 << 62  # bit 62: page swapped; then bits 0-4 are the swap type, 5-54 the offset
PM_SWAP_TYPE_BITS = 5
PM_PRESENT = 1 << 63  # bit 63: page present
# ... and /proc/kpageflags bit numbers (include/uapi/linux/kernel-page-flags.h)
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_THP = 22

# LiME v1 range header (LiME's doc/README.md "Memory Format"; AVML writes the same):
# u32 magic 0x4C694D45 ("EMiL" on disk), u32 version 1, u64 first address, u64 last address
# (inclusive), 8 reserved bytes.
LIME_HEADER = struct.Struct("<IIQQ8s")
LIME_MAGIC = 0x4C694D45

# QEMU docs/specs/edu.rst: BAR0 registers
EDU_ID, EDU_LIVENESS, EDU_FACTORIAL, EDU_STATUS = 0x00, 0x04, 0x08, 0x20
EDU_STATUS_COMPUTING = 0x01
# edu.rst's DMA engine: source, destination, count, command (bit 0 run, bit 1 device -> RAM);
# the device's own buffer sits at 0x40000 of its address space
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_COUNT, EDU_DMA_CMD = 0x80, 0x88, 0x90, 0x98
EDU_DMA_BUF = 0x40000


class ProbeError(PyphysError):
    """The grader could not establish the truth (says why); the values that need it get ERROR."""


def _read(path: str, binary: bool = False, hint: str | None = None):
    """The whole of ``path`` (text, or bytes)."""
    with oserrors(f"cannot read {path}", hint), open(path, "rb" if binary else "r") as f:
        return f.read()


def _pread(path: str, n: int, offset: int) -> bytes:
    """``n`` bytes of ``path`` at ``offset`` (pread(2): the proc and dev files here are seekable)."""
    with oserrors(f"cannot read {path} at {offset:#x}"):
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, n, offset)
        finally:
            os.close(fd)


# -- processes: pagemap, kpageflags, /proc/PID/mem ---------------------------------------------
def pagemap_entry(pid: int, vaddr: int) -> int:
    """The raw 64-bit /proc/PID/pagemap entry for ``vaddr`` (pagemap.rst: one u64 per page)."""
    path = paths.proc(pid, "pagemap")
    data = _pread(path, 8, vaddr // PAGE_SIZE * 8)
    if len(data) != 8:
        raise ProbeError(f"{path} has no entry for {vaddr:#x} (did the process exit?)")
    return struct.unpack("<Q", data)[0]


def present_pfn(pid: int, vaddr: int) -> tuple[int, int]:
    """(PFN, raw entry) of a present page; ProbeError when absent or the PFN is hidden."""
    e = pagemap_entry(pid, vaddr)
    if not e & PM_PRESENT:
        raise ProbeError(f"the page at {vaddr:#x} of process {pid} is not present")
    pfn = e & PM_PFN_MASK
    if pfn == 0:
        raise ProbeError(
            "pagemap PFNs read as 0 (pagemap.rst): " + root_hint(NO_ADMIN, "the checker needs root (CAP_SYS_ADMIN)")
        )
    return pfn, e


def lab_process(number: int, pid_keys: tuple[str, ...] = ("pid",)) -> dict:
    """The state file /tmp/labN-process.json of lab N's process (docs/labs/labN_process.py), once
    every pid it names is that script; ProbeError saying how to start it otherwise."""
    import json

    script = f"lab{number}_process.py"
    try:
        with open(f"/tmp/lab{number}-process.json") as f:
            st = json.load(f)
        for p in (int(st[k]) for k in pid_keys):
            # a stale state file (guest /tmp overlays the host's /tmp) may name a pid that is now
            # some other process: it must be the lab's script itself
            with open(paths.proc(p, "cmdline"), "rb") as f:
                if script.encode() not in f.read():
                    raise ProcessLookupError(f"pid {p} is not {script}")
    except (OSError, ValueError, KeyError) as err:
        why = f" ({err.strerror or err})" if isinstance(err, OSError) else ""
        raise ProbeError(
            f"the lab {number} process is not running{why}: start it with `python3 docs/labs/{script} &` "
            "and redo the steps with its pid" + ("s" if len(pid_keys) > 1 else "")
        ) from None
    return st


def kpageflags(pfn: int, count: int = 1) -> list[int]:
    """Raw /proc/kpageflags words for ``count`` frames from ``pfn``."""
    data = _pread(paths.proc("kpageflags"), 8 * count, pfn * 8)
    return list(struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8]))


def thp_frames(pfn: int) -> int:
    """How many frames the transparent huge page headed by ``pfn`` spans (kpageflags: its head
    has COMPOUND_HEAD and THP, the frames after it COMPOUND_TAIL); ProbeError when no THP."""
    flags = kpageflags(pfn)[0]
    if not flags & (1 << KPF_THP):
        raise ProbeError(
            f"no transparent huge page backs frame {pfn:#x} (kpageflags has no THP bit): is THP on? "
            "`cat /sys/kernel/mm/transparent_hugepage/enabled`"
        )
    span = 1
    if flags & (1 << KPF_COMPOUND_HEAD):
        for w in kpageflags(pfn + 1, 1 << 10):  # x86 THPs are 2 MiB: 512 frames
            if not w & (1 << KPF_COMPOUND_TAIL):
                break
            span += 1
    return span


def proc_mem(pid: int, vaddr: int, n: int) -> bytes:
    """``n`` bytes at ``vaddr`` in process ``pid``, through /proc/PID/mem (the kernel's view)."""
    return _pread(paths.proc(pid, "mem"), n, vaddr)


def cmdline() -> list[str]:
    """The kernel command line's words ([] when unreadable)."""
    try:
        return _read(paths.proc("cmdline")).split()
    except PyphysError:
        return []


# -- physical memory: busybox devmem, /dev/mem, the module -------------------------------------
def busybox_devmem(addr: int, width: int = 32) -> int:
    """One read of physical ``addr`` by `busybox devmem` (a tool pyphys did not write)."""
    import subprocess

    try:
        proc = subprocess.run(["busybox", "devmem", hex(addr), str(width)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise ProbeError("busybox is not installed (apt-get install busybox-static)") from None
    except subprocess.TimeoutExpired:
        raise ProbeError(f"busybox devmem {addr:#x} timed out") from None
    if proc.returncode != 0:
        raise ProbeError(f"busybox devmem {addr:#x} {width}: {proc.stderr.strip() or 'failed'}")
    return int(proc.stdout.strip(), 16)


def dev_read(addr: int, n: int, device: str = "mem") -> bytes:
    """``n`` bytes at physical ``addr`` by pread(2) of /dev/DEVICE (mem, or the module's pyphys_mem)."""
    return _pread(paths.dev(device), n, addr)


_NO_MODULE = "is pyphys.ko loaded? `lsmod | grep pyphys`"


def sysfs_number(*parts: str) -> int:
    """A number the module publishes in sysfs (/sys/kernel/pyphys/...)."""
    path = paths.sys(*parts)
    text = _read(path, hint=_NO_MODULE).strip()
    try:
        return int(text, 0)
    except ValueError:
        raise ProbeError(f"{path} holds {text[:30]!r}, not a number") from None


def module_buffer() -> tuple[int, bytes]:
    """(buffer_phys, content) of pyphys.ko's buffer, as the kernel reports them in sysfs."""
    phys = sysfs_number("kernel", "pyphys", "buffer_phys")
    return phys, _read(paths.sys("kernel", "pyphys", "buffer"), binary=True, hint=_NO_MODULE)


def module_buffer_write(offset: int, data: bytes) -> None:
    """Write ``data`` into pyphys.ko's buffer at ``offset`` through its sysfs file."""
    path = paths.sys("kernel", "pyphys", "buffer")
    with oserrors(f"cannot write {path}"), open(path, "r+b", buffering=0) as f:
        f.seek(offset)
        f.write(data)


def mem_device_on() -> bool:
    """Whether the module was loaded with its /dev/pyphys_mem device (mem_device=1) and it exists."""
    try:
        on = _read(paths.sys("module", "pyphys", "parameters", "mem_device")).strip() == "Y"
    except PyphysError:
        return False
    return on and os.path.exists(paths.dev("pyphys_mem"))


def iomem_regions(text: str) -> list[tuple[int, int, int, str]]:
    """/proc/iomem lines -> (depth, start, end inclusive, name); depth = indentation / 2."""
    import re

    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$", line)
        if m:
            out.append((len(m.group(1)) // 2, int(m.group(2), 16), int(m.group(3), 16), m.group(4).strip()))
    return out


def innermost_region(addr: int) -> str | None:
    """Name of the most deeply nested /proc/iomem region holding ``addr``."""
    regions = iomem_regions(_read(paths.proc("iomem")))
    best = None
    for depth, lo, hi, name in regions:
        if lo <= addr <= hi and (best is None or depth >= best[0]):
            best = (depth, name)
    if best is not None and best[0] == 0 and regions and all(lo == 0 and hi == 0 for _, lo, hi, _ in regions):
        raise ProbeError("/proc/iomem shows zeros: " + root_hint(NO_ADMIN, "the checker needs root"))
    return None if best is None else best[1]


def devmem_map_errno(phys: int) -> str | None:
    """The errno name with which mmap(2) of /dev/mem refuses the page at ``phys``, or None if it
    maps (drivers/char/mem.c mmap_mem(): range_is_allowed() under STRICT_DEVMEM)."""
    import mmap

    try:
        fd = os.open(paths.dev("mem"), os.O_RDONLY | os.O_SYNC)
        try:
            mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=phys).close()
        finally:
            os.close(fd)
    except OSError as err:
        return errno_of(err)
    return None


def odirect_write_errno(phys: int, where: str) -> str:
    """What write(2) of the /dev/mem mapping of the page at ``phys`` into a new O_DIRECT file in
    ``where`` returns: an errno name, or "no error" (the file is removed again)."""
    import mmap

    probe = os.path.join(where, f".lab6-efault-probe-{os.getpid()}")
    with oserrors("cannot map the buffer through /dev/mem"):
        fd = os.open(paths.dev("mem"), os.O_RDONLY | os.O_SYNC)
        try:
            m = mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=phys)
        finally:
            os.close(fd)
    try:
        try:
            out = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        except OSError as err:
            raise ProbeError(
                f"{where} refuses O_DIRECT ({errno_of(err)}): use $LABDIR from `pyphys lab start 6`"
            ) from None
        try:
            os.write(out, m)
            return "no error"
        except OSError as err:
            return errno_of(err)
        finally:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    finally:
        m.close()


def errno_name(text: str) -> str | None:
    """Normalise an errno answer: 'EPERM', 'eperm', '1', 'Operation not permitted' -> 'EPERM'."""
    t = text.strip()
    if t.upper() in errno.__dict__ and t.upper().startswith("E"):
        return t.upper()
    if t.isdigit():
        return errno.errorcode.get(int(t))
    for code, name in errno.errorcode.items():
        if os.strerror(code).lower() == t.lower().rstrip("."):
            return name
    return None


def errno_of(err: OSError) -> str:
    """The errno name of ``err`` (EPERM)."""
    return errno.errorcode.get(err.errno or 0, str(err.errno))


# -- the running kernel ------------------------------------------------------------------------
def kconfig() -> dict[str, str]:
    """The running kernel's config (/proc/config.gz, else /boot/config-RELEASE): CONFIG_X -> value,
    "n" for `# CONFIG_X is not set`."""
    import gzip

    release = os.uname().release
    try:
        with gzip.open(paths.proc("config.gz"), "rt") as f:
            text = f.read()
    except OSError:
        text = _read(f"/boot/config-{release}", hint=f"no /proc/config.gz either: no config for {release}")
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, val = line.partition("=")
            out[k] = val
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2 : -len(" is not set")]] = "n"
    return out


def pat_in_use(cfg: dict[str, str]) -> bool:
    """PAT is in use: the CPU has it (/proc/cpuinfo flag), the kernel has CONFIG_X86_PAT, and the
    command line does not say nopat (arch/x86/mm/pat/memtype.c)."""
    try:
        cpu_pat = " pat " in f" {_read(paths.proc('cpuinfo'))} ".replace("\n", " ")
    except PyphysError:
        cpu_pat = False
    return cpu_pat and cfg.get("CONFIG_X86_PAT") == "y" and "nopat" not in cmdline()


def journal_entries() -> list:
    """pyphys's write journal ([] when there is none or it cannot be read)."""
    try:
        from pyphys import journal

        return journal.Journal().entries()
    except (PyphysError, OSError):
        return []


def swap_areas() -> list[str]:
    """Filenames of the active swap areas, in swap-type order (mm/swapfile.c's swap_show walks
    swap_info[] by type)."""
    lines = _read(paths.proc("swaps")).splitlines()[1:]
    return [line.split()[0].replace("\\040", " ") for line in lines if line.strip()]


# -- PCI, straight from sysfs (Documentation/PCI/sysfs-pci.rst) --------------------------------
def pci_find(vendor: int, device: int) -> list[str]:
    """Addresses (0000:00:05.0) of every PCI function with these IDs."""
    root = paths.sys("bus", "pci", "devices")
    with oserrors(f"cannot list {root}"):
        names = sorted(os.listdir(root))
    found = []
    for name in names:
        try:
            ids = (int(_read(os.path.join(root, name, f)), 16) for f in ("vendor", "device"))
            if tuple(ids) == (vendor, device):
                found.append(name)
        except (PyphysError, ValueError):
            continue
    return found


def pci_slot(text: str) -> str:
    """'00:05.0' and '0000:00:05.0' name the same function (lspci prints domain 0000 or omits it)."""
    a = text.strip().lower()
    return a if a.count(":") == 2 else "0000:" + a


def pci_command(slot: str) -> int:
    """The 16-bit COMMAND register (config offset 0x04) from the device's sysfs ``config``."""
    data = _pread(paths.sys("bus", "pci", "devices", slot, "config"), 2, 0x04)
    return int.from_bytes(data, "little")


def pci_bar(slot: str, bar: int) -> tuple[int, int]:
    """(start, size) of BAR ``bar`` from the device's sysfs ``resource`` file."""
    path = paths.sys("bus", "pci", "devices", slot, "resource")
    try:
        start, end, _flags = (int(x, 16) for x in _read(path).splitlines()[bar].split())
    except (IndexError, ValueError) as err:
        raise ProbeError(f"cannot read BAR{bar} from {path}: {err}") from None
    return start, (end - start + 1) if end else 0


class BarMap:
    """An mmap of sysfs resourceN: 32-bit registers are read and written with one 4-byte access
    (memoryview cast 'I'); edu.rst: its registers take 4- or 8-byte accesses only. A context
    manager: the mapping is released on leaving."""

    def __init__(self, slot: str, bar: int, writable: bool = False):
        import mmap

        path = paths.sys("bus", "pci", "devices", slot, f"resource{bar}")
        with oserrors(f"cannot map {path}"):
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
            try:
                prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
                self.map = mmap.mmap(fd, os.fstat(fd).st_size, mmap.MAP_SHARED, prot)
            finally:
                os.close(fd)
        self.words = memoryview(self.map).cast("I")

    def read32(self, off: int) -> int:
        return self.words[off // 4]

    def write32(self, off: int, value: int) -> None:
        self.words[off // 4] = value

    def read(self, off: int, n: int) -> bytes:
        return bytes(self.map[off : off + n])

    def __enter__(self) -> BarMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.words.release()
        self.map.close()


def edu_factorial(bar0: BarMap, n: int) -> int:
    """What edu computes for ``n``: write it to the factorial register, poll the status register
    until bit 0 ("computing") clears, read the register (QEMU docs/specs/edu.rst)."""
    import time

    bar0.write32(EDU_FACTORIAL, n)
    deadline = time.monotonic() + 5
    while bar0.read32(EDU_STATUS) & EDU_STATUS_COMPUTING and time.monotonic() < deadline:
        time.sleep(0.01)
    return bar0.read32(EDU_FACTORIAL)


def edu_dma_to_ram(bar0: BarMap, device_offset: int, ram: int, n: int) -> None:
    """Let edu copy ``n`` bytes of its own buffer at ``device_offset`` into RAM at ``ram`` (a
    32-bit bus address), and wait until its command register says it is done (edu.rst)."""
    import time

    bar0.write32(EDU_DMA_SRC, EDU_DMA_BUF + device_offset)
    bar0.write32(EDU_DMA_DST, ram)
    bar0.write32(EDU_DMA_COUNT, n)
    bar0.write32(EDU_DMA_CMD, 0x3)
    deadline = time.monotonic() + 10
    while bar0.read32(EDU_DMA_CMD) & 1:
        if time.monotonic() > deadline:
            raise ProbeError("edu did not finish a DMA within 10 s")
        time.sleep(0.01)


# -- dump files ----------------------------------------------------------------------------------
def lime_ranges(path: str) -> list[tuple[int, int, int]]:
    """(first address, last address, file offset of its data) of every LiME v1 range in ``path``."""
    out = []
    with oserrors(f"cannot read {path}"), open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + LIME_HEADER.size <= size:
            f.seek(pos)
            magic, version, s, e, _ = LIME_HEADER.unpack(f.read(LIME_HEADER.size))
            if magic != LIME_MAGIC or version != 1 or e < s:
                raise ProbeError(f"{path}: no LiME v1 header at offset {pos:#x}")
            out.append((s, e, pos + LIME_HEADER.size))
            pos += LIME_HEADER.size + (e - s + 1)
    return out


def file_bytes(path: str, n: int, offset: int = 0) -> bytes:
    """Up to ``n`` bytes of the regular file ``path`` at ``offset``."""
    with oserrors(f"cannot read {path}"), open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


# -- page tables: the walk the grader runs itself, anchored to pagemap and the module -----------
def process_walk(pid: int, vaddr: int):
    """`pyphys walk PID VADDR` as the grader runs it (pyphys.walk: the module's ioctl for the
    start, pread of physical memory for each entry), accepted only when its frame is the one
    the raw pagemap entry names; ProbeError otherwise."""
    from pyphys import walk

    w = walk.walk_process(pid, vaddr)
    pfn, _ = present_pfn(pid, vaddr)
    if w.pfn != pfn:
        raise ProbeError(f"the checker's walk of {vaddr:#x} gives frame {w.pfn}, pagemap {pfn:#x}: the page moved?")
    return w


def kernel_walk(vaddr: int, phys: int):
    """`pyphys walk kernel VADDR` as the grader runs it, accepted only when it ends at ``phys``
    (what the module's sysfs says, computed in the kernel with virt_to_phys)."""
    from pyphys import walk

    w = walk.walk_kernel(vaddr)
    if w.phys_addr != phys:
        raise ProbeError(f"the checker's walk of kernel {vaddr:#x} gives {w.phys_addr}, the module says {phys:#x}")
    return w


def module_buffer_virt() -> int:
    """The kernel virtual address of pyphys.ko's buffer: its ``pyphys_buffer`` pointer."""
    from pyphys import walk

    return walk.module_buffer_virt()


def kallsyms_address(name: str) -> int | None:
    """Where /proc/kallsyms says symbol ``name`` is (None when absent or hidden as zeros)."""
    from pyphys import ksym

    return ksym.symbol_address(name)
