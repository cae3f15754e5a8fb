"""The six classroom labs: what each one boots, and the checker that grades a student's results.

A lab is a Markdown text in docs/labs/ plus two commands:

* ``pyphys lab start N`` (on the host) boots the lab VM with lab N's kernel, devices and module
  parameters and drops the student into a shell (:func:`start`);
* ``pyphys lab check N`` (in that shell) reads the values the student wrote into
  ``/tmp/labN.txt`` and compares each with ground truth computed live (:func:`check`).

The checkers deliberately do NOT use the pyphys code the student used to find the values
(pyphys.pagemap, physmem, pci, dump): they read the kernel's own interfaces directly -- raw
/proc/PID/pagemap words decoded per Documentation/admin-guide/mm/pagemap.rst, `busybox devmem`,
the module's sysfs (computed in the kernel with virt_to_phys), uname(2), /proc/iomem, sysfs PCI
``resourceN`` mmaps with the device's documented register semantics (QEMU docs/specs/edu.rst),
the LiME header layout as LiME documents it, SHA-256 of a fresh /dev/mem read. A wrong value
gets a hint (and a diagnosis of common slips: a PFN where an address was asked, a virtual
address where a physical one was), not the answer.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import struct
import subprocess
from dataclasses import dataclass, field

from pyphys import paths
from pyphys.errors import NotFoundError, PyphysError, UsageError

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "labs")
RESULTS = "/tmp/lab{n}.txt"
LAB1_STATE = "/tmp/lab1-process.json"

OK, WRONG, MISSING, ERROR = "OK", "WRONG", "MISSING", "ERROR"

# Documentation/admin-guide/mm/pagemap.rst: the /proc/PID/pagemap entry
PM_PFN_MASK = (1 << 55) - 1  # bits 0-54: page frame number if present
PM_EXCLUSIVE = 1 << 56  # bit 56: page exclusively mapped (since 4.2)
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


# ---------------------------------------------------------------------------------------------
# The labs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One value the student writes into the results file."""

    name: str
    what: str  # what to write, shown in the template


@dataclass(frozen=True)
class Lab:
    """One lab: its text, the VM it needs, and the values its results file holds."""

    number: int
    slug: str
    title: str
    kernel: str  # "lab" (STRICT_DEVMEM off) or "stock" (Debian's, as shipped)
    keys: tuple[Key, ...]
    module_params: tuple[tuple[str, str], ...] = ()  # insmod parameters at start

    @property
    def doc(self) -> str:
        """Path of the lab's text."""
        return os.path.join(DOCS, f"lab{self.number}-{self.slug}.md")

    @property
    def results_path(self) -> str:
        return RESULTS.format(n=self.number)

    def template(self) -> str:
        """The results file to fill in, one ``key = `` line per value, each with its comment."""
        lines = [
            f"# Lab {self.number}: {self.title} -- fill in every value, then run `pyphys lab check {self.number}`",
            "# numbers: decimal or 0x-hex; text: as is, or in double quotes with escapes like \\r \\x00",
        ]
        for k in self.keys:
            lines.append(f"# {k.what}")
            lines.append(f"{k.name} = ")
        return "\n".join(lines) + "\n"


LABS: dict[int, Lab] = {
    lab.number: lab
    for lab in (
        Lab(
            1,
            "pagemap",
            "virtual to physical with pagemap: a buffer, a huge page, fork and copy-on-write",
            "lab",
            (
                Key("pid", "pid of the lab 1 process (it prints it)"),
                Key("child_pid", "pid of its child"),
                Key("buffer_pfn", "page frame number (PFN) backing the buffer"),
                Key("buffer_phys", "physical address of the buffer's first byte"),
                Key("buffer_text", "the text you read at that physical address through /dev/mem"),
                Key("huge_pfn", "PFN backing the first byte of the huge region"),
                Key("huge_pages", "how many 4 KiB frames the huge page that backs it spans"),
                Key("shared_pfn", "PFN of the shared page (the same in parent and child)"),
                Key("shared_exclusive", "is the shared page 'exclusively mapped' (yes/no)"),
                Key("cow_pfn_before", "PFN of the cow page in both processes BEFORE kill -USR1 CHILD"),
                Key("cow_child_pfn_after", "PFN of the cow page in the child AFTER kill -USR1 CHILD"),
                Key("cow_exclusive_after", "is the child's cow page 'exclusively mapped' after the write (yes/no)"),
            ),
        ),
        Lab(
            2,
            "module-buffer",
            "the module's buffer through /dev/mem, both directions",
            "lab",
            (
                Key("buffer_phys", "physical address of pyphys.ko's buffer"),
                Key("word7_value", "32-bit word at buffer_phys + 0x1c, read through /dev/mem"),
                Key("poke_offset", "offset in the buffer where you wrote a word through /dev/mem (multiple of 4)"),
                Key("poke_value", "the 32-bit value you wrote there"),
                Key("message_offset", "offset in the buffer where you wrote your message through sysfs"),
                Key("message", "the message, as you read it back through /dev/mem"),
            ),
        ),
        Lab(
            3,
            "hostname",
            "changing the hostname through /dev/mem (seed 002)",
            "lab",
            (
                Key("nodename_phys", "physical address of the kernel's nodename"),
                Key("nodename_region", "name of the innermost /proc/iomem region that address lies in"),
                Key("old_hostname", "the hostname before you changed it"),
                Key("new_hostname", "the hostname you wrote through /dev/mem"),
            ),
        ),
        Lab(
            4,
            "strict-devmem",
            "STRICT_DEVMEM and PAT: the stock kernel refuses, the module's device gets through",
            "stock",
            (
                Key("kernel_release", "uname -r"),
                Key("strict_devmem", "value of CONFIG_STRICT_DEVMEM in this kernel's config (y or n)"),
                Key("devmem_errno", "errno name when /dev/mem maps the module's buffer (e.g. EINVAL)"),
                Key("pat", "is PAT in use by this kernel (yes/no)"),
                Key("doctor_blocker", "the kernel option `pyphys doctor` names as BLOCKED"),
                Key("module_word0", "first 32-bit word of the buffer, read through /dev/pyphys_mem"),
            ),
        ),
        Lab(
            5,
            "pci",
            "PCI registers without a driver: edu and ivshmem (seed 002)",
            "lab",
            (
                Key("edu_slot", "PCI address of the edu device (DDDD:BB:SS.F)"),
                Key("edu_id", "edu's identification register (BAR0 offset 0x00)"),
                Key("liveness_in", "the value you wrote to edu's liveness register (BAR0 0x04)"),
                Key("liveness_out", "what reading it back returned"),
                Key("factorial_in", "n you wrote to edu's factorial register (BAR0 0x08), 1..12"),
                Key("factorial_out", "what the register held once the device finished"),
                Key("ivshmem_slot", "PCI address of the ivshmem device"),
                Key("ivshmem_bar2_size", "size of ivshmem's BAR2 in bytes"),
                Key("host_message", "the text the host left at BAR2 offset 0"),
                Key("guest_message_offset", "BAR2 offset where you wrote your text"),
                Key("guest_message", 'the text you wrote (use quotes for escapes: "Dunia,vipi?\\r")'),
            ),
        ),
        Lab(
            6,
            "dump",
            "dumping physical memory, O_DIRECT and EFAULT (seed 003)",
            "lab",
            (
                Key("buffer_phys", "physical address of pyphys.ko's buffer"),
                Key("raw_file", "raw dump of exactly the buffer's page"),
                Key("raw_sha256", "SHA-256 of that dump"),
                Key("padded_file", "padded dump of the same page"),
                Key("padded_offset", "file offset of the buffer's first byte in the padded dump"),
                Key("lime_file", "LiME dump of the same page"),
                Key("lime_data_offset", "file offset of the buffer's first byte in the LiME dump"),
                Key("direct_file", "raw dump of the same page written with --direct (O_DIRECT), in $LABDIR"),
                Key("efault_errno", "errno name of the O_DIRECT write straight from the /dev/mem mapping"),
            ),
        ),
    )
}


