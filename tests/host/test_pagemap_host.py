"""pagemap on the host's real kernel, judged by the kernel's own page-types (tools/vm, 6.1 tree).

Needs root (PFNs, /proc/kpageflags). page-types: $PYPHYS_PAGE_TYPES or the lab kernel tree
that scripts/build-kernel.sh builds (CI builds it first). Every test uses child processes that
touch their memory, lock it and then block, so page tables and frames stay put while pyphys and
page-types look at them. Flags that the kernel's page-idle tracking (DAMON here) flips by itself
are handled by reading page-types before and after pyphys: pyphys must match one of them.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyphys import kernels, pagemap, procmaps
from pyphys.errors import ProcessGoneError, UsageError

pytestmark = pytest.mark.host_root

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.sysconf("SC_PAGE_SIZE")
PATTERN = b"pyphys-pagemap!!"

CHILD = r"""
import ctypes, json, mmap, os, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
PAGE = mmap.PAGESIZE
keep = []
out = {"pid": os.getpid()}
def addr(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))
buf = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(4):
    buf[i * PAGE:i * PAGE + 16] = cfg["pattern"].encode()
keep.append(buf)
out["buf"] = addr(buf)
if cfg.get("mlock"):
    assert libc.mlock(ctypes.c_void_p(out["buf"]), ctypes.c_size_t(4 * PAGE)) == 0, ctypes.get_errno()
