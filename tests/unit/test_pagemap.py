"""pyphys.pagemap on a canned /proc (tests/fixtures/pagemap/proc, built by make_fixtures.py from
the bit layouts in pagemap.rst and kernel-page-flags.h): translate, scan, runs, summary, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pyphys import cli, pagemap, paths
from pyphys.errors import NotFoundError, ProcessGoneError, PyphysError, RegionError, UsageError

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pagemap")
MIB = 1 << 20

needs_4k = pytest.mark.skipif(pagemap.PAGE_SIZE != 4096, reason="the canned pagemap assumes 4 KiB pages")
pytestmark = needs_4k


@pytest.fixture
def proc():
    old = paths.set_roots(proc=os.path.join(FIX, "proc"))
    yield
    paths.set_roots(**old)


@pytest.fixture
def hidden():
    old = paths.set_roots(proc=os.path.join(FIX, "proc-hidden"))
    yield
    paths.set_roots(**old)


def names(t) -> set[str]:
    return set(t.flag_names)


# ---------------------------------------------------------------------------- translate
def test_translate_file_page(proc):
    t = pagemap.translate(4242, 0x10234)
    assert t.mapping.path == "/opt/fake prog/bin (deleted)" and t.process == "fake prog) (x"
    assert (t.vpage, t.offset, t.pfn, t.phys_addr) == (0x10000, 0x234, 0x100, 0x100234)
    e = t.entry
    assert e.present and e.file_or_shared_anon and e.soft_dirty and not e.exclusive
    assert t.kpagecount == 3
    assert t.huge is None
    # kpageflags for a file page: mappedtodisk stays mappedtodisk; pagemap bits folded in
    assert names(t) == {"referenced", "uptodate", "lru", "active", "mmap", "mappedtodisk", "softdirty", "file"}


def test_translate_anon_exclusive_and_mlocked(proc):
    t = pagemap.translate(4242, 0x14008)
    assert t.pfn == 0x200 and t.entry.exclusive
    assert {"anonymous", "anon_exclusive", "mmap_exclusive"} <= names(t) and "mappedtodisk" not in names(t)
    m = pagemap.translate(4242, 0x30000)
    assert {"mlocked", "unevictable"} <= names(m)


@pytest.mark.parametrize("addr,index", [(0x200000, 0), (0x201010, 1), (0x3FFFFF, 511)])
def test_translate_transparent_huge_page(proc, addr, index):
    t = pagemap.translate(4242, addr)
    assert t.huge is not None
    assert (t.huge.kind, t.huge.head_pfn, t.huge.pages, t.huge.index, t.huge.size) == (
        "THP",
        0x400,
        512,
        index,
        2 * MIB,
    )
    assert "thp" in names(t)
    assert t.pfn == 0x400 + index


def test_translate_swapped(proc):
    t = pagemap.translate(4242, 0x16FFF)
    e = t.entry
    assert e.kind == "swapped" and (e.swap_type, e.swap_offset) == (1, 0x1234)
    assert t.pfn is None and t.phys_addr is None and t.kpageflags is None
    assert not t.notes  # type 1 is one of the two swap areas in the canned /proc/swaps


def test_translate_markers(proc):
    g = pagemap.translate(4242, 0x32000)
    assert g.entry.kind == "guard region" and g.entry.guard_region
    u = pagemap.translate(4242, 0x33000)
    assert u.entry.uffd_wp and u.entry.swap_type == 30
    assert any("not one of the 2 swap areas" in n for n in u.notes)
    w = pagemap.translate(4242, 0x31000)
    assert w.entry.uffd_wp and w.entry.present and "uffd_wp" in names(w)


def test_translate_unknown_bits_and_holes(proc):
    t = pagemap.translate(4242, 0x34000)
    assert t.entry.unknown_bits == 1 << 59 and any("59-60" in n for n in t.notes)
    hole = pagemap.translate(4242, 0x12000)
    assert hole.entry.kind == "not present" and hole.pfn is None
    assert any("never touched" in n for n in hole.notes)


def test_translate_unmapped_names_nearest_mappings(proc):
    with pytest.raises(pagemap.UnmappedAddressError) as exc:
        pagemap.translate(4242, 0x25000)
    err = exc.value
    assert isinstance(err, RegionError)
    assert err.below.start == 0x20000 and err.above.start == 0x30000
    assert "0x20000-0x21000" in str(err) and "0x30000-0x38000" in str(err)


def test_translate_above_user_space(proc):
    if os.uname().machine != "x86_64":
        pytest.skip("x86-64 user-space limit")
    with pytest.raises(UsageError, match="above the user-space limit"):
        pagemap.translate(4242, 0xFFFF800000000000)
    with pytest.raises(RegionError, match=r"\[vsyscall\]"):
        pagemap.translate(4242, 0xFFFFFFFFFF600010)
    with pytest.raises(UsageError):
        pagemap.translate(4242, 1 << 64)


def test_translate_process_errors(proc):
    with pytest.raises(UsageError, match="kernel thread"):
        pagemap.translate(4243, 0x1000)
    with pytest.raises(ProcessGoneError, match="zombie"):
        pagemap.translate(4244, 0x1000)
    with pytest.raises(NotFoundError):
        pagemap.translate(999999, 0x1000)


def test_translate_hidden_pfn(hidden):
    t = pagemap.translate(4242, 0x10234)
    assert t.entry.present and t.entry.pfn_hidden
    assert t.pfn is None and t.phys_addr is None and t.kpageflags is None and t.kpagecount is None
    assert any("CAP_SYS_ADMIN" in n for n in t.notes)
    s = pagemap.translate(4242, 0x16000)
    assert s.entry.swapped and s.entry.pfn_hidden and s.entry.swap_offset is None


def test_translation_to_json_is_json(proc):
    """docs/json.md: a PFN is an integer (the THP's head too), addresses and offsets 0x strings,
    raw words 16 digits; validated against schema/pagemap.json."""
    d = json.loads(json.dumps(pagemap.translate(4242, 0x201010).to_json()))
    from helpers import validate_json

    assert d["pfn"] == 0x401 and d["phys"] == "0x401010" and d["huge"]["kind"] == "THP"
    assert (d["virt"], d["vpage"], d["offset"]) == ("0x201010", "0x201000", "0x10")
    assert d["huge"]["head_pfn"] == 0x400 and d["huge"]["index"] == 1
    assert d["entry"]["exclusive"] is True and "thp" in d["flags"]
    assert d["entry"]["raw"] == f"{pagemap.translate(4242, 0x201010).entry.raw:#018x}"
    assert d["entry"]["unknown_bits"] == "0x0000000000000000" and d["entry"]["swap_offset"] is None
    validate_json(d, "pagemap")


# ---------------------------------------------------------------------------- scans
def test_scan_pages(proc):
    recs = list(pagemap.scan(4242, 0x10000, 0x18000, kpagecount=True))
    assert [r.vaddr for r in recs] == list(range(0x10000, 0x18000, 0x1000))
    assert [r.pfn for r in recs] == [0x100, 0x101, None, 0x103, 0x200, 0x1FF, None, None]
    assert [r.kpagecount for r in recs[:2]] == [3, 3]
    assert recs[6].decoded.swap_offset == 0x1234 and recs[6].kpageflags is None
    assert recs[0].mapping.path.startswith("/opt/fake prog")


def test_runs(proc):
    got = [(r.vaddr, r.pages, r.pfn, r.step, r.decoded.kind) for r in pagemap.runs(4242)]
    assert got[:6] == [
        (0x10000, 2, 0x100, 1, "present"),
        (0x12000, 1, None, 0, "not present"),
        (0x13000, 1, 0x103, 0, "present"),  # exclusive: pagemap bits differ from 0x11000
        (0x14000, 2, 0x200, -1, "present"),  # descending frames are a run too
        (0x16000, 2, None, 1, "swapped"),  # consecutive swap slots
        (0x20000, 1, 0x300, 0, "present"),
    ]
    thp = [r for r in pagemap.runs(4242, 0x200000, 0x600000)]
    assert [(r.vaddr, r.pages, r.pfn, r.huge) for r in thp] == [
        (0x200000, 1, 0x400, "THP"),
        (0x201000, 511, 0x401, "THP"),
        (0x400000, 512, None, None),
    ]
    assert thp[1].last_pfn == 0x5FF


def test_summary_counts(proc):
    s = pagemap.summarize(4242)
    # present: 3 file + 2 heap + 1 shared + 4 in the 0x30000 mapping + 512 THP
    assert (s.present, s.swapped, s.not_present) == (522, 4, 515)
    assert s.total == 526 and s.kpageflags_read and not s.pfns_hidden
    assert s.huge_pages() == {"THP": 512, "hugetlb": 0}
    rows = {r.names: r.pages for r in s.rows()}
    assert rows[("mmap", "anonymous", "compound_tail", "thp", "mmap_exclusive")] == 511
    assert rows[("uptodate", "lru", "mmap", "anonymous", "swapbacked", "compound_head", "thp", "mmap_exclusive")] == 1
    assert rows[("swap",)] == 2 and rows[("uffd_wp", "swap")] == 1 and rows[("guard_region", "swap")] == 1
    assert rows[("mmap", "zero_page")] == 1
    assert sum(r.pages for r in s.rows("well-known")) == 526
    # the default page-types view hides compound bits of THPs: head and tails merge
    wk = {r.names: r.pages for r in s.rows("well-known")}
    assert wk[("mmap", "anonymous", "thp")] == 511
    assert any("[vsyscall]" in n for n in s.notes)


def test_summary_matches_per_page_scan(proc):
    """The vectorised summary and the per-page scan must count the same pages."""
    s = pagemap.summarize(4242)
    counts: dict[int, int] = {}
    for r in pagemap.scan(4242):
        if r.entry >> 62:
            f = r.flags
            counts[f] = counts.get(f, 0) + 1
    assert counts == {r.flags: r.pages for r in s.rows()}


@pytest.mark.parametrize("cpus", [1, 2])
def test_summary_same_in_one_or_two_processes(proc, monkeypatch, cpus):
    """Split with a forked child (two CPUs) or not, the summary counts what the per-page scan
    counts, pages skipped by the sparse reader included."""
    from pyphys.pagemap import summary

    monkeypatch.setattr(summary, "FORK_MIN_PAGES", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    parts = []  # halves counted in this process: one, unless the child failed and its half was redone
    real_part = summary._count_part
    monkeypatch.setattr(summary, "_count_part", lambda *a: parts.append(os.getpid()) or real_part(*a))
    want: dict[int, int] = {}
    for r in pagemap.scan(4242):
        if r.entry >> 62:
            want[r.flags] = want.get(r.flags, 0) + 1
    s = pagemap.summarize(4242)
    assert {r.flags: r.pages for r in s.rows()} == want
    assert s.total + s.not_present == sum(1 for _ in pagemap.scan(4242))
    assert len(forks) == (cpus - 1)
    assert parts.count(os.getpid()) == 1  # the child's counts were used, not recounted here


def test_summary_halves_cover_every_page():
    from pyphys.pagemap.summary import _halves

    pieces = [(0, 0x1000, 0x5000), (1, 0x10000, 0x11000), (2, 0x20000, 0x30000)]
    first, second = _halves(pieces, 0x1000, min_pages=1)
    pages = lambda ps: sum((hi - lo) // 0x1000 for _r, lo, hi in ps)  # noqa: E731
    assert pages(first) + pages(second) == pages(pieces) == 21
    assert abs(pages(first) - pages(second)) <= 1
    assert first[-1][2] == second[0][1] and first[-1][0] == second[0][0]  # cut inside one mapping
    assert _halves(pieces, 0x1000, min_pages=22) is None


def test_summary_counter_error_is_raised_not_hung(proc, monkeypatch):
    """A read error while counting (in this process or the forked one) ends the summary with
    that error."""
    from pyphys.errors import PyphysError
    from pyphys.pagemap import _pfnruns, summary

    def broken(*a, **k):
        raise PyphysError("cannot read /proc/kpageflags: Input/output error")

    monkeypatch.setattr(summary, "FORK_MIN_PAGES", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    for module, name in ((_pfnruns, "count_by_runs"), (summary, "_count_slow"), (summary, "_count_in_table")):
        monkeypatch.setattr(module, name, broken)
    with pytest.raises(PyphysError, match="kpageflags"):
        pagemap.summarize(4242)


def test_summary_of_a_range_and_bad_ranges(proc):
    s = pagemap.summarize(4242, 0x10000, 0x14000)
    assert (s.present, s.not_present) == (3, 1)
    with pytest.raises(UsageError):
        pagemap.summarize(4242, 0x14000, 0x10000)
    with pytest.raises(UsageError):
        pagemap.summarize(4242, 0x14000, 0x14000)
    with pytest.raises(pagemap.UnmappedAddressError):
        pagemap.summarize(4242, 0x22000, 0x24000)


def test_summary_hidden(hidden):
    s = pagemap.summarize(4242)
    assert s.pfns_hidden and not s.kpageflags_read
    assert (s.present, s.swapped) == (522, 4)
    assert any("CAP_SYS_ADMIN" in n for n in s.notes)
    recs = list(pagemap.scan(4242, 0x10000, 0x12000))
    assert [r.pfn for r in recs] == [None, None] and recs[0].decoded.pfn_hidden


def test_process_exits_during_scan(tmp_path, monkeypatch):
    root = tmp_path / "proc"
    shutil.copytree(os.path.join(FIX, "proc"), root)
    stat = root / "4245" / "stat"
    real_open = os.open

    def open_then_exit(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if str(path).endswith(os.path.join("4245", "pagemap")):  # alive when opened ...
            stat.write_text(stat.read_text().replace(" S ", " Z ", 1))  # ... a zombie by the first read
        return fd

    monkeypatch.setattr(os, "open", open_then_exit)
    old = paths.set_roots(proc=str(root))
    try:
        with pytest.raises(ProcessGoneError, match="exited during the scan"):
            list(pagemap.scan_chunks(4245))
    finally:
        paths.set_roots(**old)


# ---------------------------------------------------------------------------- CLI
def run_cli(capsys, *argv):
    rc = cli.main(["pagemap", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_translate_text_and_json(proc, capsys):
    rc, out, err = run_cli(capsys, "4242", "0x10234")
    assert rc == 0 and not err
    assert "PFN              0x100\n" in out and "physical address 0x100234" in out
    assert "kpagecount         3" in out and "mappedtodisk" in out
    rc, out, _ = run_cli(capsys, "4242", "66100", "--json")  # decimal 0x10234
    assert rc == 0 and json.loads(out)["phys"] == "0x100234"


def test_cli_hidden_says_hidden(hidden, capsys):
    rc, out, _ = run_cli(capsys, "4242", "0x10234")
    assert rc == 0 and "PFN              hidden" in out and "0x0\n" not in out


def test_cli_pages_runs_summary(proc, capsys):
    rc, out, _ = run_cli(capsys, "4242", "0x10000-0x18000", "--pages", "--count")
    lines = [ln for ln in out.splitlines() if ln.startswith("0x")]
    assert len(lines) == 8 and lines[0].split()[:3] == ["0x000000010000", "0x100", "3"]
    assert "swap 1:0x1234" in out and "not present" in out
    rc, out, _ = run_cli(capsys, "4242", "0x200000+0x400000")
    assert "0x201000-0x400000" in out and "[THP]" in out and "0x401..0x5ff" in out
    rc, out, _ = run_cli(capsys, "4242", "--all")
    assert rc == 0 and "total\t       526" in out and "522 present, 4 swapped, 515 not present" in out
    rc, out, _ = run_cli(capsys, "4242", "--all", "--json", "--view", "well-known")
    assert json.loads(out)["total"] == 526
    rc, out, _ = run_cli(capsys, "4242", "0x10000-0x18000", "--pages", "--json")
    assert [p["pfn"] for p in json.loads(out)["pages"]][:2] == [0x100, 0x101]
    rc, out, _ = run_cli(capsys, "4242", "0x10000-0x18000", "--runs", "--json")
    doc = json.loads(out)
    first = doc["runs"][0]
    assert (first["start"], first["end"], first["pfn"], first["last_pfn"]) == ("0x10000", "0x12000", 0x100, 0x101)
    assert sum(r["pages"] for r in doc["runs"]) == 8 and doc["notes"] == []


@pytest.mark.parametrize(
    "argv,code",
    [
        (["4242", "zz"], 2),  # non-hex address
        (["4242", "0x20000-0x10000"], 2),  # reversed range
        (["4242", "0x10000-0x10000"], 2),  # empty range
        (["4242", "0xffff800000000000"], 2),  # above user space
        (["999999", "0x1000"], 1),  # pid of nothing
        (["0", "0x1000"], 2),  # bad pid
        (["4243", "0x1000"], 2),  # kernel thread
        (["4244", "0x1000"], 1),  # zombie
        (["4242", "0x25000"], 1),  # unmapped
        (["4242"], 2),  # nothing to translate
        (["4242", "0x1000", "--all"], 2),  # both
    ],
)
def test_cli_bad_input_is_one_line(proc, capsys, argv, code):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == code
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("pyphys pagemap: error:")
    assert "Traceback" not in err


def test_pfn_visibility_from_capabilities(tmp_path):
    """CAP_SYS_ADMIN in the initial user namespace (fs/proc/task_mmu.c: file_ns_capable(...,
    &init_user_ns, CAP_SYS_ADMIN)); a kernel without user namespaces has no uid_map at all."""
    selfdir = tmp_path / "self"
    selfdir.mkdir()
    old = paths.set_roots(proc=str(tmp_path))
    try:
        (selfdir / "status").write_text("CapEff:\t000001ffffffffff\n")
        assert pagemap.pfns_visible()  # no uid_map: no user namespaces
        (selfdir / "uid_map").write_text("         0          0 4294967295\n")
        assert pagemap.pfns_visible()
        (selfdir / "uid_map").write_text("         0       1000          1\n")
        assert not pagemap.pfns_visible()  # root in a child user namespace
        (selfdir / "uid_map").write_text("         0          0 4294967295\n")
        (selfdir / "status").write_text("CapEff:\t000001ffffdfffff\n")  # all but bit 21
        assert not pagemap.pfns_visible()
    finally:
        paths.set_roots(**old)


def test_answers_are_frozen_records(proc):
    import pickle

    from pyphys.record import Record

    for addr in (0x10234, 0x201010, 0x16000, 0x12000):
        t = pagemap.translate(4242, addr)
        assert isinstance(t, Record) and isinstance(t.entry, Record) and isinstance(t.mapping, Record)
        assert pickle.loads(pickle.dumps(t)) == t and hash(t) == hash(pagemap.translate(4242, addr))
        assert t.replace(notes=()).notes == () and t.vaddr == addr
    with pytest.raises(AttributeError, match="frozen"):
        t.vaddr = 0
    s = pagemap.summarize(4242)
    assert isinstance(s, Record) and pickle.loads(pickle.dumps(s)) == s
    # rows() and the JSON rows are the same counts: 526 present or swapped pages in every view
    for view in ("expanded", "well-known", "raw"):
        doc = s.to_json(view)
        assert [(int(r["flags"], 16), r["pages"]) for r in doc["rows"]] == [(r.flags, r.pages) for r in s.rows(view)]
        assert sum(r["pages"] for r in doc["rows"]) == 526 == doc["total"]
    assert [(r.flags, r.pages) for r in s.rows("raw")] == pagemap.summary_rows(s.raw, "raw")


# The pagemap command's output on the canned /proc, recorded in tests/fixtures/pagemap/cli/:
# its text and JSON must stay byte for byte what they are (scripts parse them). The facts in
# them are the fixture's (make_fixtures.py); the tests above check those one by one.
GOLDEN = [
    ("proc", ["4242", "0x10234"]),
    ("proc", ["4242", "0x10234", "--json"]),
    ("proc", ["4242", "0x201010"]),
    ("proc", ["4242", "0x201010", "--json"]),
    ("proc", ["4242", "0x200000", "--json"]),
    ("proc", ["4242", "0x16000"]),
    ("proc", ["4242", "0x16000", "--json"]),
    ("proc", ["4242", "0x12000"]),
    ("proc", ["4242", "0x12000", "--json"]),
    ("proc", ["4242", "0x20000", "--json"]),
    ("proc", ["4242", "0x30000", "--json"]),
    ("proc-hidden", ["4242", "0x10234"]),
    ("proc-hidden", ["4242", "0x10234", "--json"]),
    ("proc-hidden", ["4242", "0x16000", "--json"]),
    ("proc", ["4242", "--all"]),
    ("proc", ["4242", "--all", "--json"]),
    ("proc", ["4242", "--all", "--json", "--view", "well-known"]),
    ("proc", ["4242", "--all", "--json", "--view", "raw"]),
    ("proc", ["4242", "0x10000-0x18000", "--summary", "--json"]),
    ("proc-hidden", ["4242", "--all", "--json"]),
    ("proc", ["4242", "0x10000-0x18000", "--pages", "--json"]),
    ("proc", ["4242", "0x10000-0x18000", "--runs", "--count", "--json"]),
    ("proc-hidden", ["4242", "0x10000-0x18000", "--pages", "--json"]),
]


@pytest.mark.parametrize("root,argv", GOLDEN, ids=[" ".join(a) for _r, a in GOLDEN])
def test_cli_output_is_unchanged(capsys, monkeypatch, root, argv):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the recorded hints are a user's (root's: test_root_hints)
    name = "_".join([root, *[a.lstrip("-") for a in argv]]) + ".out"
    with open(os.path.join(FIX, "cli", name), encoding="utf-8") as f:
        want = f.read()
    old = paths.set_roots(proc=os.path.join(FIX, root))
    try:
        rc, out, err = run_cli(capsys, *argv)
    finally:
        paths.set_roots(**old)
    assert rc == 0 and all(line.startswith("pyphys pagemap: note: ") for line in err.splitlines())
    assert out == want


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYPHYS_PROC=os.path.join(FIX, "proc"),
        PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_one_address_cli_imports_nothing_heavy():
    """`pyphys pagemap PID ADDR` must start fast: no psutil (pid given), no dataclasses/inspect."""
    res = _fresh_python(
        "import sys; from pyphys import cli\n"
        "rc = cli.main(['pagemap', '4242', '0x10234'])\n"
        "heavy = sorted(m for m in ('dataclasses', 'inspect', 'psutil', 'typing', 'json') if m in sys.modules)\n"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout and "physical address 0x100234" in res.stdout


def test_records_need_no_dataclasses():
    res = _fresh_python(
        "import sys, pickle; from pyphys import pagemap, procmaps\n"
        "e = pagemap.decode_entry(1 << 63 | 5)\n"
        "assert e.pfn == 5 and e.present\n"
        "assert pickle.loads(pickle.dumps(e)) == e and 'PagemapEntry(raw=' in repr(e)\n"
        "m = procmaps.parse_maps_line('00400000-00401000 r-xp 00000000 08:01 7 /bin/x')\n"
        "assert m.path == '/bin/x' and m.to_json()['start'] == '0x400000'\n"
        "t = pagemap.translate(4242, 0x10234)\n"
        "s = pagemap.summarize(4242)\n"
        "assert t.phys_addr == 0x100234 and s.total == 526\n"
        "assert not {'dataclasses', 'inspect'} & set(sys.modules), sorted(sys.modules)\n"
        "print('ok')"
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("mode", ["auto", "read"])
def test_sparse_reading_counts_what_the_full_read_counts(monkeypatch, mode):
    # a canned pagemap is a plain file: no PAGEMAP_SCAN (ENOTTY), so auto reads in chunks too
    from pyphys.pagemap import sparse

    monkeypatch.setenv("PYPHYS_PAGEMAP_SCAN", mode)
    old = paths.set_roots(proc=os.path.join(FIX, "proc"))
    try:
        s = pagemap.summarize(4242)
        with open(os.path.join(FIX, "proc", "4242", "pagemap"), "rb") as f:
            assert sparse.scan_categories(f.fileno()) is None
    finally:
        paths.set_roots(**old)
    # every page of the canned process (see make_fixtures.py): 522 present, 4 swapped or
    # guard/uffd-wp markers, the rest of the mapped pages not present
    mapped = sum(hi - lo for lo, hi in s.ranges if hi <= 1 << 47) // pagemap.PAGE_SIZE
    assert (s.present, s.swapped, s.not_present) == (522, 4, 515) and s.present + s.swapped + s.not_present == mapped


def test_sparse_mode_setting_is_checked(monkeypatch, capsys):
    old = paths.set_roots(proc=os.path.join(FIX, "proc"))
    try:
        monkeypatch.setenv("PYPHYS_PAGEMAP_SCAN", "fast")
        with pytest.raises(UsageError, match="PYPHYS_PAGEMAP_SCAN='fast' is not one of auto, ioctl, read"):
            pagemap.summarize(4242)
        monkeypatch.setenv("PYPHYS_PAGEMAP_SCAN", "ioctl")
        with pytest.raises(PyphysError, match="no PAGEMAP_SCAN ioctl"):
            pagemap.summarize(4242)
    finally:
        paths.set_roots(**old)


@pytest.mark.parametrize("release,noted", [("6.1.0-57-amd64\n", False), ("6.12.117+deb12-amd64\n", True)])
def test_tail_page_flags_note_follows_the_kernel(tmp_path, release, noted):
    # fs/proc/page.c: 6.1 reads each page's own flags, 6.12 its folio's (the head page's)
    root = tmp_path / "proc"
    shutil.copytree(os.path.join(FIX, "proc"), root)
    (root / "sys" / "kernel" / "osrelease").write_text(release)
    old = paths.set_roots(proc=str(root))
    try:
        tail = pagemap.translate(4242, 0x201000)
        head = pagemap.translate(4242, 0x200000)
    finally:
        paths.set_roots(**old)
    assert "compound_tail" in tail.flag_names
    assert any("tail page of a large folio" in n for n in tail.notes) == noted
    assert not any("tail page" in n for n in head.notes)


def test_cli_huge_page_size_reads_back_as_its_frames(proc, capsys):
    """The huge page line's size is a dialect size: the canned kpageflags' 512 compound frames."""
    import re

    from pyphys.dialect import parse_size

    assert cli.main(["pagemap", "4242", "0x201010"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.lstrip().startswith("huge page")][0]
    m = re.search(r"THP, (\S+) \((\d+) pages\)", line)
    assert m and int(m[2]) == 512, line
    assert parse_size(m[1]) == 512 * 4096


def test_cli_text_escapes_control_characters_in_mapping_paths(tmp_path, capsys):
    # a file name may hold anything but "/" and NUL; the kernel escapes only "\n" in maps
    import shutil

    shutil.copytree(os.path.join(FIX, "proc"), tmp_path / "proc", symlinks=True)
    maps = tmp_path / "proc" / "4242" / "maps"
    maps.write_text(maps.read_text().replace("/opt/fake prog/bin", "/opt/fake\x1b[31mprog\r/bin"))
    old = paths.set_roots(proc=str(tmp_path / "proc"))
    try:
        for argv in (("4242", "0x10234"), ("4242", "0x10000-0x11000"), ("4242", "0x10000-0x11000", "--runs")):
            rc, out, err = run_cli(capsys, *argv)
            assert rc == 0, err
            assert "\x1b" not in out and "\r" not in out, out
            assert "/opt/fake\\x1b[31mprog\\x0d/bin" in out, out
    finally:
        paths.set_roots(**old)