def get(number: int) -> Lab:
    """Lab ``number``; UsageError when there is no such lab."""
    try:
        return LABS[number]
    except KeyError:
        raise UsageError(f"there is no lab {number}", f"the labs are {', '.join(map(str, LABS))}") from None


# ---------------------------------------------------------------------------------------------
# The results file
# ---------------------------------------------------------------------------------------------
_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*[=:]\s?(.*)$")


def parse_results(text: str) -> dict[str, str]:
    """``key = value`` (or ``key: value``) lines -> {key: value}. ``#`` starts a comment line or,
    after a space, a trailing comment; a value in double quotes may use escapes (\\r, \\x00) and
    keeps ``#``. UsageError names the first malformed line."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise UsageError(f"line {lineno} is not `key = value`: {line.strip()[:60]!r}")
        key, value = m.group(1).lower(), m.group(2).strip()
        if value.startswith('"'):
            end = value.rfind('"')
            if end == 0:
                raise UsageError(f"line {lineno}: the quoted value of {key} has no closing quote")
            try:
                value = value[1:end].encode("latin-1", "backslashreplace").decode("unicode_escape")
            except UnicodeDecodeError as err:
                raise UsageError(f"line {lineno}: bad escape in the value of {key}: {err.reason}") from None
        else:
            value = re.split(r"\s+#", value, 1)[0].strip()
        out[key] = value
    return out


def read_results(lab: Lab, path: str | None = None) -> tuple[str, dict[str, str]]:
    """(path, values) of the student's results file. NotFoundError says how to make one."""
    path = path or lab.results_path
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFoundError(
            f"no results file {path}",
            f"write one: `pyphys lab check {lab.number} --template > {path}`, then fill it in",
        ) from None
    except OSError as err:
        raise PyphysError(f"cannot read {path}: {os.strerror(err.errno or 0)}") from err
    return path, parse_results(text)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
@dataclass
class Item:
    """One graded value: OK, WRONG, MISSING, or ERROR (the checker could not establish the truth)."""

    key: str
    status: str
    detail: str

    def to_dict(self) -> dict:
        return {"key": self.key, "status": self.status, "detail": self.detail}


@dataclass
class Report:
    """What ``pyphys lab check N`` found."""

    lab: int
    path: str
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(i.status == OK for i in self.items)

    def to_dict(self) -> dict:
        return {
            "lab": self.lab,
            "path": self.path,
            "passed": self.passed,
            "items": [i.to_dict() for i in self.items],
            "notes": list(self.notes),
        }


class _Grader:
    """Collects items while a checker compares the student's values with the truth."""

    def __init__(self, report: Report, values: dict[str, str]):
        self.report = report
        self.values = values

    def ok(self, key: str, detail: str) -> None:
        self.report.items.append(Item(key, OK, detail))

    def wrong(self, key: str, detail: str) -> None:
        self.report.items.append(Item(key, WRONG, detail))

    def error(self, key: str, detail: str) -> None:
        self.report.items.append(Item(key, ERROR, detail))

    def raw(self, key: str) -> str | None:
        """The student's text for ``key``; records MISSING and returns None when absent or empty."""
        v = self.values.get(key)
        if v is None or v == "":
            self.report.items.append(Item(key, MISSING, "no value in the results file"))
            return None
        return v

    def number(self, key: str) -> int | None:
        v = self.raw(key)
        if v is None:
            return None
        try:
            return int(v.replace("_", ""), 0)
        except ValueError:
            self.wrong(key, f"{v!r} is not a number (decimal, or hex with 0x)")
            return None

    def boolean(self, key: str) -> bool | None:
        v = self.raw(key)
        if v is None:
            return None
        b = _BOOLS.get(v.strip().lower())
        if b is None:
            self.wrong(key, f"{v!r} is not yes or no")
        return b

    def text(self, key: str) -> str | None:
        return self.raw(key)

    def skip(self, keys: tuple[str, ...] | list[str], why: str) -> None:
        """Mark ``keys`` as not checkable (the precondition ``why`` failed)."""
        for k in keys:
            self.error(k, why)


_BOOLS = {
    "yes": True,
    "y": True,
    "true": True,
    "1": True,
    "on": True,
    "enabled": True,
    "active": True,
    "set": True,
    "no": False,
    "n": False,
    "false": False,
    "0": False,
    "off": False,
    "disabled": False,
    "inactive": False,
    "not set": False,
    "unset": False,
}


def _hx(v: int) -> str:
    return f"{v:#x}"


def _pfn_slips(value: int, pfn: int, vaddr: int | None = None) -> str:
    """Why a PFN answer is wrong, when the slip is a recognisable one."""
    if value == pfn * PAGE_SIZE:
        return " -- that is the physical address; the PFN is the address divided by the page size"
    if vaddr is not None and value == vaddr // PAGE_SIZE:
        return " -- that is the VIRTUAL page number; the PFN is in the pagemap entry"
    if vaddr is not None and value == vaddr:
        return " -- that is the virtual address"
    return ""


def _phys_slips(value: int, phys: int, vaddr: int | None = None) -> str:
    """Why a physical-address answer is wrong, when the slip is a recognisable one."""
    if value == phys // PAGE_SIZE:
        return f" -- that is the PFN: physical address = PFN x {PAGE_SIZE} + offset in the page"
    if vaddr is not None and value == vaddr:
        return " -- that is the virtual address"
    if value == phys - phys % PAGE_SIZE and phys % PAGE_SIZE:
        return " -- that is the start of the page; add the offset within it"
    return ""


# ---------------------------------------------------------------------------------------------
# Ground truth, read directly from the kernel's interfaces
# ---------------------------------------------------------------------------------------------
class ProbeError(Exception):
    """The checker could not read the ground truth (says why)."""


def pagemap_entry(pid: int, vaddr: int) -> int:
    """The raw 64-bit /proc/PID/pagemap entry for ``vaddr`` (pagemap.rst: one u64 per page)."""
    path = paths.proc(pid, "pagemap")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise ProbeError(f"cannot open {path}: {os.strerror(err.errno or 0)}") from err
    try:
        data = os.pread(fd, 8, vaddr // PAGE_SIZE * 8)
    except OSError as err:
        raise ProbeError(f"cannot read {path}: {os.strerror(err.errno or 0)}") from err
    finally:
        os.close(fd)
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
        raise ProbeError("pagemap PFNs read as 0: the checker needs root (CAP_SYS_ADMIN, pagemap.rst)")
    return pfn, e


def kpageflags(pfn: int, count: int = 1) -> list[int]:
    """Raw /proc/kpageflags words for ``count`` frames from ``pfn``."""
    path = paths.proc("kpageflags")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise ProbeError(f"cannot open {path}: {os.strerror(err.errno or 0)}") from err
    try:
        data = os.pread(fd, 8 * count, pfn * 8)
    finally:
        os.close(fd)
    return list(struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8]))


def proc_mem(pid: int, vaddr: int, n: int) -> bytes:
    """``n`` bytes at ``vaddr`` in process ``pid``, through /proc/PID/mem (the kernel's view)."""
    path = paths.proc(pid, "mem")
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(vaddr)
            return f.read(n)
    except OSError as err:
        raise ProbeError(f"cannot read {path}: {os.strerror(err.errno or 0)}") from err


