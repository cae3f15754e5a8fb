"""pyphys.dump against a regular file standing in for /dev/mem and a canned /proc/iomem.

Ground truth is outside the code under test: the bytes of the stand-in file at the physical
addresses the test itself reads from its iomem text, the LiME v1 struct as lime.h declares it
(parsed here with struct, not with pyphys.layouts.lime), coreutils ``sha256sum -c``, st_blocks
for sparseness, and fcntl(F_GETFL)/strace for O_DIRECT.
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from pyphys import dump, paths
from pyphys.errors import NotFoundError, PyphysError, RegionError, UsageError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEM_SIZE = 0xC00000  # 12 MiB stand-in for physical memory
IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-004fffff : System RAM
  00200000-002fffff : Kernel code
00500000-005fffff : PCI Bus 0000:00
  00500000-00500fff : 0000:00:03.0
00600000-007fffff : System RAM
00800000-00bfffff : System RAM
"""
from lime_reader import lime_records  # noqa: E402  (independent of pyphys.layouts.lime)


def ram_ranges(text: str = IOMEM) -> list[tuple[int, int]]:
    """The whole 4 KiB pages of the top-level System RAM lines (what a default dump holds,
    as AVML cuts them), parsed here independently of pyphys.iomem."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$", line)
        if m:
            start = (int(m.group(1), 16) + 4095) // 4096 * 4096
            end = (int(m.group(2), 16) + 1) // 4096 * 4096 - 1
            out.append((start, end))
    return out


@pytest.fixture(scope="module")
def memfile(tmp_path_factory):
    """Every 8-byte word holds its own physical address (any offset error shows up)."""
    path = tmp_path_factory.mktemp("mem") / "mem"
    path.write_bytes(array.array("Q", range(0, MEM_SIZE, 8)).tobytes())
    return path


@pytest.fixture
def fake(tmp_path, memfile):
    dev = tmp_path / "dev"
    proc = tmp_path / "proc"
    dev.mkdir()
    proc.mkdir()
    os.symlink(memfile, dev / "mem")
    (proc / "iomem").write_text(IOMEM)
    out = tmp_path / "out"
    out.mkdir()
    old = paths.set_roots(dev=str(dev), proc=str(proc), sys=str(tmp_path / "sys"))
    yield out
    paths.set_roots(**old)


def mem(start: int, end: int, memfile) -> bytes:
    with open(memfile, "rb") as f:
        f.seek(start)
        return f.read(end - start + 1)


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def env_for(tmp_path) -> dict:
    env = dict(os.environ)
    env.update(
        PYPHYS_DEV=str(tmp_path / "dev"),
        PYPHYS_PROC=str(tmp_path / "proc"),
        PYPHYS_SYS=str(tmp_path / "sys"),
        PYTHONPATH=REPO,
    )
    return env


def cli(tmp_path, *args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "pyphys", "dump", *args],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


# -- range parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("0x1000-0x1fff", 0x1000, 0x1FFF),
        ("0x1000+4K", 0x1000, 0x1FFF),
        ("4096+0x1000", 0x1000, 0x1FFF),
        ("0x100000+16M", 0x100000, 0x10FFFFF),
        ("0x100000+0x1M", 0x100000, 0x1FFFFF),
        ("0x1000-0x1000", 0x1000, 0x1000),
    ],
)
def test_parse_range(text, start, end):
    r = dump.parse_range(text)
    assert (r.start, r.end, r.length) == (start, end, end - start + 1)


@pytest.mark.parametrize(
    "text, words",
    [
        ("0x2000-0x1000", "reversed"),
        ("0x1000+0", "empty"),
        ("0x1000", "START-END"),
        ("zz-0x10", "not a number"),
        ("0x10-", "START-END"),
        ("0x1000+-4", "negative"),
        ("00100000-3ffdffff", "bare hex"),  # pasted from /proc/iomem: no guessing, ask for 0x
    ],
)
def test_parse_range_rejects(text, words):
    with pytest.raises(UsageError, match=words):
        dump.parse_range(text)


# -- checking ranges against /proc/iomem ------------------------------------------------------


def test_overlapping_ranges_rejected(fake):
    with pytest.raises(UsageError, match="overlap"):
        dump.dump(str(fake / "x"), [dump.parse_range("0x100000+1M"), dump.parse_range("0x1ff000+8K")], "raw")
    assert listing(fake) == []


@pytest.mark.parametrize(
    "spec, where",
    [
        ("0x500000+4K", "PCI Bus 0000:00 > 0000:00:03.0"),  # MMIO
        ("0x4ff000-0x500fff", "PCI Bus"),  # starts in RAM, runs into MMIO
        ("0x0-0xfff", "Reserved"),
        ("0xc00000+4K", "a hole"),  # past the end of RAM
    ],
)
def test_ranges_outside_ram_rejected(fake, spec, where):
    with pytest.raises(RegionError, match=re.escape(where)):
        dump.dump(str(fake / "x"), [dump.parse_range(spec)], "raw")
    assert listing(fake) == []


def test_default_ranges_are_whole_pages_of_ram(fake):
    # iomem says 0x1000-0x9fbff: the page 0x9f000 is only partly RAM, so it is left out
    res = dump.dump(str(fake / "d.raw"), None, "raw", sha256=False)
    assert [(s.range.start, s.range.end) for s in res.layout.segments] == [
        (0x1000, 0x9EFFF),
        (0x100000, 0x4FFFFF),
        (0x600000, 0x7FFFFF),
        (0x800000, 0xBFFFFF),
    ]


@pytest.mark.parametrize("spec", ["0x9e000-0x9fbff", "0x9f000+0x100"])
def test_partly_ram_page_refused_for_read2_allowed_for_mmap(fake, memfile, spec):
    """read_mem() would memremap() a page mixing RAM and reserved bytes: the kernel WARNs."""
    with pytest.raises(RegionError, match=r"page 0x9f000 is only partly System RAM \(0x9fc00 is in Reserved\)"):
        dump.dump(str(fake / "p.raw"), [dump.parse_range(spec)], "raw")
    assert listing(fake) == []
    r = dump.parse_range(spec)
    dump.dump(str(fake / "p.raw"), [r], "raw", backend="mmap", sha256=False)
    assert (fake / "p.raw").read_bytes() == mem(r.start, r.end, memfile)


def test_range_may_span_adjacent_ram_regions(fake, memfile):
    # 0x600000-0x7fffff and 0x800000-0xbfffff are separate iomem lines but contiguous RAM
    res = dump.dump(str(fake / "x.raw"), [dump.parse_range("0x7ff000-0x800fff")], "raw", sha256=False)
    assert (fake / "x.raw").read_bytes() == mem(0x7FF000, 0x800FFF, memfile)
    assert res.layout.data_bytes == 0x2000


def test_hidden_iomem_is_an_error(fake, tmp_path):
    (tmp_path / "proc" / "iomem").write_text(re.sub(r"[0-9a-f]+-[0-9a-f]+", "00000000-00000000", IOMEM))
    with pytest.raises(PyphysError, match="shows every address as 0"):
        dump.dump(str(fake / "x"), None, "raw")


# -- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_default_is_all_system_ram_raw(fake, memfile, direct):
    res = dump.dump(str(fake / "all.raw"), None, "raw", direct=direct)
    expect = b"".join(mem(s, e, memfile) for s, e in ram_ranges())
    assert (fake / "all.raw").read_bytes() == expect
    assert [(s.range.start, s.range.end) for s in res.layout.segments] == ram_ranges()


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_padded_file_offset_is_physical_address(fake, memfile, direct):
    dump.dump(str(fake / "all.padded"), None, "padded", direct=direct)
    data = (fake / "all.padded").read_bytes()
    last = ram_ranges()[-1][1]
    assert len(data) == last + 1
    prev_end = -1
    for s, e in ram_ranges():
        assert data[s : e + 1] == mem(s, e, memfile)
        gap = data[prev_end + 1 : s]  # not RAM: reads back as zeros (LiME's padding)
        assert gap.count(0) == len(gap)
        prev_end = e


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_lime_headers_parse_back(fake, memfile, direct):
    dump.dump(str(fake / "all.lime"), None, "lime", direct=direct)
    recs = lime_records((fake / "all.lime").read_bytes())
    assert [(s, e) for s, e, _ in recs] == ram_ranges()
    for s, e, data in recs:
        assert data == mem(s, e, memfile)


def test_several_ranges_offsets_in_every_format(fake, memfile):
    # given out of order, unaligned, crossing the (small) block boundaries
    specs = ["0x800123-0x80a456", "0x1000+0x10", "0x10fff0+0x20", "0x3fff00-0x400100"]
    ranges = [dump.parse_range(s) for s in specs]
    expect = sorted((r.start, r.end) for r in ranges)
    for fmt in dump.FORMATS:
        out = fake / f"sel.{fmt}"
        dump.dump(str(out), ranges, fmt, block_size=8192, sha256=False)
        data = out.read_bytes()
        if fmt == "raw":
            pos = 0
            for s, e in expect:
                assert data[pos : pos + e - s + 1] == mem(s, e, memfile), (fmt, hex(s))
                pos += e - s + 1
            assert pos == len(data)
        elif fmt == "padded":
            assert len(data) == expect[-1][1] + 1
            for s, e in expect:
                assert data[s : e + 1] == mem(s, e, memfile)
        else:
            recs = lime_records(data)
            assert [(s, e) for s, e, _ in recs] == expect
            assert all(d == mem(s, e, memfile) for s, e, d in recs)


def test_volatility3_segments(fake, memfile):
    """volatility3's LimeLayer (an independent reader) maps our file back to physical addresses."""
    pytest.importorskip("volatility3")
    from volatility3.framework import contexts
    from volatility3.framework.layers import lime as vlime
    from volatility3.framework.layers import physical

    out = fake / "v.lime"
    dump.dump(str(out), None, "lime", sha256=False)
    ctx = contexts.Context()
    ctx.config["base.location"] = out.as_uri()
    ctx.add_layer(physical.FileLayer(ctx, "base", "base"))
    ctx.config["lime.base_layer"] = "base"
    layer = vlime.LimeLayer(ctx, "lime", "lime")
    ctx.add_layer(layer)
    for s, e in ram_ranges():
        assert layer.read(s, 64) == mem(s, s + 63, memfile)
        assert layer.read(e - 7, 8) == mem(e - 7, e, memfile)


