"""The write journal and undo, against a file standing in for /dev/mem.

Ground truth: the stand-in file read with open(), and the journal file parsed as JSON lines.
"""

from __future__ import annotations

import json
import os
import struct

import pytest

from pyphys import journal, paths, physmem
from pyphys.errors import JournalError, PyphysError, UsageError, VerifyError

SIZE = 8 * physmem.PAGE_SIZE


@pytest.fixture
def fake(tmp_path, monkeypatch):
    (tmp_path / "dev").mkdir()
    (tmp_path / "proc").mkdir()
    (tmp_path / "dev" / "mem").write_bytes(b"".join(struct.pack("<I", i) for i in range(SIZE // 4)))
    (tmp_path / "proc" / "iomem").write_text(f"00000000-{SIZE - 1:08x} : System RAM\n")
    monkeypatch.setenv("PYPHYS_JOURNAL", str(tmp_path / "state" / "journal.jsonl"))
    old = paths.set_roots(dev=str(tmp_path / "dev"), proc=str(tmp_path / "proc"))
    yield tmp_path
    paths.set_roots(**old)


def raw(tmp_path, addr, n):
    with open(tmp_path / "dev" / "mem", "rb") as f:
        f.seek(addr)
        return f.read(n)


def poke(tmp_path, addr, data):
    with open(tmp_path / "dev" / "mem", "r+b") as f:
        f.seek(addr)
        f.write(data)


def lines(tmp_path):
    return [json.loads(x) for x in (tmp_path / "state" / "journal.jsonl").read_text().splitlines()]


def write(addr, data, label="t"):
    with physmem.open_physmem("mmap", writable=True) as pm:
        return journal.journaled_write(pm, addr, data, kind="phys", label=label)


def test_entry_records_old_and_new_before_write(fake):
    before = raw(fake, 0x100, 4)
    rec = write(0x100, b"\xde\xad\xbe\xef")
    assert raw(fake, 0x100, 4) == b"\xde\xad\xbe\xef"
    (entry,) = lines(fake)
    assert entry["id"] == rec.id == 1
    assert entry["kind"] == "phys" and entry["target"] == {"backend": "mmap"}
    assert int(entry["addr"], 16) == 0x100
    assert bytes.fromhex(entry["old"]) == before and entry["new"] == "deadbeef"
    assert os.stat(fake / "state" / "journal.jsonl").st_mode & 0o777 == 0o600


def test_journal_is_written_before_memory(fake, monkeypatch):
    seen = []
    real_write = physmem.PhysMem.write

    def spy(self, addr, data):
        seen.append(len(lines(fake)))
        return real_write(self, addr, data)

    monkeypatch.setattr(physmem.PhysMem, "write", spy)
    write(0x200, b"x")
    assert seen == [1]


def test_undo_last_restores_and_marks(fake):
    before = raw(fake, 0x100, 8)
    write(0x100, b"AAAA")
    write(0x104, b"BBBB")
    res = journal.Journal().undo()
    assert [r.id for r in res] == [2] and res[0].status == "restored"
    assert raw(fake, 0x100, 8) == b"AAAA" + before[4:]
    assert lines(fake)[-1]["ref"] == 2 and lines(fake)[-1]["event"] == "undone"
    assert len([x for x in lines(fake) if "id" in x]) == 2  # undo is not a new write


def test_undo_all_overlapping_in_reverse_order(fake):
    before = raw(fake, 0x300, 16)
    write(0x300, b"1" * 8)
    write(0x304, b"2" * 8)
    write(0x302, b"3" * 4)
    res = journal.Journal().undo("all")
    assert [r.id for r in res] == [3, 2, 1]
    assert raw(fake, 0x300, 16) == before
    assert all(e.undone for e in journal.Journal().entries())


def test_undo_refuses_when_bytes_changed_and_writes_nothing(fake):
    write(0x400, b"NEW!")
    write(0x500, b"MORE")
    poke(fake, 0x400, b"XXXX")  # someone else changed it since
    snap = raw(fake, 0, SIZE)
    with pytest.raises(JournalError, match="refusing"):
        journal.Journal().undo("all")
    assert raw(fake, 0, SIZE) == snap
    assert not any(e.undone for e in journal.Journal().entries())


def test_undo_of_older_entry_under_newer_overlap_refused(fake):
    write(0x600, b"aaaa")
    write(0x600, b"bbbb")
    with pytest.raises(JournalError):
        journal.Journal().undo(1)
    assert raw(fake, 0x600, 4) == b"bbbb"


def test_undo_by_id_and_count(fake):
    before = raw(fake, 0x700, 12)
    for i in range(3):
        write(0x700 + 4 * i, bytes([0x41 + i]) * 4)
    journal.Journal().undo(2)
    assert raw(fake, 0x704, 4) == before[4:8]
    res = journal.Journal().undo(count=5)
    assert [r.id for r in res] == [3, 1]
    assert raw(fake, 0x700, 12) == before


def test_undo_twice_is_usage_error(fake):
    write(0x800, b"zz")
    journal.Journal().undo(1)
    with pytest.raises(UsageError, match="already undone"):
        journal.Journal().undo(1)
    with pytest.raises(UsageError, match="no entry 9"):
        journal.Journal().undo(9)
    with pytest.raises(JournalError, match="nothing to undo"):
        journal.Journal().undo()


def test_already_restored_is_marked_without_write(fake):
    before = raw(fake, 0x900, 4)
    write(0x900, b"qqqq")
    poke(fake, 0x900, before)
    (res,) = journal.Journal().undo()
    assert res.status == "already"


def test_failed_write_is_marked_aborted(fake, monkeypatch):
    def boom(self, addr, data):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(physmem.PhysMem, "write", boom)
    with pytest.raises(OSError):
        write(0xA00, b"x")
    (entry,) = journal.Journal().entries()
    assert entry.aborted and not entry.active


class FlakyTarget:
    """A register that reads back inverted (like edu's liveness register)."""

    def __init__(self):
        self.mem = bytearray(16)

    def read(self, off, n):
        return bytes(self.mem[off : off + n])

    def write(self, off, data):
        self.mem[off : off + len(data)] = bytes(b ^ 0xFF for b in data)

    def describe(self):
        return {"device": "fake"}


def test_verify_error_records_actual(fake):
    tgt = FlakyTarget()
    with pytest.raises(VerifyError, match="read back"):
        journal.journaled_write(tgt, 4, b"\x00\x01", kind="flaky", label="x")
    (entry,) = journal.Journal().entries()
    assert entry.actual == b"\xff\xfe"


def test_registered_target_kind_reopens_for_undo(fake):
    tgt = FlakyTarget()
    tgt.write(0, b"\xff" * 16)  # mem is now zeros
    rec = journal.journaled_write(tgt, 8, b"\x11", kind="flaky2", verify=False)
    assert not rec.verified
    journal.register_target("flaky2", lambda desc: tgt)
    (res,) = journal.Journal().undo()  # writes the old 0x00; the register then reads 0xff
    assert res.status == "register" and res.restored == b"\x00" and res.readback == b"\xff"
    assert tgt.mem[8] == 0xFF  # what the device holds after 0x00 was written to it
    (entry,) = journal.Journal().entries()
    assert entry.undone


def test_undo_of_echoing_location_that_stops_echoing_fails(fake):
    """A location that read back what pyphys wrote (no ``actual`` marker) must read back the
    restored bytes too: here it now inverts, so undo reports the failed read-back."""
    tgt = FlakyTarget()
    tgt.mem[0] = 0x42
    journal.Journal().record("flaky3", {}, 0, b"\x10", b"\x42", "echoed")  # as if it had read back 0x42
    journal.register_target("flaky3", lambda desc: tgt)
    with pytest.raises(VerifyError, match="read back"):  # writes 0x10, reads 0xef
        journal.Journal().undo()


def test_unknown_kind_cannot_be_undone(fake):
    journal.Journal().record("nonesuch", {}, 0, b"a", b"b")
    with pytest.raises(JournalError, match="nonesuch"):
        journal.Journal().undo()


def test_torn_last_line_is_skipped_when_listing_and_refuses_writes(fake):
    write(0xB00, b"ok")
    with open(fake / "state" / "journal.jsonl", "a") as f:
        f.write('{"id": 2, "kind": "ph')
    before = (fake / "state" / "journal.jsonl").read_bytes()
    j = journal.Journal()
    assert [e.id for e in j.entries()] == [1] and j.bad_lines == 1
    with pytest.raises(JournalError, match=r"journal\.jsonl line 2: .*refusing to write"):
        j.record("phys", {"backend": "mmap"}, 0, b"", b"")
    assert (fake / "state" / "journal.jsonl").read_bytes() == before  # nothing glued onto the torn line


def test_locked_journal_nowait(fake):
    j1 = journal.Journal()
    j2 = journal.Journal()
    with j1.locked():
        with pytest.raises(JournalError, match="locked"):
            with j2.locked(wait=False):
                pass
    j1.close()
    j2.close()


def test_record_many_one_fsync(fake, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(journal.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    ids = journal.Journal().record_many([("phys", {}, i, b"a", b"b", "") for i in range(100)])
    assert ids == list(range(1, 101))
    assert len(calls) <= 2  # the entries, plus the directory on first creation


def test_a_group_is_undone_whole_by_the_last_undo(fake):
    """record_many(group=True): every entry names the first's id; undo() (the last write) takes
    them all, newest first, and leaves older entries alone."""
    write(0xC00, b"AB")
    jr = journal.Journal()
    before = raw(fake, 0xC10, 3)
    items = [("phys", {"backend": "mmap"}, 0xC10 + i, before[i : i + 1], b"Z", "") for i in range(3)]
    ids = jr.record_many(items, group=True)
    poke(fake, 0xC10, b"ZZZ")
    assert [e.group for e in jr.entries()] == [None, ids[0], ids[0], ids[0]]
    done = jr.undo()
    assert [r.id for r in done] == ids[::-1] and raw(fake, 0xC10, 3) == before
    assert [e.undone for e in jr.entries()] == [False, True, True, True]
    jr.close()


# -- the journal cannot be bypassed ------------------------------------------------------------------
BAD_LINES = [
    (b'{"id":"x","kind":"phys","addr":"0x0","old":"00","new":"01"}\n', "'id' is \"x\", not an integer"),
    (b'{"id":1e400,"kind":"phys","addr":"0x0","old":"00","new":"01"}\n', "not an integer"),
    (b'{"id":Infinity,"kind":"phys","addr":"0x0","old":"00","new":"01"}\n', "not an integer"),
    (b'{"id":true,"kind":"phys","addr":"0x0","old":"00","new":"01"}\n', "not an integer"),
    (b'{"id":0,"kind":"phys","addr":"0x0","old":"00","new":"01"}\n', "out of range"),
    (b'{"id":9223372036854775808,"kind":"phys","addr":"0x0","old":"00","new":"01"}\n', "out of range"),
    (b'{"ref":1e400,"event":"undone"}\n', "'ref' is"),
    (b'{"ref":"1","event":"undone"}\n', "'ref' is"),
    (b'{"ref":5,"event":"undone"}\n', "no earlier line"),
    (b'{"ref":1,"event":"forgotten"}\n', "unknown event"),
    (b'{"id":2,"kind":"phys","addr":"\xd9\xa1","old":"00","new":"01"}\n', "addr"),
    (b'{"id":2,"kind":"phys","addr":"0x10000000000000000","old":"00","new":"01"}\n', "addr"),
    (b'{"id":2,"kind":"phys","addr":"0x0","old":"0g","new":"01"}\n', "old"),
    (b"\xff\xfe not utf-8\n", "not UTF-8"),
    (b"{not json\n", "not JSON"),
    (b"[" * 100000 + b"\n", "not JSON"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"time":"2026"}\n', "neither or both"),
    (b'{"id":2,"kind":"phys","addr":"0x0","old":"00","new":"01","group":3}\n', "after the entry itself"),
    (b'{"id":2,"kind":"phys","addr":"0x0","old":"00","new":"01","group":"1"}\n', "'group' is"),
]


@pytest.mark.parametrize("line,why", BAD_LINES, ids=[w for _, w in BAD_LINES])
def test_a_bad_line_refuses_every_write_before_memory(fake, line, why):
    """Entries, markers and undo: one JournalError naming the file and the line, nothing written."""
    write(0xC00, b"AB")  # line 1, valid
    path = fake / "state" / "journal.jsonl"
    with open(path, "ab") as f:
        f.write(line)
    before_mem, before_journal = raw(fake, 0, SIZE), path.read_bytes()
    j = journal.Journal()
    assert [e.id for e in j.entries()] == [1] and j.bad_lines == 1  # listing still works
    for attempt in (
        lambda: write(0xD00, b"CD"),
        lambda: journal.Journal().mark(1, "aborted"),
        lambda: journal.Journal().undo(),
    ):
        with pytest.raises(JournalError) as info:
            attempt()
        text = str(info.value)
        assert f"{path} line 2: " in text and why in text and "\n" not in text
    assert raw(fake, 0, SIZE) == before_mem and path.read_bytes() == before_journal


def test_ids_must_increase_and_refs_must_exist(fake):
    path = fake / "state" / "journal.jsonl"
    write(0xC00, b"AB")
    write(0xC04, b"CD")
    path.write_bytes(path.read_bytes().replace(b'"id":2', b'"id":1'))
    with pytest.raises(JournalError, match="line 2: entry id 1 does not follow the previous id 1"):
        write(0xC08, b"EF")
    path.write_bytes(path.read_bytes().replace(b'"id":1', b'"id":2', 1).replace(b'"id":1', b'"id":3', 1))
    assert [e.id for e in journal.Journal().entries()] == [2, 3]
    with pytest.raises(JournalError, match="no entry 7"):
        journal.Journal().mark(7, "undone")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "abc", "-1", "0", "", "١"])
def test_lock_timeout_must_be_finite_and_positive(fake, monkeypatch, value):
    monkeypatch.setenv("PYPHYS_LOCK_TIMEOUT", value)
    with pytest.raises(UsageError, match="PYPHYS_LOCK_TIMEOUT") as info:
        journal.Journal()
    assert "\n" not in str(info.value)
    monkeypatch.setenv("PYPHYS_LOCK_TIMEOUT", "0.5")
    assert journal.Journal().lock_timeout == 0.5
    for bad in (float("nan"), float("inf"), -1, 0, True):
        with pytest.raises(UsageError):
            journal.Journal(lock_timeout=bad)


def test_library_ids_are_integers_in_range(fake):
    write(0xC00, b"AB")
    for bad in ("1", "١", 1.0, True, 0, 1 << 63):
        with pytest.raises(UsageError):
            journal.Journal().undo([bad])
    with pytest.raises(UsageError):
        journal.Journal().undo("latest")
    assert not journal.Journal().entries()[0].undone


def test_kinds_come_from_the_table_not_from_module_names(fake):
    """A kind that happens to name a pyphys module is not imported to look for an opener."""
    import subprocess
    import sys

    journal.Journal().record("labvm", {}, 0, b"a", b"b")
    code = (
        "import sys\nfrom pyphys import journal\nfrom pyphys.errors import JournalError\n"
        "try:\n    journal.Journal().undo()\nexcept JournalError as err:\n    print(err)\n"
        "print('pyphys.labvm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=fresh_env()
    ).stdout
    assert "kind 'labvm' cannot be reopened" in out and out.split()[-1] == "False"
    assert journal.OPENERS["pci"] == "pyphys.pci_write:reopen" and journal.OPENERS["phys"] == "pyphys.physmem:reopen"


def test_pci_undo_in_a_fresh_interpreter_that_never_imported_pci(tmp_path, monkeypatch):
    """Journal a PCI config write, then undo it from a process where only the journal is imported."""
    import shutil
    import subprocess
    import sys

    from pyphys import pci_devices, pci_write

    fix = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci", "lab-guest")
    root = tmp_path / "m"
    shutil.copytree(fix, root, symlinks=True)
    roots = {"sys": str(root / "sys"), "proc": str(root / "proc"), "dev": str(root / "dev")}
    monkeypatch.setenv("PYPHYS_JOURNAL", str(tmp_path / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    old = paths.set_roots(**roots)
    try:
        edu = next(d for d in pci_devices.scan() if d.ids == "1234:11e8")
        cfg = root / "sys/bus/pci/devices" / edu.address / "config"
        before = cfg.read_bytes()
        pci_write.write_config(edu, 0x3C, 8, 0x5A, force=True)
        assert cfg.read_bytes()[0x3C] == 0x5A
    finally:
        paths.set_roots(**old)
    code = (
        "import sys\nfrom pyphys import journal, paths\n"
        f"paths.set_roots(**{roots!r})\n"
        "assert 'pyphys.pci_write' not in sys.modules\n"
        "(r,) = journal.Journal().undo()\n"
        "print(r.kind, r.status)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=fresh_env()
    ).stdout
    assert out.split() == ["pci", "restored"]
    assert cfg.read_bytes() == before


def fresh_env() -> dict:
    """The environment for a fresh interpreter that imports this checkout's pyphys."""
    import pyphys

    top = os.path.dirname(os.path.dirname(os.path.abspath(pyphys.__file__)))
    return dict(os.environ, PYTHONPATH=top + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_an_entry_that_would_damage_the_journal_is_not_appended(fake):
    write(0xC00, b"AB")
    before = (fake / "state" / "journal.jsonl").read_bytes()
    for item in [
        ("phys", {}, -16, b"a", b"b", ""),  # a negative address
        ("phys", {}, 1 << 64, b"a", b"b", ""),
        ("phys", {}, 0, b"a", b"bc", ""),  # old and new of different lengths
        ("", {}, 0, b"a", b"b", ""),
        ("phys", {}, 0, b"ab", b"cd", "", 24),
    ]:
        with pytest.raises(JournalError, match="refusing to journal"):
            journal.Journal().record_many([item])
    with pytest.raises(JournalError):
        journal.Journal().mark("1", "undone")
    assert (fake / "state" / "journal.jsonl").read_bytes() == before
    assert journal.Journal().check() == 1


def test_journal_must_be_a_regular_file(fake, monkeypatch, tmp_path):
    """PYPHYS_JOURNAL=/dev/null (or a FIFO) would let writes through with nothing to undo them."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("/dev/null", str(fifo), str(tmp_path)):
        monkeypatch.setenv("PYPHYS_JOURNAL", path)
        before = raw(fake, 0, SIZE)
        with pytest.raises(PyphysError, match="journal"):
            write(0xC00, b"AB")
        assert raw(fake, 0, SIZE) == before


def test_a_marker_of_the_wrong_length_is_refused(fake):
    """An ``old`` marker longer than the write would make undo store past what pyphys wrote."""
    write(0xC00, b"AB")
    path = fake / "state" / "journal.jsonl"
    with open(path, "a") as f:
        f.write('{"ref":1,"event":"old","hex":"00112233"}\n')
    before = raw(fake, 0, SIZE)
    with pytest.raises(JournalError, match="line 2: marker 'old' for entry 1 holds 4 bytes, not 2"):
        journal.Journal().undo()
    assert raw(fake, 0, SIZE) == before
