"""Classroom labs without a VM: the results file parser, the templates, the independent readers
the checkers use (on canned /proc files and a hand-made LiME file), the guest shell script, and
the CLI's handling of bad input."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pyphys import labs, paths
from pyphys.errors import NotFoundError, UsageError
from pyphys.labs import grading, probes, start

REPO = Path(labs.REPO)


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
    v = grading.parse_results(text)
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
        grading.parse_results("ok = 1\n" + bad + "\n")


@pytest.mark.parametrize("n", sorted(labs.LABS))
def test_template_lists_every_key_and_parses_back(n):
    lab = labs.LABS[n]
    values = grading.parse_results(lab.template())
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
    report = grading.check(2, str(path))
    assert not report.passed
    assert {i.key for i in report.items} == {k.name for k in labs.LABS[2].keys}


def test_missing_results_file_says_how_to_make_one(tmp_path):
    with pytest.raises(NotFoundError, match="--template"):
        grading.check(3, str(tmp_path / "nothing.txt"))


def test_unknown_lab():
    with pytest.raises(UsageError, match="no lab 99"):
        labs.get(99)


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
    assert probes.errno_name(answer) == name


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
        assert probes.innermost_region(0x01E41234) == "Kernel data"
        assert probes.innermost_region(0x03000000) == "System RAM"
        assert probes.innermost_region(0xFE000010) == "0000:00:03.0"
        assert probes.innermost_region(0xF0000000) is None
    finally:
        paths.set_roots(**old)


def test_lime_reader_finds_ranges_and_data_offsets(tmp_path):
    path = tmp_path / "x.lime"
    with open(path, "wb") as f:
        for start, data in ((0x1000, b"A" * 4096), (0x9000, b"B" * 8192)):
            f.write(struct.pack("<IIQQ8s", 0x4C694D45, 1, start, start + len(data) - 1, bytes(8)) + data)
    assert probes.lime_ranges(str(path)) == [(0x1000, 0x1FFF, 32), (0x9000, 0xAFFF, 32 + 4096 + 32)]
    with open(path, "r+b") as f:
        f.seek(32 + 4096)
        f.write(b"XXXX")  # break the second header's magic
    with pytest.raises(probes.ProbeError, match="no LiME v1 header"):
        probes.lime_ranges(str(path))


def test_slips_are_diagnosed():
    pfn, page = 0x1A2B, probes.PAGE_SIZE
    assert "physical address" in grading.pfn_slips(pfn)[pfn * page]
    assert "VIRTUAL page number" in grading.pfn_slips(pfn, 0x7F0000000 * page)[0x7F0000000]
    assert "PFN" in grading.phys_slips(pfn * page + 0x10)[pfn]
    assert "start of the page" in grading.phys_slips(pfn * page + 0x10)[pfn * page]
    assert 12345 not in grading.phys_slips(pfn * page)


# -- the grader API ------------------------------------------------------------------------------
def _grader(**values):
    report = grading.Report(9, "/tmp/x.txt")
    return grading.Grader(report, values), report


def _items(report):
    return {i.key: (i.status, i.detail) for i in report.items}


def test_expect_reads_the_answer_as_the_truths_type():
    g, report = _grader(pid="52", buf="0x2fcc000", bad="2fcc", shared="no", cow="maybe", text=" hello ")
    assert g.expect("pid", 52, wrong="is not it") == 52
    g.expect(
        "buf", 0x2FCC000 + 0x10, "(pagemap)", "is not where it lives", show=hex, slips=grading.phys_slips(0x2FCC010)
    )
    g.expect("bad", 0x2FCC)
    g.expect("shared", False, "(pagemap bit 56)")
    g.expect("cow", True)
    g.expect("text", "hello", ": the same", normalize=str.strip)
    assert g.expect("absent", 1) is None
    got = _items(report)
    assert got["pid"] == ("OK", "52")
    status, detail = got["buf"]
    assert status == "WRONG" and detail.startswith("0x2fcc000 is not where it lives -- that is the start of the page")
    assert got["bad"][0] == "WRONG" and "did you mean 0x2fcc" in got["bad"][1]
    assert got["shared"] == ("OK", "no (pagemap bit 56)")
    assert got["cow"] == ("WRONG", "'maybe' is not yes or no")
    assert got["text"] == ("OK", "' hello ': the same")
    assert got["absent"][0] == "MISSING"


def test_needs_turns_a_failed_probe_into_errors_for_the_ungraded_keys(tmp_path):
    from pyphys.errors import oserrors

    g, report = _grader(a="1", b="2")
    with g.needs("a", "b", "c"):
        g.expect("a", 1)
        with oserrors("cannot read the truth"):
            open(tmp_path / "missing")
        g.expect("b", 2)  # never reached
    assert _items(report)["a"] == ("OK", "1")
    assert _items(report)["b"][0] == "ERROR" and "cannot read the truth" in _items(report)["b"][1]
    assert _items(report)["c"][0] == "ERROR"
    with pytest.raises(KeyError), g.needs("d"):  # a bug in a grader is not a verdict
        raise KeyError("d")


def test_a_failed_precondition_of_the_whole_lab_is_an_error_on_every_value(tmp_path):
    (tmp_path / "bus" / "pci" / "devices").mkdir(parents=True)
    path = tmp_path / "lab5.txt"
    path.write_text("edu_slot = 00:05.0\nedu_id = 0x010000ed\n")
    old = paths.set_roots(sys=str(tmp_path))
    try:
        report = grading.check(5, str(path))
    finally:
        paths.set_roots(**old)
    assert [i.key for i in report.items] == [k.name for k in labs.LABS[5].keys]
    assert all(i.status == "ERROR" and "found 0 and 0" in i.detail for i in report.items)


BUF_PHYS = 0x3000


def _fake_module(tmp_path, message: bytes = b"") -> dict:
    """A canned pyphys.ko sysfs and /dev/mem: the buffer's load pattern (0x50590000 | word) at
    BUF_PHYS, with ``message`` at offset 0x100 and 0xdeadbeef poked at 0x20, in both."""
    buf = bytearray(struct.pack("<1024I", *(0x50590000 | i for i in range(1024))))
    buf[0x20:0x24] = struct.pack("<I", 0xDEADBEEF)
    buf[0x100 : 0x100 + len(message)] = message
    kdir = tmp_path / "sys" / "kernel" / "pyphys"
    kdir.mkdir(parents=True)
    (kdir / "buffer_phys").write_text(f"{BUF_PHYS:#x}\n")
    (kdir / "buffer").write_bytes(bytes(buf))
    (tmp_path / "dev").mkdir()
    with open(tmp_path / "dev" / "mem", "wb") as f:
        f.seek(BUF_PHYS)
        f.write(buf)
    return {"PYPHYS_SYS": str(tmp_path / "sys"), "PYPHYS_DEV": str(tmp_path / "dev")}


def test_lab2_grader_on_a_canned_module(tmp_path, monkeypatch):
    roots = _fake_module(tmp_path, b"Hi there\0")
    monkeypatch.setenv("PATH", str(tmp_path))  # no busybox: word 7's truth is unknown, not guessed
    results = tmp_path / "lab2.txt"
    results.write_text(
        f"buffer_phys = {BUF_PHYS // probes.PAGE_SIZE}\nword7_value = 0x50590007\npoke_offset = 0x20\n"
        "poke_value = 0xdeadbeef\nmessage_offset = 0x100\nmessage = Hi there\n"
    )
    old = paths.set_roots(sys=roots["PYPHYS_SYS"], dev=roots["PYPHYS_DEV"])
    try:
        got = _items(grading.check(2, str(results)))
    finally:
        paths.set_roots(**old)
    assert got["buffer_phys"][0] == "WRONG" and "that is the PFN" in got["buffer_phys"][1]
    assert got["word7_value"][0] == "ERROR" and "busybox" in got["word7_value"][1]
    assert got["poke_offset"][0] == got["poke_value"][0] == "OK"
    assert got["message_offset"][0] == got["message"][0] == "OK"


def test_guest_shell_script(tmp_path):
    lab = labs.LABS[4]
    script = start.guest_shell_script(
        lab,
        python="/venv/bin/python",
        repo="/src/pyphys",
        ko="/c/pyphys.ko",
        labdir=str(tmp_path),
        page_types="/c/linux/page-types",
    )
    assert script.startswith("#!/bin/sh\n")
    assert "export PYPHYS_LAB=4" in script and f"LABDIR={tmp_path}" in script
    assert "export PAGE_TYPES=/c/linux/page-types" in script
    assert 'insmod "$PYPHYS_KO"' in script and "pyphys lab check 4" in script
    assert script.rstrip().endswith("-i")
    # it is valid sh
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


def _cli(*args: str, env: dict | None = None):
    import os

    return subprocess.run(
        [sys.executable, "-m", "pyphys", "lab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "0"),
        ("check", "x"),
        ("check", "99"),
        ("start", "-1"),
        ("check", "2", "--file", "/nonexistent/lab2.txt"),
        ("start", "1", "--memory", "zz"),
        ("start", "1", "--memory", "16M"),
        ("start", "1", "--dir", "/nonexistent/x"),
        ("shell", "--kernel", "nonsense"),
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
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 2 * len(labs.LABS)


def test_cli_list_json():
    from helpers import validate_json

    res = _cli("list", "--json")
    assert res.returncode == 0 and res.stderr == ""
    validate_json(res.stdout, "lab-list")
    doc = json.loads(res.stdout)
    assert [lab["number"] for lab in doc["labs"]] == sorted(labs.LABS)
    for lab in doc["labs"]:  # each names a text that exists, and the keys its template asks for
        assert (REPO / lab["text"]).is_file()
        assert [k["name"] for k in lab["keys"]] == list(grading.parse_results(labs.LABS[lab["number"]].template()))


def test_cli_check_json_on_a_canned_module(tmp_path):
    from helpers import validate_json

    env = _fake_module(tmp_path, b"Hi there\0")
    results = tmp_path / "lab2.txt"
    results.write_text(f"buffer_phys = {BUF_PHYS:#x}\nmessage_offset = 0x100\nmessage = Hi there\n")
    res = _cli("check", "2", "--file", str(results), "--json", env={**env, "PATH": str(tmp_path)})
    assert res.returncode == 1, res.stderr
    validate_json(res.stdout, "lab-check")
    got = {i["key"]: i["status"] for i in json.loads(res.stdout)["items"]}
    assert got["buffer_phys"] == got["message"] == "OK" and got["poke_value"] == "MISSING"


@pytest.mark.parametrize("bad", [["--memory", "zz"], ["--memory", "1G", "--dir", "{tmp}/no/such"], ["99"]])
def test_cli_start_validates_before_writing_anything(tmp_path, bad):
    base = tmp_path / "labs"
    args = [a.replace("{tmp}", str(tmp_path)) for a in bad]
    number = [] if args == ["99"] else ["1"]
    res = _cli("start", *number, *args, *([] if "--dir" in args else ["--dir", str(base)]))
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no $LABDIR, no script