def busybox_devmem(addr: int, width: int = 32) -> int:
    """One read of physical ``addr`` by `busybox devmem` (a tool pyphys did not write)."""
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
    path = paths.dev(device)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise ProbeError(f"cannot open {path}: {os.strerror(err.errno or 0)}") from err
    try:
        return os.pread(fd, n, addr)
    except OSError as err:
        raise ProbeError(f"pread of {path} at {addr:#x}: {os.strerror(err.errno or 0)}") from err
    finally:
        os.close(fd)


def sysfs_number(*parts: str) -> int:
    path = paths.sys(*parts)
    try:
        with open(path) as f:
            return int(f.read().strip(), 0)
    except FileNotFoundError:
        raise ProbeError(f"{path} is missing (is pyphys.ko loaded? `lsmod | grep pyphys`)") from None
    except (OSError, ValueError) as err:
        raise ProbeError(f"cannot read {path}: {err}") from err


def module_buffer() -> tuple[int, bytes]:
    """(buffer_phys, content) of pyphys.ko's buffer, as the kernel reports them in sysfs."""
    phys = sysfs_number("kernel", "pyphys", "buffer_phys")
    path = paths.sys("kernel", "pyphys", "buffer")
    try:
        with open(path, "rb") as f:
            return phys, f.read()
    except OSError as err:
        raise ProbeError(f"cannot read {path}: {os.strerror(err.errno or 0)}") from err


def iomem_regions(text: str) -> list[tuple[int, int, int, str]]:
    """/proc/iomem lines -> (depth, start, end inclusive, name); depth = indentation / 2."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$", line)
        if m:
            out.append((len(m.group(1)) // 2, int(m.group(2), 16), int(m.group(3), 16), m.group(4).strip()))
    return out


def innermost_region(addr: int) -> str | None:
    """Name of the most deeply nested /proc/iomem region holding ``addr``."""
    try:
        with open(paths.proc("iomem")) as f:
            regions = iomem_regions(f.read())
    except OSError as err:
        raise ProbeError(f"cannot read /proc/iomem: {os.strerror(err.errno or 0)}") from err
    best = None
    for depth, lo, hi, name in regions:
        if lo <= addr <= hi and (best is None or depth >= best[0]):
            best = (depth, name)
    if best is not None and best[0] == 0 and regions and all(lo == 0 and hi == 0 for _, lo, hi, _ in regions):
        raise ProbeError("/proc/iomem shows zeros: the checker needs root")
    return None if best is None else best[1]


def cmdline() -> list[str]:
    try:
        with open(paths.proc("cmdline")) as f:
            return f.read().split()
    except OSError:
        return []


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


def _ext_errno(err: OSError) -> str:
    return errno.errorcode.get(err.errno or 0, str(err.errno))


# -- PCI, straight from sysfs (Documentation/PCI/sysfs-pci.rst) --------------------------------
def pci_find(vendor: int, device: int) -> list[str]:
    """Addresses (0000:00:05.0) of every PCI function with these IDs."""
    root = paths.sys("bus", "pci", "devices")
    found = []
    try:
        names = sorted(os.listdir(root))
    except OSError as err:
        raise ProbeError(f"cannot list {root}: {os.strerror(err.errno or 0)}") from err
    for name in names:
        try:
            with open(os.path.join(root, name, "vendor")) as f:
                v = int(f.read(), 16)
            with open(os.path.join(root, name, "device")) as f:
                d = int(f.read(), 16)
        except (OSError, ValueError):
            continue
        if (v, d) == (vendor, device):
            found.append(name)
    return found


def pci_bar(slot: str, bar: int) -> tuple[int, int]:
    """(start, size) of BAR ``bar`` from the device's sysfs ``resource`` file."""
    path = paths.sys("bus", "pci", "devices", slot, "resource")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
        start, end, _flags = (int(x, 16) for x in lines[bar].split())
    except (OSError, IndexError, ValueError) as err:
        raise ProbeError(f"cannot read BAR{bar} from {path}: {err}") from err
    return start, (end - start + 1) if end else 0


