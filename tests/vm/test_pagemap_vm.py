"""`pyphys pagemap` inside the lab guest (lab kernel, STRICT_DEVMEM off).

Judges from outside pyphys: `busybox devmem` reading the physical address pyphys computed must
return the pattern the guest process wrote there; the kernel's page-types (built from the same
6.1 tree) must list the same frames and flags; copy-on-write must behave as the kernel documents
(one frame shared after fork, two after a write, exclusive bit and kpagecount following).
"""

from __future__ import annotations

import json
import shlex
import struct
import sys
import time
import uuid

import pytest

PY = shlex.quote(sys.executable)
PATTERN = b"pyphys-pagemap!!"

GUEST = r"""
import ctypes, mmap, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
mode, out = sys.argv[1], sys.argv[2]
PAGE = mmap.PAGESIZE
m = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
def say(*words):
    with open(out, "a") as f:
        f.write(" ".join(map(str, words)) + "\n")
if mode == "mlock":
    m[:16] = b"pyphys-pagemap!!"
    assert libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(PAGE)) == 0, ctypes.get_errno()
    say("ready", os.getpid(), addr)
    while True:
        time.sleep(3600)
elif mode == "sparse":  # 8 GiB reserved (MAP_NORESERVE), one page touched every 8 MiB
    # the lab's THP is "always": without this each touch would fault in 2 MiB (2 GiB in all)
    assert libc.prctl(41, 1, 0, 0, 0) == 0, ctypes.get_errno()  # PR_SET_THP_DISABLE
    big = mmap.mmap(-1, 8 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)
    for off in range(0, len(big), 8 << 20):
        big[off] = 1
    say("ready", os.getpid(), ctypes.addressof(ctypes.c_char.from_buffer(big)))
    while True:
        time.sleep(3600)
elif mode == "hugetlb":
    HUGE = 2 << 20
    h = mmap.mmap(-1, HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40000)  # MAP_HUGETLB
    h[3 * PAGE + 0x10:3 * PAGE + 0x20] = b"pyphys-hugetlb!!"
    say("ready", os.getpid(), ctypes.addressof(ctypes.c_char.from_buffer(h)))
    while True:
        time.sleep(3600)
elif mode == "softdirty":
    m[:8] = b"before!!"
    def on_usr1(sig, frame):
        m[:8] = b"after!!!"
        say("written", os.getpid())
    signal.signal(signal.SIGUSR1, on_usr1)
    say("ready", os.getpid(), addr)
    while True:
        signal.pause()
else:  # cow
    m[:8] = b"parent!!"
    pid = os.fork()
    if pid == 0:
        def on_usr1(sig, frame):
            m[:8] = b"child!!!"
            say("written", os.getpid())
        signal.signal(signal.SIGUSR1, on_usr1)
        say("child", os.getpid(), addr)
        while True:
            signal.pause()
    say("parent", os.getpid(), addr)
    while True:
        time.sleep(3600)
"""


def start(vm, mode: str) -> tuple[str, list[int]]:
    out = f"/tmp/pyphys-pagemap-{uuid.uuid4().hex[:8]}.out"
    res = vm.run(f"setsid {PY} -c {shlex.quote(GUEST)} {mode} {out} </dev/null >/dev/null 2>&1 &")
    assert res.rc == 0, res
    return out, []


def wait_lines(vm, out: str, words: set[str], timeout: float = 120) -> dict[str, list[str]]:
    deadline = time.time() + timeout
    while True:
        res = vm.run(f"cat {out} 2>/dev/null")
        lines = {ln.split()[0]: ln.split()[1:] for ln in res.out.splitlines() if ln.strip()}
        if words <= set(lines):
            return lines
        assert time.time() < deadline, f"guest helper never said {words - set(lines)}: {res.out!r}"
        time.sleep(0.3)


def translate(vm, pid, addr) -> dict:
    res = vm.pyphys("pagemap", str(pid), hex(addr), "--json")
    assert res.rc == 0, res
    return json.loads(res.out)


def busybox32(vm, phys: int) -> int:
    res = vm.run(f"busybox devmem {phys:#x} 32")
    assert res.rc == 0, res
    return int(res.out.strip(), 16)


def page_types_pages(vm, pid: int, *extra: str) -> dict[int, tuple[int, str]]:
    res = vm.run(" ".join([shlex.quote(vm.page_types), "-p", str(pid), "-L", "-N", *extra]))
    assert res.rc == 0, res
    pages = {}
    for line in res.out.splitlines()[1:]:
        vpn, off, flags = line.split("\t")
        pages[int(vpn, 16)] = (int(off, 16), flags)
    return pages


@pytest.fixture
def mlocked(lab_vm):
    out, _ = start(lab_vm, "mlock")
    lines = wait_lines(lab_vm, out, {"ready"})
    pid, addr = int(lines["ready"][0]), int(lines["ready"][1])
    yield pid, addr
    lab_vm.run(f"kill {pid}")


