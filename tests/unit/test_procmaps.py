"""/proc/PID/maps and /proc/PID/stat parsing, and picking a process (proc(5) formats)."""

from __future__ import annotations

import os

import pytest

from pyphys import paths, procmaps
from pyphys.errors import NotFoundError, ProcessGoneError, PyphysError, UsageError

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pagemap")
PROC = os.path.join(FIX, "proc")

# Lines as the kernel prints them (show_map_vma: "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ",
# then the path padded to column 73), taken from this host's /proc/self/maps plus odd names.
REAL = """\
559d46615000-559d46617000 r--p 00000000 fe:00 260131                     /usr/bin/cat
559d6c5d7000-559d6c5f8000 rw-p 00000000 00:00 0                          [heap]
7fe70cecd000-7fe70ceef000 rw-p 00000000 00:00 0
7fe70d135000-7fe70d13c000 r--s 00000000 fe:00 338846                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache
7fe70d13f000-7fe70d143000 r--p 00000000 00:00 0                          [vvar]
7ffd5a0c1000-7ffd5a0e2000 rw-p 00000000 00:00 0                          [stack]
7f0000000000-7f0000001000 rw-s 00000000 00:01 1079                       /dev/zero (deleted)
7f0000002000-7f0000003000 rw-p 00000000 00:00 0                          [anon:my buffer]
7f0000004000-7f0000005000 r--p 00001000 08:01 42                         /tmp/a file with  spaces
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""


def test_parse_real_lines():
    maps = procmaps.parse_maps(REAL.splitlines(True))
    assert len(maps) == 10
    cat = maps[0]
    assert (cat.start, cat.end, cat.perms, cat.offset, cat.dev, cat.inode, cat.path) == (
        0x559D46615000,
        0x559D46617000,
        "r--p",
        0,
        "fe:00",
        260131,
        "/usr/bin/cat",
    )
    assert cat.readable and not cat.writable and not cat.executable and not cat.shared
    assert cat.size == 0x2000 and not cat.anonymous
    heap, anon, cache = maps[1], maps[2], maps[3]
    assert heap.path == "[heap]" and heap.anonymous
    assert anon.path == "" and anon.anonymous and anon.label == "[anon]"
    assert cache.shared and cache.path.endswith("gconv-modules.cache")
    assert maps[6].path == "/dev/zero (deleted)" and maps[6].shared and not maps[6].anonymous
    assert maps[7].path == "[anon:my buffer]" and maps[7].anonymous
    assert maps[8].path == "/tmp/a file with  spaces" and maps[8].offset == 0x1000
    assert maps[9].path == "[vsyscall]" and maps[9].perms == "--xp"


def test_maps_line_round_trips():
    for line in REAL.splitlines():
        m = procmaps.parse_maps_line(line)
        assert procmaps.parse_maps_line(m.maps_line()) == m


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "7f00-7f10 rw-p 00000000 00:00",  # too few fields
        "7f00 rw-p 00000000 00:00 0",  # no range
        "zz00-7f10 rw-p 00000000 00:00 0",  # not hex
        "7f10-7f00 rw-p 00000000 00:00 0",  # reversed
        "7f00-7f10 rw 00000000 00:00 0",  # perms
        "7f00-7f10 rw-p 0000000g 00:00 0",  # offset
        "7f00-7f10 rw-p 00000000 00:00 x",  # inode
    ],
)
def test_malformed_lines_raise_a_parse_error(line):
    with pytest.raises(procmaps.MapsParseError) as exc:
        procmaps.parse_maps(["7f00-7f10 rw-p 00000000 00:00 0\n", line + "\n"])
    assert "line 2" in str(exc.value)
    assert isinstance(exc.value, PyphysError)


def test_find_neighbours_and_clip():
    maps = procmaps.parse_maps(REAL.splitlines(True))
    assert procmaps.find_mapping(maps, 0x559D6C5D7000).path == "[heap]"
    assert procmaps.find_mapping(maps, 0x559D6C5F8000) is None  # end is exclusive
    assert procmaps.find_mapping(maps, 0x1000) is None
    below, above = procmaps.neighbours(maps, 0x559D70000000)
    assert below.path == "[heap]" and above.start == 0x7F0000000000
    below, above = procmaps.neighbours(maps, 0x1000)
    assert below is None and above.path == "/usr/bin/cat"
    parts = procmaps.mappings_in(maps, 0x559D46616000, 0x559D6C5D8000)
    assert [(m.path, hex(lo), hex(hi)) for m, lo, hi in parts] == [
        ("/usr/bin/cat", "0x559d46616000", "0x559d46617000"),
        ("[heap]", "0x559d6c5d7000", "0x559d6c5d8000"),
    ]


def test_parse_stat_comm_with_spaces_and_parens():
    pid, comm, state, flags = procmaps.parse_stat("4242 (fake prog) (x) S 1 4242 4242 0 -1 4194304 0 0\n")
    assert (pid, comm, state, flags) == (4242, "fake prog) (x", "S", 4194304)
    with pytest.raises(PyphysError):
        procmaps.parse_stat("not a stat line")


@pytest.fixture
def canned():
    old = paths.set_roots(proc=PROC)
    yield
    paths.set_roots(**old)


def test_process_info_from_canned_proc(canned):
    info = procmaps.process_info(4242)
    assert (info.pid, info.name, info.state, info.kernel_thread, info.zombie) == (
        4242,
        "fake prog) (x",
        "S",
        False,
        False,
    )
    kt = procmaps.process_info(4243)
    assert kt.kernel_thread  # PF_KTHREAD, include/linux/sched.h
    assert procmaps.process_info(4244).zombie


def test_kernel_thread_and_zombie_have_no_address_space(canned):
    with pytest.raises(UsageError, match="kernel thread"):
        procmaps.require_address_space(procmaps.process_info(4243))
    with pytest.raises(ProcessGoneError, match="zombie"):
        procmaps.require_address_space(procmaps.process_info(4244))


def test_resolve_by_pid_and_errors(canned):
    assert procmaps.resolve_process("4242").pid == 4242
    assert procmaps.resolve_process(4242).pid == 4242
    with pytest.raises(NotFoundError, match="no process with pid 999999"):
        procmaps.resolve_process("999999")
    for bad in ("0", "-3", "+0", "  "):
        with pytest.raises(UsageError):
            procmaps.resolve_process(bad)


def test_read_maps_of_a_gone_process(canned):
    with pytest.raises(ProcessGoneError):
        procmaps.read_maps(999999)
    assert len(procmaps.read_maps(4242)) == 6


def test_self_is_this_process():
    info = procmaps.resolve_process("self")
    assert info.pid == os.getpid()
    with open(f"/proc/{os.getpid()}/comm") as f:
        assert info.name == f.read().strip()
