"""`pyphys walk` in the guests: the walk's answer against ground truth from outside the walker.

For user pages of a test process (anonymous 4 KiB, a THP, a file-backed page) the walk's frame
must equal the one /proc/PID/pagemap reports; for kernel addresses the physical address must be
what pyphys.ko computed in the kernel with virt_to_phys() and __pa_symbol() (sysfs
buffer_phys and nodename_phys). Run on the lab kernel, both stock kernels (through the
module's device, as STRICT_DEVMEM blocks /dev/mem there) and the lab kernel on an LA57 CPU
(5-level paging, KPTI on, PAT active).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import uuid

import pytest

PY = shlex.quote(sys.executable)
FIXTURES = {"lab": "lab_vm", "stock": "stock_vm", "stock-6.12": "stock612_vm", "la57": "la57_vm"}

GUEST = r"""
import ctypes, mmap, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
out = sys.argv[1]
PAGE, HUGE = mmap.PAGESIZE, 2 << 20
anon = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
anon[:8] = b"walk4k!!"
big = mmap.mmap(-1, 2 * HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
base = ctypes.addressof(ctypes.c_char.from_buffer(big))
thp = (base + HUGE - 1) // HUGE * HUGE
libc.madvise(ctypes.c_void_p(thp), ctypes.c_size_t(HUGE), 14)  # MADV_HUGEPAGE
ctypes.memset(thp, 0x5A, HUGE)
path = out + ".data"
with open(path, "wb") as f:
    f.write(b"walkfile" * (PAGE // 8))
fd = os.open(path, os.O_RDONLY)
fm = mmap.mmap(fd, PAGE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
assert fm[:8] == b"walkfile"
fbase = int(open("/proc/self/maps").read().split(path)[0].splitlines()[-1].split("-")[0], 16)
time.time()  # clock_gettime in the vDSO reads [vvar]: a VM_PFNMAP page, present
with open(out, "w") as f:
    f.write(f"{os.getpid()} {ctypes.addressof(ctypes.c_char.from_buffer(anon))} {thp + 5 * PAGE + 0x10} {fbase}.\n")
while True:
    time.sleep(3600)
"""


@pytest.fixture(params=tuple(FIXTURES))
def walk_vm(request):
    """Every kernel where the module with the walk ioctl loads, with a way to reach RAM."""
    vm = request.getfixturevalue(FIXTURES[request.param])
    if request.param.startswith("stock"):
        vm.load_module(mem_device=1)  # STRICT_DEVMEM: /dev/mem refuses RAM, the module's device does not
        yield vm
        vm.load_module()
    else:
        yield vm


def _spawn(vm, code: str, *args: str) -> tuple[str, list[str]]:
    """Start ``code`` in the guest, detached, with an output path first and ``args`` after; wait
    for the first line it writes there and return (path, that line's fields)."""
    out = f"/tmp/pyphys-walk-{uuid.uuid4().hex[:8]}.out"
    argv = " ".join(shlex.quote(a) for a in args)
    res = vm.run(f"setsid {PY} -c {shlex.quote(code)} {out} {argv} </dev/null >/dev/null 2>&1 &")
    assert res.rc == 0, res
    return out, _wait_line(vm, out)


def _wait_line(vm, path: str, lineno: int = 0) -> list[str]:
    deadline = time.time() + 120
    while True:
        lines = vm.run(f"cat {path} 2>/dev/null").out.splitlines()
        if len(lines) > lineno and lines[lineno].endswith("."):
            return lines[lineno][:-1].split()
        assert time.time() < deadline, f"the guest process never wrote line {lineno} of {path}"
        time.sleep(0.3)


@pytest.fixture
def process(walk_vm):
    out, fields = _spawn(walk_vm, GUEST)
    pid, anon, thp, fpage = (int(x) for x in fields)
    yield walk_vm, pid, {"anon": anon, "thp": thp, "file": fpage}
    walk_vm.run(f"kill {pid}; rm -f {out} {out}.data")


def _json(vm, *args):
    res = vm.pyphys(*args, "--json")
    assert res.rc == 0, res
    return json.loads(res.out)


@pytest.mark.parametrize("kind", ["anon", "thp", "file"])
def test_walk_frame_is_pagemaps_frame(process, kind):
    vm, pid, addrs = process
    addr = addrs[kind]
    both = lambda: (_json(vm, "walk", str(pid), hex(addr)), _json(vm, "pagemap", str(pid), hex(addr)))  # noqa: E731
    (w, pm), _ = _settled(vm, both, lambda: _pagemap_pages(vm, pid)["frames"].get(hex(addr // 4096 * 4096)))
    assert pm["entry"]["present"] and pm["pfn"] is not None
    assert w["phys"] == pm["phys"], (w, pm)
    assert w["check"]["agree"] is True and w["check"]["source"] == "pagemap"
    levels = int(vm.run("grep -qw la57 /proc/cpuinfo && echo 5 || echo 4").out)
    assert (
        w["levels"]
        == levels
        == len([s for s in w["steps"] if s["kind"] == "table"]) + (2 if w["page_size"] == 2 << 20 else 1)
    )
    leaf = w["steps"][-1]
    assert leaf["bits"]["P"] and leaf["bits"]["US"]
    if kind == "thp" and pm["huge"] and pm["huge"]["kind"] == "THP":
        assert w["page_size"] == 2 << 20 and leaf["level"] == "pmd" and leaf["bits"]["PS"]
    if kind == "file":
        assert not leaf["bits"]["RW"]
    if kind == "anon":  # the text form names the same frame; shown by `pytest -rA` as a real walk
        res = vm.pyphys("walk", str(pid), hex(addr))
        assert res.rc == 0 and pm["phys"] in res.out, res
        print(f"{vm.label}:\n{res.out}")


def test_module_buffer_and_nodename_walk_to_the_modules_addresses(walk_vm):
    vm = walk_vm
    res = vm.python("from pyphys import walk; print(hex(walk.module_buffer_virt()))")
    assert res.rc == 0, res
    virt = int(res.out, 16)
    buffer_phys = int(vm.run("cat /sys/kernel/pyphys/buffer_phys").out, 16)
    w = _json(vm, "walk", "kernel", hex(virt))
    assert int(w["phys"], 16) == buffer_phys
    assert w["check"]["agree"] is True and "direct map" in w["check"]["source"]
    sym = vm.run("grep -w init_uts_ns /proc/kallsyms").out.split()
    nodename = int(sym[0], 16) + 65  # struct uts_namespace starts with struct new_utsname name
    w = _json(vm, "walk", "kernel", hex(nodename))
    assert int(w["phys"], 16) == int(vm.run("cat /sys/kernel/pyphys/nodename_phys").out, 16)
    assert w["check"]["agree"] is True and "__pa_symbol" in w["check"]["source"]


# -- walk PID --all ------------------------------------------------------------------------------
#: the independent count: present pages of every mapping, from /proc/PID/maps and pagemap read
#: here (not by pyphys), beside the frames of each page
COUNT = r"""
import json, sys
pid = sys.argv[1]
frames, swapped = {}, {}
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
    for line in maps:
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo >> 63:
            continue  # [vsyscall]: above the user address space pagemap covers
        pm.seek(lo // 4096 * 8)
        data = pm.read((hi - lo) // 4096 * 8)
        for i in range(len(data) // 8):
            e = int.from_bytes(data[8 * i : 8 * i + 8], "little")
            if e >> 63:
                frames[hex(lo + 4096 * i)] = e & ((1 << 55) - 1)
            elif e >> 62 & 1:
                f = e & ((1 << 55) - 1)
                swapped[hex(lo + 4096 * i)] = [f & 31, f >> 5]
print(json.dumps({"frames": frames, "swapped": swapped}))
"""


def _pagemap_pages(vm, pid: int) -> dict:
    res = vm.run(f"{PY} -c {shlex.quote(COUNT)} {pid}")
    assert res.rc == 0, res
    return json.loads(res.out)


def _walk_all(vm, pid: int) -> dict:
    from helpers import validate_json

    res = vm.pyphys("walk", str(pid), "--all", "--json", timeout=600)
    assert res.rc == 0, res
    doc = json.loads(res.out)
    validate_json(doc, "walk-all")
    assert doc["pid"] == pid
    return doc


def _agrees(doc: dict) -> dict:
    """The walk's own page-by-page check found nothing: returns ``doc``."""
    assert doc["disagree"] == 0 and doc["disagreements"] == [], doc["disagreements"]
    return doc


def _settled(vm, step, reading, tries: int = 3):
    """``step()`` between two ``reading()``s that agree: (what the step gave, the reading).

    The guest kernel moves a sleeping process's pages on its own: compaction migrates them,
    splitting a THP it cannot move whole (seen on la57, where the walk saw a 2 MiB leaf that
    pagemap, read a few seconds later, found as scattered 4 KiB frames). Frames are comparable
    only across a step no move crossed, so a step with readings that differ around it is taken
    again; a move across every try is a failure."""
    for _ in range(tries):
        before = reading()
        got = step()
        after = reading()
        if before == after:
            return got, after
        print(f"{vm.label}: pages moved during the step; taken again")
    pytest.fail(f"{vm.label}: pages moved across each of {tries} tries")


def _frames(doc: dict) -> dict[int, int]:
    """virtual page -> frame, from the walk's leaves (huge leaves expanded page by page)."""
    out = {}
    for lf in doc["leaves"]:
        if lf["pfn"] is not None:
            v = int(lf["virt"], 16)
            for i in range(lf["count"]):
                out[v + 4096 * i] = lf["pfn"] + i
    return out


def _leaf_at(doc: dict, addr: int) -> dict:
    for lf in doc["leaves"]:
        v = int(lf["virt"], 16)
        if v <= addr < v + 4096 * lf["count"]:
            return lf
    raise AssertionError(f"no leaf at {addr:#x}")


def _thp_configured(vm) -> bool:
    res = vm.run("cat /sys/kernel/mm/transparent_hugepage/enabled")
    return res.rc == 0 and "[never]" not in res.out


def test_walk_all_agrees_with_pagemap_page_by_page(process):
    vm, pid, addrs = process
    doc, pm = _settled(vm, lambda: _walk_all(vm, pid), lambda: _pagemap_pages(vm, pid))
    ours = _frames(_agrees(doc))
    pfnmap = {
        v
        for r in doc["pfnmap"]
        for v in range(int(r["start"], 16), int(r["end"], 16), 4096)
        if v in ours  # present in the walk, nothing in pagemap
    }
    checked = {v: f for v, f in ours.items() if v not in pfnmap}
    # the same pages, on the same frames, as the guest's own reading of pagemap
    assert {int(v, 16): f for v, f in pm["frames"].items()} == checked
    assert doc["present"] - doc["pfnmap_pages"] == len(pm["frames"]) and doc["swap"] == len(pm["swapped"])
    assert sum(c["pages"] for c in doc["by_level"].values()) == doc["present"]
    # [vvar] is VM_PFNMAP on every kernel here: walked, reported apart, not a disagreement
    assert any(r["path"] and r["path"].startswith("[vvar") for r in doc["pfnmap"]), doc["pfnmap"]
    for kind in ("anon", "file"):
        lf = _leaf_at(doc, addrs[kind] // 4096 * 4096)
        assert lf["level"] == "pte" and lf["check"] == "agree" and lf["kind"] == "page"
    if _thp_configured(vm):
        lf = _leaf_at(doc, addrs["thp"])
        assert lf["level"] == "pmd" and lf["page_size"] == 2 << 20 and lf["count"] == 512, lf
        assert doc["by_level"]["pmd"]["leaves"] >= 1
    else:
        print(f"{vm.kernel_name}: no transparent huge pages in this kernel: THP part skipped")


COW = r"""
import mmap, os, sys, time
out = sys.argv[1]
PAGE, N = mmap.PAGESIZE, 8
m = mmap.mmap(-1, N * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(N):
    m[i * PAGE] = 0x40 + i
addr = __import__("ctypes").addressof(__import__("ctypes").c_char.from_buffer(m))
child = os.fork()
if child == 0:
    while not os.path.exists(out + ".go"):
        time.sleep(0.1)
    m[3 * PAGE] = 0x99  # the write that breaks COW on page 3
    with open(out, "a") as f:
        f.write("written.\n")
    time.sleep(3600)
with open(out, "w") as f:
    f.write(f"{os.getpid()} {child} {addr}.\n")
time.sleep(3600)
"""


def test_walk_all_follows_copy_on_write(walk_vm):
    vm = walk_vm
    out, fields = _spawn(vm, COW)
    parent, child, addr = (int(x) for x in fields)
    pages = [addr + 4096 * i for i in range(8)]
    try:
        both = (parent, child)
        walks = lambda: [_walk_all(vm, pid) for pid in both]  # noqa: E731
        readings = lambda: [_pagemap_pages(vm, pid) for pid in both]  # noqa: E731
        p, c = (_frames(_agrees(d)) for d in _settled(vm, walks, readings)[0])
        assert [p[v] for v in pages] == [c[v] for v in pages]  # shared until a write
        vm.run(f"touch {out}.go")
        _wait_line(vm, out, 1)
        docs, pms = _settled(vm, walks, readings)
        p2, c2 = (_frames(_agrees(d)) for d in docs)
        assert p2[pages[3]] != c2[pages[3]] and p2[pages[3]] == p[pages[3]]
        assert [p2[v] for i, v in enumerate(pages) if i != 3] == [c2[v] for i, v in enumerate(pages) if i != 3]
        # each walk against its own process's pagemap, read by the guest script
        for pm, frames in zip(pms, (p2, c2)):
            assert [pm["frames"][hex(v)] for v in pages] == [frames[v] for v in pages]
    finally:
        vm.run(f"kill {parent} {child}; rm -f {out} {out}.go")


SWAPPER = r"""
import mmap, os, sys, time
out = sys.argv[1]
PAGE = mmap.PAGESIZE
m = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(4):
    m[i * PAGE : i * PAGE + 16] = b"walk swap page %d" % i
addr = __import__("ctypes").addressof(__import__("ctypes").c_char.from_buffer(m))
# MADV_PAGEOUT page 1, until pagemap says swapped (bit 62): a page still in a per-CPU LRU batch
# cannot be isolated yet, and reclaim skips it (seen once on stock 6.12)
with open("/proc/self/pagemap", "rb") as pm:
    for _ in range(20):
        m.madvise(21, PAGE, PAGE)
        pm.seek((addr + PAGE) // PAGE * 8)
        if int.from_bytes(pm.read(8), "little") >> 62 & 1:
            break
        time.sleep(0.2)
with open(out, "w") as f:
    f.write(f"{os.getpid()} {addr + PAGE}.\n")
time.sleep(3600)
"""

#: the swap disk every guest has (serial pyphys-swap), turned on as lab 8's solution does
SWAPON = r"""
for d in /sys/block/vd*; do [ "$(cat "$d/serial" 2>/dev/null)" = pyphys-swap ] && DEV=/dev/${d##*/}; done
[ -n "$DEV" ] || { echo "no disk with serial pyphys-swap" >&2; exit 1; }
if grep -q "^$DEV " /proc/swaps; then echo was-on; else mkswap -f "$DEV" >/dev/null && swapon "$DEV" && echo "$DEV"; fi
"""


def test_walk_all_swap_entry_is_pagemaps(walk_vm):
    vm = walk_vm
    res = vm.run(SWAPON)
    assert res.rc == 0, res
    dev = res.out.strip()
    out, fields = _spawn(vm, SWAPPER)
    pid, page = (int(x) for x in fields)
    try:
        doc, pm = _settled(vm, lambda: _walk_all(vm, pid), lambda: _pagemap_pages(vm, pid))
        _agrees(doc)
        assert hex(page) in pm["swapped"], f"MADV_PAGEOUT left the page in memory: {pm['swapped']}"
        lf = _leaf_at(doc, page)
        assert lf["kind"] == "swap" and lf["level"] == "pte" and lf["check"] == "agree"
        assert [lf["swap_type"], int(lf["swap_offset"], 16)] == pm["swapped"][hex(page)]
        assert doc["swap"] >= 1 and doc["swap"] == len(pm["swapped"])
        # the swap area of that type is the disk (/proc/swaps lists areas in type order)
        if dev != "was-on":
            areas = [line.split()[0] for line in vm.run("tail -n +2 /proc/swaps").out.splitlines()]
            assert areas[lf["swap_type"]] == dev, areas
    finally:
        vm.run(f"kill {pid}; rm -f {out}")
        if dev != "was-on":
            vm.run(f"swapoff {dev}")
