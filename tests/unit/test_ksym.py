"""ksym's sources on a canned tree captured from Debian's stock kernel in the lab guest.

Ground truth from outside the code under test: pyphys.ko's nodename_phys (computed in the
kernel with __pa_symbol) captured from the same boot as kallsyms, iomem and kcore headers.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from pyphys import cli, ksym, paths
from pyphys.errors import NotFoundError, PyphysError, UsageError

STOCK = Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "stock-debian-6.1"
NODENAME_PHYS = 0x227FB041  # sys/kernel/pyphys/nodename_phys of that boot


@pytest.fixture
def stock(tmp_path):
    tree = tmp_path / "m"
    shutil.copytree(STOCK, tree)
    old = paths.set_roots(proc=str(tree / "proc"), sys=str(tree / "sys"), dev=str(tree / "dev"))
    yield tree
    paths.set_roots(**old)


def test_three_sources_agree_on_nodename(stock):
    report = ksym.lookup("nodename")
    by = {s.name: s for s in report.sources}
    assert by["module"].phys == NODENAME_PHYS
    assert by["kallsyms+iomem"].phys == NODENAME_PHYS
    assert by["kcore"].phys == NODENAME_PHYS
    assert report.agree is True and report.phys == NODENAME_PHYS
    assert report.virt == 0xFFFFFFFF9EDFB000 + 65
    assert report.size == 65


def test_init_uts_ns_and_phys_base(stock):
    report = ksym.lookup("init_uts_ns")
    assert report.phys == NODENAME_PHYS - 65 and report.agree is True
    kal = report.sources[0]
    # KASLR: _text at 0xffffffff9d200000, Kernel code at 0x20c00000 -> phys_base 0x3a00000
    assert "phys_base=0x3a00000" in kal.note
    assert report.size == 0x1B0  # up to initial_code, the next symbol


def test_symbol_without_module_source(stock):
    report = ksym.lookup("jiffies_64+8")
    assert [s.name for s in report.sources] == ["kallsyms+iomem", "kcore"]
    assert report.phys == 0x20C00000 + (0xFFFFFFFF9EC079C0 + 8 - 0xFFFFFFFF9D200000)
    assert report.agree is True


def test_sources_disagree_is_reported(stock):
    (stock / "sys" / "kernel" / "pyphys" / "nodename_phys").write_text("0x1000\n")
    report = ksym.lookup("nodename")
    assert report.agree is False and report.phys is None


def test_kptr_restrict_zeros_explained(stock):
    text = (stock / "proc" / "kallsyms").read_text()
    (stock / "proc" / "kallsyms").write_text(
        "".join("0000000000000000" + line[16:] + "\n" for line in text.splitlines())
    )
    (stock / "proc" / "sys" / "kernel" / "kptr_restrict").write_text("2\n")
    report = ksym.lookup("nodename")
    kal = report.sources[0]
    assert kal.phys is None and "kptr_restrict=2" in kal.note
    assert report.phys == NODENAME_PHYS  # the module still answers
    (stock / "sys" / "kernel" / "pyphys" / "buffer_phys").unlink()
    shutil.rmtree(stock / "sys" / "kernel" / "pyphys")
    with pytest.raises(NotFoundError, match="kptr_restrict"):
        ksym.lookup("nodename")


def test_unknown_symbol(stock):
    with pytest.raises(NotFoundError, match="not in /proc/kallsyms"):
        ksym.lookup("no_such_symbol")


@pytest.mark.parametrize("bad", ["", "a b", "x+zz", "../etc"])
def test_bad_symbol_names(stock, bad):
    with pytest.raises(UsageError):
        ksym.lookup(bad)


def test_kcore_parse_rejects_non_elf():
    with pytest.raises(PyphysError, match="kcore"):
        ksym.parse_kcore_segments(io.BytesIO(b"not an elf file at all" * 10))


def test_kcore_vmalloc_has_no_paddr(stock):
    with open(stock / "proc" / "kcore", "rb") as f:
        segs = ksym.parse_kcore_segments(f)
    phys, note = ksym.kcore_translate(segs, 0xFFFFFFFFC0001000)  # module area
    assert phys is None and "no physical address" in note


def test_cli(stock, capsys):
    assert cli.main(["ksym", "nodename"]) == 0
    out = capsys.readouterr().out
    assert f"phys {NODENAME_PHYS:#x}" in out and "agree: 3 sources" in out
    (stock / "sys" / "kernel" / "pyphys" / "nodename_phys").write_text("0x1000\n")
    assert cli.main(["ksym", "nodename", "--json"]) == 1


def test_cli_json(stock, capsys):
    import json

    assert cli.main(["ksym", "nodename", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    virt = f"{0xFFFFFFFF9EDFB000 + 65:#x}"
    assert {k: doc[k] for k in ("name", "virt", "phys", "size", "agree")} == {
        "name": "nodename",
        "virt": virt,
        "phys": f"{NODENAME_PHYS:#x}",
        "size": 65,
        "agree": True,
    }
    by = {s["name"]: s for s in doc["sources"]}
    assert sorted(by) == ["kallsyms+iomem", "kcore", "module"]
    for s in by.values():
        assert list(s) == ["name", "virt", "phys", "note"] and s["phys"] == f"{NODENAME_PHYS:#x}"
    assert by["kallsyms+iomem"]["virt"] == virt


def test_lab_kernel_sources_agree(tmp_path):
    """Same check on the lab kernel's capture (no KASLR: phys_base 0)."""
    tree = tmp_path / "lab"
    shutil.copytree(STOCK.parent / "lab-6.1", tree)
    old = paths.set_roots(proc=str(tree / "proc"), sys=str(tree / "sys"), dev=str(tree / "dev"))
    try:
        report = ksym.lookup("nodename")
    finally:
        paths.set_roots(**old)
    assert report.agree is True and len(report.physes) == 3
    assert report.phys == 0x1ACBBA1  # that boot's sys/kernel/pyphys/nodename_phys