class BarMap:
    """An mmap of sysfs resourceN: 32-bit registers are read and written with one 4-byte access
    (memoryview cast 'I'); edu.rst: its registers take 4- or 8-byte accesses only."""

    def __init__(self, slot: str, bar: int, writable: bool = False):
        import mmap

        path = paths.sys("bus", "pci", "devices", slot, f"resource{bar}")
        try:
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as err:
            raise ProbeError(f"cannot open {path}: {os.strerror(err.errno or 0)}") from err
        try:
            size = os.fstat(fd).st_size
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, prot)
        except OSError as err:
            raise ProbeError(f"cannot mmap {path}: {os.strerror(err.errno or 0)}") from err
        finally:
            os.close(fd)
        self.words = memoryview(self.map).cast("I")

    def read32(self, off: int) -> int:
        return self.words[off // 4]

    def write32(self, off: int, value: int) -> None:
        self.words[off // 4] = value

    def read(self, off: int, n: int) -> bytes:
        return bytes(self.map[off : off + n])

    def close(self) -> None:
        self.words.release()
        self.map.close()


# ---------------------------------------------------------------------------------------------
# Checkers
# ---------------------------------------------------------------------------------------------
def _lab1(g: _Grader) -> None:
    try:
        with open(LAB1_STATE) as f:
            st = json.load(f)
        pid, child = int(st["pid"]), int(st["child_pid"])
        for p in (pid, child):
            # a stale state file (guest /tmp overlays the host's /tmp) may name a pid that is now
            # some other process: it must be lab1_process.py itself
            with open(paths.proc(p, "cmdline"), "rb") as f:
                if b"lab1_process.py" not in f.read():
                    raise ProcessLookupError(errno.ESRCH, f"pid {p} is not lab1_process.py")
    except (OSError, ValueError, KeyError) as err:
        why = (
            "the lab 1 process is not running"
            + (f" ({err.strerror})" if isinstance(err, OSError) and err.strerror else "")
            + ": start it with `python3 docs/labs/lab1_process.py &` and redo the steps with its pids"
        )
        g.skip([k.name for k in LABS[1].keys], why)
        return
    v = g.number("pid")
    if v is not None:
        (g.ok if v == pid else g.wrong)(
            "pid", f"{v}" + ("" if v == pid else " is not the lab 1 process (its first line of output names it)")
        )
    v = g.number("child_pid")
    if v is not None:
        (g.ok if v == child else g.wrong)(
            "child_pid",
            f"{v}" + ("" if v == child else " is not its child (`pgrep -P PID`, or the lab 1 process's output)"),
        )

    # the buffer: pagemap -> PFN -> physical address, and /dev/mem at that address holds its text
    buf = int(st["buffer"])
    try:
        pfn, _ = present_pfn(pid, buf)
        phys = pfn * PAGE_SIZE + buf % PAGE_SIZE
        text = proc_mem(pid, buf, 64).split(b"\0", 1)[0]
        first = busybox_devmem(phys, 32)
        if first != struct.unpack("<I", text[:4].ljust(4, b"\0"))[0]:
            raise ProbeError(f"busybox devmem at {phys:#x} does not show the buffer's text: the page moved?")
    except ProbeError as err:
        g.skip(["buffer_pfn", "buffer_phys", "buffer_text"], str(err))
    else:
        v = g.number("buffer_pfn")
        if v is not None:
            if v == pfn:
                g.ok("buffer_pfn", f"{_hx(v)} (pagemap)")
            else:
                g.wrong(
                    "buffer_pfn",
                    f"{_hx(v)} is not the frame backing the buffer{_pfn_slips(v, pfn, buf)}; "
                    f"`pyphys pagemap {pid} {buf:#x}`",
                )
        v = g.number("buffer_phys")
        if v is not None:
            if v == phys:
                g.ok("buffer_phys", f"{_hx(v)} (busybox devmem there reads the buffer's text)")
            else:
                g.wrong("buffer_phys", f"{_hx(v)} is not where the buffer lives{_phys_slips(v, phys, buf)}")
        v = g.text("buffer_text")
        if v is not None:
            want = text.decode("utf-8", "replace").strip()
            if v.strip() == want:
                g.ok("buffer_text", "matches what the process wrote")
            else:
                g.wrong(
                    "buffer_text",
                    f"{v[:40]!r} is not what the buffer holds: "
                    "`pyphys devmem BUFFER_PHYS --range 64`, read the text column",
                )

    # the huge page: a THP is one compound page, 512 frames, its head 2 MiB-aligned
    huge = int(st["huge"])
    try:
        hpfn, _ = present_pfn(pid, huge)
        flags = kpageflags(hpfn)[0]
        if not flags & (1 << KPF_THP):
            raise ProbeError(
                f"no transparent huge page backs {huge:#x} (kpageflags has no THP bit): is THP "
                "on? `cat /sys/kernel/mm/transparent_hugepage/enabled`; restart the lab 1 process"
            )
        span = 1
        if flags & (1 << KPF_COMPOUND_HEAD):
            for w in kpageflags(hpfn + 1, 1 << 10):  # x86 THPs are 2 MiB: 512 frames
                if not w & (1 << KPF_COMPOUND_TAIL):
                    break
                span += 1
    except ProbeError as err:
        g.skip(["huge_pfn", "huge_pages"], str(err))
    else:
        v = g.number("huge_pfn")
        if v is not None:
            if v == hpfn:
                g.ok("huge_pfn", f"{_hx(v)}, a THP head (kpageflags)")
            else:
                g.wrong(
                    "huge_pfn",
                    f"{_hx(v)} is not the frame backing HUGE{_pfn_slips(v, hpfn, huge)}; "
                    f"`pyphys pagemap {pid} {huge:#x}`",
                )
        v = g.number("huge_pages")
        if v is not None:
            if v == span:
                g.ok("huge_pages", f"{v} frames in one compound page")
            elif v == span * PAGE_SIZE:
                g.wrong("huge_pages", f"{v} is the size in bytes; the question asks for frames (of {PAGE_SIZE} bytes)")
            else:
                g.wrong(
                    "huge_pages",
                    f"{v} frames is not the huge page's length; "
                    "`pyphys pagemap` prints it as 'huge page: THP, ... pages'",
                )

    # fork: the shared page has one frame mapped twice, not exclusive
    shared = int(st["shared"])
    try:
        spfn, se = present_pfn(pid, shared)
        cpfn, ce = present_pfn(child, shared)
        if spfn != cpfn:
            raise ProbeError(
                "parent and child no longer share the shared page (was it written?): restart the lab 1 process"
            )
    except ProbeError as err:
        g.skip(["shared_pfn", "shared_exclusive"], str(err))
    else:
        v = g.number("shared_pfn")
        if v is not None:
            (g.ok if v == spfn else g.wrong)(
                "shared_pfn",
                f"{_hx(v)}"
                + (
                    " in both processes"
                    if v == spfn
                    else f" is not the shared frame{_pfn_slips(v, spfn, shared)}: look it up in both pids"
                ),
            )
        v = g.boolean("shared_exclusive")
        truth = bool(se & PM_EXCLUSIVE)
        if v is not None:
            (g.ok if v == truth else g.wrong)(
                "shared_exclusive",
                ("yes" if v else "no")
                + (
                    " (pagemap bit 56)"
                    if v == truth
                    else " -- pagemap bit 56 says otherwise: two processes map this frame"
                ),
            )

    # copy-on-write: after the child's write, the child has a new frame, the parent keeps the old
    cow = int(st["cow"])
    try:
        ppfn, _ = present_pfn(pid, cow)
        cpfn, ce = present_pfn(child, cow)
    except ProbeError as err:
        g.skip(["cow_pfn_before", "cow_child_pfn_after", "cow_exclusive_after"], str(err))
        return
    written = ppfn != cpfn
    v = g.number("cow_pfn_before")
    if v is not None:
        if v == ppfn:
            g.ok("cow_pfn_before", f"{_hx(v)} (the parent still has it)")
        elif written and v == cpfn:
            g.wrong("cow_pfn_before", f"{_hx(v)} is the child's NEW frame; before the write both had the parent's")
        else:
            g.wrong("cow_pfn_before", f"{_hx(v)} is not the frame both processes shared{_pfn_slips(v, ppfn, cow)}")
    if not written:
        g.wrong(
            "cow_child_pfn_after",
            f"the child has not written yet (both still on one frame): `kill -USR1 {child}`, then look again",
        )
        if g.raw("cow_exclusive_after") is not None:
            g.wrong("cow_exclusive_after", "nothing to compare before the child writes")
        return
    v = g.number("cow_child_pfn_after")
    if v is not None:
        if v == cpfn:
            g.ok("cow_child_pfn_after", f"{_hx(v)}, a new frame: copy-on-write")
        elif v == ppfn:
            g.wrong(
                "cow_child_pfn_after",
                f"{_hx(v)} is the parent's frame; look the address up in the CHILD ({child}) after the write",
            )
        else:
            g.wrong("cow_child_pfn_after", f"{_hx(v)} is not the child's frame{_pfn_slips(v, cpfn, cow)}")
    v = g.boolean("cow_exclusive_after")
    truth = bool(ce & PM_EXCLUSIVE)
    if v is not None:
        (g.ok if v == truth else g.wrong)(
            "cow_exclusive_after",
            ("yes" if v else "no")
            + (" (pagemap bit 56)" if v == truth else " -- pagemap bit 56 of the child's entry says otherwise"),
        )


def _lab2(g: _Grader) -> None:
    try:
        phys, content = module_buffer()
    except ProbeError as err:
        g.skip([k.name for k in LABS[2].keys], str(err))
        return
    v = g.number("buffer_phys")
    if v is not None:
        (g.ok if v == phys else g.wrong)(
            "buffer_phys",
            f"{_hx(v)}"
            + (
                " (the module's sysfs)"
                if v == phys
                else f" is not the buffer's address{_phys_slips(v, phys)}: `cat /sys/kernel/pyphys/buffer_phys`"
            ),
        )

    v = g.number("word7_value")
    if v is not None:
        try:
            truth = busybox_devmem(phys + 0x1C, 32)
        except ProbeError as err:
            g.error("word7_value", str(err))
        else:
            kernel = struct.unpack_from("<I", content, 0x1C)[0]
            if v == truth == kernel:
                g.ok("word7_value", f"{_hx(v)} (busybox devmem and the kernel agree)")
            elif v == struct.unpack_from("<I", content, 0)[0]:
                g.wrong("word7_value", f"{_hx(v)} is word 0; word 7 is 0x1c bytes further")
            elif v == int.from_bytes(struct.pack(">I", truth), "little"):
                g.wrong("word7_value", f"{_hx(v)} has its bytes reversed: x86 is little-endian")
            else:
                g.wrong(
                    "word7_value", f"{_hx(v)} is not the word at buffer_phys + 0x1c: `pyphys devmem $((BUF + 0x1c)) 32`"
                )

    off, val = g.number("poke_offset"), g.number("poke_value")
    if off is not None and val is not None:
        if off % 4 or not 0 <= off <= len(content) - 4:
            g.wrong("poke_offset", f"{_hx(off)} is not a 4-byte aligned offset inside the {len(content)}-byte buffer")
        else:
            kernel = struct.unpack_from("<I", content, off)[0]
            if kernel == 0x50590000 | (off // 4):
                g.wrong("poke_offset", f"{_hx(off)}: nothing was written there")
                g.wrong(
                    "poke_value",
                    f"the kernel still sees the load-time pattern {_hx(kernel)} at offset "
                    f"{_hx(off)}: write your value there through /dev/mem "
                    "(`pyphys devmem $((BUF + OFF)) 32 VALUE`)",
                )
            elif kernel == val:
                g.ok("poke_offset", f"{_hx(off)}")
                g.ok("poke_value", f"{_hx(val)}: the kernel reads it in its buffer (sysfs)")
            else:
                g.ok("poke_offset", f"{_hx(off)} was written")
                g.wrong(
                    "poke_value",
                    f"{_hx(val)} is not what the kernel now reads at offset {_hx(off)}; "
                    "`hexdump -C -s OFF -n 4 /sys/kernel/pyphys/buffer`",
                )

    off, msg = g.number("message_offset"), g.text("message")
    if off is not None and msg is not None:
        data = msg.encode("utf-8")
        if not 0 <= off < len(content) or len(data) < 4:
            g.wrong("message_offset", f"{_hx(off)}: the message must lie inside the {len(content)}-byte buffer")
            g.wrong("message", "write a message of at least 4 characters inside the buffer")
            return
        try:
            seen = dev_read(phys + off, len(content) - off)
        except ProbeError as err:
            g.error("message", str(err))
            return
        kernel = content[off:]
        text = kernel.split(b"\0", 1)[0]
        if kernel[: len(data)] != data:
            g.wrong(
                "message",
                f"the buffer does not hold {msg[:30]!r} at offset {_hx(off)}: write it through "
                "sysfs (dd of=/sys/kernel/pyphys/buffer bs=1 seek=OFF conv=notrunc), then read it "
                "through /dev/mem",
            )
        elif seen != kernel:
            g.error("message", "the kernel holds it but a /dev/mem read disagrees (report this)")
        elif text != data:
            g.ok("message_offset", f"{_hx(off)}")
            g.wrong(
                "message",
                "your text is only the beginning of what is there: no NUL byte ends it, so the "
                "bytes after it read as part of it (write 'TEXT\\0')",
            )
        else:
            g.ok("message_offset", f"{_hx(off)}")
            g.ok("message", "the kernel's buffer holds it, and /dev/mem reads it at buffer_phys + offset")


def _journal_entries() -> list | None:
    try:
        from pyphys import journal

        return journal.Journal().entries()
    except (PyphysError, OSError):
        return None


def _lab3(g: _Grader) -> None:
    try:
        phys = sysfs_number("kernel", "pyphys", "nodename_phys")
        region = innermost_region(phys)
        mem = dev_read(phys, 65).split(b"\0", 1)[0].decode("utf-8", "replace")
    except ProbeError as err:
        g.skip([k.name for k in LABS[3].keys], str(err))
        return
    now = os.uname().nodename
    v = g.number("nodename_phys")
    if v is not None:
        (g.ok if v == phys else g.wrong)(
            "nodename_phys",
            f"{_hx(v)}"
            + (
                " (the module computed it with virt_to_phys)"
                if v == phys
                else f" is not the nodename's address{_phys_slips(v, phys)}: `pyphys ksym nodename`"
            ),
        )
    v = g.text("nodename_region")
    if v is not None:
        if region and v.strip().lower() == region.lower():
            g.ok("nodename_region", f"{region!r} (/proc/iomem)")
        else:
            g.wrong("nodename_region", f"{v!r} is not the innermost region: `pyphys iomem NODENAME_PHYS`")

    entries = _journal_entries() or []
    writes = [e for e in entries if e.kind == "phys" and e.addr == phys]
    boot = next((a.split("=", 1)[1] for a in cmdline() if a.startswith("virtme_hostname=")), None)
    first_old = writes[0].old.split(b"\0", 1)[0].decode("utf-8", "replace") if writes else None
    old_truth = boot or first_old
    v = g.text("old_hostname")
    if v is not None:
        if old_truth is None:
            g.error(
                "old_hostname",
                "cannot tell the boot hostname here (no virtme_hostname= on the kernel "
                "command line, no journaled write)",
            )
        elif v == old_truth:
            g.ok("old_hostname", f"{v!r}")
        else:
            g.wrong("old_hostname", f"{v!r} is not the name the VM booted with (`pyphys journal` shows the old bytes)")
    v = g.text("new_hostname")
    if v is None:
        return
    if now == old_truth:
        g.wrong("new_hostname", "uname -n still shows the old name: change it through /dev/mem first")
        return
    if v != now:
        g.wrong("new_hostname", f"{v!r} is not what uname -n shows now")
        return
    if mem != now:
        g.error("new_hostname", f"/dev/mem at the nodename reads {mem!r} but uname(2) says {now!r} (report this)")
        return
    active = [e for e in writes if e.active and e.new.split(b"\0", 1)[0] == v.encode()]
    if active:
        g.ok("new_hostname", f"{v!r}: uname(2), /dev/mem and pyphys's journal (entry {active[-1].id}) agree")
    else:
        g.wrong(
            "new_hostname",
            f"uname -n shows {v!r}, but pyphys's journal has no write of it to the nodename: "
            "did you run `hostname` (sethostname(2))? Write it through /dev/mem with "
            "`pyphys hostname NAME` or `pyphys devmem nodename --write-bytes 'NAME\\x00'`",
        )


def _kconfig() -> dict[str, str]:
    import gzip

    try:
        with gzip.open(paths.proc("config.gz"), "rt") as f:
            text = f.read()
    except OSError:
        try:
            with open(f"/boot/config-{os.uname().release}") as f:
                text = f.read()
        except OSError as err:
            raise ProbeError(
                f"no kernel config (/proc/config.gz, /boot/config-{os.uname().release}): {os.strerror(err.errno or 0)}"
            ) from err
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, val = line.partition("=")
            out[k] = val
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2 : -len(" is not set")]] = "n"
    return out


def _lab4(g: _Grader) -> None:
    keys = [k.name for k in LABS[4].keys]
    try:
        cfg = _kconfig()
    except ProbeError as err:
        g.skip(keys, str(err))
        return
    strict = cfg.get("CONFIG_STRICT_DEVMEM", "n")
    if strict != "y":
        g.skip(
            keys,
            "this kernel has no CONFIG_STRICT_DEVMEM: lab 4 runs on Debian's stock kernel -- leave this "
            "VM (exit) and run `pyphys lab start 4` on the host",
        )
        return
    v = g.text("kernel_release")
    if v is not None:
        rel = os.uname().release
        (g.ok if v == rel else g.wrong)("kernel_release", f"{v!r}" + ("" if v == rel else " is not `uname -r`"))
    v = g.text("strict_devmem")
    if v is not None:
        t = v.strip().lower().replace("config_strict_devmem", "").lstrip("=").strip()
        (g.ok if t in ("y", "yes") else g.wrong)(
            "strict_devmem",
            f"{v!r}"
            + (" (the kernel's config)" if t in ("y", "yes") else " -- `grep STRICT_DEVMEM /boot/config-$(uname -r)`"),
        )

    try:
        phys, content = module_buffer()
    except ProbeError as err:
        g.skip(["devmem_errno", "module_word0"], str(err))
        phys = content = None
    if phys is not None:
        import mmap

        truth = None
        try:
            fd = os.open(paths.dev("mem"), os.O_RDONLY | os.O_SYNC)
            try:
                mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=phys).close()
            finally:
                os.close(fd)
        except OSError as err:
            truth = _ext_errno(err)
        v = g.text("devmem_errno")
        if v is not None:
            name = errno_name(v)
            if truth is None:
                g.error("devmem_errno", "/dev/mem mapped the buffer here: not a STRICT_DEVMEM kernel?")
            elif name == truth:
                g.ok(
                    "devmem_errno",
                    f"{truth} ({os.strerror(getattr(errno, truth))}): drivers/char/mem.c "
                    "mmap_mem(), range_is_allowed()",
                )
            else:
                g.wrong(
                    "devmem_errno",
                    f"{v!r} is not what mmap of /dev/mem at the buffer returns: "
                    "`busybox devmem $(cat /sys/kernel/pyphys/buffer_phys)`",
                )
    v = g.boolean("pat")
    if v is not None:
        try:
            with open(paths.proc("cpuinfo")) as f:
                cpu_pat = " pat " in f" {f.read()} ".replace("\n", " ")
        except OSError:
            cpu_pat = False
        truth = cpu_pat and cfg.get("CONFIG_X86_PAT") == "y" and "nopat" not in cmdline()
        (g.ok if v == truth else g.wrong)(
            "pat",
            ("yes" if v else "no")
            + ("" if v == truth else " -- see `pyphys doctor`'s PAT line, /proc/cpuinfo flags and /proc/cmdline"),
        )
    v = g.text("doctor_blocker")
    if v is not None:
        t = v.upper()
        if "STRICT_DEVMEM" in t and "IO_STRICT" not in t:
            g.ok("doctor_blocker", "CONFIG_STRICT_DEVMEM")
        else:
            g.wrong(
                "doctor_blocker",
                f"{v!r} is not the option that blocks /dev/mem here: `pyphys doctor`, the BLOCKED lines",
            )
    if phys is None:
        return
    try:
        with open(paths.sys("module", "pyphys", "parameters", "mem_device")) as f:
            on = f.read().strip() == "Y"
    except OSError:
        on = False
    if not on or not os.path.exists(paths.dev("pyphys_mem")):
        g.wrong(
            "module_word0",
            "/dev/pyphys_mem does not exist: reload the module with its device on: "
            "`rmmod pyphys && insmod $PYPHYS_KO mem_device=1`",
        )
        return
    v = g.number("module_word0")
    if v is not None:
        try:
            seen = struct.unpack("<I", dev_read(phys, 4, "pyphys_mem"))[0]
        except ProbeError as err:
            g.error("module_word0", str(err))
            return
        kernel = struct.unpack_from("<I", content, 0)[0]
        if v == seen == kernel:
            g.ok("module_word0", f"{_hx(v)} (/dev/pyphys_mem and the kernel's sysfs agree)")
        else:
            g.wrong("module_word0", f"{_hx(v)} is not word 0 of the buffer: `pyphys devmem buffer --backend module`")


