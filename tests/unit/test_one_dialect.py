"""One dialect across subcommands: sizes with K/M/G/T wherever a length is taken, one range
parser, messages that quote the argument as typed, results only on stdout, and every address or
range a command prints accepted back by the others. Canned trees only (tests/fixtures)."""

from __future__ import annotations

import json
import os

import pytest

from pyphys import cli, pagemap, paths

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
needs_4k = pytest.mark.skipif(pagemap.PAGE_SIZE != 4096, reason="the canned pagemap assumes 4 KiB pages")


@pytest.fixture
def proc():
    old = paths.set_roots(proc=os.path.join(FIX, "pagemap", "proc"))
    yield
    paths.set_roots(**old)


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@needs_4k
def test_pagemap_range_takes_a_size_suffix(proc, capsys):
    # 32K = 8 pages of 4 KiB: the same table as the START-END form the canned maps give
    rc, want, _ = run(capsys, "pagemap", "4242", "0x10000-0x18000", "--pages")
    assert rc == 0 and sum(ln.startswith("0x") for ln in want.splitlines()) == 8
    rc, out, err = run(capsys, "pagemap", "4242", "0x10000+32K", "--pages")
    assert (rc, out, err) == (0, want, "")


@needs_4k
@pytest.mark.parametrize("arg,part", [("0x1000+-5", "'-5'"), ("0x-1", "'0x'"), ("0x1000+1x", "'1x'")])
def test_pagemap_range_message_quotes_the_argument_as_typed(proc, capsys, arg, part):
    rc, out, err = run(capsys, "pagemap", "4242", arg)
    assert rc == 2 and out == ""
    assert f"'{arg}'" in err and part in err
    assert "'0x1000+'" not in err  # not the argument cut at the wrong separator


@needs_4k
@pytest.mark.parametrize("mode", [[], ["--pages"], ["--runs", "--count"]])
def test_pagemap_failing_range_prints_nothing_on_stdout(proc, capsys, mode):
    # 0x25000 lies in no mapping of the canned process 4242: the scan fails before any row
    rc, out, err = run(capsys, "pagemap", "4242", "0x25000-0x27000", *mode)
    assert rc == 1 and out == ""
    assert len(err.splitlines()) == 1 and "is not mapped in process 4242" in err


@needs_4k
@pytest.mark.parametrize("argv", [["0x10234"], ["--all"]])
def test_pagemap_notes_go_to_stderr(capsys, argv):
    # the canned proc-hidden zeroes PFNs as the kernel does without CAP_SYS_ADMIN: a note says so
    old = paths.set_roots(proc=os.path.join(FIX, "pagemap", "proc-hidden"))
    try:
        rc, out, err = run(capsys, "pagemap", "4242", *argv)
        assert rc == 0 and "note:" not in out
        assert "pyphys pagemap: note: " in err
        rc, out, err = run(capsys, "pagemap", "4242", *argv, "--json")
        assert rc == 0 and json.loads(out)["notes"] and err == ""  # --json: the notes stay in the document
    finally:
        paths.set_roots(**old)


# -- what one command prints, the others take back -------------------------------------------
@pytest.fixture
def machine(tmp_path):
    """The canned machine of the bad-input tests: stock Debian 6.1's /proc and /sys, a sparse
    /dev/mem whose first 64K hold bytes 00..ff repeated, pyphys.ko's buffer at 0x1000."""
    from test_bad_input import make_tree

    root = tmp_path / "m"
    make_tree(root)
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    yield root
    paths.set_roots(**old)


def _iomem_truth(root):
    """(start, END exclusive, name) of each line of the canned /proc/iomem (inclusive ENDs)."""
    rows = []
    for line in (root / "proc" / "iomem").read_text().splitlines():
        span, _, name = line.strip().partition(" : ")
        lo, hi = span.split("-")
        rows.append((int(lo, 16), int(hi, 16) + 1, name))
    return rows


def test_iomem_ranges_paste_back(machine, capsys):
    from pyphys import dump

    rc, out, _ = run(capsys, "iomem")
    assert rc == 0
    printed = [ln.split() for ln in out.splitlines() if ln.lstrip().startswith("0x")]
    truth = _iomem_truth(machine)
    assert len(printed) == len(truth)
    for (span, *_), (lo, end, name) in zip(printed, truth):
        r = dump.parse_range(span)  # dump's range argument
        assert (r.start, r.end) == (lo, end)
        start_text, end_text = span.split("-")
        rc, out, err = run(capsys, "iomem", start_text)  # iomem's ADDR argument
        assert rc == 0 and out.startswith(f"{lo:#x}: ") and name in out, (span, out, err)
    # devmem's address argument: the first System RAM region starts where the module's buffer is
    ram = next(p[0] for p in printed if p[-2:] == ["System", "RAM"])
    rc, out, _ = run(capsys, "devmem", ram.split("-")[0], "--range", "16", "--json", "-q")
    mem = (machine / "dev" / "mem").read_bytes()[:0x10000]
    start = int(ram.split("-")[0], 16)
    assert rc == 0 and bytes.fromhex(json.loads(out)["data"]) == mem[start : start + 16]


def test_ksym_phys_pastes_back_to_devmem(machine, capsys):
    rc, out, _ = run(capsys, "ksym", "init_uts_ns", "--no-kcore")
    assert rc == 0
    phys = out.split("phys ", 1)[1].split()[0]
    # pyphys.ko's sysfs says where init_uts_ns.name.nodename is: 65 bytes (sysname[65]) in
    want = (machine / "sys" / "kernel" / "pyphys" / "nodename_phys").read_text().strip()
    assert int(phys, 16) == int(want, 16) - 65
    rc, out, err = run(capsys, "devmem", phys, "8", "-q", "--force")
    assert rc == 0 and out == "0x00\n", err  # the sparse stand-in /dev/mem reads zeros there