if cfg.get("anon_mib"):
    m = mmap.mmap(-1, cfg["anon_mib"] << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for off in range(0, len(m), PAGE):
        m[off] = 1
    keep.append(m)
    out["anon"] = addr(m)
if cfg.get("reserve_mib"):  # mapped, never touched
    m = mmap.mmap(-1, cfg["reserve_mib"] << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    keep.append(m)
    out["reserve"] = addr(m)
if cfg.get("sparse_gib"):  # a big MAP_NORESERVE reservation with a few touched pages
    assert libc.prctl(41, 1, 0, 0, 0) == 0, ctypes.get_errno()  # PR_SET_THP_DISABLE: 4 KiB faults
    m = mmap.mmap(-1, cfg["sparse_gib"] << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000)
    for off in range(0, len(m), len(m) // cfg["sparse_pages"]):
        m[off] = 1
    keep.append(m)
    out["sparse"] = addr(m)
if cfg.get("thp"):
    two = 2 << 20
    p = libc.mmap(None, 3 * two, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
    a = (p + two - 1) & ~(two - 1)
    libc.madvise(ctypes.c_void_p(a), ctypes.c_size_t(two), 14)  # MADV_HUGEPAGE
    ctypes.memset(a, 1, two)
    out["thp"] = a
if cfg.get("mlockall"):
    assert libc.mlockall(3) == 0, ctypes.get_errno()  # MCL_CURRENT | MCL_FUTURE
if cfg.get("churn"):  # mappings that keep changing while pyphys scans
    import threading
    def churn():
        while True:
            ms = [mmap.mmap(-1, PAGE * (1 + i % 7), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) for i in range(64)]
            for m in ms:
                m[0] = 1
            for m in ms:
                m.close()
    threading.Thread(target=churn, daemon=True).start()
print(json.dumps(out), flush=True)
sys.stdin.read()
"""


class Child:
    """A helper process; ``info`` holds its pid and addresses. Ends when stdin closes."""

    def __init__(self, python: str | None = None, preexec=None, **cfg):
        cfg.setdefault("pattern", PATTERN.decode())
        self.proc = subprocess.Popen(
            [python or sys.executable, "-c", CHILD, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=preexec,
        )
        line = self.proc.stdout.readline()
        assert line, "helper process failed to start"
        self.info = json.loads(line)
        self.pid = self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            self.proc.stdin.close()


@pytest.fixture
def child_factory():
    made = []

    def make(**cfg):
        c = Child(**cfg)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: PFNs and /proc/kpageflags")


@pytest.fixture(scope="module")
def page_types():
    require_root()
    path = kernels.host_page_types()
    if path is None:
        pytest.skip(
            "page-types not built: set PYPHYS_PAGE_TYPES or run `make kernel` "
            "(scripts/build-kernel.sh builds tools/vm/page-types)"
        )
    return path


def page_types_list(pt: str, pid: int, *extra: str) -> dict[int, tuple[int, str]]:
    """``page-types -p PID -L -N [extra]``: {virtual page number: (PFN or swap offset, flags)}."""
    out = subprocess.run([pt, "-p", str(pid), "-L", "-N", *extra], check=True, capture_output=True, text=True).stdout
    pages = {}
    for line in out.splitlines()[1:]:
        vpn, off, flags = line.split("\t")
        pages[int(vpn, 16)] = (int(off, 16), flags)
    return pages


def pyphys_list(pid: int, view) -> dict[int, tuple[int, str]]:
    """The same listing from pyphys.scan: present and swapped pages only, as page-types lists."""
    pages = {}
    for r in pagemap.scan(pid):
        if not r.entry >> 62:
            continue
        d = r.decoded
        off = d.pfn if d.present else d.swap_offset
        pages[r.vaddr // PAGE] = (off, pagemap.symbolic_flags(view(r)))
    return pages


def test_translate_mlocked_buffer_of_a_child(page_types, child_factory):
    c = child_factory(mlock=True)
    addr = c.info["buf"] + PAGE + 5
    t = pagemap.translate(c.pid, addr)
    e = t.entry
    assert e.present and not e.pfn_hidden and e.pfn
    assert t.phys_addr == e.pfn * PAGE + 5
    assert e.exclusive and not e.swapped and not e.file_or_shared_anon
    assert {"mlocked", "unevictable", "anonymous", "anon_exclusive", "mmap_exclusive"} <= set(t.flag_names)
    assert t.kpagecount == 1
    assert t.mapping.start <= addr < t.mapping.end and t.mapping.anonymous
    # page-types on the same page: same frame, same flag letters (-r: the expanded view)
    vpn = addr // PAGE
    pt = page_types_list(page_types, c.pid, "-r", "-a", f"{vpn},{vpn + 1}")
    assert pt == {vpn: (e.pfn, pagemap.symbolic_flags(t.flags))}
    # the CLI says the same, as text and as JSON
    env = dict(os.environ, PYTHONPATH=TOP)
    res = subprocess.run(
        [sys.executable, "-m", "pyphys", "pagemap", str(c.pid), hex(addr), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["pfn"], d["phys"], d["kpagecount"]) == (e.pfn, hex(t.phys_addr), 1)
    res = subprocess.run(
        [sys.executable, "-m", "pyphys", "pagemap", str(c.pid), hex(addr)], capture_output=True, text=True, env=env
    )
    assert f"physical address {t.phys_addr:#x}" in res.stdout


def agree(pt: str, pid: int, ours, before, after, view, *extra) -> list[str]:
    """Pages where pyphys disagrees with both page-types reads. A flag that changed between the
    reads (page-idle tracking sets and clears ``idle_page`` on its own) is re-read for that page,
    bracketed again, up to 5 times; a PFN must agree the first time."""
    bad = []
    for vpn, (off, flags) in ours.items():
        b, a = before[vpn], after[vpn]
        if off != b[0] or off != a[0]:
            bad.append(f"{vpn:#x}: pfn {off:#x} vs page-types {b[0]:#x}/{a[0]:#x}")
            continue
        tries = 0
        while flags not in (b[1], a[1]) and tries < 5:
            tries += 1
            one = ("-a", f"{vpn},{vpn + 1}")
            b = page_types_list(pt, pid, *extra, *one)[vpn]
            flags = next(pagemap.symbolic_flags(view(r)) for r in pagemap.scan(pid, vpn * PAGE, (vpn + 1) * PAGE))
            a = page_types_list(pt, pid, *extra, *one)[vpn]
        if flags not in (b[1], a[1]):
            path = next((m.path for m in procmaps.read_maps(pid) if m.start <= vpn * PAGE < m.end), "?")
            if (
                os.path.realpath(path) in observer_files(pt)
                and "1" in flags
                and flags.replace("1", "_") in (b[1], a[1])
            ):
                # page-types's observer effect: it maps these libc pages itself while it runs,
                # so for it they are not mapped exclusively (mapcount 2); for pyphys, reading
                # without touching them, the child is their only mapper. Only that bit may differ.
                continue
            bad.append(f"{vpn:#x} ({path}): {flags} vs page-types {b[1]} / {a[1]} ({tries} re-reads)")
    return bad


_OBSERVER: dict[str, set[str]] = {}


def observer_files(pt: str) -> set[str]:
    """The shared objects page-types maps itself (its ELF interpreter and libraries, per ldd)."""
    if pt not in _OBSERVER:
        out = subprocess.run(["ldd", pt], capture_output=True, text=True).stdout
        _OBSERVER[pt] = {os.path.realpath(m) for m in re.findall(r"(/\S+) \(0x", out)}
    return _OBSERVER[pt]


def test_whole_process_scan_matches_page_types(page_types, child_factory):
    c = child_factory(anon_mib=64, mlock=True, thp=True, mlockall=True)
    for extra, view in (
        ((), lambda r: pagemap.well_known_flags(r.kpageflags or 0)),  # page-types' view
        (("-r",), lambda r: r.flags),
    ):  # -r: expanded
        before = page_types_list(page_types, c.pid, *extra)
        ours = pyphys_list(c.pid, view)
        after = page_types_list(page_types, c.pid, *extra)
        assert len(ours) > 64 * 256
        assert set(ours) == set(before) == set(after)
        bad = agree(page_types, c.pid, ours, before, after, view, *extra)
        assert not bad, f"{len(bad)} of {len(ours)} pages disagree ({extra}): " + "; ".join(bad[:10])


def page_types_summary(pt: str, pid: int) -> dict[int, int]:
    out = subprocess.run([pt, "-p", str(pid)], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(0x[0-9a-f]{16})\t\s*(\d+)", line)
        if m:
            rows[int(m.group(1), 16)] = int(m.group(2))
    return rows


# flags that change behind everyone's back: idle (page-idle tracking) and referenced, which
# the kernel sets when a process that maps the page exits (each exit flips it on the vDSO's
# page, seen on this 6.18 host) and clears on reclaim; page-types' runs exit, and so does
# the forked half of a summary on two CPUs
UNSTABLE = 1 << 25 | 1 << 2


def stable_flags(rows: dict[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for f, n in rows.items():
        out[f & ~UNSTABLE] = out.get(f & ~UNSTABLE, 0) + n
    return out


def summary_against_page_types(pt: str, pid: int):
    """pyphys's summary of ``pid``, its rows and the page-types summaries taken before and after
    it (:data:`UNSTABLE` flags left out), for up to three attempts until one matches."""
    for _attempt in range(3):
        before = page_types_summary(pt, pid)
        s = pagemap.summarize(pid)
        snapshots = [stable_flags(before), stable_flags(page_types_summary(pt, pid))]
        ours = stable_flags({r.flags: r.pages for r in s.rows("well-known")})
        if ours in snapshots:
            break
    return s, ours, snapshots


def test_summary_matches_page_types(page_types, child_factory):
    c = child_factory(anon_mib=32, mlockall=True)
    s, ours, snapshots = summary_against_page_types(page_types, c.pid)
    assert ours in snapshots
    assert all(s.total == sum(snap.values()) for snap in snapshots)
    assert s.present >= 32 * 256 and s.kpageflags_read and not s.pfns_hidden


@pytest.mark.parametrize("mode", ["ioctl", "read"])
def test_sparse_summary_matches_page_types(page_types, child_factory, monkeypatch, mode):
    """A 4 GiB MAP_NORESERVE mapping with 4096 touched pages: the PAGEMAP_SCAN ioctl and the
    chunked read that skips empty stretches both count what page-types counts."""
    from pyphys.pagemap import sparse

    monkeypatch.setenv("PYPHYS_PAGEMAP_SCAN", mode)
    c = child_factory(sparse_gib=4, sparse_pages=4096)
    with open(f"/proc/{c.pid}/pagemap", "rb") as f:
        assert sparse.scan_categories(f.fileno()) is not None, "this 6.18 host has PAGEMAP_SCAN"
    s, ours, snapshots = summary_against_page_types(page_types, c.pid)
    assert ours in snapshots
    mapped = sum(hi - lo for lo, hi in s.ranges if hi <= 1 << 47) // PAGE
    assert s.present >= 4096 and s.present + s.swapped + s.not_present == mapped
    assert s.not_present > (4 << 30) // PAGE - 4096 - 1


def test_transparent_huge_page_reported(page_types, child_factory):
    c = child_factory(thp=True)
    a = c.info["thp"]
    with open(f"/proc/{c.pid}/smaps") as f:
        smaps = f.read()
    block = next(
        b
        for b in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", smaps)
        if int(b.split("-", 1)[0], 16) <= a < int(b.split()[0].split("-")[1], 16)
    )
    huge_kb = int(re.search(r"AnonHugePages:\s+(\d+) kB", block).group(1))
    t = pagemap.translate(c.pid, a + 3 * PAGE)
    vpn = (a + 3 * PAGE) // PAGE
    pt = page_types_list(page_types, c.pid, "-r", "-a", f"{vpn},{vpn + 1}")
    assert pt[vpn] == (t.pfn, pagemap.symbolic_flags(t.flags))
    if huge_kb >= 2048:  # the kernel gave us a THP (smaps says so)
        assert t.huge is not None and t.huge.kind == "THP" and t.huge.size >= 2 << 20
        assert t.huge.index == 3 and t.huge.head_pfn == t.pfn - 3
        assert "thp" in t.flag_names and "compound_tail" in t.flag_names
        assert any("tail page of a large folio" in n for n in t.notes)  # 6.18 reads folio->flags
        runs = [r for r in pagemap.runs(c.pid, a, a + (2 << 20)) if r.huge == "THP"]
        assert sum(r.pages for r in runs) == 512
    else:  # no huge page available right now: pyphys must not claim one
        assert t.huge is None and "thp" not in t.flag_names


def nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def unprivileged_python() -> str:
    for py in (sys.executable, "/usr/bin/python3"):
        try:
            res = subprocess.run([py, "-c", "pass"], preexec_fn=nobody, capture_output=True)
        except OSError:
            continue  # e.g. a venv under /root
        if res.returncode == 0:
            return py
    pytest.skip("no Python interpreter the nobody user can run")


def test_hidden_pfn_without_cap_sys_admin(child_factory):
    require_root()
    py = unprivileged_python()
    c = child_factory(python=py, preexec=nobody)
    addr = c.info["buf"]
    # as root the page is present with a real frame ...
    assert pagemap.translate(c.pid, addr).pfn
    # ... as its own unprivileged user, pagemap zeroes the PFN: pyphys says hidden, never 0
    env = dict(os.environ, PYTHONPATH=TOP, PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run(
        [py, "-m", "pyphys", "pagemap", str(c.pid), hex(addr)],
        preexec_fn=nobody,
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    assert res.returncode == 0, res.stderr
    assert "PFN              hidden" in res.stdout and "physical address hidden" in res.stdout
    assert not re.search(r"PFN\s+0x0\b", res.stdout)
    res = subprocess.run(
        [py, "-m", "pyphys", "pagemap", str(c.pid), hex(addr), "--json"],
        preexec_fn=nobody,
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    d = json.loads(res.stdout)
    assert d["pfn"] is None and d["entry"]["pfn_hidden"] and d["entry"]["present"]
    res = subprocess.run(
        [py, "-m", "pyphys", "pagemap", str(c.pid), "--all"],
        preexec_fn=nobody,
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    assert res.returncode == 0 and "CAP_SYS_ADMIN" in res.stderr  # a note: stderr, results only on stdout


def one_line_error(res, code=None):
    assert res.returncode != 0 and (code is None or res.returncode == code), res
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_no_permission_to_read_pagemap(child_factory):
    require_root()
    py = unprivileged_python()
    root_child = child_factory()  # a root process: nobody may not read its page tables
    env = dict(os.environ, PYTHONPATH=TOP, PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run(
        [py, "-m", "pyphys", "pagemap", str(root_child.pid), hex(root_child.info["buf"])],
        preexec_fn=nobody,
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    one_line_error(res)
    assert "ermission denied" in res.stderr


def cli(*argv):
    env = dict(os.environ, PYTHONPATH=TOP)
    return subprocess.run([sys.executable, "-m", "pyphys", "pagemap", *argv], capture_output=True, text=True, env=env)


def test_kernel_thread_and_zombie_are_clear_errors():
    require_root()
    kthreadd = next(
        p for p in range(1, 100) if os.path.exists(f"/proc/{p}/stat") and procmaps.process_info(p).kernel_thread
    )
    res = cli(str(kthreadd), "0x400000")
    one_line_error(res, 2)
    assert "kernel thread" in res.stderr
    z = subprocess.Popen([sys.executable, "-c", "pass"])
    while procmaps.process_info(z.pid).state != "Z":  # exited, not reaped: a zombie
        time.sleep(0.01)
    try:
        res = cli(str(z.pid), "0x400000")
        one_line_error(res, 1)
        assert "zombie" in res.stderr
    finally:
        z.wait()
    res = cli(str(z.pid), "0x400000")  # reaped: nothing left
    one_line_error(res, 1)
    assert "no process" in res.stderr


def test_process_exits_mid_scan(child_factory):
    require_root()
    c = child_factory(reserve_mib=1024)  # 4 chunks of pagemap, untouched
    it = pagemap.scan(c.pid)
    next(it)
    c.proc.kill()
    while procmaps.process_info(c.pid).state != "Z":
        time.sleep(0.01)
    with pytest.raises(ProcessGoneError, match="exited during the scan"):
        for _ in it:
            pass


def test_mappings_changing_during_scans_do_not_crash(child_factory):
    require_root()
    c = child_factory(churn=True, anon_mib=8)
    for _ in range(5):
        s = pagemap.summarize(c.pid)
        assert s.present > 8 * 256
        assert sum(r.pages for r in pagemap.runs(c.pid)) > 0
        for _r in pagemap.scan(c.pid):
            pass


def test_process_by_name(child_factory):
    require_root()
    name = f"pyphys-test-{uuid.uuid4().hex[:8]}"
    procs = []
    try:
        procs.append(subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 60"]))
        deadline = time.time() + 10
        info = None
        while info is None and time.time() < deadline:
            try:
                info = procmaps.resolve_process(name)
            except Exception:
                time.sleep(0.05)
        assert info is not None and info.pid == procs[0].pid
        procs.append(subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 60"]))
        time.sleep(0.3)
        with pytest.raises(UsageError) as exc:
            procmaps.resolve_process(name)
        assert str(procs[0].pid) in str(exc.value) and str(procs[1].pid) in str(exc.value)
        res = cli(name, "0x400000")
        one_line_error(res, 2)
        assert "2 processes are named" in res.stderr
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


@pytest.mark.parametrize(
    "argv,code",
    [
        (["self", "0xnothex"], 2),
        (["self", "0x3000-0x1000"], 2),
        (["self", "0xffffffff81000000"], 2),
        (["4194305", "0x1000"], 1),
        (["-7", "0x1000"], 2),
        (["self", "0x1000-0x1000"], 2),
    ],
)
def test_bad_input_real_cli(argv, code):
    require_root()
    one_line_error(cli(*argv), code)


def test_translate_self_library():
    """From a notebook: translate a buffer of this very process."""
    require_root()
    buf = ctypes.create_string_buffer(PATTERN, PAGE * 2)
    t = pagemap.translate("self", ctypes.addressof(buf))
    assert t.pid == os.getpid() and t.entry.present and t.phys_addr % PAGE == ctypes.addressof(buf) % PAGE