def _slot_matches(answer: str, slot: str) -> bool:
    a = answer.strip().lower()
    return a == slot or "0000:" + a == slot


def _lab5(g: _Grader) -> None:
    try:
        edu = pci_find(0x1234, 0x11E8)
        ivs = pci_find(0x1AF4, 0x1110)
        if len(edu) != 1 or len(ivs) != 1:
            raise ProbeError(
                f"expected one edu and one ivshmem device, found {len(edu)} and {len(ivs)}: "
                "start the VM with `pyphys lab start 5`"
            )
        bar0 = BarMap(edu[0], 0, writable=True)
    except ProbeError as err:
        g.skip([k.name for k in LABS[5].keys], str(err))
        return
    try:
        v = g.text("edu_slot")
        if v is not None:
            (g.ok if _slot_matches(v, edu[0]) else g.wrong)(
                "edu_slot", f"{v}" + ("" if _slot_matches(v, edu[0]) else " is not edu (1234:11e8): `pyphys pci list`")
            )
        v = g.number("edu_id")
        if v is not None:
            truth = bar0.read32(EDU_ID)
            (g.ok if v == truth else g.wrong)(
                "edu_id",
                f"{_hx(v)}"
                + (
                    " (BAR0 0x00, edu.rst: 0xRRrr00edu)"
                    if v == truth
                    else " is not the identification register: `pyphys pci read 1234:11e8 0 0`"
                ),
            )
        lin, lout = g.number("liveness_in"), g.number("liveness_out")
        if lin is not None and lout is not None:
            # edu.rst: "liveness check register: value is bitwise NOT of the written one" -- ask the device
            bar0.write32(EDU_LIVENESS, lin & 0xFFFFFFFF)
            truth = bar0.read32(EDU_LIVENESS)
            if lout == truth:
                g.ok("liveness_in", f"{_hx(lin)}")
                g.ok("liveness_out", f"{_hx(lout)} (the device returns the bitwise NOT)")
            else:
                g.ok("liveness_in", f"{_hx(lin)}")
                g.wrong(
                    "liveness_out",
                    f"{_hx(lout)} is not what edu answers for {_hx(lin)}: write it to BAR0 0x04, then read 0x04",
                )
        fin, fout = g.number("factorial_in"), g.number("factorial_out")
        if fin is not None and fout is not None:
            if not 1 <= fin <= 12:
                g.wrong("factorial_in", f"{fin}: pick n in 1..12 (13! does not fit the 32-bit register)")
            else:
                import time

                bar0.write32(EDU_FACTORIAL, fin)
                deadline = time.monotonic() + 5
                while bar0.read32(EDU_STATUS) & EDU_STATUS_COMPUTING and time.monotonic() < deadline:
                    time.sleep(0.01)
                truth = bar0.read32(EDU_FACTORIAL)
                g.ok("factorial_in", f"{fin}")
                (g.ok if fout == truth else g.wrong)(
                    "factorial_out",
                    f"{fout}"
                    + (
                        f" = {fin}! (the device computed it)"
                        if fout == truth
                        else f" is not what edu computes for {fin}: write n to BAR0 0x08, wait for status bit 0 (0x20) to "
                        "clear, read 0x08"
                    ),
                )
    finally:
        bar0.close()

    v = g.text("ivshmem_slot")
    if v is not None:
        (g.ok if _slot_matches(v, ivs[0]) else g.wrong)(
            "ivshmem_slot", f"{v}" + ("" if _slot_matches(v, ivs[0]) else " is not ivshmem (1af4:1110)")
        )
    try:
        _start, size = pci_bar(ivs[0], 2)
        bar2 = BarMap(ivs[0], 2)
    except ProbeError as err:
        g.skip(["ivshmem_bar2_size", "host_message", "guest_message_offset", "guest_message"], str(err))
        return
    try:
        v = g.number("ivshmem_bar2_size")
        if v is not None:
            (g.ok if v == size else g.wrong)(
                "ivshmem_bar2_size",
                f"{_hx(v)}"
                + (" (sysfs resource)" if v == size else " is not BAR2's size: `pyphys pci list 1af4:1110`"),
            )
        host = bar2.read(0, 256).split(b"\0", 1)[0].decode("utf-8", "replace")
        v = g.text("host_message")
        if v is not None:
            if not host:
                g.error(
                    "host_message",
                    "BAR2 starts with a zero byte: the host left no message (start the VM with "
                    "`pyphys lab start 5`, which writes one into the host file)",
                )
            elif v.strip() == host.strip():
                g.ok("host_message", "it is what the host file holds at offset 0")
            else:
                g.wrong(
                    "host_message",
                    f"{v[:40]!r} is not the text at BAR2 offset 0: `pyphys pci read 1af4:1110 2 0 -l 64`",
                )
        off, msg = g.number("guest_message_offset"), g.text("guest_message")
        if off is not None and msg is not None:
            data = msg.encode("utf-8")
            if not data or not 0 <= off <= size - len(data):
                g.wrong("guest_message_offset", f"{_hx(off)} with a {len(data)}-byte text is outside BAR2")
            elif off < len(host.encode()) + 1:
                g.wrong("guest_message_offset", f"{_hx(off)} overwrites the host's message: use 0x100")
            elif bar2.read(off, len(data)) == data:
                g.ok("guest_message_offset", f"{_hx(off)}")
                if bar2.read(off, min(size - off, 4096)).split(b"\0", 1)[0] == data:
                    g.ok("guest_message", f"{msg!r} is in BAR2, i.e. in the host's file")
                else:
                    g.wrong(
                        "guest_message",
                        "your text is only the beginning of the text at that offset "
                        "(up to the first NUL byte): write all of it",
                    )
            else:
                g.ok("guest_message_offset", f"{_hx(off)}")
                g.wrong(
                    "guest_message",
                    f"BAR2 does not hold {msg!r} at {_hx(off)}: "
                    "`pyphys pci write 1af4:1110 2 OFF --string TEXT` (quotes keep \\r)",
                )
    finally:
        bar2.close()