@needs_4k
def test_pagemap_runs_paste_back(proc, capsys):
    rc, out, _ = run(capsys, "pagemap", "4242", "0x10000-0x600000")
    assert rc == 0
    runs = [ln for ln in out.splitlines() if ln.startswith("0x")]
    assert len(runs) > 3
    for line in runs:
        span = line.split()[0]
        rc, again, err = run(capsys, "pagemap", "4242", span)
        rows = [ln for ln in again.splitlines() if ln.startswith("0x")]
        assert rc == 0 and rows == [line], (span, err)


@needs_4k
def test_pagemap_json_lookup_and_pages_agree_by_the_doc(proc, capsys):
    # ground truth: the canned /proc/4242/pagemap entry of page 0x10 and kpageflags of its frame
    with open(os.path.join(FIX, "pagemap", "proc", "4242", "pagemap"), "rb") as f:
        f.seek(0x10 * 8)
        entry = int.from_bytes(f.read(8), "little")
    pfn = entry & ((1 << 55) - 1)
    with open(os.path.join(FIX, "pagemap", "proc", "kpageflags"), "rb") as f:
        f.seek(pfn * 8)
        kflags = int.from_bytes(f.read(8), "little")
    rc, out, _ = run(capsys, "pagemap", "4242", "0x10234", "--json")
    one = json.loads(out)
    rc2, out, _ = run(capsys, "pagemap", "4242", "0x10000+4K", "--pages", "--json")
    doc = json.loads(out)
    (page,) = doc["pages"]  # a list of results under a plural key, in an object
    assert rc == rc2 == 0
    assert (doc["pid"], doc["ranges"], doc["page_size"]) == (4242, [["0x10000", "0x11000"]], 4096)
    assert one["virt"] == "0x10234" and page["virt"] == "0x10000"  # docs/json.md: virtual address
    assert page["raw"] == f"{entry:#018x}" and one["entry"]["raw"] == page["raw"]
    assert "vaddr" not in one and "vaddr" not in page and "entry" not in page
    assert "phys_addr" not in one and "flag_names" not in one
    assert one["pfn"] == page["pfn"] == pfn  # an integer, as docs/json.md says
    assert one["phys"] == hex(pfn * 4096 + 0x234) and page["phys"] == hex(pfn * 4096)
    assert one["kpageflags"] == page["kpageflags"] == f"{kflags:#018x}"
    assert one["flags"] == page["flags"] and "mappedtodisk" in one["flags"]
    assert one["flags_raw"] == page["flags_raw"] and int(one["flags_raw"], 16) & kflags == kflags


def test_json_documents_follow_the_schemas(machine, capsys):
    from helpers import validate_json

    truth = _iomem_truth(machine)
    for argv in (["iomem"], ["iomem", "--ram"]):
        rc, out, _ = run(capsys, *argv, "--json")
        assert rc == 0
        doc = json.loads(out)
        validate_json(doc, "iomem")
        first = doc["regions"][0]
        assert (int(first["start"], 16), int(first["end"], 16), first["size"]) == (
            next((lo, end, end - lo) for lo, end, name in truth if "--ram" not in argv or name == "System RAM")
        )
    rc, out, _ = run(capsys, "iomem", "0x1000", "--json")
    doc = json.loads(out)
    validate_json(doc, "iomem")
    assert doc["results"][0]["phys"] == "0x1000" and doc["results"][0]["chain"][0]["end"] == "0x9fc00"
    rc, out, _ = run(capsys, "ksym", "init_uts_ns", "--no-kcore", "--json")
    validate_json(json.loads(out), "ksym")
    sysfs = machine / "sys" / "bus" / "pci" / "devices"
    slots = sorted(os.listdir(sysfs))
    rc, out, _ = run(capsys, "pci", "list", "--json")
    doc = json.loads(out)
    validate_json(doc, "pci-list")
    assert rc == 0 and [d["slot"] for d in doc["devices"]] == slots
    # lspci -d 1234: is every device of vendor 0x1234, whatever its device ID (pciutils lib/filter.c)
    want = [s for s in slots if (sysfs / s / "vendor").read_text().strip() == "0x1234"]
    rc, out, _ = run(capsys, "pci", "list", "1234:", "--json")
    doc = json.loads(out)
    validate_json(doc, "pci-list")
    assert rc == 0 and want and [d["slot"] for d in doc["devices"]] == want
    for slot in slots:
        rc, out, _ = run(capsys, "pci", "show", slot, "--json")
        assert rc == 0
        validate_json(json.loads(out), "pci-show")
        rc, out, _ = run(capsys, "pci", "config", slot, "--json")
        validate_json(json.loads(out), "pci-config")
    paths.set_roots(proc=os.path.join(FIX, "pagemap", "proc"))
    if pagemap.PAGE_SIZE == 4096:
        rc, out, _ = run(capsys, "pagemap", "4242", "0x10234", "--json")
        validate_json(json.loads(out), "pagemap")
        rc, out, _ = run(capsys, "pagemap", "4242", "0x10000-0x18000", "--pages", "--json")
        validate_json(json.loads(out), "pagemap-pages")
        rc, out, _ = run(capsys, "pagemap", "4242", "0x10000-0x18000", "--runs", "--json")
        validate_json(json.loads(out), "pagemap-runs")
