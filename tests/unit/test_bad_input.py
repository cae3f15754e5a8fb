"""Bad input, every subcommand, through the real CLI (in-process ``main()``).

Each case must give: an exit status other than 0 (2 where the input itself is malformed), exactly
one line on stderr, no traceback, nothing on stdout, and nothing written anywhere: the stand-in
tree (a sparse file as /dev/mem, sparse files as the PCI BARs, the journal, every other file and
directory) is snapshotted before and after, holes and data extents included.

The machine is a canned one: /proc, /sys and pyphys.ko's sysfs captured from Debian's stock 6.1
kernel in the lab guest (tests/fixtures/doctor/stock-debian-6.1), with the lab guest's PCI tree
(tests/fixtures/pci/lab-guest).

docs/bad-inputs.md lists every case with its outcome; it is generated from this file
(``python tests/unit/test_bad_input.py`` rewrites it) and a test checks it is current.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

if __name__ == "__main__":  # run as a script: this checkout's pyphys, whatever the venv points at
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyphys import cli, paths  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIX = REPO / "tests" / "fixtures"
DOC = REPO / "docs" / "bad-inputs.md"
MEM_SIZE = 1 << 30  # the stand-in /dev/mem: 1 GiB, sparse but for the first 64K
BUFFER = 0x1000  # where our sysfs says the module's buffer is (inside the first 64K)


class C:
    """One case: ``argv`` (``{T}`` is the stand-in tree), the exit status wanted (None: any
    non-zero), a text the message must contain, environment, and why it is xfail, if it is."""

    def __init__(self, *argv, code=2, want=None, env=None, xfail=None, note=None):
        self.argv, self.code, self.want, self.env, self.xfail, self.note = (
            list(argv),
            code,
            want,
            env or {},
            xfail,
            note,
        )

    @property
    def id(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return (env + " " if env else "") + " ".join(a if a else "''" for a in self.argv) or "(nothing)"


BAD_HEX = "did you mean 0x1a000?"  # bare hex as /proc/PID/maps and /proc/iomem print it
OCTALISH = "did you mean 0x01000 (hex) or 1000 (decimal)?"  # a leading zero: octal to busybox
NOT_ASCII = "ASCII"
# every command and action accepts an extra unknown option the same way: one argparse line
CASES = [
    # -- the command itself ----------------------------------------------------------------
    C(note="no command"),
    C("frobnicate", want="invalid choice"),
    C("--bogus"),
    C("-x"),
    C("pagemap", "--bogus"),
    # -- hostname --------------------------------------------------------------------------
    C("hostname"),
    C("hostname", "", want="hostname"),
    C("hostname", "a" * 65, want="64"),
    C("hostname", "é" * 33, want="64", note="66 bytes in UTF-8"),
    C("hostname", "new\nline"),
    C("hostname", "tab\there"),
    C("hostname", "bell\x07"),
    C("hostname", "a", "b"),
    C("hostname", "--backend", "bogus", "lab"),
    C("hostname", "--dry-run"),
    # -- pagemap ---------------------------------------------------------------------------
    C("pagemap"),
    C("pagemap", "self"),
    C("pagemap", "self", "1a000", want=BAD_HEX),
    C("pagemap", "self", "01000", want=OCTALISH),
    C("pagemap", "self", "7f3a00000000", want="did you mean 0x7f3a00000000?"),
    C("pagemap", "self", "١٠٠٠", want=NOT_ASCII),
    C("pagemap", "self", "1__0"),
    C("pagemap", "self", "1_000"),
    C("pagemap", "self", "0x-1"),
    C("pagemap", "self", "0x"),
    C("pagemap", "self", "0xg"),
    C("pagemap", "self", ""),
    C("pagemap", "self", "0x2000-0x1000", want="END"),
    C("pagemap", "self", "0x1000-0x1000"),
    C("pagemap", "self", "0x1000+0"),
    C("pagemap", "self", "0x1000+1x"),
    C("pagemap", "self", "0x1000+-5", want="'0x1000+-5': length '-5'"),
    C("pagemap", "self", "0x10000000000000000"),
    C("pagemap", "self", "0x1000", "extra"),
    C("pagemap", "self", "0x1000", "--pages", "--runs"),
    C("pagemap", "self", "0x1000", "--view", "bogus"),
    C("pagemap", "", "0x1000"),
    C("pagemap", "0x10", "0x1000", code=None, note="not a pid: taken as a process name"),
    C("pagemap", "999999999", "0x1000", code=1, note="no such process"),
    C("pagemap", "no-such-process-name", "0x1000", code=None),
    # -- devmem: addresses -----------------------------------------------------------------
    C("devmem", "1a000", want=BAD_HEX),
    C("devmem", "01000", want=OCTALISH),
    C("devmem", "000a0000", want="did you mean 0x000a0000"),
    C("devmem", "٤٠٩٦", want=NOT_ASCII),
    C("devmem", "１０", want=NOT_ASCII, note="fullwidth digits"),
    C("devmem", "1__0"),
    C("devmem", "4_096"),
    C("devmem", "0x-1"),
    C("devmem", "-1"),
    C("devmem", "0x"),
    C("devmem", "0b101"),
    C("devmem", "0o17"),
    C("devmem", "1e3"),
    C("devmem", "0x1000.5"),
    C("devmem", ""),
    C("devmem", "0x10000000000000000", want="above the maximum", note="73 bits: a usage error, not 'no such address'"),
    C("devmem", "0x" + "f" * 19),
    C("devmem", "buffer+zz"),
    C("devmem", "buffer+1a000", want=BAD_HEX),
    C("devmem", "buffer+-4"),
    C("devmem", "nodename+0x10000000000000000"),
    C("devmem", "sym:"),
    C("devmem", "sym:no_such_symbol_here", code=1),
    C("devmem", "bufferx"),
    # -- devmem: widths and values ---------------------------------------------------------
    C("devmem", "0x1000", "q", want="width"),
    C("devmem", "0x1000", "12", want="width"),
    C("devmem", "0x1000", "0", want="width"),
    C("devmem", "0x1000", "128", want="width"),
    C("devmem", "0x1000", ".b", want="width", note="setpci's letter, not devmem's"),
    C("devmem", "0x1000", "u8", want="width"),
    C("devmem", "0x1000", "-8"),
    C("devmem", "0x1002", "32", note="misaligned"),
    C("devmem", "0x1001", "64", "0", note="misaligned write"),
    C("devmem", "0x1000", "8", "0x100", want="8 bits"),
    C("devmem", "0x1000", "16", "65536", want="16 bits"),
    C("devmem", "0x1000", "w", "0x100000000", want="32 bits"),
    C("devmem", "0x1000", "64", "0x10000000000000000"),
    C("devmem", "0x1000", "32", "-1"),
    C("devmem", "0x1000", "32", "zz"),
    C("devmem", "0x1000", "32", "1a000", want=BAD_HEX),
    C("devmem", "0x1000", "32", "01000", want=OCTALISH),
    C("devmem", "0x1000", "32", "١"),
    C("devmem", "0x1000", "32", "0x1", "0x2"),
    # -- devmem: ranges, byte writes, batches, options -------------------------------------
    C("devmem", "0x1000", "--range", "0"),
    C("devmem", "0x1000", "--range", "zz"),
    C("devmem", "0x1000", "--range", "-1"),
    C("devmem", "0x1000", "--range", "1x"),
    C("devmem", "0x1000", "--range", "0x10000000000000000"),
    C("devmem", "0x1000", "--range", "1T"),
    C("devmem", "--range", "16"),
    C("devmem", "0x1000", "--write-hex", "zz", note="the old name of --hex, a hidden alias"),
    C("devmem", "0x1000", "--hex", "abc"),
    C("devmem", "0x1000", "--hex", ""),
    C("devmem", "0x1000", "--hex", "٠٠"),
    C("devmem", "0x1000", "--write-bytes", "\\q", note="the old name of --string, a hidden alias"),
    C("devmem", "0x1000", "--string", "\\x4"),
    C("devmem", "0x1000", "--string", "a\\"),
    C("devmem", "0x1000", "--string", ""),
    C("devmem", "0x1000", "--string", "\\777"),
    C("devmem", "0x1000", "32", "0x1", "--hex", "aa"),
    C("devmem", "0x1000", "--hex", "aa", "--string", "b"),
    C("devmem", "0x1000", "--range", "4", "--hex", "aa"),
    C("devmem", "--batch", "{T}/no-such-batch", code=1),
    C("devmem", "--batch", "{T}/batch-bad-addr", note="line 1 is a good write, line 2 a bad address"),
    C("devmem", "--batch", "{T}/batch-bad-width"),
    C("devmem", "--batch", "{T}/batch-bad-verb"),
    C("devmem", "--batch", "{T}/batch-bad-value"),
    C("devmem", "--batch", "{T}/batch-bad-addr", "0x1000"),
    C("devmem", "0x1000", "--backend", "bogus"),
    C("devmem", "0x1000", "32", "0x1", env={"PYPHYS_LOCK_TIMEOUT": "nan"}),
    C("devmem", "0x1000", "32", "0x1", env={"PYPHYS_LOCK_TIMEOUT": "soon"}),
    # -- devmem: places that exist but must not be written ---------------------------------
    C("devmem", "0x900000000", "32", "0x1", code=None, note="a hole in /proc/iomem, no --force"),
    C("devmem", "0x200000", "32", "0x1", code=None, note="System RAM outside any named region"),
    C("devmem", "0xfffffffffffff000", code=None, note="past the end of physical memory"),
    # -- undo and journal ------------------------------------------------------------------
    C("undo", "0"),
    C("undo", "-1"),
    C("undo", "abc"),
    C("undo", "١"),
    C("undo", "1__0"),
    C("undo", "0x-1"),
    C("undo", "42", code=None, note="no such entry"),
    C("undo", "--last", "0"),
    C("undo", "--last", "x"),
    C("undo", "--last", "-1"),
    C("undo", "--last"),
    C("undo", "1", "--all"),
    C("undo", "--last", "2", "--all"),
    C("undo", "1", "--last", "2"),
    C("undo", "last", "1"),
    C("journal", "extra"),
    C("journal", "--last", "2"),
    # -- iomem -----------------------------------------------------------------------------
    C("iomem", "1a000", want=BAD_HEX),
    C("iomem", "01000", want=OCTALISH),
    C("iomem", "١٠٠٠", want=NOT_ASCII),
    C("iomem", "1__0"),
    C("iomem", "0x-1"),
    C("iomem", "0x10000000000000000", want="above the maximum"),
    C("iomem", ""),
    C("iomem", "0x1000", "zz", note="a good address, then a bad one: nothing printed"),
    C("iomem", "0x1000-0x2000"),
    C("iomem", "--bogus"),
    C("iomem", "-5"),
    # -- walk ------------------------------------------------------------------------------
    C("walk"),
    C("walk", "self"),
    C("walk", "self", "1a000", want=BAD_HEX),
    C("walk", "self", "0x10000000000000000"),
    C("walk", "self", "0x8000000000000000", want="not canonical"),
    C("walk", "self", "0xffffffff81000000", want="kernel address"),
    C("walk", "kernel", "0x1000", want="user space"),
    C("walk", "kernel", "0x7fff00000000000f", want="not canonical", note="bit 63 clear, bits 62..56 set"),
    C("walk", "kernel", "0xffffffff81000000", code=1, want="older pyphys.ko", note="sysfs, no device"),
    C("walk", "999999999", "0x1000", code=1, note="no such process"),
    C("walk", "self", "0x1000", "extra"),
    C("walk", "self", "0x1000", "--backend", "bogus"),
    C("walk", "self", "0x1000", "--all", want="not both"),
    C("walk", "kernel", "--all", want="not the kernel"),
    C("walk", "999999999", "--all", code=1, note="no such process"),
    # -- ksym ------------------------------------------------------------------------------
    C("ksym"),
    C("ksym", ""),
    C("ksym", "init_uts_ns+0xffffffffffffffffff", note="73-bit offset"),
    C("ksym", "init_uts_ns+-5"),
    C("ksym", "init_uts_ns+"),
    C("ksym", "init_uts_ns+zz"),
    C("ksym", "init_uts_ns+1a000", want=BAD_HEX),
    C("ksym", "init_uts_ns+0xffffffffffffffff", want="past the top", note="64 bits, but past the top"),
    C("ksym", "init_uts_ns+١"),
    C("ksym", "init_uts_ns+1__0"),
    C("ksym", "init_uts_ns+0x-1"),
    C("ksym", "+8"),
    C("ksym", "nodename+0x10000000000000000"),
    C("ksym", "init uts ns"),
    C("ksym", "no_such_symbol_anywhere", code=1),
    C("ksym", "init_uts_ns", "jiffies"),
    C("ksym", "init_uts_ns", "--bogus"),
    # -- doctor ----------------------------------------------------------------------------
    C("doctor", "extra"),
    C("doctor", "--bogus"),
    # -- pci -------------------------------------------------------------------------------
    C("pci", want="name an ACTION"),
    C("pci", "bogus"),
    C("pci", "list", "zz:zz.z"),
    C("pci", "list", "00:99.0"),
    C("pci", "list", "0000:00:1f.8"),
    C("pci", "list", "10000:00:00.0"),
    C("pci", "list", "1234:zz", want="device ID"),
    C("pci", "list", "12345:", want="vendor ID"),
    C("pci", "list", "-d", "::fffff", want="class"),
    C("pci", "list", "-d", "::02zz", want="class"),
    C("pci", "list", "-d", "1234:11e8:0200:100", want="prog-if"),
    C("pci", "list", "-d", "1234:11e8:0200:00:0"),
    C("pci", "list", "-d", ""),
    C("pci", "list", "-V", "zzzz"),
    C("pci", "list", "-V", "0x12345"),
    C("pci", "list", "--source", "bogus"),
    C("pci", "read"),
    C("pci", "read", "00:0a.0"),
    C("pci", "read", "00:0a.0", "0"),
    C("pci", "read", "00:0a.0", "7", "0"),
    C("pci", "read", "00:0a.0", "-1", "0"),
    C("pci", "read", "00:0a.0", "x", "0"),
    C("pci", "read", "00:0a.0", "0", "1a000", want=BAD_HEX),
    C("pci", "read", "00:0a.0", "0", "١"),
    C("pci", "read", "00:0a.0", "0", "0x-1"),
    C("pci", "read", "00:0a.0", "0", "0x100000", code=None, note="past the end of the 1M BAR"),
    C("pci", "read", "00:0a.0", "0", "0x2", "32", note="misaligned"),
    C("pci", "read", "00:0a.0", "0", "0", "z"),
    C("pci", "read", "00:0a.0", "0", "0", "12"),
    C("pci", "read", "00:0a.0", "0", "0", "-l", "0"),
    C("pci", "read", "00:0a.0", "0", "0", "-l", "zz"),
    C("pci", "read", "00:0a.0", "1", "0", code=None, note="the edu device has no BAR 1"),
    C("pci", "read", "1234:zzzz", "0", "0"),
    C("pci", "read", "dead:beef", "0", "0", code=None, note="no such device"),
    C("pci", "read", "-V", "zz", "0", "0"),
    C("pci", "write", "00:0a.0", "0", "4", "32", "0x100000000"),
    C("pci", "write", "00:0a.0", "0", "4", "8", "0x100"),
    C("pci", "write", "00:0a.0", "0", "4", "32", "zz"),
    C("pci", "write", "00:0a.0", "0", "4", "32", "-1"),
    C("pci", "write", "00:0a.0", "0", "4"),
    C("pci", "write", "00:0a.0", "0", "4", "--string", "\\q"),
    C("pci", "write", "00:0a.0", "0", "4", "--string", ""),
    C("pci", "write", "00:0a.0", "0", "4", "--hex", "abc"),
    C("pci", "write", "00:0a.0", "0", "0x100000", "32", "1", code=None, note="past the end of the BAR"),
    C("pci", "write", "00:0a.0", "0", "0xffffc", "--string", "12345", code=None, note="runs past the BAR"),
    C("pci", "write", "00:0a.0", "0", "4", "32", "0x1", env={"PYPHYS_LOCK_TIMEOUT": "nan"}),
    C("pci", "config", "00:0a.0", "0x1000", code=None, note="past config space"),
    C("pci", "config", "00:0a.0", "zz"),
    C("pci", "config", "00:0a.0", "1", "32", note="misaligned"),
    C("pci", "config", "00:0a.0", "0", "q"),
    C("pci", "config", "00:0a.0", "10.l", note="setpci reads 10 as hex"),
    C("pci", "config", "00:0a.0", "04.q"),
    C("pci", "config", "00:0a.0", "CAP_EXP+0x10.w", code=None, note="the device has no PCI Express capability"),
    C("pci", "config", "00:0a.0", "CAP_NOPE"),
    C("pci", "config", "00:0a.0", "COMMAND+2"),
    C("pci", "config", "00:0a.0", "PRIMARY_BUS", note="a bridge register on a normal header"),
    C("pci", "config", "00:0a.0", "COMMAND.w", "16", "0x1", "--force"),
    C("pci", "config", "00:0a.0", "4", "16", "0x1", code=None, note="a config write without --force"),
    C("pci", "config", "00:0a.0", "4", "16", "0x10000", "--force"),
    C("pci", "config", "00:0a.0", "COMMAND=0x4:0x10000", "--force", want="mask", note="a mask wider than the register"),
    C("pci", "config", "00:0a.0", "4", "8", "0x4:0x1ff", "--force", want="mask"),
    C("pci", "config", "00:0a.0", "COMMAND=0x4:zz", "--force", want="mask"),
    C("pci", "config", "00:0a.0", "COMMAND=q:0x4", "--force", want="value"),
    C("pci", "config", "00:0a.0", "COMMAND=0x4:", "--force", want="VALUE:MASK"),
    C("pci", "config", "00:0a.0", "COMMAND=:0x4", "--force", want="VALUE:MASK"),
    C("pci", "config", "00:0a.0", "COMMAND=:", "--force", want="VALUE:MASK"),
    C("pci", "config", "00:0a.0", "COMMAND=0x4:0x4:0x4", "--force", want="mask"),
    C("pci", "config", "00:0a.0", "COMMAND=0x4:0x4", code=None, note="a masked config write without --force"),
    C("pci", "config", "00:0a.0", "CAP_MSI.w@1", code=None, note="edu has one MSI capability: @0 alone"),
    C("pci", "config", "00:0a.0", "CAP_MSI.w@", want="instance"),
    C("pci", "config", "00:0a.0", "CAP_MSI.w@zz", want="instance"),
    C("pci", "config", "00:0a.0", "CAP_MSI.w@10", note="setpci reads 10 as hex"),
    C("pci", "config", "00:0a.0", "COMMAND@1", want="@N"),
    C("pci", "config", "00:0a.0", "0x4.w@1", want="@N"),
    C("pci", "config", "00:0a.0", "0x40.w=1,,2", "--force", want="element 2 is empty"),
    C("pci", "config", "00:0a.0", "0x40.w=1,2,", "--force", want="after the last comma"),
    C("pci", "config", "00:0a.0", "0x40.w=,", "--force", want="element 1 is empty", note="a list of nothing"),
    C("pci", "config", "00:0a.0", "0xfc.l=1,2", "--force", code=None, want="nothing written", note="a list past 0x100"),
    C("pci", "config", "00:0a.0", "0x40.w=1,zz", "--force", want="value"),
    C("pci", "config", "00:0a.0", "0x40.w=1,0x10000", "--force", want="too wide"),
    C("pci", "config", "00:0a.0", "0x40.w=1:,2", "--force", want="VALUE:MASK"),
    C("pci", "config", "00:0a.0", "0x42.l=1,2", "--force", want="aligned"),
    C("pci", "config", "00:0a.0", "0x40.w=1,2", code=None, note="a value list without --force"),
    C("pci", "config", "00:0a.0", "COMMAND=10", "--force", want="ambiguous", note="setpci reads 10 as 0x10"),
    C("pci", "config", "00:0a.0", "0x40.w=1,12", "--force", want="ambiguous", note="each value of a list as setpci"),
    C("pci", "config", "00:0a.0", "COMMAND=0x4:10", "--force", want="ambiguous", note="a mask as setpci reads it"),
    C("pci", "config", "00:0a.0", "CAP10", want="natural width", note="setpci: a capability number needs a width"),
    C("pci", "config", "00:0a.0", "CAP100.w", want="too big", note="capability IDs are below 0x100"),
    C("pci", "config", "00:0a.0", "ECAP1000.w", want="too big"),
    C("pci", "config", "00:0a.0", "CAPZZ.w", want="unknown register"),
    C("pci", "config", "00:0a.0", "CAP5+10.w", want="ambiguous", note="the offset is pyphys's; only the ID is hex"),
    C("pci", "config", "00:0a.0", "CAP10+2.w", code=None, want="CAP_EXP", note="edu has no PCI Express capability"),
    C("pci", "config", "00:0a.0", "CAP5.w@1", code=None, want="it has 1", note="CAP5 is MSI: edu has one"),
    C("pci", "config", "00:0a.0", "ECAP001.l", code=None, want="0x100", note="256 bytes: no extended list"),
    C("pci", "config", "99:00.0", code=None),
    C("pci", "list", "-s", "20", want="slot"),
    C("pci", "list", "-s", ".8", want="function"),
    C("pci", "list", "-s", "zz:00.0", want="not hexadecimal"),
    C("pci", "list", "-s", "0:0:0:0.0"),
    C("pci", "list", "-s", "100:00.0", want="bus"),
    C("pci", "list", "-d", "1234"),
    C("pci", "list", "-d", "zz:11e8", want="vendor ID"),
    C("pci", "list", "-d", "1234:11e8:10000", want="class"),
    C(
        "pci",
        "list",
        "-d",
        "1234:1:2:3",
        code=None,
        note="vendor:device:class:prog-if, as lspci reads it: no such device",
    ),
    C("pci", "list", "-d", "1234:11e8", "-V", "0x1af4", want="contradicts"),
    C("pci", "show"),
    C("pci", "show", "zz:zz.z"),
    C("pci", "show", "dead:beef", code=None, note="no such device"),
    C("pci", "show", "-s", "0a.9"),
    C("pci", "show", "00:0a.0", "--bogus"),
    C("pci", "bar-size"),
    C("pci", "bar-size", "00:0a.0"),
    C("pci", "bar-size", "00:0a.0", "0", "1"),
    C("pci", "bar-size", "00:0a.0", "6"),
    C("pci", "bar-size", "00:0a.0", "x"),
    C("pci", "bar-size", "00:0a.0", "0", want="decodes memory space", note="refused while Mem+"),
    C("pci", "bar-size", "dead:beef", "0", code=None, note="no such device"),
    # -- dump ------------------------------------------------------------------------------
    C("dump", want="-o"),
    C("dump", "-o"),
    C("dump", "-o", "{T}/out", "0x1000", want="not a range"),
    C("dump", "-o", "{T}/out", "1a000+4K", want=BAD_HEX),
    C("dump", "-o", "{T}/out", "0x1000+01000", want=OCTALISH),
    C("dump", "-o", "{T}/out", "0x2000-0x1000", want="ends before it starts"),
    C("dump", "-o", "{T}/out", "0x1000-0x1000"),
    C("dump", "-o", "{T}/out", "0x1000+0"),
    C("dump", "-o", "{T}/out", "0x1000+zz"),
    C("dump", "-o", "{T}/out", "0x1000+4Q"),
    C("dump", "-o", "{T}/out", "١+4K", want=NOT_ASCII),
    C("dump", "-o", "{T}/out", "1__0+4K"),
    C("dump", "-o", "{T}/out", "0x-1+4K"),
    C("dump", "-o", "{T}/out", "0x10000000000000000+4K"),
    C("dump", "-o", "{T}/out", "0xfffffffffffff000+0x2000"),
    C("dump", "-o", "{T}/out", "0x1000+4K", "zz"),
    C("dump", "-o", "{T}/out", "-f", "bogus"),
    C("dump", "-o", "{T}/out", "--block-size", "1000"),
    C("dump", "-o", "{T}/out", "--block-size", "0"),
    C("dump", "-o", "{T}/out", "--block-size", "zz"),
    C("dump", "-o", "{T}/out", "--block-size", "3K"),
    C("dump", "-o", "{T}/out", "--backend", "bogus"),
    C("dump", "-o", "{T}/no-such-dir/out", "0x1000+4K", code=None),
    C("dump", "-o", "{T}/exists", "0x1000+4K", code=None, note="FILE exists, no --force"),
    C("dump", "-o", "{T}/notadir/out", "0x1000+4K", code=None),
    C("dump", "-o", "{T}/out", "--resume", "0x1000+4K", code=None, note="nothing to resume"),
    C("dump", "-o", "{T}/out", "--resume", "--no-sha256", "0x1000+4K"),
    C("dump", "-o", "{T}/out", "--meta", "{T}/no-such-dir/m.json", "0x1000+4K", code=None),
    C("dump", "-o", "", "0x1000+4K"),
    C("dump", "-o", "{T}", "0x1000+4K", code=None, note="FILE is a directory"),
    C("dump", "-o", "{T}/out", "--meta", "{T}", "0x1000+4K", code=None, note="--meta names a directory"),
    C("dump", "-o", "{T}/out", "0xa0000+4K", code=None, note="not System RAM"),
    # -- lab -------------------------------------------------------------------------------
    C("lab"),
    C("lab", "bogus"),
    C("lab", "start"),
    C("lab", "start", "0"),
    C("lab", "start", "99", code=None),
    C("lab", "start", "x"),
    C("lab", "start", "١"),
    C("lab", "start", "01"),
    C("lab", "start", "1", "--memory", "zz", "--dir", "/nonexistent/x", want="--memory"),
    C("lab", "start", "1", "--memory", "100M"),
    C("lab", "start", "1", "--memory", "0"),
    C("lab", "start", "1", "--memory", "1__0M"),
    C("lab", "start", "1", "--memory", "-1G"),
    C("lab", "start", "1", "--dir", "/nonexistent/x", want="/nonexistent"),
    C("lab", "start", "1", "--dir", "{T}/exists", want="not a directory"),
    C("lab", "check"),
    C("lab", "check", "0"),
    C("lab", "check", "99", code=None),
    C("lab", "check", "x"),
    C("lab", "check", "1", "--file", "{T}/no-such-results", code=1),
    C("lab", "list", "extra"),
    C("lab", "shell", "--kernel", "bogus", code=None),
    C("lab", "shell", "extra"),
    C("lab", "run", "--kernel", "bogus", "true", code=None),
    C("lab", "run"),
    # -- module ----------------------------------------------------------------------------
    C("module"),
    C("module", "bogus"),
    C("module", "build", "--kernel", "", want="not a kernel release"),
    C("module", "build", "--kernel", "../etc", want="not a kernel release"),
    C("module", "build", "--kernel", "-k"),
    C("module", "build", "--kernel", "no-such-kernel-1.0", code=1, want="no kernel headers for no-such-kernel-1.0"),
    C("module", "build", "--kdir", "/nonexistent/x", code=1, want="not a directory"),
    C("module", "build", "--kdir", "{T}/exists", code=1, want="not a directory"),
    C("module", "build", "--kdir", "{T}", code=1, want="utsrelease.h"),
    C("module", "build", "--kernel", "x", "--kdir", "{T}", want="not allowed with"),
    C("module", "build", "extra"),
    C("module", "install", "--kernel", "no-such-kernel-1.0", code=1),
    C("module", "install", "--kernel", "a/b"),
    C("module", "install", "--dkms", "--no-dkms"),
    C("module", "uninstall", "--kernel", ""),
    C("module", "status", "--kernel", "a/b"),
    C("module", "status", "extra"),
]

BATCHES = {
    "batch-bad-addr": f"w {BUFFER:#x} 32 0x1\nw zz 32 0x1\n",
    "batch-bad-width": f"w {BUFFER:#x} 32 0x1\nr {BUFFER:#x} q\n",
    "batch-bad-verb": f"w {BUFFER:#x} 32 0x1\nx {BUFFER:#x}\n",
    "batch-bad-value": f"w {BUFFER:#x} 32 0x1\nw {BUFFER + 4:#x} 8 0x100\n",
}


def make_tree(root: Path) -> None:
    """The stand-in machine under ``root``."""
    shutil.copytree(FIX / "doctor" / "stock-debian-6.1", root)
    pci = FIX / "pci" / "lab-guest"
    shutil.copytree(pci / "sys" / "bus", root / "sys" / "bus", symlinks=True)
    shutil.copytree(pci / "proc" / "bus", root / "proc" / "bus", symlinks=True)
    for dev in (root / "sys" / "bus" / "pci" / "devices").iterdir():
        for line_no, line in enumerate((dev / "resource").read_text().splitlines()[:6]):
            start, end, _flags = (int(x, 16) for x in line.split())
            if end:
                with open(dev / f"resource{line_no}", "wb") as f:
                    f.truncate(end - start + 1)
    (root / "dev").mkdir(exist_ok=True)
    with open(root / "dev" / "mem", "wb") as f:
        f.write(bytes(range(256)) * 256)
        f.truncate(MEM_SIZE)
    kmod = root / "sys" / "kernel" / "pyphys"
    (kmod / "buffer_phys").write_text(f"{BUFFER:#x}\n")
    (kmod / "buffer_size").write_text("4096\n")
    for name, text in BATCHES.items():
        (root / name).write_text(text)
    (root / "exists").write_text("a file that is there\n")
    (root / "notadir").write_text("a file, not a directory\n")


def _extents(path: str) -> list:
    """(offset, sha256) of each data extent of a (sparse) file."""
    out = []
    with open(path, "rb") as f:
        fd, pos, size = f.fileno(), 0, os.fstat(f.fileno()).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            f.seek(start)
            out.append((start, hashlib.sha256(f.read(end - start)).hexdigest()))
            pos = end
    return out


#: outcomes of test_bad_input, by case id, for test_doc_is_current
RESULTS: dict = {}


def snapshot(root: Path) -> dict:
    """Everything under ``root``: each entry's type, size, mtime and (files) data extents."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            key = os.path.relpath(p, root)
            if os.path.islink(p):
                snap[key] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                snap[key] = ("file", st.st_size, st.st_mtime_ns, _extents(p))
            else:
                snap[key] = ("dir", st.st_mtime_ns)
    return snap


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input") / "m"
    make_tree(root)
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    yield root
    paths.set_roots(**old)


