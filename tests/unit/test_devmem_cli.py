"""`pyphys devmem` end to end (in-process CLI) against a file standing in for /dev/mem.

Ground truth: the stand-in file read with open(); the journal file parsed as JSON lines.
Every bad input must give exactly one line on stderr, a non-zero exit, no traceback, and
leave the memory (and the journal) byte-for-byte unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import json
import mmap
import os
import struct

import pytest

from pyphys import cli, paths, physmem

SIZE = 0x10000
BUF, BUF_SIZE = 0x3000, 0x1000
NODENAME = 0x5041
IOMEM = """\
00000000-00000fff : Reserved
00001000-00007fff : System RAM
  00004000-00004fff : Kernel data
00008000-00008fff : PCI Bus 0000:00
  00008000-00008fff : 0000:00:03.0
    00008000-00008fff : edu
0000a000-0000ffff : System RAM
"""


def pattern(n):
    return b"".join(struct.pack("<I", 0x50590000 | (i & 0xFFFF)) for i in range(n // 4))


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """/dev/mem stand-in, /proc/iomem, pyphys.ko's sysfs, and a private journal."""
    for d in ("dev", "proc", "sys/kernel/pyphys"):
        (tmp_path / d).mkdir(parents=True)
    mem = bytearray(pattern(SIZE))
    mem[NODENAME : NODENAME + 6] = b"lab\0\0\0"
    (tmp_path / "dev" / "mem").write_bytes(bytes(mem))
    (tmp_path / "proc" / "iomem").write_text(IOMEM)
    mod = tmp_path / "sys" / "kernel" / "pyphys"
    (mod / "buffer_phys").write_text(f"{BUF:#x}\n")
    (mod / "buffer_size").write_text(f"{BUF_SIZE}\n")
    (mod / "nodename_phys").write_text(f"{NODENAME:#x}\n")
    (mod / "nodename_len").write_text("65\n")
    monkeypatch.setenv("PYPHYS_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_LOCK_TIMEOUT", "0.2")
    old = paths.set_roots(dev=str(tmp_path / "dev"), proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"))
    yield tmp_path
    paths.set_roots(**old)


def mem(lab, addr=0, n=SIZE):
    with open(lab / "dev" / "mem", "rb") as f:
        f.seek(addr)
        return f.read(n)


def journal_lines(lab):
    p = lab / "journal.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def pyphys(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io

        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- reads -------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", ["8", "16", "32", "64", "b", "h", "w", "l"])
def test_read_matches_file_in_busybox_format(lab, capsys, width):
    bits = {"b": 8, "h": 16, "w": 32, "l": 64}.get(width) or int(width)
    addr = BUF + 0x18
    rc, out, err = pyphys(capsys, "devmem", hex(addr), width)
    assert rc == 0
    want = int.from_bytes(mem(lab, addr, bits // 8), "little")
    assert out == f"0x{want:0{bits // 4}X}\n"
    assert "System RAM > pyphys buffer+0x18" in err


def test_default_width_is_32(lab, capsys):
    rc, out, _ = pyphys(capsys, "devmem", str(BUF + 4), "-q")
    assert rc == 0 and out == "0x{:08X}\n".format(struct.unpack("<I", mem(lab, BUF + 4, 4))[0])


def test_named_addresses(lab, capsys):
    rc, out, _ = pyphys(capsys, "devmem", "buffer+8", "32", "-q")
    assert out.strip() == "0x{:08X}".format(struct.unpack("<I", mem(lab, BUF + 8, 4))[0])
    rc, out, _ = pyphys(capsys, "devmem", "nodename", "--range", "3", "--json", "-q")
    assert json.loads(out)["data"] == b"lab".hex()


def test_mmio_read_reports_owner(lab, capsys):
    rc, out, err = pyphys(capsys, "devmem", "0x8004")
    assert rc == 0 and "PCI Bus 0000:00 > 0000:00:03.0 > edu" in err


def test_region_names_reach_stderr_escaped(lab, capsys):
    """A driver's name with ESC and CR (the kernel prints names verbatim): the note on stderr
    shows them as \\xNN; --json keeps the name as it is (JSON escapes it)."""
    (lab / "proc" / "iomem").write_bytes(IOMEM.replace("edu", "e\x1b[2Jd\ru").encode())
    rc, out, err = pyphys(capsys, "devmem", "0x8004")
    assert rc == 0 and "0000:00:03.0 > e\\x1b[2Jd\\x0du" in err and "\x1b" not in err and "\r" not in err
    rc, out, err = pyphys(capsys, "devmem", "0x8004", "--json")
    assert rc == 0 and json.loads(out)["region"].endswith("0000:00:03.0 > e\x1b[2Jd\ru")


def test_range_hexdump_layout(lab, capsys):
    rc, out, _ = pyphys(capsys, "devmem", hex(BUF), "--range", "0x24", "-q")
    assert rc == 0
    lines = out.splitlines()
    data = mem(lab, BUF, 0x24)
    hexes = " ".join(f"{b:02x}" for b in data[:8]) + "  " + " ".join(f"{b:02x}" for b in data[8:16])
    assert lines[0] == f"00003000  {hexes}  |{''.join(chr(b) if 32 <= b < 127 else '.' for b in data[:16])}|"
    assert lines[-1] == "00003024"
    assert len(lines) == 4


def test_range_json(lab, capsys):
    rc, out, _ = pyphys(capsys, "devmem", hex(BUF + 0xFFE), "--range", "0x10", "--json", "--force", "-q")
    doc = json.loads(out)
    assert bytes.fromhex(doc["data"]) == mem(lab, BUF + 0xFFE, 0x10)


# -- writes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("width,value", [(8, 0xAB), (16, 0xBEEF), (32, 0xDEADBEEF), (64, 0x0123456789ABCDEF)])
def test_write_each_width_is_journaled_and_exact(lab, capsys, width, value):
    addr = BUF + 0x40
    before = mem(lab)
    rc, out, err = pyphys(capsys, "devmem", hex(addr), str(width), hex(value))
    assert rc == 0 and out == ""
    n = width // 8
    after = mem(lab)
    assert after[addr : addr + n] == value.to_bytes(n, "little")
    assert after[:addr] == before[:addr] and after[addr + n :] == before[addr + n :]
    (entry,) = journal_lines(lab)
    assert entry["old"] == before[addr : addr + n].hex() and entry["new"] == value.to_bytes(n, "little").hex()
    assert "journal entry 1" in err and "read back OK" in err


def test_write_bytes_with_escapes_and_undo(lab, capsys):
    before = mem(lab)
    rc, _, _ = pyphys(capsys, "devmem", "buffer+0x101", "--string", r"Dunia,vipi?\r\x00")
    assert rc == 0
    assert mem(lab, BUF + 0x101, 13) == b"Dunia,vipi?\r\x00"
    rc, out, _ = pyphys(capsys, "undo")
    assert rc == 0 and "restored" in out
    assert mem(lab) == before


def test_write_hex(lab, capsys):
    rc, _, _ = pyphys(capsys, "devmem", "nodename", "--hex", "4e 69 6e 6a 61 00", "-q")
    assert rc == 0 and mem(lab, NODENAME, 6) == b"Ninja\0"


def test_byte_options_named_as_pci_write_old_names_hidden(lab, capsys):
    """devmem and pci write take the same --string/--hex; devmem's old names still work, unlisted."""
    from pyphys import cli

    helps = {}
    for argv in (["devmem", "--help"], ["pci", "write", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        helps[argv[0]] = capsys.readouterr().out
    for text in helps.values():
        assert "--string TEXT" in text and "--hex HEX" in text
    assert "--write-bytes" not in helps["devmem"] and "--write-hex" not in helps["devmem"]
    assert pyphys(capsys, "devmem", "nodename", "--write-hex", "41 42 00", "-q")[0] == 0
    assert mem(lab, NODENAME, 3) == b"AB\0"
    assert pyphys(capsys, "devmem", "nodename", "--write-bytes", r"CD\x00", "-q")[0] == 0
    assert mem(lab, NODENAME, 3) == b"CD\0"
    before = mem(lab)
    rc, out, err = pyphys(capsys, "devmem", "nodename", "--string", "X", "--write-bytes", "Y")
    assert rc == 2 and "only one of" in err and mem(lab) == before


def test_write_mmio_needs_no_force(lab, capsys):
    rc, _, _ = pyphys(capsys, "devmem", "0x8008", "32", "5", "-q")
    assert rc == 0 and mem(lab, 0x8008, 4) == struct.pack("<I", 5)


def test_force_allows_ram_outside_named(lab, capsys):
    rc, _, _ = pyphys(capsys, "devmem", "0x1000", "8", "0x7f", "--force", "-q")
    assert rc == 0 and mem(lab, 0x1000, 1) == b"\x7f"


def test_batch_reads_and_writes_in_order(lab, capsys, monkeypatch):
    script = f"""# comment
r {BUF:#x}
w {BUF:#x} 32 0x11223344
r {BUF:#x} 32
w {BUF + 4:#x} 16 0xbeef   # trailing comment
r {BUF + 4:#x} 16
w {BUF:#x} 32 0x55667788
"""
    before = mem(lab)
    rc, out, err = pyphys(capsys, "devmem", "--batch", "-", stdin=script, monkeypatch=monkeypatch)
    assert rc == 0, err
    assert out.splitlines() == [
        "0x{:08X}".format(struct.unpack("<I", before[BUF : BUF + 4])[0]),
        "0x11223344",
        "0xBEEF",
    ]
    assert mem(lab, BUF, 4) == struct.pack("<I", 0x55667788)
    entries = [e for e in journal_lines(lab) if "id" in e]
    assert [e["old"] for e in entries] == [before[BUF : BUF + 4].hex(), before[BUF + 4 : BUF + 6].hex(), "44332211"]
    rc, _, _ = pyphys(capsys, "undo", "--all")
    assert rc == 0 and mem(lab) == before


def test_journal_listing(lab, capsys):
    pyphys(capsys, "devmem", "buffer", "32", "0x1", "-q")
    rc, out, _ = pyphys(capsys, "journal")
    assert rc == 0 and "#1" in out and "active" in out
    rc, out, _ = pyphys(capsys, "journal", "--json")
    assert json.loads(out)[0]["new"] == "01000000"


def test_module_backend(lab, capsys):
    (lab / "dev" / "pyphys_mem").write_bytes(mem(lab))
    rc, out, _ = pyphys(capsys, "devmem", "buffer", "32", "0xcafe", "--backend", "module", "-q")
    assert rc == 0
    with open(lab / "dev" / "pyphys_mem", "rb") as f:
        f.seek(BUF)
        assert f.read(4) == struct.pack("<I", 0xCAFE)
    assert json.loads((lab / "journal.jsonl").read_text().splitlines()[0])["target"] == {"backend": "module"}


# -- bad input -----------------------------------------------------------------------------------
BAD = [
    ("unaligned 32", ["devmem", hex(BUF + 2), "32"]),
    ("unaligned 64 write", ["devmem", hex(BUF + 4), "64", "1"]),
    ("unaligned 16", ["devmem", hex(BUF + 1), "16", "1"]),
    ("unknown width", ["devmem", hex(BUF), "24"]),
    ("width not a number", ["devmem", hex(BUF), "wide"]),
    ("width 128", ["devmem", hex(BUF), "128", "1"]),
    ("value wider than 8", ["devmem", hex(BUF), "8", "0x100"]),
    ("value wider than 32", ["devmem", hex(BUF), "32", "0x100000000"]),
    ("negative value", ["devmem", hex(BUF), "32", "-1"]),
    ("negative address", ["devmem", "-4096", "32"]),
    ("address not a number", ["devmem", "0xZZ"]),
    ("address word", ["devmem", "kernel"]),
    ("value not a number", ["devmem", hex(BUF), "32", "banana"]),
    ("address in a hole", ["devmem", "0x9000"]),
    ("write in a hole", ["devmem", "0x9000", "32", "1"]),
    ("past end of RAM", ["devmem", "0x20000"]),
    ("range into a hole", ["devmem", "0x8ff0", "--range", "0x20"]),
    ("RAM outside named region", ["devmem", "0x1000", "32", "1"]),
    ("kernel data", ["devmem", "0x4000", "32", "1"]),
    ("write runs off named buffer", ["devmem", f"buffer+{BUF_SIZE - 2:#x}", "--hex", "01020304"]),
    ("bad hex", ["devmem", "buffer", "--hex", "zz"]),
    ("bad escape", ["devmem", "buffer", "--string", r"\x4"]),
    ("unknown escape", ["devmem", "buffer", "--string", r"a\qb"]),
    ("empty byte string", ["devmem", "buffer", "--string", ""]),
    ("odd hex digits", ["devmem", "buffer", "--hex", "abc"]),
    ("unknown backend", ["devmem", "buffer", "--backend", "dma"]),
    ("range zero", ["devmem", "buffer", "--range", "0"]),
    ("range not a number", ["devmem", "buffer", "--range", "lots"]),
    ("two modes", ["devmem", "buffer", "--range", "4", "--hex", "00"]),
    ("no address", ["devmem"]),
    ("width with --hex", ["devmem", "buffer", "32", "--hex", "00"]),
    ("offset not a number", ["devmem", "buffer+x", "32", "1"]),
    ("undo with nothing", ["undo"]),
    ("undo unknown id", ["undo", "42"]),
    ("undo id not a number", ["undo", "seven"]),
    ("undo unicode digit", ["undo", "\u0661"]),
    ("undo id zero", ["undo", "0"]),
    ("undo id past 2**63", ["undo", str(1 << 63)]),
]


@pytest.mark.parametrize("name,argv", BAD, ids=[b[0] for b in BAD])
def test_bad_input_one_line_nothing_written(lab, capsys, name, argv):
    before = mem(lab)
    rc, out, err = pyphys(capsys, *argv)
    assert rc != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"pyphys {argv[0]}: error: ")
    assert "Traceback" not in err and out == ""
    assert mem(lab) == before
    assert journal_lines(lab) == []


def check_bad(lab, capsys, argv, before, match, stdin=None, monkeypatch=None):
    rc, out, err = pyphys(capsys, *argv, stdin=stdin, monkeypatch=monkeypatch)
    assert rc != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err
    assert mem(lab) == before
    return err


@pytest.mark.parametrize(
    "script,match",
    [
        (f"w {BUF:#x} 32 1\nw {BUF + 4:#x} 32 0x1ffffffff\n", "line 2"),
        (f"w {BUF:#x} 32 1\nx {BUF:#x}\n", "unknown operation"),
        (f"w {BUF:#x} 32 1\nw 0x1000 32 1\n", "batch line 2: refusing to write System RAM"),
        (f"r {BUF:#x}\nr 0x9000\n", "hole"),
        ("# nothing\n\n", "no operations"),
        (f"w {BUF + 2:#x} 32 1\n", "aligned"),
    ],
)
def test_bad_batch_runs_nothing(lab, capsys, monkeypatch, script, match):
    before = mem(lab)
    check_bad(lab, capsys, ["devmem", "--batch", "-"], before, match, stdin=script, monkeypatch=monkeypatch)
    assert journal_lines(lab) == []


def test_missing_device(lab, capsys):
    os.unlink(lab / "dev" / "mem")
    rc, out, err = pyphys(capsys, "devmem", "buffer")
    assert rc != 0 and len(err.splitlines()) == 1 and "does not exist" in err and "make shell" in err


def test_missing_module_device(lab, capsys):
    before = mem(lab)
    check_bad(lab, capsys, ["devmem", "buffer", "32", "1", "--backend", "module"], before, "mem_device=1")


def test_locked_journal(lab, capsys):
    before = mem(lab)
    fd = os.open(lab / "journal.jsonl", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        check_bad(lab, capsys, ["devmem", "buffer", "32", "1"], before, "locked by another pyphys process")
    finally:
        os.close(fd)
    assert journal_lines(lab) == []


def test_lockdown_refusal(lab, capsys, monkeypatch):
    sec = lab / "sys" / "kernel" / "security"
    sec.mkdir(parents=True)
    (sec / "lockdown").write_text("none integrity [confidentiality]\n")
    real_open = os.open

    def fake_open(path, flags, *a):
        if str(path).endswith("/dev/mem"):
            raise OSError(errno.EPERM, "Operation not permitted")
        return real_open(path, flags, *a)

    monkeypatch.setattr(physmem.os, "open", fake_open)
    check_bad(lab, capsys, ["devmem", "buffer", "32", "1"], mem(lab), "lockdown")


def test_strict_devmem_refusal(lab, capsys, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(mmap, "mmap", refuse)
    err = check_bad(lab, capsys, ["devmem", "buffer", "32", "1", "--backend", "mmap"], mem(lab), "STRICT_DEVMEM")
    assert "mem_device=1" in err


def test_undo_refuses_changed_bytes(lab, capsys):
    pyphys(capsys, "devmem", "buffer", "32", "0x12345678", "-q")
    with open(lab / "dev" / "mem", "r+b") as f:
        f.seek(BUF)
        f.write(b"\x99\x99\x99\x99")
    before = mem(lab)
    n = len(journal_lines(lab))
    check_bad(lab, capsys, ["undo"], before, "refusing to undo")
    assert len(journal_lines(lab)) == n


def test_verify_failure_is_reported(lab, capsys, monkeypatch):
    real = physmem.PhysMem.write_word

    def flaky(self, addr, width, value):
        real(self, addr, width, value ^ 1)

    monkeypatch.setattr(physmem.PhysMem, "write_word", flaky)
    rc, out, err = pyphys(capsys, "devmem", "buffer", "8", "0x10")
    assert rc != 0 and "wrote 0x10" in err and "read back 0x11" in err and len(err.splitlines()) == 1
    marks = [e for e in journal_lines(lab) if e.get("event") == "actual"]
    assert marks and marks[0]["hex"] == "11"


def test_word_write_is_journaled_with_width_and_undone_with_one_store(lab, capsys, monkeypatch):
    before = mem(lab)
    assert pyphys(capsys, "devmem", "buffer+8", "64", "0x1122334455667788", "-q")[0] == 0
    assert journal_lines(lab)[0]["width"] == 64
    calls = []
    real = physmem.PhysMem.write_word
    monkeypatch.setattr(physmem.PhysMem, "write_word", lambda self, a, w, v: (calls.append(w), real(self, a, w, v)))
    assert pyphys(capsys, "undo")[0] == 0
    assert calls == [64] and mem(lab) == before


def test_batch_over_more_pages_than_the_window_cache(lab, capsys, monkeypatch):
    """Windows evicted mid-batch are mapped again (their views were released)."""
    monkeypatch.setattr(physmem, "_CACHE_PAGES", 2)
    addrs = [0xA000 + 0x1000 * (i % 6) + 4 * i for i in range(60)]
    script = "\n".join(f"w {a:#x} 32 {i:#x}\nr {a:#x}" for i, a in enumerate(addrs))
    before = mem(lab)
    rc, out, err = pyphys(capsys, "devmem", "--batch", "-", "--force", stdin=script, monkeypatch=monkeypatch)
    assert rc == 0, err
    assert out.split() == [f"0x{i:08X}" for i in range(60)]
    for i, a in enumerate(addrs):
        assert mem(lab, a, 4) == struct.pack("<I", i)
    assert pyphys(capsys, "undo", "--all")[0] == 0
    assert mem(lab) == before


# -- the library under the command -----------------------------------------------------------------
def test_library_policy_and_batch_without_the_cli(lab):
    """pyphys.devmem on its own: named regions, the RAM write policy, one journal append per batch."""
    from pyphys import devmem
    from pyphys.errors import RegionError

    resolver = devmem.Resolver()
    assert resolver.resolve("buffer+0x10") == (BUF + 0x10, resolver.module_regions()[0])
    ops = devmem.parse_batch(["w buffer+8 32 0x11223344", "r 0x%x 32" % (BUF + 8)], resolver)
    with physmem.open_physmem("mmap", writable=True) as pm:
        devmem.check_all(pm, resolver, ops, force=False)
        stray = devmem.Op("w", 0x1000, 32, 1)
        with pytest.raises(RegionError, match="outside a region you named"):
            devmem.check_access(pm, resolver, stray, force=False)
        results = devmem.run_batch(pm, ops)
    assert results[1] == {"op": "r", "addr": BUF + 8, "width": 32, "value": 0x11223344}
    assert mem(lab, BUF + 8, 4) == struct.pack("<I", 0x11223344)
    lines = journal_lines(lab)
    assert [x["id"] for x in lines] == [1] and lines[0]["old"] == pattern(SIZE)[BUF + 8 : BUF + 12].hex()


def test_command_file_holds_no_policy():
    """The command parses and formats; resolution, policy and batches live in pyphys.devmem."""
    from pyphys.commands import devmem as cmd

    for name in ("Resolver", "check_access", "run_batch", "parse_batch", "Named", "Op"):
        assert not hasattr(cmd, name), name


@pytest.mark.parametrize(
    "line", [b"\xff\xfe\n", b'{"id":1e400}\n', b'{"ref":1e400}\n', b'{"id":"x"}\n'], ids=["utf8", "id", "ref", "str"]
)
def test_damaged_journal_refuses_writes_and_undo_in_one_line(lab, capsys, line, monkeypatch):
    path = lab / "journal.jsonl"
    path.write_bytes(line)
    before = mem(lab)
    for argv in (["devmem", "buffer", "32", "0x1"], ["devmem", "--batch", "-"], ["undo"]):
        rc, out, err = pyphys(capsys, *argv, stdin="w buffer 32 1\n", monkeypatch=monkeypatch)
        assert rc != 0 and out == "" and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"{path} line 1: " in err
    assert mem(lab) == before and path.read_bytes() == line
    rc, out, err = pyphys(capsys, "journal", "--all")
    assert rc == 0 and "1 unreadable line(s) skipped" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "abc", "-1"])
def test_lock_timeout_must_be_a_finite_positive_number(lab, capsys, value, monkeypatch):
    monkeypatch.setenv("PYPHYS_LOCK_TIMEOUT", value)
    before = mem(lab)
    rc, out, err = pyphys(capsys, "devmem", "buffer", "32", "0x1")
    assert rc == 2 and out == "" and len(err.splitlines()) == 1 and "PYPHYS_LOCK_TIMEOUT" in err
    assert mem(lab) == before and journal_lines(lab) == []


def test_range_length_is_a_size(lab, capsys):
    # --range takes the dialect's sizes, as dump and pagemap do: 4K is 4096 bytes
    rc, out, _ = pyphys(capsys, "devmem", hex(BUF), "--range", "4K", "--json", "-q")
    assert rc == 0 and bytes.fromhex(json.loads(out)["data"]) == mem(lab, BUF, 4096)


def test_json_follows_the_conventions(lab, capsys):
    """docs/json.md: `phys`, values as 0x strings, `width` in bits, byte blobs under `data`."""
    from helpers import validate_json

    want = struct.unpack("<I", mem(lab, BUF + 8, 4))[0]
    doc = json.loads(pyphys(capsys, "devmem", "buffer+8", "--json", "-q")[1])
    validate_json(doc, "devmem")
    assert (doc["phys"], doc["width"], doc["value"]) == (f"{BUF + 8:#x}", 32, f"0x{want:08x}")
    doc = json.loads(pyphys(capsys, "devmem", "buffer", "--range", "4", "--json", "-q")[1])
    validate_json(doc, "devmem")
    assert doc["data"] == mem(lab, BUF, 4).hex() and "hex" not in doc and "addr" not in doc
    doc = json.loads(pyphys(capsys, "devmem", "buffer+0x10", "16", "0xbeef", "--json", "-q")[1])
    validate_json(doc, "devmem")
    assert (doc["new"], doc["readback"], doc["width"]) == ("0xbeef", "0xbeef", 16)
    doc = json.loads(pyphys(capsys, "devmem", "buffer+0x20", "--string", "Hi", "--json", "-q")[1])
    validate_json(doc, "devmem")
    assert doc["data"] == b"Hi".hex() and mem(lab, BUF + 0x20, 2) == b"Hi"


def test_batch_json_follows_the_conventions(lab, capsys, monkeypatch):
    from helpers import validate_json

    script = f"w {BUF:#x} 32 0x11223344\nr {BUF:#x} 16\n"
    rc, out, err = pyphys(capsys, "devmem", "--batch", "-", "--json", stdin=script, monkeypatch=monkeypatch)
    assert rc == 0, err
    doc = json.loads(out)
    validate_json(doc, "devmem")
    w, r = doc["results"]
    assert (w["op"], w["phys"], w["value"], w["readback"]) == ("w", f"{BUF:#x}", "0x11223344", "0x11223344")
    assert (r["op"], r["width"], r["value"]) == ("r", 16, "0x3344")
    assert mem(lab, BUF, 4) == struct.pack("<I", 0x11223344)


@pytest.mark.parametrize("fault", ["reads back other bytes", "store fails"])
def test_batch_fault_is_marked_and_the_rest_aborted(lab, capsys, monkeypatch, fault):
    """A batch's second write goes wrong: the journal says what memory holds there, the third write
    never runs and is marked aborted, and undo --all puts every byte back."""
    real = physmem.PhysMem.write_word

    def faulty(self, addr, width, value):
        if addr != BUF + 4:
            return real(self, addr, width, value)
        if fault == "store fails":  # as the pwrite path reports EIO
            raise self._explain(OSError(errno.EIO, os.strerror(errno.EIO)), addr, "write")
        return real(self, addr, width, value ^ 1)

    before = mem(lab)
    script = "w buffer 32 0x11\nw buffer+4 32 0x22\nw buffer+8 32 0x33\n"
    with monkeypatch.context() as m:
        m.setattr(physmem.PhysMem, "word_slot", lambda *a, **k: None)  # word by word, as off mmap
        m.setattr(physmem.PhysMem, "write_word", faulty)
        rc, out, err = pyphys(capsys, "devmem", "--batch", "-", stdin=script, monkeypatch=m)
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    events = sorted((e["ref"], e["event"], e.get("hex")) for e in journal_lines(lab) if "event" in e)
    second = (2, "actual", "23000000") if fault == "reads back other bytes" else (2, "aborted", None)
    assert events == [second, (3, "aborted", None)]
    assert mem(lab, BUF, 4) == struct.pack("<I", 0x11) and mem(lab, BUF + 8, 4) == before[BUF + 8 : BUF + 12]
    rc, out, err = pyphys(capsys, "undo", "--all")
    assert rc == 0 and mem(lab) == before, err