def _lime_ranges(path: str) -> list[tuple[int, int, int]]:
    """(first address, last address, file offset of its data) of every LiME v1 range in ``path``."""
    out = []
    with open(path, "rb") as f:
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


def _file(g: _Grader, key: str) -> str | None:
    v = g.text(key)
    if v is None:
        return None
    path = os.path.expandvars(os.path.expanduser(v))
    if not os.path.isfile(path):
        g.wrong(key, f"{v} does not exist")
        return None
    return path


def _lab6(g: _Grader) -> None:
    import mmap

    try:
        phys, content = module_buffer()
        fresh = dev_read(phys, len(content))
        if fresh != content:
            raise ProbeError("a /dev/mem read of the buffer differs from its sysfs content (report this)")
    except ProbeError as err:
        g.skip([k.name for k in LABS[6].keys], str(err))
        return
    digest = hashlib.sha256(content).hexdigest()
    v = g.number("buffer_phys")
    if v is not None:
        (g.ok if v == phys else g.wrong)(
            "buffer_phys", f"{_hx(v)}" + ("" if v == phys else f" is not the buffer's address{_phys_slips(v, phys)}")
        )

    path = _file(g, "raw_file")
    if path:
        with open(path, "rb") as f:
            data = f.read(len(content) + 1)
        if data == content:
            g.ok("raw_file", f"{len(data)} bytes, equal to the buffer read afresh from /dev/mem")
        elif len(data) != len(content):
            g.wrong(
                "raw_file",
                f"it holds {os.path.getsize(path)} bytes; dump exactly the buffer's page: "
                f"`pyphys dump $BUF+{len(content)} -f raw -o FILE`",
            )
        else:
            g.wrong("raw_file", "its bytes are not the buffer's (sha256 differs): dump BUFFER_PHYS, not another page")
    v = g.text("raw_sha256")
    if v is not None:
        t = v.strip().lower().split()[0]
        if t == digest:
            g.ok("raw_sha256", "matches a fresh /dev/mem read of the buffer")
        else:
            g.wrong("raw_sha256", "not the SHA-256 of the buffer's page: `sha256sum RAW_FILE` or its .sha256 sidecar")

    path = _file(g, "padded_file")
    if path:
        with open(path, "rb") as f:
            f.seek(phys)
            data = f.read(len(content))
        if data == content:
            st = os.stat(path)
            sparse = st.st_blocks * 512 < st.st_size
            g.ok(
                "padded_file",
                f"holds the buffer at offset {_hx(phys)}"
                + ("; sparse: the holes take no disk space" if sparse else ""),
            )
        else:
            g.wrong("padded_file", f"no buffer at file offset {_hx(phys)}: padded keeps file offset = physical address")
    v = g.number("padded_offset")
    if v is not None:
        (g.ok if v == phys else g.wrong)(
            "padded_offset",
            f"{_hx(v)}"
            + (
                " = buffer_phys"
                if v == phys
                else " -- in the padded format the file offset of a byte is its physical address"
            ),
        )

    path = _file(g, "lime_file")
    lime_off = None
    if path:
        try:
            ranges = _lime_ranges(path)
        except (ProbeError, OSError) as err:
            g.wrong("lime_file", str(err))
        else:
            hit = [r for r in ranges if r[0] <= phys and phys + len(content) - 1 <= r[1]]
            if not hit:
                g.wrong(
                    "lime_file", "no LiME range covers the buffer: " + ", ".join(f"{s:#x}-{e:#x}" for s, e, _ in ranges)
                )
            else:
                s, _e, data_at = hit[0]
                lime_off = data_at + (phys - s)
                with open(path, "rb") as f:
                    f.seek(lime_off)
                    ok = f.read(len(content)) == content
                (g.ok if ok else g.wrong)(
                    "lime_file",
                    (
                        f"LiME v1, range {s:#x}-{_e:#x}, the buffer's bytes after the header"
                        if ok
                        else "the header is right but the data after it is not the buffer's"
                    ),
                )
    v = g.number("lime_data_offset")
    if v is not None:
        if lime_off is None:
            g.error("lime_data_offset", "needs a valid lime_file")
        else:
            (g.ok if v == lime_off else g.wrong)(
                "lime_data_offset",
                f"{v}"
                + (
                    f" (a {LIME_HEADER.size}-byte header precedes the data)"
                    if v == lime_off
                    else " -- how long is a LiME v1 header? (`hexdump -C -n 64 LIME_FILE`)"
                ),
            )

    path = _file(g, "direct_file")
    if path:
        with open(path, "rb") as f:
            data = f.read(len(content) + 1)
        (g.ok if data == content else g.wrong)(
            "direct_file",
            (
                "identical to the buffer"
                if data == content
                else "not the buffer's page: `pyphys dump $BUF+4096 -f raw --direct -o $LABDIR/...`"
            ),
        )

    v = g.text("efault_errno")
    if v is None:
        return
    where = os.environ.get("LABDIR") or (os.path.dirname(path) if path else None)
    if not where or not os.path.isdir(where):
        g.error("efault_errno", "no $LABDIR to repeat the experiment in: start the VM with `pyphys lab start 6`")
        return
    probe = os.path.join(where, f".lab6-efault-probe-{os.getpid()}")
    truth = None
    try:
        fd = os.open(paths.dev("mem"), os.O_RDONLY | os.O_SYNC)
        try:
            m = mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=phys)
        finally:
            os.close(fd)
        try:
            out = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        except OSError as err:
            m.close()
            g.error(
                "efault_errno", f"{where} refuses O_DIRECT ({_ext_errno(err)}): use $LABDIR from `pyphys lab start 6`"
            )
            return
        try:
            os.write(out, m)
            truth = "no error"
        except OSError as err:
            truth = _ext_errno(err)
        finally:
            os.close(out)
            m.close()
    except OSError as err:
        g.error("efault_errno", f"cannot map the buffer through /dev/mem: {os.strerror(err.errno or 0)}")
        return
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
    name = errno_name(v)
    if name == truth:
        g.ok(
            "efault_errno",
            f"{truth}: O_DIRECT must pin the source pages, and a /dev/mem mapping (VM_IO|VM_PFNMAP) "
            "has no pages to pin (mm/gup.c check_vma_flags)",
        )
    else:
        g.wrong(
            "efault_errno",
            f"{v!r} is not what write(2) from the mapping to an O_DIRECT file returns here: "
            "run `python3 docs/labs/lab6_efault.py $LABDIR`",
        )


