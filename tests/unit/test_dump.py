"""pyphys.dump against a regular file standing in for /dev/mem and a canned /proc/iomem.

Ground truth is outside the code under test: the bytes of the stand-in file at the physical
addresses the test itself reads from its iomem text, the LiME v1 struct as lime.h declares it
(parsed by tests/lime_reader.py, not pyphys.layouts.lime), coreutils ``sha256sum -c``, hashlib,
st_blocks for sparseness, and fcntl(F_GETFL)/strace for O_DIRECT. Fixtures: tests/unit/conftest.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from helpers import DUMP_IOMEM, DUMP_MEM_SIZE, dump_env, dump_mem, dump_ram_ranges
from lime_reader import lime_records

from pyphys import dump, dump_io, paths
from pyphys.errors import PyphysError, RegionError, UsageError

IOMEM, MEM_SIZE, env_for, mem, ram_ranges = DUMP_IOMEM, DUMP_MEM_SIZE, dump_env, dump_mem, dump_ram_ranges


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


# -- range parsing (pyphys.dialect: END exclusive) ------------------------------------------


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("0x1000-0x2000", 0x1000, 0x2000),
        ("0x1000+4K", 0x1000, 0x2000),
        ("4096+0x1000", 0x1000, 0x2000),
        ("0x100000+16M", 0x100000, 0x1100000),
        ("0x100000+1M", 0x100000, 0x200000),
        ("0x1000-0x1001", 0x1000, 0x1001),
    ],
)
def test_parse_range(text, start, end):
    r = dump.parse_range(text)
    assert (r.start, r.end, r.length, r.last) == (start, end, end - start, end - 1)
    assert dump.parse_range(str(r)) == r  # printed ranges are re-enterable


@pytest.mark.parametrize(
    "text, words",
    [
        ("0x2000-0x1000", "ends before it starts"),
        ("0x1000-0x1000", "ends before it starts"),  # END exclusive: empty
        ("0x1000+0", "below the minimum"),
        ("0x1000", "not a range"),
        ("zz-0x10", "not a number"),
        ("0x10-", "not a number"),
        ("00100000-3ffdffff", "not a number"),  # pasted from /proc/iomem: no guessing
    ],
)
def test_parse_range_rejects(text, words):
    with pytest.raises(UsageError, match=words):
        dump.parse_range(text)


def test_bare_hex_gets_a_hint():
    with pytest.raises(UsageError) as err:
        dump.parse_range("00100000-3ffdffff")
    assert "did you mean 0x00100000" in err.value.hint


# -- checking ranges against /proc/iomem ------------------------------------------------------


def test_overlapping_ranges_rejected(fake):
    with pytest.raises(UsageError, match="overlap"):
        dump.dump(str(fake / "x"), [dump.parse_range("0x100000+1M"), dump.parse_range("0x1ff000+8K")], "raw")
    assert listing(fake) == []


@pytest.mark.parametrize(
    "spec, where",
    [
        ("0x500000+4K", "PCI Bus 0000:00 > 0000:00:03.0"),  # MMIO
        ("0x4ff000-0x501000", "PCI Bus"),  # starts in RAM, runs into MMIO
        ("0x0-0x1000", "Reserved"),
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
    assert [(r.start, r.end) for r in res.ranges] == [
        (0x1000, 0x9F000),
        (0x100000, 0x500000),
        (0x600000, 0x800000),
        (0x800000, 0xC00000),
    ]


@pytest.mark.parametrize("spec", ["0x9e000-0x9fc00", "0x9f000+0x100"])
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
    res = dump.dump(str(fake / "x.raw"), [dump.parse_range("0x7ff000-0x801000")], "raw", sha256=False)
    assert (fake / "x.raw").read_bytes() == mem(0x7FF000, 0x801000, memfile)
    assert [r.length for r in res.ranges] == [0x2000]


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
    assert [(r.start, r.end) for r in res.ranges] == ram_ranges()


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_padded_file_offset_is_physical_address(fake, memfile, direct):
    dump.dump(str(fake / "all.padded"), None, "padded", direct=direct)
    data = (fake / "all.padded").read_bytes()
    assert len(data) == ram_ranges()[-1][1]
    prev_end = 0
    for s, e in ram_ranges():
        assert data[s:e] == mem(s, e, memfile)
        gap = data[prev_end:s]  # not RAM: reads back as zeros (LiME's padding)
        assert gap.count(0) == len(gap)
        prev_end = e


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_lime_headers_parse_back(fake, memfile, direct):
    dump.dump(str(fake / "all.lime"), None, "lime", direct=direct)
    recs = lime_records((fake / "all.lime").read_bytes())
    assert [(s, e + 1) for s, e, _ in recs] == ram_ranges()  # LiME's e_addr is inclusive
    for s, e, data in recs:
        assert data == mem(s, e + 1, memfile)


def test_several_ranges_offsets_in_raw_padded_lime(fake, memfile):
    # given out of order, unaligned, crossing the (small) block boundaries
    specs = ["0x800123-0x80a457", "0x1000+0x10", "0x10fff0+0x20", "0x3fff00-0x400101"]
    ranges = [dump.parse_range(s) for s in specs]
    expect = sorted((r.start, r.end) for r in ranges)
    for fmt in ("raw", "padded", "lime"):
        out = fake / f"sel.{fmt}"
        res = dump.dump(str(out), ranges, fmt, block_size=8192, sha256=False)
        data = out.read_bytes()
        if fmt == "raw":
            pos = 0
            for s, e in expect:
                assert data[pos : pos + e - s] == mem(s, e, memfile), (fmt, hex(s))
                pos += e - s
            assert pos == len(data)
        elif fmt == "padded":
            assert len(data) == expect[-1][1]
            for s, e in expect:
                assert data[s:e] == mem(s, e, memfile)
        else:
            recs = lime_records(data)
            assert [(s, e + 1) for s, e, _ in recs] == expect
            assert all(d == mem(s, e + 1, memfile) for s, e, d in recs)
        # the metadata's file offsets point at each range's bytes
        for r in res.ranges:
            assert data[r.file_offset : r.file_offset + r.length] == mem(r.start, r.end, memfile)


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
        assert layer.read(s, 64) == mem(s, s + 64, memfile)
        assert layer.read(e - 8, 8) == mem(e - 8, e, memfile)


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
    opens = re.findall(r'openat\(AT_FDCWD, "[^"]*/\.s\.lime\.pyphys-partial", ([^,]+), 0600\) = (\d+)', text)
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
    assert data[0x1000:0x2000] == mem(0x1000, 0x2000, memfile)
    assert data[0xA00000:] == mem(0xA00000, 0xA01000, memfile)
    assert not any(data[:0x1000]) and not any(data[0x2000:0xA00000])


# -- sidecars, the partial file, overwrite -----------------------------------------------------


def test_sha256_sidecar_checks_with_coreutils(fake):
    res = dump.dump(str(fake / "c.lime"), None, "lime")
    side = fake / "c.lime.sha256"
    assert side.read_text() == f"{res.sha256}  c.lime\n"
    assert res.sha256 == hashlib.sha256((fake / "c.lime").read_bytes()).hexdigest()
    proc = subprocess.run(["sha256sum", "-c", "c.lime.sha256"], cwd=fake, capture_output=True, text=True)
    assert proc.returncode == 0 and "c.lime: OK" in proc.stdout
    assert listing(fake) == ["c.lime", "c.lime.json", "c.lime.sha256"]  # no partial files left
    assert os.stat(fake / "c.lime").st_mode & 0o777 == 0o600
    assert os.stat(fake / "c.lime.json").st_mode & 0o777 == 0o600  # it holds physical addresses


def test_padded_holes_cost_no_hashing(tmp_path):
    """A padded dump of two pages 5 GiB apart hashes 8 KiB, not 5 GiB of holes: no FILE.sha256
    (a whole-file digest would have to hash the holes), per-range SHA-256s in FILE.json."""
    for d in ("dev", "proc", "out"):
        (tmp_path / d).mkdir()
    far = 5 << 30
    with open(tmp_path / "dev" / "mem", "wb") as f:  # sparse
        f.truncate(far + 0x1000)
        f.seek(0x1000)
        f.write(b"low page".ljust(4096, b"L"))
        f.seek(far)
        f.write(b"high page".ljust(4096, b"H"))
    (tmp_path / "proc" / "iomem").write_text(
        f"00001000-00001fff : System RAM\n{far:08x}-{far + 0xFFF:08x} : System RAM\n"
    )
    old = paths.set_roots(dev=str(tmp_path / "dev"), proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"))
    try:
        t = time.monotonic()
        res = dump.dump(str(tmp_path / "out" / "p"), None, "padded")
        took = time.monotonic() - t
    finally:
        paths.set_roots(**old)
    assert took < 3, f"{took:.1f} s: the holes were hashed"
    assert listing(tmp_path / "out") == ["p", "p.json"] and res.sha256 is None
    data = {r.start: r.sha256 for r in res.ranges}
    assert data == {
        0x1000: hashlib.sha256(b"low page".ljust(4096, b"L")).hexdigest(),
        far: hashlib.sha256(b"high page".ljust(4096, b"H")).hexdigest(),
    }
    assert os.stat(tmp_path / "out" / "p").st_blocks * 512 <= 64 << 10


def test_refuses_to_overwrite_without_force(fake):
    (fake / "x.lime").write_bytes(b"precious")
    with pytest.raises(UsageError, match="exists.*--force"):
        dump.dump(str(fake / "x.lime"), None, "lime")
    assert (fake / "x.lime").read_bytes() == b"precious"
    assert listing(fake) == ["x.lime"]
    res = dump.dump(str(fake / "x.lime"), None, "lime", force=True)
    assert (fake / "x.lime").stat().st_size == res.size


@pytest.mark.parametrize("name", ["x.lime.sha256", "x.lime.json"])
def test_refuses_existing_sidecar_without_force(fake, name):
    (fake / name).write_text("old\n")
    with pytest.raises(UsageError, match=re.escape(name) + " exists"):
        dump.dump(str(fake / "x.lime"), None, "lime")
    assert listing(fake) == [name]


def test_force_replaces_regular_files_only(fake):
    os.mkfifo(fake / "ff")
    os.symlink("/etc/hostname", fake / "link")
    for name in ("ff", "link"):
        with pytest.raises(UsageError, match="regular files only"):
            dump.dump(str(fake / name), [dump.parse_range("0x100000+64K")], "raw", force=True)
    assert listing(fake) == ["ff", "link"]
    assert os.path.islink(fake / "link")


def test_output_directory_missing_or_is_a_directory(fake):
    with pytest.raises(PyphysError, match="no such directory"):
        dump.dump(str(fake / "nope" / "x.lime"), None, "lime")
    with pytest.raises(UsageError, match="is a directory"):
        dump.dump(str(fake), None, "lime")


def test_dev_stdout_is_refused(fake):
    with pytest.raises(UsageError, match="give -o -"):
        dump.dump("/dev/stdout", [dump.parse_range("0x100000+4K")], "raw")


def test_interrupt_before_a_checkpoint_leaves_nothing(fake):
    def on_write(fd, done):
        assert ".i.lime.pyphys-partial" in os.listdir(fake)  # really writing the partial file
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
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
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
    pm, reason, fallback = dump_io.open_source("auto", 0x100000)
    assert [p.backend for p in opened] == ["rw", "module"] and opened[0].closed
    assert pm.backend == "module" and "refused" in reason and fallback is None

    def without_module(backend="auto", writable=False):
        if backend == "module":
            raise ModuleNotLoadedError("/dev/pyphys_mem does not exist")
        return Fake(backend)

    monkeypatch.setattr(physmem, "open_physmem", without_module)
    with pytest.raises(DevMemBlockedError, match="EPERM"):  # the /dev/mem reason, not the module's absence
        dump_io.open_source("auto", 0x100000)
    pm, reason, fallback = dump_io.open_source("mmap")
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
    rng = dump.PhysRange(0x10000, 0x40000)
    reader = dump_io.Reader(rw, dump.blocks(rng, 0x10000), fallback=lambda: mm)
    got = [reader.next() for _ in range(3)]
    reader.close()
    assert got == [b"\x01" * 0x10000, b"\x02" * 0x10000, b"\x03" * 0x10000]
    assert rw.reads == [0x10000, 0x20000, 0x30000] and mm.reads == [0x20000] and mm.closed
    assert reader.fell_back == [(0x20000, 0x10000, "read of /dev/mem at 0x20000: bad address (EFAULT)")]
    # without a fallback (an explicit --backend) the error reaches the writer
    reader = dump_io.Reader(PM("rw", fail={0x20000}), dump.blocks(rng, 0x10000))
    assert reader.next() == b"\x01" * 0x10000
    with pytest.raises(RegionError, match="EFAULT"):
        reader.next()
    reader.close()


def test_stale_sidecar_is_not_left_next_to_a_new_file(fake):
    dump.dump(str(fake / "s.raw"), None, "raw", meta=False)
    assert listing(fake) == ["s.raw", "s.raw.sha256"]
    with pytest.raises(UsageError, match=r"s\.raw exists"):
        dump.dump(str(fake / "s.raw"), None, "raw", sha256=False, meta=False)
    (fake / "s.raw").unlink()
    with pytest.raises(UsageError, match=r"s\.raw\.sha256 exists"):  # would describe another file
        dump.dump(str(fake / "s.raw"), None, "raw", sha256=False, meta=False)
    dump.dump(str(fake / "s.raw"), [dump.parse_range("0x1000+4K")], "raw", sha256=False, meta=False, force=True)
    assert listing(fake) == ["s.raw"]
