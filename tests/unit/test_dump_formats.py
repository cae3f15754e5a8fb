"""The ELF core and AVML formats, streaming to a pipe, and the metadata document.

Judges outside the code under test: pyelftools and drgn read the ELF core; the system's
libsnappy (tests/lime_reader.py) and volatility3's AVMLLayer read the AVML file; the plain
LiME file of the same ranges, hashlib and the JSON schema of docs/schema/dump.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from helpers import dump_cli, dump_env, dump_mem, dump_ram_ranges, one_line_error, validate_json
from lime_reader import avml_records, avml_to_lime, elf_core, libsnappy

from pyphys import dump, paths
from pyphys.errors import PyphysError
from pyphys.layouts import elf

# a kernel in 64 MiB of sparse stand-in RAM: its VMCOREINFO note at 0x3000000, page_offset_base
# (the direct-map base) at __pa_symbol(0xffffffff81e00000) = 0x1e00000 (phys_base 0), KASLR 2 MiB
VMCOREINFO = (
    "OSRELEASE=6.12.0-test\nPAGESIZE=4096\nSYMBOL(_stext)=ffffffff81200000\n"
    "SYMBOL(swapper_pg_dir)=ffffffff81c00000\nNUMBER(phys_base)=0\nKERNELOFFSET=200000\n"
)
DIRECT_MAP = 0xFFFFA00000000000
KERNEL_IOMEM = "00001000-0009fbff : System RAM\n00100000-03ffffff : System RAM\n  01200000-01ffffff : Kernel code\n"
KALLSYMS = "ffffffff81200000 T _text\nffffffff81200000 T _stext\nffffffff81e00000 D page_offset_base\n"
PLAIN_NOTE = bytes.fromhex("0b000000") + len(VMCOREINFO).to_bytes(4, "little") + bytes(4)


@pytest.fixture
def kernel(tmp_path):
    """A stand-in machine with VMCOREINFO and kallsyms; returns (output dir, memory file)."""
    for d in ("dev", "proc", "sys/kernel", "out", "proc/sys/kernel/random"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    mem = tmp_path / "dev" / "mem"
    with open(mem, "wb") as f:
        f.truncate(64 << 20)
        # the note as the kernel lays it out (include/uapi/linux/elf.h Elf64_Nhdr, 4-byte padding)
        f.seek(0x3000000)
        f.write(PLAIN_NOTE + b"VMCOREINFO\0\0" + VMCOREINFO.encode().ljust(-(-len(VMCOREINFO) // 4) * 4, b"\0"))
        f.seek(0x1E00000)
        f.write(DIRECT_MAP.to_bytes(8, "little"))
        for off in range(0x180000, 64 << 20, 1 << 20):  # something to compress and to find
            f.seek(off)
            f.write(f"page at {off:#x} ".encode() * 64)
    (tmp_path / "proc" / "iomem").write_text(KERNEL_IOMEM)
    (tmp_path / "proc" / "kallsyms").write_text(KALLSYMS)
    (tmp_path / "proc" / "version").write_text("Linux version 6.12.0-test (test) #1\n")
    (tmp_path / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text("1b2c3d4e-0000-4000-8000-000000000001\n")
    (tmp_path / "sys" / "kernel" / "vmcoreinfo").write_text("0x0000000003000000 1024\n")
    old = paths.set_roots(dev=str(tmp_path / "dev"), proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"))
    yield tmp_path / "out", mem
    paths.set_roots(**old)


def ram(text: str = KERNEL_IOMEM):
    return dump_ram_ranges(text)


# -- ELF core -----------------------------------------------------------------------------------


@pytest.mark.parametrize("direct", [False, True], ids=["buffered", "direct"])
def test_elf_core_as_pyelftools_reads_it(kernel, direct):
    out, mem = kernel
    res = dump.dump(str(out / "k.elf"), None, "elf", direct=direct)
    header, loads, notes = elf_core(str(out / "k.elf"))
    assert (header["e_type"], header["e_machine"], header["e_ident"]["EI_CLASS"]) == (
        "ET_CORE",
        "EM_X86_64",
        "ELFCLASS64",
    )
    assert [(ld["p_paddr"], ld["p_paddr"] + ld["p_filesz"]) for ld in loads] == ram()
    data = (out / "k.elf").read_bytes()
    for ld in loads:
        assert ld["p_vaddr"] == DIRECT_MAP + ld["p_paddr"]  # __va(): the direct map
        assert ld["p_memsz"] == ld["p_filesz"] and ld["p_offset"] % 4096 == 0
        assert data[ld["p_offset"] : ld["p_offset"] + ld["p_filesz"]] == dump_mem(
            ld["p_paddr"], ld["p_paddr"] + ld["p_filesz"], mem
        )
    assert [(n, t) for n, t, _ in notes] == [("VMCOREINFO", 0)]
    assert notes[0][2].rstrip(b"\0").decode() == VMCOREINFO
    assert res.kaslr.to_json() == {
        "offset": "0x200000",
        "vmcoreinfo": "0x200000",
        "kallsyms": "0x200000",
        "agree": True,
        "direct_map": f"{DIRECT_MAP:#x}",
        "note": None,
    }
    assert [r.virt for r in res.ranges] == [DIRECT_MAP + s for s, _ in ram()]


def test_drgn_takes_it_for_a_kernel_core_and_reads_physical_memory(kernel):
    drgn = pytest.importorskip("drgn")
    out, mem = kernel
    dump.dump(str(out / "k.elf"), None, "elf", sha256=False)
    prog = drgn.Program()
    prog.set_core_dump(str(out / "k.elf"))
    assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL  # the VMCOREINFO note made it so
    for s, e in ram():
        assert prog.read(s, 64, True) == dump_mem(s, s + 64, mem)
        assert prog.read(e - 64, 64, True) == dump_mem(e - 64, e, mem)
    # and through the direct map, by p_vaddr
    assert prog.read(DIRECT_MAP + 0x200000, 32) == dump_mem(0x200000, 0x200020, mem)


def test_elf_without_vmcoreinfo_has_no_note_and_says_why(kernel, tmp_path):
    out, _ = kernel
    (tmp_path / "sys" / "kernel" / "vmcoreinfo").unlink()
    (tmp_path / "proc" / "kallsyms").unlink()
    res = dump.dump(str(out / "k.elf"), [dump.parse_range("0x100000+1M")], "elf")
    _, loads, notes = elf_core(str(out / "k.elf"))
    assert notes == [] and [ld["p_vaddr"] for ld in loads] == [0]
    assert any("the ELF has no VMCOREINFO note" in w and "drgn" in w for w in res.warnings), res.warnings
    assert res.vmcoreinfo is None and res.kaslr.offset is None and "vmcoreinfo is missing" in res.kaslr.note


def test_kaslr_sources_that_disagree_are_reported(kernel, tmp_path):
    out, _ = kernel
    (tmp_path / "proc" / "kallsyms").write_text(KALLSYMS.replace("81200000 T _text", "81400000 T _text"))
    res = dump.dump(str(out / "k.raw"), [dump.parse_range("0x100000+4K")], "raw")
    assert res.kaslr.agree is False and res.kaslr.offset == 0x200000  # VMCOREINFO wins
    assert res.kaslr.kallsyms == 0x400000 and any("disagree" in w for w in res.warnings)


def test_parse_notes_reads_the_kernels_layout():
    blob = elf.note(b"VMCOREINFO", 0, b"A=1\n") + bytes(12)  # final_note(): an empty header
    assert elf.parse_notes(blob) == [(b"VMCOREINFO", 0, b"A=1\n")]


# -- AVML (snappy-compressed LiME) ---------------------------------------------------------------


def test_avml_decompresses_to_the_plain_lime_of_the_same_ranges(kernel):
    if libsnappy() is None:
        pytest.skip("libsnappy (Debian libsnappy1v5) is not installed: the independent decompressor")
    out, mem = kernel
    plain = dump.dump(str(out / "k.lime"), None, "lime")
    packed = dump.dump(str(out / "k.avml"), None, "avml")
    data = (out / "k.avml").read_bytes()
    assert avml_to_lime(data) == (out / "k.lime").read_bytes()
    assert len(data) == packed.size < plain.size / 4
    assert [r.sha256 for r in packed.ranges] == [r.sha256 for r in plain.ranges]  # of the memory, not the file
    assert packed.sha256 == hashlib.sha256(data).hexdigest()
    # CRC-32Cs checked on the small first range (the bitwise CRC is slow)
    first = avml_records(data[: packed.ranges[1].file_offset - 32], check_crc=True)
    assert first[0][2] == dump_mem(*ram()[0], mem)


def test_volatility3_avml_layer_reads_it(kernel):
    pytest.importorskip("volatility3")
    from volatility3.framework import contexts
    from volatility3.framework.layers import avml as vavml
    from volatility3.framework.layers import physical

    if not vavml.HAS_SNAPPY:
        pytest.skip("volatility3 finds no libsnappy (Debian libsnappy1v5)")
    out, mem = kernel
    dump.dump(str(out / "k.avml"), None, "avml", sha256=False)
    ctx = contexts.Context()
    ctx.config["base.location"] = (out / "k.avml").as_uri()
    ctx.add_layer(physical.FileLayer(ctx, "base", "base"))
    ctx.config["avml.base_layer"] = "base"
    layer = vavml.AVMLLayer(ctx, "avml", "avml")
    ctx.add_layer(layer)
    for s, e in ram():
        assert layer.read(s, 64) == dump_mem(s, s + 64, mem)
        assert layer.read(e - 100, 100) == dump_mem(e - 100, e, mem)
    assert layer.read(0x1234567, 4096) == dump_mem(0x1234567, 0x1235567, mem)


def test_missing_snappy_binding_is_one_line_naming_the_extra(kernel, tmp_path):
    out, _ = kernel
    code = (
        "import sys; sys.modules['cramjam'] = None\n"
        "from pyphys.cli import main\n"
        f"sys.exit(main(['dump', '-f', 'avml', '-o', {str(out / 'x.avml')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=dump_env(tmp_path), capture_output=True, text=True)
    err = one_line_error(proc)
    assert "cramjam" in err and "pyphys[forensics]" in err
    assert os.listdir(out) == []


# -- streaming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["lime", "avml", "elf", "raw"])
def test_stream_to_a_pipe_is_the_file(kernel, tmp_path, fmt):
    """``-o - | reader``: the bytes through the pipe are the file's; the digest goes to stderr,
    the metadata to --meta; an independent reader takes them from the pipe."""
    out, mem = kernel
    dump.dump(str(out / f"k.{fmt}"), None, fmt)
    reader = (
        "import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest(), d[:4].hex())"
    )
    dumper = subprocess.Popen(
        [sys.executable, "-m", "pyphys", "dump", "-f", fmt, "-o", "-", "--meta", str(tmp_path / "m.json")],
        env=dump_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    took = subprocess.run([sys.executable, "-c", reader], stdin=dumper.stdout, capture_output=True, text=True)
    dumper.stdout.close()
    err = dumper.stderr.read().decode()
    assert dumper.wait() == 0, err
    size, digest, magic = took.stdout.split()
    file = (out / f"k.{fmt}").read_bytes()
    assert (int(size), digest) == (len(file), hashlib.sha256(file).hexdigest())
    assert magic == {"lime": b"EMiL", "avml": b"AVML", "elf": b"\x7fELF", "raw": file[:4]}[fmt].hex()
    assert f"sha256 {digest}  -" in err
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["path"] == "-" and meta["sha256"] == digest
    validate_json(meta, "dump")


def test_stream_refused_on_a_terminal(kernel, tmp_path):
    import pty

    master, slave = pty.openpty()
    try:
        proc = dump_cli(tmp_path, "0x100000+4K", "-o", "-", capture_output=False, stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 2 and "terminal" in proc.stderr and proc.stderr.count("\n") == 1


# -- the metadata document ------------------------------------------------------------------------


def test_metadata_sidecar_is_the_json_answer_and_follows_the_schema(kernel, tmp_path):
    out, _ = kernel
    proc = dump_cli(tmp_path, "-f", "lime", "--json", "-o", str(out / "k.lime"), "0x100000+1M", "0x2000000+2M")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc == json.loads((out / "k.lime.json").read_text())
    validate_json(doc, "dump")
    assert doc["kernel"] == {
        "release": os.uname().release,
        "banner": "Linux version 6.12.0-test (test) #1",
        "boot_id": "1b2c3d4e-0000-4000-8000-000000000001",
    }
    assert doc["vmcoreinfo"]["phys"] == "0x3000000" and doc["vmcoreinfo"]["text"] == VMCOREINFO
    assert doc["kaslr"]["offset"] == "0x200000" and doc["kaslr"]["agree"] is True
    data = (out / "k.lime").read_bytes()
    for r in doc["ranges"]:
        off, n = int(r["file_offset"], 16), r["length"]
        assert hashlib.sha256(data[off : off + n]).hexdigest() == r["sha256"]
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    # every byte of the address space up to the end of RAM is dumped or skipped, with a reason
    spans = sorted(
        [(int(r["start"], 16), int(r["end"], 16), "dumped") for r in doc["ranges"]]
        + [(int(s["start"], 16), int(s["end"], 16), s["reason"]) for s in doc["skipped"]]
    )
    pos = 0
    for s, e, _why in spans:
        assert s == pos, spans
        pos = e
    assert pos == 0x4000000
    reasons = {s["reason"] for s in doc["skipped"]}
    assert "System RAM, not requested" in reasons and any(r.startswith("not in /proc/iomem") for r in reasons)
    assert [e["name"] for e in doc["iomem"]] == ["System RAM", "System RAM", "Kernel code"]
    assert doc["started"] <= doc["finished"] and doc["tool"] == "pyphys" and doc["version"]


def test_default_dump_skips_partial_pages_with_the_reason(kernel):
    out, _ = kernel
    res = dump.dump(str(out / "k.raw"), None, "raw", sha256=False)
    assert [(s.start, s.end, s.reason) for s in res.skipped] == [
        (0, 0x1000, "not in /proc/iomem (a hole)"),
        (0x9F000, 0x9FC00, "part of a page that is only partly System RAM (dumps hold whole pages, as AVML's)"),
        (0x9FC00, 0x100000, "not in /proc/iomem (a hole)"),
    ]


def test_json_on_failure_prints_nothing(kernel, tmp_path):
    out, _ = kernel
    proc = dump_cli(tmp_path, "--json", "-o", str(out / "x"), "0x5000000+4K")
    assert "not all System RAM" in one_line_error(proc)


def test_no_meta(kernel):
    out, _ = kernel
    with pytest.raises(PyphysError):
        dump.dump(str(out / "nope" / "x"), None, "raw")
    dump.dump(str(out / "x.raw"), [dump.parse_range("0x100000+4K")], "raw", meta=False)
    assert sorted(os.listdir(out)) == ["x.raw", "x.raw.sha256"]


def test_a_reader_that_leaves_ends_the_stream_in_one_line(kernel, tmp_path):
    """``pyphys dump -o - | head -c 64``: EPIPE, one line on stderr, a failure status."""
    dumper = subprocess.Popen(
        [sys.executable, "-m", "pyphys", "dump", "-f", "lime", "-o", "-"],
        env=dump_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = dumper.stdout.read(64)
    dumper.stdout.close()
    err = dumper.stderr.read().decode()
    assert dumper.wait() == 1 and head[:4] == b"EMiL"
    assert err.count("\n") == 1 and "the reader closed the pipe" in err and "Traceback" not in err, err
