"""ksym's sources on a canned tree captured from Debian's stock kernel in the lab guest.

Ground truth from outside the code under test: pyphys.ko's nodename_phys (computed in the
kernel with __pa_symbol) captured from the same boot as kallsyms, iomem and kcore headers.
"""

from __future__ import annotations

import io
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