def run_case(case: C, root: Path, capsys, monkeypatch) -> tuple[int, str, str]:
    """Run ``case`` through cli.main() in ``root``; (exit status, stdout, stderr)."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYPHYS_JOURNAL", str(root / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    monkeypatch.setenv("PYPHYS_LOCK_TIMEOUT", "0.2")
    monkeypatch.setenv("PYPHYS_CACHE", str(root / "cache"))
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("PYPHYS_LABS_DIR", raising=False)
    monkeypatch.delenv("PYPHYS_LAB", raising=False)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    argv = [a.replace("{T}", str(root)) for a in case.argv]
    capsys.readouterr()
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own exits
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err.replace(str(root), "{T}")


def check(case: C, rc: int, out: str, err: str, changed: list) -> list[str]:
    """What is wrong with one outcome (empty: the case passed)."""
    problems = []
    if rc == 0 or (case.code is not None and rc != case.code):
        problems.append(f"exit status {rc}, wanted {case.code or 'non-zero'}")
    lines = err.splitlines()
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    elif not re.match(r"pyphys( [a-z][a-z-]*){0,2}: ", err):
        problems.append("the line does not start with `pyphys COMMAND: `")
    elif (
        case.argv
        and case.argv[0] in cli.COMMANDS
        and not err.startswith(("pyphys: ", f"pyphys {case.argv[0]}: ", f"pyphys {case.argv[0]} "))
    ):
        problems.append(f"the line names another command than {case.argv[0]}")
    if "Traceback" in err:
        problems.append("a traceback")
    if out:
        problems.append(f"stdout: {out[:80]!r}")
    if case.want and case.want not in err:
        problems.append(f"message lacks {case.want!r}")
    if changed:
        problems.append("written: " + ", ".join(changed[:5]))
    return problems


def diff(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for c in CASES
    ],
)
def test_bad_input(case, machine, capsys, monkeypatch):
    outside = [p for p in ("/nonexistent",) if os.path.exists(p)]
    before = snapshot(machine)
    rc, out, err = run_case(case, machine, capsys, monkeypatch)
    changed = diff(before, snapshot(machine))
    changed += [p for p in ("/nonexistent",) if os.path.exists(p) and p not in outside]
    problems = check(case, rc, out, err, changed)
    RESULTS[case.id] = (case, rc, err, problems)
    assert not problems, f"{case.id}: " + "; ".join(problems) + f"\nstderr: {err}"


#: cases also run as a real process (bin/pyphys): nothing more at exit, no traceback from the interpreter
IN_A_PROCESS = [
    "(nothing)",
    "devmem 0x10000000000000000",
    "devmem 0x1000 q",
    "devmem --batch {T}/batch-bad-addr",
    "ksym init_uts_ns+0xffffffffffffffffff",
    "iomem 0x1000 zz",
    "pagemap self 1a000",
    "dump -o {T}/out 0x2000-0x1000",
    "lab start 1 --memory zz --dir /nonexistent/x",
    "pci read 00:0a.0 7 0",
    "undo --last 0",
]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in IN_A_PROCESS], ids=lambda c: c.id)
def test_bad_input_in_a_process(case, machine):
    import subprocess

    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PYPHYS_PROC=str(machine / "proc"),
        PYPHYS_SYS=str(machine / "sys"),
        PYPHYS_DEV=str(machine / "dev"),
        PYPHYS_JOURNAL=str(machine / "journal.jsonl"),
        PYPHYS_PCI_IDS="",
        PYPHYS_CACHE=str(machine / "cache"),
        HOME=str(machine / "home"),
    )
    before = snapshot(machine)
    argv = [a.replace("{T}", str(machine)) for a in case.argv]
    p = subprocess.run(
        [sys.executable, str(REPO / "bin" / "pyphys"), *argv], capture_output=True, text=True, env=env, timeout=60
    )
    problems = check(
        case, p.returncode, p.stdout, p.stderr.replace(str(machine), "{T}"), diff(before, snapshot(machine))
    )
    assert not problems, f"{case.id}: " + "; ".join(problems) + f"\nstderr: {p.stderr}"


def test_enough_cases_on_every_subcommand():
    assert {c.id for c in CASES} >= set(IN_A_PROCESS)
    assert len(CASES) >= 150
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES), "duplicate cases"
    covered = {c.argv[0] for c in CASES if c.argv}
    assert set(cli.COMMANDS) <= covered, set(cli.COMMANDS) - covered


# -- docs/bad-inputs.md ---------------------------------------------------------------------------
def render(results: list[tuple[C, int, str, list[str]]]) -> str:
    """The markdown table of every case and its outcome."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t").replace("\x07", "\\a")

    rows = [
        "# Bad input: what pyphys answers",
        "",
        "Every row is a command line that must be refused: an exit status other than 0 (2 for",
        "malformed input), one line on standard error, nothing on standard output, and nothing",
        "written. The test suite runs each one (tests/unit/test_bad_input.py) against a stand-in",
        "machine and regenerates this page with `python tests/unit/test_bad_input.py`.",
        "Rows marked *known bug* are refused wrongly today and are expected to fail until fixed.",
        "",
        f"{len(results)} cases.",
        "",
        "| command line | exit | stderr | outcome |",
        "|---|---|---|---|",
    ]
    for case, rc, err, problems in results:
        line = "`pyphys " + cell(case.id) + "`" + (f" ({case.note})" if case.note else "")
        if case.env:
            line = "`" + cell(case.id.replace(" ", " pyphys ", 1)) + "`" + (f" ({case.note})" if case.note else "")
        outcome = "ok" if not problems else ("known bug: " if case.xfail else "FAILS: ") + "; ".join(problems)
        first = err.splitlines()[0] if err.strip() else ""
        rows.append(f"| {line} | {rc} | {cell(first)} | {cell(outcome)} |")
    return "\n".join(rows) + "\n"


