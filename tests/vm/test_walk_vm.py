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
with open(out, "w") as f:
    f.write(f"{os.getpid()} {ctypes.addressof(ctypes.c_char.from_buffer(anon))} {thp + 5 * PAGE + 0x10} {fbase}\n")
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


@pytest.fixture
def process(walk_vm):
    out = f"/tmp/pyphys-walk-{uuid.uuid4().hex[:8]}.out"
    res = walk_vm.run(f"setsid {PY} -c {shlex.quote(GUEST)} {out} </dev/null >/dev/null 2>&1 &")
    assert res.rc == 0, res
    deadline = time.time() + 120
    while True:
        res = walk_vm.run(f"cat {out} 2>/dev/null")
        if res.out.strip():
            break
        assert time.time() < deadline, "the guest process never started"
        time.sleep(0.3)
    pid, anon, thp, fpage = (int(x) for x in res.out.split())
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
    w = _json(vm, "walk", str(pid), hex(addr))
    pm = _json(vm, "pagemap", str(pid), hex(addr))
    assert pm["entry"]["present"] and pm["pfn"] is not None
    assert w["phys_addr"] == pm["phys_addr"], (w, pm)
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


def test_module_buffer_and_nodename_walk_to_the_modules_addresses(walk_vm):
    vm = walk_vm
    res = vm.python("from pyphys import walk; print(hex(walk.module_buffer_virt()))")
    assert res.rc == 0, res
    virt = int(res.out, 16)
    buffer_phys = int(vm.run("cat /sys/kernel/pyphys/buffer_phys").out, 16)
    w = _json(vm, "walk", "kernel", hex(virt))
    assert int(w["phys_addr"], 16) == buffer_phys
    assert w["check"]["agree"] is True and "direct map" in w["check"]["source"]
    sym = vm.run("grep -w init_uts_ns /proc/kallsyms").out.split()
    nodename = int(sym[0], 16) + 65  # struct uts_namespace starts with struct new_utsname name
    w = _json(vm, "walk", "kernel", hex(nodename))
    assert int(w["phys_addr"], 16) == int(vm.run("cat /sys/kernel/pyphys/nodename_phys").out, 16)
    assert w["check"]["agree"] is True and "__pa_symbol" in w["check"]["source"]