_CHECKERS = {1: _lab1, 2: _lab2, 3: _lab3, 4: _lab4, 5: _lab5, 6: _lab6}


def check(number: int, path: str | None = None) -> Report:
    """Grade the results file of lab ``number`` (default /tmp/labN.txt) against live ground truth.

    Raises UsageError (no such lab, malformed file) and NotFoundError (no file); everything the
    checker finds, including truth it could not establish, is an :class:`Item` of the report.
    """
    lab = get(number)
    path, values = read_results(lab, path)
    report = Report(number, path)
    known = {k.name for k in lab.keys}
    unknown = sorted(set(values) - known)
    if unknown:
        report.notes.append(
            f"ignored unknown key(s): {', '.join(unknown)} (`pyphys lab check {number} --template` lists the keys)"
        )
    if os.geteuid() != 0:
        report.notes.append("not root: the checker cannot read physical addresses (run it in the lab VM, as root)")
    running = os.environ.get("PYPHYS_LAB")
    if running and running != str(number):
        report.notes.append(
            f"this VM was started for lab {running}; lab {number} may need other settings (`pyphys lab start {number}`)"
        )
    _CHECKERS[number](_Grader(report, values))
    seen = {i.key for i in report.items}
    for k in lab.keys:  # every value gets a verdict, even when a checker returned early
        if k.name not in seen:
            report.items.append(Item(k.name, ERROR, "not checked: fix the values above first"))
    order = {k.name: i for i, k in enumerate(lab.keys)}
    report.items.sort(key=lambda i: order.get(i.key, len(order)))
    return report