def test_mlocked_pattern_is_at_the_physical_address(lab_vm, mlocked):
    pid, addr = mlocked
    d = translate(lab_vm, pid, addr)
    assert d["entry"]["present"] and not d["entry"]["pfn_hidden"]
    phys = int(d["phys"], 16)
    assert phys == d["pfn"] * 4096 + addr % 4096
    assert {"mlocked", "unevictable", "anonymous"} <= set(d["flags"]) and d["kpagecount"] == 1
    words = struct.unpack("<4I", PATTERN)
    # busybox devmem (mmap of /dev/mem) at the address pyphys computed reads the guest's pattern
    assert [busybox32(lab_vm, phys + 4 * i) for i in range(4)] == list(words)
    # and so does pyphys devmem
    for i in range(4):
        res = lab_vm.pyphys("devmem", "-q", hex(phys + 4 * i), "32")
        assert res.rc == 0, res
        assert int(res.out.strip(), 16) == words[i]
    # the kernel's page-types agrees on the frame and the flags
    vpn = addr // 4096
    pt = page_types_pages(lab_vm, pid, "-r", "-a", f"{vpn},{vpn + 1}")
    assert pt[vpn][0] == d["pfn"]
    res = lab_vm.python(
        f"from pyphys import pagemap; t = pagemap.translate({pid}, {addr}); print(pagemap.symbolic_flags(t.flags))"
    )
    assert res.rc == 0, res
    assert res.out.strip() == pt[vpn][1]


def test_text_output_names_the_frame(lab_vm, mlocked):
    pid, addr = mlocked
    res = lab_vm.pyphys("pagemap", str(pid), hex(addr))
    assert res.rc == 0, res
    d = translate(lab_vm, pid, addr)
    assert f"physical address {d['phys']}" in res.out and "mlocked" in res.out


def test_whole_process_matches_page_types_in_guest(lab_vm, mlocked):
    pid, _addr = mlocked
    # The scanning Python maps the same library files as the helper, which raises their map
    # count (and clears "exclusive") only while it runs; page-types is C. A Python that runs the
    # same scan once (so it has imported every extension module the scan loads, lazily ones
    # included) and stays alive across all three reads keeps the counts equal.
    code = (
        "import json; from pyphys import pagemap; print(json.dumps({r.vaddr // 4096: "
        "[r.decoded.pfn if r.present else r.decoded.swap_offset, pagemap.symbolic_flags(r.flags)] "
        f"for r in pagemap.scan({pid}) if r.entry >> 62}}))"
    )
    ready = f"/tmp/pyphys-keeper-{uuid.uuid4().hex[:8]}"
    keeper_code = f"import time, ctypes, mmap, signal\n{code}\nopen({ready!r}, 'w').write('ready\\n')\ntime.sleep(900)"
    keeper = lab_vm.run(f"setsid {PY} -c {shlex.quote(keeper_code)} </dev/null >/dev/null 2>&1 & echo $!")
    assert keeper.rc == 0, keeper
    try:
        wait_lines(lab_vm, ready, {"ready"}, timeout=300)
        _compare_whole_process(lab_vm, pid, code)
    finally:
        lab_vm.run(f"kill {keeper.out.strip()}; rm -f {ready}")


def _compare_whole_process(lab_vm, pid, code):
    for _attempt in range(3):
        before = page_types_pages(lab_vm, pid, "-r")
        res = lab_vm.python(code, timeout=600)
        assert res.rc == 0, res
        ours = {int(k): tuple(v) for k, v in json.loads(res.out).items()}
        after = page_types_pages(lab_vm, pid, "-r")
        if ours in (before, after):
            break
    assert set(ours) == set(before)
    bad = [v for v in ours if ours[v] not in (before[v], after[v])]
    assert not bad, f"{len(bad)} of {len(ours)} pages disagree with page-types, e.g. " + ", ".join(
        f"{v:#x}: {ours[v]} vs {before[v]}" for v in bad[:5]
    )


def test_fork_then_write_shows_copy_on_write(lab_vm):
    out, _ = start(lab_vm, "cow")
    lines = wait_lines(lab_vm, out, {"parent", "child"})
    parent, addr = int(lines["parent"][0]), int(lines["parent"][1])
    child = int(lines["child"][0])
    try:
        p, c = translate(lab_vm, parent, addr), translate(lab_vm, child, addr)
        # after fork, before any write: one frame, mapped by both, exclusive to neither
        assert p["pfn"] == c["pfn"] and p["pfn"] is not None
        assert not p["entry"]["exclusive"] and not c["entry"]["exclusive"]
        assert p["kpagecount"] == 2 and "anon_exclusive" not in p["flags"]
        assert struct.pack("<I", busybox32(lab_vm, int(p["phys"], 16))) == b"pare"
        assert lab_vm.run(f"kill -USR1 {child}").rc == 0
        wait_lines(lab_vm, out, {"written"})
        p2, c2 = translate(lab_vm, parent, addr), translate(lab_vm, child, addr)
        # the write copied the page: two frames, each exclusive and mapped once
        assert p2["pfn"] != c2["pfn"]
        assert p2["entry"]["exclusive"] and c2["entry"]["exclusive"]
        assert p2["kpagecount"] == 1 and c2["kpagecount"] == 1
        assert "anon_exclusive" in c2["flags"]
        assert struct.pack("<I", busybox32(lab_vm, int(c2["phys"], 16))) == b"chil"
        assert struct.pack("<I", busybox32(lab_vm, int(p2["phys"], 16))) == b"pare"
    finally:
        lab_vm.run(f"kill {child} {parent}")