def test_module_label_names_the_helper_the_c_source_uses(stock):
    """The module source's note names the kernel helper nodename_phys_show() really calls."""
    src = (Path(ksym.__file__).parent / "kmod_src" / "pyphys.c").read_text()
    body = src.split("nodename_phys_show(", 1)[1].split("\n}", 1)[0]
    helper = next(h for h in ("__pa_symbol", "virt_to_phys", "__pa") if f"{h}(" in body)
    mod = next(s for s in ksym.lookup("nodename").sources if s.name == "module")
    assert f"({helper} in the kernel)" in mod.note
    from pyphys import hostname

    assert hostname.locate_nodename()[2] == f"pyphys.ko sysfs ({helper})"


# -- kcore's VMCOREINFO: the virtual address when kallsyms is hidden -------------------------------
def hide_kallsyms_and_module(tree):
    """kptr_restrict=2 and no pyphys.ko: every kallsyms address reads 0, no sysfs directory."""
    ks = tree / "proc" / "kallsyms"
    ks.write_text("".join("0000000000000000 " + ln.split(" ", 1)[1] for ln in ks.read_text().splitlines(True)))
    (tree / "proc" / "sys" / "kernel" / "kptr_restrict").write_text("2\n")
    shutil.rmtree(tree / "sys" / "kernel" / "pyphys")


def synthetic_kcore(loads, vmcoreinfo: bytes) -> bytes:
    """An ELF64 little-endian core: a PT_NOTE (CORE note, then VMCOREINFO) and PT_LOADs
    (vaddr, paddr, size), laid out like fs/proc/kcore.c writes them."""
    import struct

    def note(name: bytes, ntype: int, desc: bytes) -> bytes:
        pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
        return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)

    notes = note(b"CORE", 1, b"\0" * 336) + note(b"VMCOREINFO", 0, vmcoreinfo)
    phnum = 1 + len(loads)
    notes_at = 64 + 56 * phnum
    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
        4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0,
    )  # fmt: skip
    phdrs = struct.pack("<IIQQQQQQ", 4, 0, notes_at, 0, 0, len(notes), 0, 0)
    for vaddr, paddr, size in loads:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, vaddr - 0xFFFF800000000000, vaddr, paddr, size, size, 4096)
    return ehdr + phdrs + notes