def format_report(report: Report) -> str:
    """The report as the CLI prints it: one line per value, then a verdict."""
    lab = LABS[report.lab]
    width = max((len(i.key) for i in report.items), default=0)
    lines = [f"Lab {report.lab}: {lab.title}", f"results: {report.path}"]
    for i in report.items:
        lines.append(f"  {i.status:<7}  {i.key:<{width}}  {i.detail}")
    for n in report.notes:
        lines.append(f"  note: {n}")
    good = sum(i.status == OK for i in report.items)
    if report.passed:
        lines.append(f"All {good} values are right. Lab {report.lab} passed.")
    else:
        lines.append(
            f"{good} of {len(report.items)} right. Fix the lines above that are not OK and run "
            f"`pyphys lab check {report.lab}` again."
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Starting a lab (on the host)
# ---------------------------------------------------------------------------------------------
def lab_dir(number: int, base: str | None = None) -> str:
    """The host directory shared read-write with lab ``number``'s guest as $LABDIR (made if missing)."""
    base = base or os.environ.get("PYPHYS_LABS_DIR") or os.path.join(os.path.expanduser("~"), "pyphys-labs")
    path = os.path.join(os.path.abspath(base), f"lab{number}")
    os.makedirs(os.path.join(path, ".pyphys", "bin"), exist_ok=True)
    return path


def _q(s: str) -> str:
    import shlex

    return shlex.quote(str(s))


def guest_shell_script(lab: Lab, *, python: str, repo: str, ko: str, labdir: str) -> str:
    """The guest's login shell for lab ``lab`` (virtme-ng ``--shell``): environment, module, banner, bash."""
    params = " ".join(f"{k}={v}" for k, v in lab.module_params)
    rc = os.path.join(labdir, ".pyphys", "bashrc")
    doc = os.path.relpath(lab.doc, repo)
    return f"""#!/bin/sh
# Written by `pyphys lab start {lab.number}`: lab {lab.number}'s shell in the guest.
export PATH={_q(os.path.join(labdir, ".pyphys", "bin"))}:{_q(os.path.dirname(python))}:$PATH
export PYTHONPATH={_q(repo)} PYTHONDONTWRITEBYTECODE=1
export PYPHYS_LAB={lab.number} LABDIR={_q(labdir)} PYPHYS_KO={_q(ko)}
cd {_q(repo)}
if insmod "$PYPHYS_KO" {params} 2>/tmp/.pyphys-insmod.err; then
    echo "pyphys.ko loaded{(" (" + params + ")") if params else ""}: /sys/kernel/pyphys/"
else
    echo "insmod $PYPHYS_KO failed: $(cat /tmp/.pyphys-insmod.err)"
fi
cat <<'EOF'

  Lab {lab.number}: {lab.title}
  Read:    {doc}   (on the host, or here: less {doc})
  Results: {lab.results_path}   (`pyphys lab check {lab.number} --template > {lab.results_path}`, then edit it)
  Check:   pyphys lab check {lab.number}
  Leave:   exit   (the VM powers off; $LABDIR keeps your files on the host)

EOF
echo "  \\$LABDIR = $LABDIR (shared with the host, read-write)"
echo
exec /bin/bash --rcfile {_q(rc)} -i
"""


def guest_bashrc(lab: Lab) -> str:
    return f"PS1='[lab {lab.number} \\W]# '\nalias ll='ls -l'\n"


def start(number: int, *, kvm: bool = False, memory: str = "1G", base: str | None = None) -> int:
    """Boot lab ``number``'s VM and give the user its shell; returns the shell's exit status.

    Raises LabError (kernel, QEMU or virtme-ng missing) and UsageError (no such lab).
    """
    import secrets
    import sys

    from pyphys import kernels, labvm

    lab = get(number)
    kernel = kernels.resolve(lab.kernel)
    ko = kernels.build_module(kernel)
    labdir = lab_dir(number, base)
    repo = str(labvm.REPO)
    shell = os.path.join(labdir, ".pyphys", "shell.sh")
    files = {
        shell: guest_shell_script(lab, python=sys.executable, repo=repo, ko=ko, labdir=labdir),
        os.path.join(labdir, ".pyphys", "bashrc"): guest_bashrc(lab),
        os.path.join(
            labdir, ".pyphys", "bin", "pyphys"
        ): f'#!/bin/sh\nexec {_q(sys.executable)} {_q(os.path.join(repo, "bin", "pyphys"))} "$@"\n',
    }
    for path, text in files.items():
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    shm = f"/dev/shm/pyphys-lab{number}-{os.getpid()}"
    shm_data = b""
    if number == 5:
        # seed 002 the other way round: the host leaves a message in the shared memory file
        shm_data = f"hello from the host {secrets.token_hex(4)}".encode() + b"\0"
    intro = (
        f"pyphys lab start {number}: {lab.title}\n"
        f"  booting the {lab.kernel} kernel {kernel.release} under QEMU "
        f"({'KVM, falling back to TCG' if kvm else 'TCG, about 20-60 s'}); the host's files are the guest's root\n"
        f"  lab text:  {lab.doc}\n"
        f"  $LABDIR:   {labdir} (read-write in the guest, kept after the VM stops)\n"
        f"  ivshmem:   BAR2 is backed by the host file {shm}"
        + ("  (look: hd " + shm + " | head)" if number == 5 else "")
        + "\n"
    )
    return labvm.interactive_shell(
        lab.kernel, memory=memory, kvm=kvm, shell=shell, rwdir=labdir, shm_path=shm, shm_data=shm_data, intro=intro
    )