# -- O_DIRECT ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", dump.FORMATS)
def test_direct_really_uses_o_direct_and_matches_buffered(fake, fmt):
    seen = []

    def on_write(fd, done):
        seen.append(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)

    a = dump.dump(str(fake / f"b.{fmt}"), None, fmt, on_write=on_write)
    assert seen and not any(seen)
    seen.clear()
    b = dump.dump(str(fake / f"d.{fmt}"), None, fmt, direct=True, on_write=on_write)
    assert seen and all(seen)
    assert (fake / f"b.{fmt}").read_bytes() == (fake / f"d.{fmt}").read_bytes()
    assert a.sha256 == b.sha256
    assert b.direct and not a.direct


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
def test_direct_seen_by_strace(fake, tmp_path):
    """strace, not our own bookkeeping: the output is opened O_DIRECT and every pwrite is aligned."""
    out = fake / "s.lime"
    log = tmp_path / "strace.log"
    argv = [
        "strace",
        "-f",
        "-e",
        "trace=openat,pwrite64,ftruncate",
        "-o",
        str(log),
        sys.executable,
        "-m",
        "pyphys",
        "dump",
        "--direct",
        "--block-size",
        "64K",
        "-o",
        str(out),
    ]
    proc = subprocess.run(argv, env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    opens = re.findall(r'openat\(AT_FDCWD, "[^"]*/\.s\.lime\.[0-9a-f]+\.pyphys-tmp", ([^,]+), 0600\) = (\d+)', text)
    assert opens, text[-2000:]
    flags, fd = opens[0]
    assert "O_DIRECT" in flags.split("|")
    writes = re.findall(rf"pwrite64\({fd}, .*?, (\d+), (\d+)\)\s+= (\d+)", text)
    assert writes
    for count, offset, ret in writes:
        assert int(count) % 4096 == 0 and int(offset) % 4096 == 0 and int(ret) == int(count)
    size = os.path.getsize(out)
    assert re.search(rf"ftruncate\({fd}, {size}\)\s+= 0", text)
    assert size % 4096 != 0  # LiME headers make the true size unaligned: ftruncate did the cut


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_padded_big_holes_stay_sparse(fake, memfile, direct):
    ranges = [dump.parse_range("0x1000+4K"), dump.parse_range("0xa00000+4K")]
    out = fake / "sparse.padded"
    dump.dump(str(out), ranges, "padded", direct=direct, block_size=64 << 10)
    st = os.stat(out)
    assert st.st_size == 0xA01000
    assert st.st_blocks * 512 <= 256 << 10  # ~8 KiB of data (+ a bounce-sized tail), not 10 MiB
    data = out.read_bytes()
    assert data[0x1000:0x2000] == mem(0x1000, 0x1FFF, memfile)
    assert data[0xA00000:] == mem(0xA00000, 0xA00FFF, memfile)
    assert not any(data[:0x1000]) and not any(data[0x2000:0xA00000])


# -- sidecar, temp name, overwrite ------------------------------------------------------------


def test_sha256_sidecar_checks_with_coreutils(fake):
    res = dump.dump(str(fake / "c.lime"), None, "lime")
    side = fake / "c.lime.sha256"
    assert side.read_text() == f"{res.sha256}  c.lime\n"
    assert res.sha256 == hashlib.sha256((fake / "c.lime").read_bytes()).hexdigest()
    proc = subprocess.run(["sha256sum", "-c", "c.lime.sha256"], cwd=fake, capture_output=True, text=True)
    assert proc.returncode == 0 and "c.lime: OK" in proc.stdout
    assert listing(fake) == ["c.lime", "c.lime.sha256"]  # no temp files left
    assert os.stat(fake / "c.lime").st_mode & 0o777 == 0o600


def test_padded_sidecar_covers_holes(fake):
    dump.dump(
        str(fake / "p"),
        [dump.parse_range("0x1000+4K"), dump.parse_range("0xa00000+4K")],
        "padded",
        direct=True,
        block_size=64 << 10,
    )
    proc = subprocess.run(["sha256sum", "-c", "p.sha256"], cwd=fake, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_refuses_to_overwrite_without_force(fake):
    (fake / "x.lime").write_bytes(b"precious")
    with pytest.raises(UsageError, match="exists.*--force"):
        dump.dump(str(fake / "x.lime"), None, "lime")
    assert (fake / "x.lime").read_bytes() == b"precious"
    assert listing(fake) == ["x.lime"]
    res = dump.dump(str(fake / "x.lime"), None, "lime", force=True)
    assert (fake / "x.lime").stat().st_size == res.size


def test_refuses_existing_sidecar_without_force(fake):
    (fake / "x.lime.sha256").write_text("old\n")
    with pytest.raises(UsageError, match=r"x\.lime\.sha256 exists"):
        dump.dump(str(fake / "x.lime"), None, "lime")
    assert listing(fake) == ["x.lime.sha256"]


def test_output_directory_missing_or_is_a_directory(fake):
    with pytest.raises(NotFoundError):
        dump.dump(str(fake / "nope" / "x.lime"), None, "lime")
    with pytest.raises(UsageError, match="is a directory"):
        dump.dump(str(fake), None, "lime")


def test_interrupt_leaves_nothing(fake):
    def on_write(fd, done):
        assert any(n.endswith(".pyphys-tmp") for n in os.listdir(fake))  # really writing a temp file
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump.dump(str(fake / "i.lime"), None, "lime", on_write=on_write)
    assert listing(fake) == []


def test_interrupt_with_existing_output_keeps_it(fake):
    (fake / "i.lime").write_bytes(b"old")

    def on_write(fd, done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump.dump(str(fake / "i.lime"), None, "lime", force=True, on_write=on_write)
    assert listing(fake) == ["i.lime"] and (fake / "i.lime").read_bytes() == b"old"


def test_efbig_from_rlimit_fsize(fake, tmp_path):
    """RLIMIT_FSIZE makes write(2) fail with EFBIG (Python ignores SIGXFSZ): one line, no file."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "from pyphys.cli import main\n"
        f"sys.exit(main(['dump', '-o', {str(fake / 'big.lime')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env_for(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "file too large" in proc.stderr and "partial file was removed" in proc.stderr
    assert listing(fake) == []


def test_all_zero_memory_warns(tmp_path):
    dev, proc, out = tmp_path / "dev", tmp_path / "proc", tmp_path / "out"
    for d in (dev, proc, out):
        d.mkdir()
    with open(dev / "mem", "wb") as f:
        f.truncate(MEM_SIZE)
    (proc / "iomem").write_text(IOMEM)
    old = paths.set_roots(dev=str(dev), proc=str(proc), sys=str(tmp_path / "sys"))
    try:
        res = dump.dump(str(out / "z.raw"), None, "raw")
    finally:
        paths.set_roots(**old)
    assert res.warnings and "every byte read was zero" in res.warnings[0]


def test_nonzero_memory_does_not_warn(fake):
    assert dump.dump(str(fake / "n.raw"), None, "raw").warnings == []


@pytest.mark.parametrize("backend", ["mmap", "rw"])
def test_backends_give_the_same_file(fake, backend):
    dump.dump(str(fake / "auto.lime"), None, "lime", sha256=False)
    dump.dump(str(fake / f"{backend}.lime"), None, "lime", backend=backend, sha256=False)
    assert (fake / "auto.lime").read_bytes() == (fake / f"{backend}.lime").read_bytes()


# -- memory bound -----------------------------------------------------------------------------


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_peak_rss_is_bounded(tmp_path, direct):
    """256 MiB (64 blocks) dumped in a child process: its peak RSS (wait4 ru_maxrss) stays under 64 MiB."""
    dev, proc, out = tmp_path / "dev", tmp_path / "proc", tmp_path / "out"
    for d in (dev, proc, out):
        d.mkdir()
    size = 256 << 20
    with open(dev / "mem", "wb") as f:  # sparse: reads as zeros, costs no disk
        f.truncate(size)
        for off in range(0, size, 1 << 20):
            f.seek(off)
            f.write(off.to_bytes(8, "little") * 8)
    (proc / "iomem").write_text(f"00000000-{size - 1:08x} : System RAM\n")
    argv = [sys.executable, "-m", "pyphys", "dump", "-f", "raw", "-o", str(out / "big.raw")]
    if direct:
        argv.append("--direct")
    # ru_maxrss survives fork+exec, so a child forked from pytest (~70 MiB) would report
    # pytest's size: fork the dump from a small Python that only waits for it.
    waiter = (
        "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); "
        "_, st, ru = os.wait4(p.pid, 0); print(os.waitstatus_to_exitcode(st), ru.ru_maxrss)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", waiter, *argv], env=env_for(tmp_path), capture_output=True, text=True, timeout=300
    )
    rc, maxrss_kib = map(int, proc.stdout.split()[-2:])
    assert rc == 0, proc.stderr
    assert os.path.getsize(out / "big.raw") == size
    peak_mib = maxrss_kib / 1024
    assert peak_mib <= 64, f"peak RSS {peak_mib:.1f} MiB"


# -- choosing how to read ---------------------------------------------------------------------


def test_auto_reads_with_read2(fake):
    res = dump.dump(str(fake / "a.raw"), [dump.parse_range("0x100000+8K")], "raw", sha256=False)
    assert res.backend == "rw" and "read(2)" in res.backend_reason


def test_auto_falls_back_to_the_module_device_when_dev_mem_refuses(monkeypatch):
    from pyphys import physmem
    from pyphys.errors import DevMemBlockedError, ModuleNotLoadedError

    class Fake:
        def __init__(self, backend):
            self.backend, self.closed = backend, False

        def read(self, addr, n):
            if self.backend == "rw":  # what physmem raises for EPERM under STRICT_DEVMEM
                raise DevMemBlockedError(f"read of /dev/mem at {addr:#x}: refused with EPERM", "STRICT_DEVMEM")
            return bytes(n)

        def close(self):
            self.closed = True

    opened = []

    def with_module(backend="auto", writable=False):
        opened.append(Fake(backend))
        return opened[-1]

    monkeypatch.setattr(physmem, "open_physmem", with_module)
    pm, reason, fallback = dump.open_source("auto", 0x100000)
    assert [p.backend for p in opened] == ["rw", "module"] and opened[0].closed
    assert pm.backend == "module" and "refused" in reason and fallback is None

    def without_module(backend="auto", writable=False):
        if backend == "module":
            raise ModuleNotLoadedError("/dev/pyphys_mem does not exist")
        return Fake(backend)

    monkeypatch.setattr(physmem, "open_physmem", without_module)
    with pytest.raises(DevMemBlockedError, match="EPERM"):  # the /dev/mem reason, not the module's absence
        dump.open_source("auto", 0x100000)
    pm, reason, fallback = dump.open_source("mmap")
    assert pm.backend == "mmap" and reason == "--backend mmap" and fallback is None


def test_reader_reads_what_read2_refuses_through_the_fallback():
    """read(2) of /dev/mem fails with EFAULT on frames the kernel will not copy (physmem raises
    RegionError); the reader gets that block through the fallback (physmem's mmap backend)."""

    class PM:
        def __init__(self, name, fail=()):
            self.name, self.fail, self.closed, self.reads = name, fail, False, []

        def read(self, addr, n):
            self.reads.append(addr)
            if addr in self.fail:
                raise RegionError(f"read of /dev/mem at {addr:#x}: bad address (EFAULT)")
            return bytes([addr >> 16 & 0xFF]) * n

        def close(self):
            self.closed = True

    rw = PM("rw", fail={0x20000})
    mm = PM("mmap")
    seg = dump.Segment(dump.PhysRange(0x10000, 0x3FFFF), 0)
    reader = dump._Reader(rw, [seg], 0x10000, fallback=lambda: mm)
    got = [reader.next() for _ in range(3)]
    reader.close()
    assert got == [b"\x01" * 0x10000, b"\x02" * 0x10000, b"\x03" * 0x10000]
    assert rw.reads == [0x10000, 0x20000, 0x30000] and mm.reads == [0x20000] and mm.closed
    assert reader.fell_back == [(0x20000, 0x10000, "read of /dev/mem at 0x20000: bad address (EFAULT)")]
    # without a fallback (an explicit --backend) the error reaches the writer
    reader = dump._Reader(PM("rw", fail={0x20000}), [seg], 0x10000)
    assert reader.next() == b"\x01" * 0x10000
    with pytest.raises(RegionError, match="EFAULT"):
        reader.next()
    reader.close()


def test_stale_sidecar_is_not_left_next_to_a_new_file(fake):
    dump.dump(str(fake / "s.raw"), None, "raw")
    assert listing(fake) == ["s.raw", "s.raw.sha256"]
    with pytest.raises(UsageError, match=r"s\.raw exists"):
        dump.dump(str(fake / "s.raw"), None, "raw", sha256=False)
    (fake / "s.raw").unlink()
    with pytest.raises(UsageError, match=r"s\.raw\.sha256 exists"):  # would describe another file
        dump.dump(str(fake / "s.raw"), None, "raw", sha256=False)
    dump.dump(str(fake / "s.raw"), [dump.parse_range("0x1000+4K")], "raw", sha256=False, force=True)
    assert listing(fake) == ["s.raw"]