def test_vmcoreinfo_gives_the_address_kallsyms_hides(tmp_path):
    """A synthetic kcore: SYMBOL() mapped through the PT_LOAD holding it; -1 p_paddr gives none."""
    tree = tmp_path / "m"
    shutil.copytree(STOCK, tree)
    hide_kallsyms_and_module(tree)
    info = b"OSRELEASE=6.12.0\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a13be0\n"
    info += b"SYMBOL(vmap_area_list)=ffffc90000123000\n"
    loads = [
        (0xFFFFFFFF81000000, 0x3E00000, 0x2000000),  # KCORE_TEXT: __pa_symbol
        (0xFFFFC90000000000, ksym.KCORE_NO_PADDR, 0x100000),  # vmalloc: (elf_addr_t)-1
        (0xFFFF888000100000, 0x100000, 0x3FF00000),  # KCORE_RAM: __pa
    ]
    (tree / "proc" / "kcore").write_bytes(synthetic_kcore(loads, info))
    old = paths.set_roots(proc=str(tree / "proc"), sys=str(tree / "sys"), dev=str(tree / "dev"))
    try:
        report = ksym.lookup("nodename")
        with pytest.raises(NotFoundError, match="no source knows"):
            ksym.lookup("vmap_area_list")
        with pytest.raises(NotFoundError, match=r"no SYMBOL\(jiffies_64\)"):
            ksym.lookup("jiffies_64")
    finally:
        paths.set_roots(**old)
    kcore = next(s for s in report.sources if s.name == "kcore")
    assert kcore.virt == 0xFFFFFFFF82A13BE0 + 65
    assert kcore.phys == 0x3E00000 + (0xFFFFFFFF82A13BE0 - 0xFFFFFFFF81000000) + 65
    assert "VMCOREINFO SYMBOL(init_uts_ns)=0xffffffff82a13be0" in kcore.note
    assert report.phys == kcore.phys


def test_vmcoreinfo_on_the_lab_capture_matches_the_module(tmp_path, capsys):
    """The lab kernel's captured /proc/kcore headers and notes, kallsyms hidden, module gone:
    kcore alone finds init_uts_ns, and it is that boot's nodename_phys minus the field offset."""
    tree = tmp_path / "lab"
    shutil.copytree(STOCK.parent / "lab-6.1", tree)
    nodename_phys = int((tree / "sys" / "kernel" / "pyphys" / "nodename_phys").read_text(), 16)
    hide_kallsyms_and_module(tree)
    old = paths.set_roots(proc=str(tree / "proc"), sys=str(tree / "sys"), dev=str(tree / "dev"))
    try:
        assert cli.main(["ksym", "init_uts_ns", "--json"]) == 0
    finally:
        paths.set_roots(**old)
    import json

    doc = json.loads(capsys.readouterr().out)
    assert int(doc["phys"], 16) == nodename_phys - ksym.NODENAME_OFFSET == 0x1ACBB60


