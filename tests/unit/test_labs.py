"""Classroom labs without a VM: the results file parser, the templates, the independent readers
the checkers use (on canned /proc files and a hand-made LiME file), the guest shell script, and
the CLI's handling of bad input."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from pyphys import labs, paths
from pyphys.errors import NotFoundError, UsageError


def test_parse_results_forms():
    text = (
        "# a comment\n"
        "pid = 1234\n"
        "Buffer_PHYS: 0x1a2b000   # trailing comment\n"
        "message = hello world\n"
        'guest_message = "Dunia,vipi?\\r"\n'
        'quoted = "a # is kept"\n'
        "empty =\n"
        "\n"
    )
    v = labs.parse_results(text)
    assert v == {
        "pid": "1234",
        "buffer_phys": "0x1a2b000",
        "message": "hello world",
        "guest_message": "Dunia,vipi?\r",
        "quoted": "a # is kept",
        "empty": "",
    }


@pytest.mark.parametrize("bad", ["just words", "= 5", 'x = "unterminated', "1abc = 2"])
def test_parse_results_rejects_malformed_lines(bad):
    with pytest.raises(UsageError, match="line 2"):
        labs.parse_results("ok = 1\n" + bad + "\n")


@pytest.mark.parametrize("n", sorted(labs.LABS))
def test_template_lists_every_key_and_parses_back(n):
    lab = labs.LABS[n]
    values = labs.parse_results(lab.template())
    assert list(values) == [k.name for k in lab.keys]
    assert all(v == "" for v in values.values())
    assert lab.doc.endswith(f"lab{n}-{lab.slug}.md")


def test_every_lab_text_exists_and_names_its_check():
    for lab in labs.LABS.values():
        with open(lab.doc) as f:
            text = f.read()
        assert f"pyphys lab check {lab.number}" in text, lab.doc
        assert f"pyphys lab start {lab.number}" in text, lab.doc
        for k in lab.keys:
            assert k.name in text, (lab.doc, k.name)


def test_empty_values_are_missing_and_checks_never_pass_empty(tmp_path):
    path = tmp_path / "lab2.txt"
    path.write_text(labs.LABS[2].template())
    report = labs.check(2, str(path))
    assert not report.passed
    assert {i.key for i in report.items} == {k.name for k in labs.LABS[2].keys}


def test_missing_results_file_says_how_to_make_one(tmp_path):
    with pytest.raises(NotFoundError, match="--template"):
        labs.check(3, str(tmp_path / "nothing.txt"))


def test_unknown_lab():
    with pytest.raises(UsageError, match="no lab 7"):
        labs.get(7)


@pytest.mark.parametrize(
    "answer,name",
    [
        ("EPERM", "EPERM"),
        ("eperm", "EPERM"),
        ("1", "EPERM"),
        ("Operation not permitted", "EPERM"),
        ("Bad address", "EFAULT"),
        ("nonsense", None),
    ],
)
def test_errno_name(answer, name):
    assert labs.errno_name(answer) == name


IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
00100000-3ffdffff : System RAM
  01000000-01a00000 : Kernel code
  01a00001-01e3ffff : Kernel rodata
  01e40000-0207ffff : Kernel data
  02400000-025fffff : Kernel bss
fe000000-fe0fffff : 0000:00:03.0
"""


def test_innermost_region_on_a_canned_iomem(tmp_path):
    (tmp_path / "iomem").write_text(IOMEM)
    old = paths.set_roots(proc=str(tmp_path))
    try:
        assert labs.innermost_region(0x01E41234) == "Kernel data"
        assert labs.innermost_region(0x03000000) == "System RAM"
        assert labs.innermost_region(0xFE000010) == "0000:00:03.0"
        assert labs.innermost_region(0xF0000000) is None
    finally:
        paths.set_roots(**old)


def test_lime_reader_finds_ranges_and_data_offsets(tmp_path):
    path = tmp_path / "x.lime"
    with open(path, "wb") as f:
        for start, data in ((0x1000, b"A" * 4096), (0x9000, b"B" * 8192)):
            f.write(struct.pack("<IIQQ8s", 0x4C694D45, 1, start, start + len(data) - 1, bytes(8)) + data)
    assert labs._lime_ranges(str(path)) == [(0x1000, 0x1FFF, 32), (0x9000, 0xAFFF, 32 + 4096 + 32)]
    with open(path, "r+b") as f:
        f.seek(32 + 4096)
        f.write(b"XXXX")  # break the second header's magic
    with pytest.raises(labs.ProbeError, match="no LiME v1 header"):
        labs._lime_ranges(str(path))


def test_slips_are_diagnosed():
    pfn = 0x1A2B
    assert "physical address" in labs._pfn_slips(pfn * labs.PAGE_SIZE, pfn)
    assert "VIRTUAL page number" in labs._pfn_slips(0x7F0000000, pfn, 0x7F0000000 * labs.PAGE_SIZE)
    assert "PFN" in labs._phys_slips(pfn, pfn * labs.PAGE_SIZE)
    assert labs._phys_slips(12345, pfn * labs.PAGE_SIZE) == ""


def test_guest_shell_script(tmp_path):
    lab = labs.LABS[4]
    script = labs.guest_shell_script(
        lab, python="/venv/bin/python", repo="/src/pyphys", ko="/c/pyphys.ko", labdir=str(tmp_path)
    )
    assert script.startswith("#!/bin/sh\n")
    assert "export PYPHYS_LAB=4" in script and f"LABDIR={tmp_path}" in script
    assert 'insmod "$PYPHYS_KO"' in script and "pyphys lab check 4" in script
    assert script.rstrip().endswith("-i")
    # it is valid sh
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


def _cli(*args: str):
    return subprocess.run([sys.executable, "-m", "pyphys", "lab", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "0"),
        ("check", "x"),
        ("check", "7"),
        ("start", "-1"),
        ("check", "2", "--file", "/nonexistent/lab2.txt"),
    ],
)
def test_cli_bad_input_is_one_line(args):
    res = _cli(*args)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_cli_malformed_results_file(tmp_path):
    path = tmp_path / "lab1.txt"
    path.write_text("pid = 1\nthis line is broken\n")
    res = _cli("check", "1", "--file", str(path))
    assert res.returncode == 2
    assert "line 2" in res.stderr and "Traceback" not in res.stderr


def test_cli_template_and_list():
    res = _cli("check", "6", "--template")
    assert res.returncode == 0 and "efault_errno = " in res.stdout
    res = _cli("list")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 12