def collect(root: Path) -> list:
    """Run every case (outside pytest) for the doc."""
    import contextlib
    import io

    results = []
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    try:
        for case in CASES:
            mp = pytest.MonkeyPatch()
            out, err = io.StringIO(), io.StringIO()
            before = snapshot(root)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    rc, _o, _e = run_case(case, root, _Capture(out, err), mp)
            finally:
                mp.undo()
            changed = diff(before, snapshot(root))
            o, e = _o, _e
            results.append((case, rc, e, check(case, rc, o, e, changed)))
    finally:
        paths.set_roots(**old)
    return results


class _Capture:
    """capsys's readouterr() over two StringIOs."""

    def __init__(self, out, err):
        self.out, self.err = out, err

    def readouterr(self):
        o, e = self.out.getvalue(), self.err.getvalue()
        for s in (self.out, self.err):
            s.seek(0)
            s.truncate()
        return o, e


def test_doc_is_current(tmp_path):
    if not DOC.exists():
        pytest.fail("docs/bad-inputs.md is missing: run python tests/unit/test_bad_input.py")
    if len(RESULTS) == len(CASES):  # every case ran above, in order, on a fresh tree: reuse them
        results = [RESULTS[c.id] for c in CASES]
    else:
        make_tree(tmp_path / "m")
        results = collect(tmp_path / "m")
    want = render(results)
    assert DOC.read_text() == want, "docs/bad-inputs.md is stale: run python tests/unit/test_bad_input.py"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "m"
        make_tree(root)
        results = collect(root)
    DOC.write_text(render(results))
    bad = [r for r in results if r[3] and not r[0].xfail]
    print(
        f"{DOC.relative_to(REPO)}: {len(results)} cases, {len(bad)} failing, "
        f"{sum(1 for r in results if r[0].xfail)} known bugs",
        file=sys.stderr,
    )