def test_kcore_permission_names_cap_sys_rawio(stock, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    def fake_open(path, *a, **kw):
        if str(path).endswith("/kcore"):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    kcore = next(s for s in ksym.lookup("init_uts_ns").sources if s.name == "kcore")
    assert kcore.phys is None and "CAP_SYS_RAWIO" in kcore.note


# -- a few symbols picked by name: what the full parse says, at a fraction of its cost -------------
WANTED = ("_text", "_stext", "page_offset_base", "init_uts_ns", "no_such_symbol")


@pytest.mark.parametrize("source", ["captured", "host"])
def test_wanted_symbols_are_the_full_parses(stock, source):
    path = stock / "proc" / "kallsyms" if source == "captured" else Path("/proc/kallsyms")
    try:
        text = path.read_text()
    except OSError as err:
        pytest.skip(f"{path}: {err}")
    full = ksym.parse_kallsyms(io.StringIO(text))
    picked = ksym.parse_kallsyms(io.StringIO(text), WANTED)
    assert picked.hidden == full.hidden
    assert {n: picked.lookup(n) for n in WANTED} == {n: full.lookup(n) for n in WANTED}
    if not full.hidden:
        assert picked.lookup("_text") and picked.lookup("no_such_symbol") is None
        assert full.size_of("_text") and picked.size_of("_text") is None  # no neighbours, no false bound


def test_wanted_symbols_skip_modules_and_see_hidden():
    text = "0000000000000000 A fixed_percpu_data\nffffffff81000000 T _text\nffffffffc0001000 t _stext\t[mod]\n"
    picked = ksym.parse_kallsyms(io.StringIO(text), ["_text", "_stext"])
    assert (picked.lookup("_text"), picked.lookup("_stext"), picked.hidden) == (0xFFFFFFFF81000000, None, False)
    zeros = text.replace("ffffffff81000000", "0" * 16).replace("ffffffffc0001000", "0" * 16)
    assert ksym.parse_kallsyms(io.StringIO(zeros), ["_text"]).hidden is True


def test_wanted_symbols_whole_names_first_core_line_and_no_final_newline():
    text = (
        "ffffffffc0002000 t init_uts_ns\t[mod]\n"  # a module's, listed first: not the kernel's
        "ffffffff82000000 D xinit_uts_ns\n"  # a longer name ending in the wanted one
        "ffffffff82001000 D init_uts_ns_extra\n"
        "ffffffff82002000 D init_uts_ns\n"
        "ffffffff82003000 D init_uts_ns\n"  # a duplicate: the first line counts, as in the full parse
        "ffffffff81000000 T _text"  # the last line, with no newline
    )
    picked = ksym.parse_kallsyms(io.StringIO(text), ["init_uts_ns", "_text"])
    full = ksym.parse_kallsyms(io.StringIO(text))
    assert picked.lookup("init_uts_ns") == full.lookup("init_uts_ns") == 0xFFFFFFFF82002000
    assert picked.lookup("_text") == full.lookup("_text") == 0xFFFFFFFF81000000


def test_walks_kernel_check_on_the_captured_boot(stock):
    """walk's check of a kernel address, from that boot's kallsyms (_text, _end) and iomem."""
    from pyphys import walk

    text = 0xFFFFFFFF9D200000  # _text of the captured kallsyms; "Kernel code" starts at 0x20c00000
    image = walk._kernel_check(text + 0x1234, 4, None)
    assert (image["note"], image["expected"]) == ("kernel image", 0x20C00000 + 0x1234)
    direct = walk._kernel_check(walk.PAGE_OFFSET_L4 + 0x5000, 4, None)  # no page_offset_base: fixed base
    assert (direct["note"], direct["expected"]) == ("direct map", 0x5000)
    assert walk._kernel_check(0xFFFFFFFFA0630000 + 0x1000, 4, None)["expected"] is None  # past _end


def test_a_symbol_not_asked_for_is_a_bug_not_a_miss():
    picked = ksym.parse_kallsyms(io.StringIO("ffffffff81000000 T _text\n"), ["_text"])
    with pytest.raises(ValueError, match="not '_end'"):
        picked.lookup("_end")


def test_a_modules_symbol_by_name(stock):
    """pyphys_buffer as the lab's kallsyms lists it: a module's data symbol, tab then [module]."""
    kallsyms = stock / "proc" / "kallsyms"
    text = kallsyms.read_text()
    kallsyms.write_text(
        "ffffffffc0a01000 b pyphys_buffer\t[other]\n"  # the same name in another module
        + text
        + "ffffffffc0b02000 b pyphys_buffer\t[pyphys]\nffffffffc0b03000 b pyphys_buffer_x\t[pyphys]\n"
    )
    assert ksym.symbol_address("pyphys_buffer", module="pyphys") == 0xFFFFFFFFC0B02000
    assert ksym.symbol_address("pyphys_buffer") is None  # not the core kernel's
    assert ksym.symbol_address("init_uts_ns") == ksym.parse_kallsyms(io.StringIO(text)).lookup("init_uts_ns")
    assert ksym.symbol_address("pyphys_buffer", module="absent") is None
    kallsyms.write_text(re.sub(r"(?m)^[0-9a-f]{16}", "0" * 16, text))  # kptr_restrict: zeros are no address
    assert ksym.symbol_address("init_uts_ns") is None