def test_hugetlb_page_reported_as_such(lab_vm):
    assert lab_vm.run("echo 4 > /proc/sys/vm/nr_hugepages").rc == 0
    out, _ = start(lab_vm, "hugetlb")
    lines = wait_lines(lab_vm, out, {"ready"})
    pid, base = int(lines["ready"][0]), int(lines["ready"][1])
    try:
        addr = base + 3 * 4096 + 0x10
        d = translate(lab_vm, pid, addr)
        assert d["huge"] is not None, d
        assert (d["huge"]["kind"], d["huge"]["pages"], d["huge"]["index"], d["huge"]["size"]) == (
            "hugetlb",
            512,
            3,
            2 << 20,
        )
        assert "huge" in d["flags"]
        phys = int(d["phys"], 16)
        assert struct.pack("<4I", *(busybox32(lab_vm, phys + 4 * i) for i in range(4))) == b"pyphys-hugetlb!!"
        vpn = addr // 4096
        pt = page_types_pages(lab_vm, pid, "-r", "-a", f"{vpn},{vpn + 1}")
        assert pt[vpn][0] == d["pfn"] and "G" in pt[vpn][1]  # G: huge (hugetlb) in page-types
        runs = lab_vm.pyphys("pagemap", str(pid), f"{base:#x}+0x200000")
        assert runs.rc == 0 and "[hugetlb]" in runs.out, runs
    finally:
        lab_vm.run(f"kill {pid}")


def test_soft_dirty_follows_clear_refs_and_writes(lab_vm):
    """Documentation/admin-guide/mm/soft-dirty.rst: writing 4 to clear_refs clears the bit; the
    next write to the page sets it again."""
    out, _ = start(lab_vm, "softdirty")
    lines = wait_lines(lab_vm, out, {"ready"})
    pid, addr = int(lines["ready"][0]), int(lines["ready"][1])
    try:
        assert translate(lab_vm, pid, addr)["entry"]["soft_dirty"] is True
        assert lab_vm.run(f"echo 4 > /proc/{pid}/clear_refs").rc == 0
        assert translate(lab_vm, pid, addr)["entry"]["soft_dirty"] is False
        assert lab_vm.run(f"kill -USR1 {pid}").rc == 0
        wait_lines(lab_vm, out, {"written"})
        assert translate(lab_vm, pid, addr)["entry"]["soft_dirty"] is True
    finally:
        lab_vm.run(f"kill {pid}")


def test_bad_input_in_guest(lab_vm):
    for argv in (["self", "0xzz"], ["2", "0x1000"], ["self", "0x2000-0x1000"]):
        res = lab_vm.pyphys("pagemap", *argv)
        assert res.rc != 0 and "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1, res


def page_types_summary(vm, pid: int) -> dict[int, int]:
    res = vm.run(" ".join([shlex.quote(vm.page_types), "-p", str(pid)]))
    assert res.rc == 0, res
    rows = {}
    for line in res.out.splitlines():
        if line.startswith("0x"):
            flags, count = line.split("\t")[:2]
            rows[int(flags, 16)] = int(count.split()[0])
    return rows


@pytest.mark.parametrize("mode", ["ioctl", "read"])
def test_sparse_summary_matches_page_types_in_guest(lab_vm, mode):
    """The lab kernel (6.12) has the PAGEMAP_SCAN ioctl: with it, and with the chunked read,
    the summary of a sparse address space counts what the guest's page-types counts."""
    out, _ = start(lab_vm, "sparse")
    lines = wait_lines(lab_vm, out, {"ready"})
    pid = int(lines["ready"][0])
    try:
        idle = 1 << 25  # KPF_IDLE flips behind everyone's back

        def masked(rows):
            got = {}
            for f, n in rows.items():
                got[f & ~idle] = got.get(f & ~idle, 0) + n
            return got

        for _attempt in range(3):
            pt1 = page_types_summary(lab_vm, pid)
            res = lab_vm.run(
                f"{PY} -m pyphys pagemap {pid} --all --summary --view well-known --json",
                env={"PYPHYS_PAGEMAP_SCAN": mode},
            )
            assert res.rc == 0, res
            d = json.loads(res.out)
            pt2 = page_types_summary(lab_vm, pid)
            ours = masked({int(r["flags"], 16): r["pages"] for r in d["rows"]})
            if ours in (masked(pt1), masked(pt2)):
                break
        assert ours in (masked(pt1), masked(pt2))
        assert d["present"] >= 1024 and d["not_present"] > (8 << 30) // 4096 - 1024 - 1
    finally:
        lab_vm.run(f"kill {pid}")
