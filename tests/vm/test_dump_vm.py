"""`pyphys dump` for real, in the lab guest.

Ground truth comes from outside pyphys: the module's own sysfs files (buffer_phys and the
raw ``buffer`` attribute, nodename_phys), the documented buffer pattern, ``uname -n``,
``busybox devmem``, ``/proc/version``, strace, and volatility3 (PyPI) reading our LiME file
on the host.

Small dumps go to a guest directory and are read back through the agent. The whole-RAM
LiME dump for volatility3 and the O_DIRECT tests need a directory the guest can write and,
for volatility3, the host can read: the lab VM's ``shared_dir`` (vng --rwdir, a 9p mount,
which accepts O_DIRECT) or $PYPHYS_VM_OUTDIR. The guest's /tmp is an overlay on tmpfs, which on
Linux 6.1 refuses O_DIRECT (EINVAL) and lives in the guest's RAM.
"""

from __future__ import annotations

import csv
import filecmp
import hashlib
import io
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import uuid

import pytest

PAGE = 4096
PATTERN = struct.pack("<1024I", *(0x50590000 | i for i in range(1024)))  # kmod: word i = 0x50590000 | i
from lime_reader import LIME_V1, lime_records  # noqa: E402  (independent of pyphys.layouts.lime)


def shared_outdir(vm) -> str | None:
    """A directory writable in the guest and readable on the host at the same path, if any."""
    return getattr(vm, "shared_dir", None) or os.environ.get("PYPHYS_VM_OUTDIR") or None


@pytest.fixture
def gdir(lab_vm):
    """A fresh directory in the guest (on the shared dir if there is one), removed afterwards."""
    base = shared_outdir(lab_vm) or "/tmp"
    path = f"{base}/pyphys-dump-{uuid.uuid4().hex[:8]}"
    assert lab_vm.run(f"mkdir -p {path}").rc == 0
    yield path
    lab_vm.run(f"rm -rf {shlex.quote(path)}")


def assert_same_file(vm, a: str, b: str) -> None:
    """Two guest files are byte for byte the same. Compared on the host when they are in the shared
    directory: a padded dump is a sparse file as long as the highest address in it (the module's
    buffer can sit near the top of RAM), which the guest would read back over 9p at a few MB/s."""
    shared = shared_outdir(vm)
    if shared and a.startswith(shared + "/") and os.path.exists(a):
        assert filecmp.cmp(a, b, shallow=False), f"{a} and {b} differ"
        return
    res = vm.run(f"cmp {shlex.quote(a)} {shlex.quote(b)}", timeout=1800)
    assert res.rc == 0, res


def sysfs_hex(vm, name: str) -> int:
    res = vm.run(f"cat /sys/kernel/pyphys/{name}")
    assert res.rc == 0, res
    return int(res.out.strip(), 16)


def fetch(vm, path: str) -> bytes:
    res = vm.run(f"cat {shlex.quote(path)}", binary=True)
    assert res.rc == 0, res
    return res.out


def fetch_slice(vm, path: str, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` of a (possibly large, sparse) guest file, via coreutils."""
    res = vm.run(f"tail -c +{offset + 1} {shlex.quote(path)} | head -c {length}", binary=True)
    assert res.rc == 0, res
    return res.out


def module_buffer(vm) -> tuple[int, bytes]:
    """(physical address, current content) of the module's buffer, from its sysfs files."""
    addr = sysfs_hex(vm, "buffer_phys")
    content = fetch(vm, "/sys/kernel/pyphys/buffer")
    assert len(content) == PAGE
    return addr, content


def dump(vm, *args: str):
    res = vm.pyphys("dump", *args, timeout=1800)
    return res


# -- the module buffer in every format ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["raw", "padded", "lime"])
def test_module_buffer_page_in_every_format(lab_vm, gdir, fmt):
    addr, content = module_buffer(lab_vm)
    assert content == PATTERN, "the module buffer does not hold its load-time pattern (a test left it dirty?)"
    page = addr - addr % PAGE
    out = f"{gdir}/buf.{fmt}"
    res = dump(lab_vm, "-f", fmt, f"{page:#x}+4K", "-o", out)
    assert res.rc == 0, res
    if fmt == "raw":
        data = fetch(lab_vm, out)
        assert len(data) == PAGE
        got = data[addr - page : addr - page + PAGE]
    elif fmt == "padded":
        size = int(lab_vm.run(f"stat -c %s {out}").out)
        assert size == page + PAGE  # file offset = physical address
        got = fetch_slice(lab_vm, out, addr, PAGE)
    else:
        recs = lime_records(fetch(lab_vm, out))
        assert [(s, e) for s, e, _ in recs] == [(page, page + PAGE - 1)]
        got = recs[0][2][addr - page : addr - page + PAGE]
    assert got[: PAGE - (addr - page)] == PATTERN[: PAGE - (addr - page)]
    if fmt == "padded":  # no whole-file digest (holes are not hashed): the range's, in FILE.json
        meta = json.loads(lab_vm.run(f"cat {gdir}/buf.padded.json").out)
        assert meta["sha256"] is None and lab_vm.run(f"ls {gdir}/buf.padded.sha256").rc != 0
        want = lab_vm.run(f"dd if={gdir}/buf.padded bs=4096 skip={page // PAGE} count=1 status=none | sha256sum")
        assert meta["ranges"][0]["sha256"] == want.out.split()[0]
        return
    # the sidecar checks with coreutils, in the guest
    check = lab_vm.run(f"cd {gdir} && sha256sum -c buf.{fmt}.sha256")
    assert check.rc == 0 and f"buf.{fmt}: OK" in check.out


def kernel_code(vm) -> tuple[int, int]:
    """The "Kernel code" region of /proc/iomem: text does not change while the tests run."""
    iomem = vm.run("cat /proc/iomem").out
    m = re.search(r"^\s+([0-9a-f]+)-([0-9a-f]+) : Kernel code$", iomem, re.M)
    assert m, iomem
    return int(m.group(1), 16), int(m.group(2), 16)


def test_several_ranges_raw_and_padded_offsets(lab_vm, gdir):
    """The buffer page, the nodename's page and the first page of kernel text: raw packs them
    in address order, padded puts each at its physical address. Judges: the module's buffer
    file, uname -n, busybox devmem."""
    buf_addr, content = module_buffer(lab_vm)
    node_addr = sysfs_hex(lab_vm, "nodename_phys")
    uname = lab_vm.run("uname -n").out.strip().encode()
    text = kernel_code(lab_vm)[0]
    pages = sorted({buf_addr - buf_addr % PAGE, node_addr - node_addr % PAGE, text - text % PAGE})
    assert len(pages) == 3
    specs = [f"{p:#x}+4K" for p in reversed(pages)]  # given out of order on purpose
    res = dump(lab_vm, "-f", "raw", *specs, "-o", f"{gdir}/m.raw")
    assert res.rc == 0, res
    rows = re.findall(r"^\s+(0x[0-9a-f]+)-0x[0-9a-f]+\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+[0-9a-f]{16}$", res.out, re.M)
    assert [(int(a, 16), int(o, 16)) for a, o in rows] == [(p, i * PAGE) for i, p in enumerate(pages)]
    res = dump(lab_vm, "-f", "padded", *specs, "-o", f"{gdir}/m.padded")
    assert res.rc == 0, res
    rows = re.findall(r"^\s+(0x[0-9a-f]+)-0x[0-9a-f]+\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+[0-9a-f]{16}$", res.out, re.M)
    assert [(int(a, 16), int(o, 16)) for a, o in rows] == [(p, p) for p in pages]
    raw = fetch(lab_vm, f"{gdir}/m.raw")
    assert len(raw) == PAGE * len(pages)
    assert int(lab_vm.run(f"stat -c %s {gdir}/m.padded").out) == pages[-1] + PAGE
    for i, page in enumerate(pages):
        for name, data in (
            ("raw", raw[i * PAGE : (i + 1) * PAGE]),
            ("padded", fetch_slice(lab_vm, f"{gdir}/m.padded", page, PAGE)),
        ):
            if page <= buf_addr < page + PAGE:
                assert data[buf_addr - page :] == content[: PAGE - (buf_addr - page)], name
            if page <= node_addr < page + PAGE:
                assert data[node_addr - page :][: len(uname) + 1] == uname + b"\0", name
            if page == text - text % PAGE:
                for off in range(0, 64, 4):  # busybox devmem: its own mmap of /dev/mem
                    word = int(lab_vm.run(f"busybox devmem {page + off:#x} 32").out.strip(), 16)
                    assert struct.unpack_from("<I", data, off)[0] == word, (name, hex(page + off))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, words",
    [
        ("0xfee00000+4K", "0xfee00000 is in"),  # the local APIC's MMIO: not RAM (iomem may not list it)
        ("0x9f000-0x101000", "Reserved"),  # runs from RAM into the reserved/ROM area
    ],
)
def test_bad_ranges_one_line_no_file(lab_vm, gdir, spec, words):
    res = dump(lab_vm, spec, "-o", f"{gdir}/bad.lime")
    assert res.rc != 0 and res.out == ""
    assert res.err.count("\n") == 1 and "Traceback" not in res.err and words in res.err, res
    assert lab_vm.run(f"ls -A {gdir}").out.strip() == ""


def test_existing_output_and_full_disk_in_guest(lab_vm, gdir):
    lab_vm.run(f"echo keep > {gdir}/x.lime")
    res = dump(lab_vm, "0x100000+64K", "-o", f"{gdir}/x.lime")
    assert res.rc == 2 and "exists (use --force" in res.err
    assert lab_vm.run(f"cat {gdir}/x.lime").out == "keep\n"
    small = f"/tmp/pyphys-small-{uuid.uuid4().hex[:6]}"
    assert lab_vm.run(f"mkdir -p {small} && mount -t tmpfs -o size=1m tmpfs {small}").rc == 0
    try:
        res = dump(lab_vm, "0x100000+4M", "-o", f"{small}/x.lime")
        assert res.rc == 1 and res.err.count("\n") == 1 and "not enough space" in res.err, res
        assert lab_vm.run(f"ls -A {small}").out.strip() == ""
    finally:
        lab_vm.run(f"umount {small}; rmdir {small}")


# -- O_DIRECT ------------------------------------------------------------------------------------


def _require_o_direct(vm, directory: str) -> None:
    code = (
        f"import os; fd = os.open({directory + '/.odirect-probe'!r}, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600); "
        f"os.close(fd); os.unlink({directory + '/.odirect-probe'!r})"
    )
    if vm.python(code).rc != 0:
        pytest.skip(
            f"{directory} refuses O_DIRECT in the guest: give the lab VM a shared rw dir "
            "(LabVM.shared_dir / PYPHYS_VM_OUTDIR, vng --rwdir)"
        )


def _static_ranges(vm) -> list[str]:
    """The module buffer page and the kernel's text: memory that does not change between two dumps."""
    addr = sysfs_hex(vm, "buffer_phys")
    start, end = kernel_code(vm)
    return [f"{addr - addr % PAGE:#x}+4K", f"{start:#x}-{end + 1:#x}"]  # iomem's END is inclusive


def test_direct_gives_the_buffered_file_and_really_uses_o_direct(lab_vm, gdir):
    _require_o_direct(lab_vm, gdir)
    ranges = _static_ranges(lab_vm)
    for fmt in ("lime", "padded"):
        res = dump(lab_vm, "-f", fmt, *ranges, "-o", f"{gdir}/b.{fmt}")
        assert res.rc == 0, res
        # strace is the judge that O_DIRECT is used (once: under TCG every traced syscall is slow,
        # and --seccomp-bpf stops only on the traced ones)
        trace = f"strace -f --seccomp-bpf -e trace=openat,pwrite64 -o {gdir}/strace.log " if fmt == "lime" else ""
        res = lab_vm.run(
            f"{trace}{shlex.quote(sys.executable)} -m pyphys dump --direct -f {fmt} "
            f"{' '.join(ranges)} -o {gdir}/d.{fmt}",
            timeout=1800,
        )
        assert res.rc == 0, res
        assert_same_file(lab_vm, f"{gdir}/b.{fmt}", f"{gdir}/d.{fmt}")
        if fmt != "padded":  # padded has no FILE.sha256
            check = lab_vm.run(f"cd {gdir} && sha256sum -c d.{fmt}.sha256", timeout=1800)
            assert check.rc == 0, check
        metas = [json.loads(lab_vm.run(f"cat {gdir}/{x}.{fmt}.json").out) for x in "bd"]
        assert [r["sha256"] for r in metas[0]["ranges"]] == [r["sha256"] for r in metas[1]["ranges"]]
        assert metas[0]["sha256"] == metas[1]["sha256"] and metas[1]["direct"] is True
    log = lab_vm.run(f"cat {gdir}/strace.log").out
    opened = re.findall(r'openat\(AT_FDCWD, "[^"]*/\.d\.lime\.pyphys-partial", ([^,]+), 0600\)\s+= (\d+)', log)
    assert opened and "O_DIRECT" in opened[0][0].split("|"), log[-3000:]
    writes = re.findall(rf"pwrite64\({opened[0][1]}, .*?, (\d+), (\d+)\)\s+= (\d+)", log)
    assert writes and all(int(c) % PAGE == 0 and int(o) % PAGE == 0 and c == r for c, o, r in writes), writes


def test_o_direct_efault_and_the_way_around(lab_vm, gdir):
    """Seed 003: write(2) of an O_DIRECT file straight from a /dev/mem mapping fails with EFAULT
    (get_user_pages refuses VM_IO|VM_PFNMAP); the same bytes copied to an anonymous buffer write
    fine, and pyphys dump --direct produces exactly them."""
    _require_o_direct(lab_vm, gdir)
    addr = sysfs_hex(lab_vm, "buffer_phys")
    page = addr - addr % PAGE
    code = f"""
import errno, mmap, os
m = os.open("/dev/mem", os.O_RDONLY)
mm = mmap.mmap(m, {PAGE}, mmap.MAP_SHARED, mmap.PROT_READ, offset={page})
fd = os.open("{gdir}/seed", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
try:
    os.write(fd, mm)
    print("no error")
except OSError as e:
    print(errno.errorcode[e.errno])
bounce = mmap.mmap(-1, {PAGE})
bounce[:] = mm[:]
print("bounce", os.write(fd, bounce))
"""
    res = lab_vm.python(code)
    assert res.rc == 0, res
    assert res.out.split() == ["EFAULT", "bounce", str(PAGE)]
    res = dump(lab_vm, "--direct", "-f", "raw", f"{page:#x}+4K", "-o", f"{gdir}/p.raw")
    assert res.rc == 0, res
    assert fetch(lab_vm, f"{gdir}/p.raw") == fetch(lab_vm, f"{gdir}/seed")


# -- all of RAM, read by volatility3 on the host ----------------------------------------------------


def test_whole_ram_lime_opens_in_volatility3(lab_vm):
    outdir = shared_outdir(lab_vm)
    if not outdir:
        pytest.skip("no directory shared read-write with the guest (LabVM.shared_dir / PYPHYS_VM_OUTDIR)")
    try:
        import volatility3  # noqa: F401
    except ImportError:
        pytest.skip("volatility3 is not installed in the test environment (pip install volatility3)")
    path = os.path.join(outdir, f"ram-{uuid.uuid4().hex[:8]}.lime")
    warnings_before = lab_vm.run("dmesg | grep -c -e 'WARNING:' -e 'memremap attempted' || true").out.strip()
    try:
        res = dump(lab_vm, "--no-sha256", "-o", path)
        assert res.rc == 0, res
        print(res.out.splitlines()[0])  # size, time and rate, for the record (pytest -s)
        # reading all of RAM must not make the kernel complain (read_mem on a page only partly
        # RAM would: "memremap attempted on mixed range")
        assert (
            lab_vm.run("dmesg | grep -c -e 'WARNING:' -e 'memremap attempted' || true").out.strip() == warnings_before
        )
        iomem = lab_vm.run("cat /proc/iomem").out
        # every System RAM line, cut to whole pages (x86: 0x1000-0x9fbff -> 0x1000-0x9efff)
        ram = [
            ((int(a, 16) + PAGE - 1) // PAGE * PAGE, (int(b, 16) + 1) // PAGE * PAGE - 1)
            for a, b in re.findall(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$", iomem, re.M)
        ]
        with open(path, "rb") as f:  # the headers, parsed with lime.h's struct: every System RAM range
            recs, off = [], 0
            size = os.path.getsize(path)
            while off < size:
                f.seek(off)
                magic, version, s, e, _ = LIME_V1.unpack(f.read(LIME_V1.size))
                assert (magic, version) == (b"EMiL", 1)
                recs.append((s, e))
                off += LIME_V1.size + e - s + 1
        assert recs == ram
        found = _volatility_banners(path)
        assert found
        version = lab_vm.run("cat /proc/version").out.strip()
        release = lab_vm.run("uname -r").out.strip()
        assert any(f"Linux version {release} " in banner for _, banner in found), (found, version)
        offsets = [int(o, 16) for o, banner in found if f"Linux version {release} " in banner]
        assert all(any(s <= offset <= e for s, e in ram) for offset in offsets), (offsets, ram)
        assert _devmem_reads_linu_at_one(lab_vm, offsets)
    finally:
        if os.path.exists(path):
            os.unlink(path)


# -- Debian's stock kernel: /dev/mem refuses RAM, the module's device takes over ----------------


def test_stock_kernel_dump_through_module_device(stock_any_vm):
    addr = sysfs_hex(stock_any_vm, "buffer_phys")
    page = addr - addr % PAGE
    out = f"/tmp/pyphys-dump-{uuid.uuid4().hex[:8]}.raw"
    res = stock_any_vm.pyphys("dump", "-f", "raw", f"{page:#x}+4K", "-o", out)
    assert res.rc != 0 and res.err.count("\n") == 1 and "Traceback" not in res.err, res
    assert "STRICT_DEVMEM" in res.err, res
    assert stock_any_vm.run(f"ls {out}*").rc != 0  # nothing written
    stock_any_vm.load_module(mem_device=1)
    try:
        addr, content = module_buffer(stock_any_vm)  # a new module instance: a new buffer
        page = addr - addr % PAGE
        res = stock_any_vm.pyphys("dump", "-f", "raw", f"{page:#x}+4K", "-o", out)
        assert res.rc == 0, res
        assert "backend module" in res.out
        data = fetch(stock_any_vm, out)
        assert data[addr - page :] == content[: PAGE - (addr - page)]
        assert content == PATTERN
    finally:
        stock_any_vm.run(f"rm -f {out} {out}.sha256")
        stock_any_vm.load_module()


# -- ELF core: drgn on the host reads what `pyphys hostname` wrote ---------------------------------


def _vmlinux_symbol(vmlinux: str, name: str) -> int:
    """A symbol's link-time address in vmlinux, by pyelftools (KASLR's reference point)."""
    from elftools.elf.elffile import ELFFile

    with open(vmlinux, "rb") as f:
        (sym,) = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
        return sym["st_value"]


def test_elf_core_drgn_reads_the_hostname_pyphys_wrote(lab_vm):
    """`pyphys hostname NinjaNinja`, then a whole-RAM ELF dump: drgn (PyPI), given the lab
    kernel's vmlinux, reads init_uts_ns.name.nodename from it, and without DWARF finds the same
    bytes through the kallsyms tables VMCOREINFO points at. The metadata's KASLR offset is the
    guest's kallsyms _text minus vmlinux's; its hashes are the file's."""
    drgn = pytest.importorskip("drgn", reason="drgn is not installed (pip install 'pyphys[forensics]')")
    from elftools.elf.elffile import ELFFile
    from helpers import validate_json

    from pyphys import kernels

    outdir = shared_outdir(lab_vm)
    if not outdir:
        pytest.skip("no directory shared read-write with the guest (LabVM.shared_dir / PYPHYS_VM_OUTDIR)")
    vmlinux = kernels.resolve("lab", quiet=True).vmlinux
    assert vmlinux and os.path.exists(vmlinux), "the lab kernel has no vmlinux with DWARF (scripts/build-kernel.sh)"
    path = os.path.join(outdir, f"ram-{uuid.uuid4().hex[:8]}.elf")
    original = lab_vm.run("uname -n").out.strip()
    res = lab_vm.pyphys("hostname", "NinjaNinja")
    assert res.rc == 0, res
    try:
        assert lab_vm.run("uname -n").out.strip() == "NinjaNinja"
        res = dump(lab_vm, "-f", "elf", "-o", path)
        assert res.rc == 0, res
        print(res.out.splitlines()[0])
        guest = {
            "release": lab_vm.run("uname -r").out.strip(),
            "banner": lab_vm.run("cat /proc/version").out.strip(),
            "boot_id": lab_vm.run("cat /proc/sys/kernel/random/boot_id").out.strip(),
            "_text": int(lab_vm.run("grep ' _text$' /proc/kallsyms").out.split()[0], 16),
        }
    finally:
        undo = lab_vm.pyphys("undo")
    assert undo.rc == 0 and lab_vm.run("uname -n").out.strip() == original, undo
    try:
        prog = drgn.Program()
        prog.set_core_dump(path)
        assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
        prog.load_debug_info([vmlinux])
        uts = prog["init_uts_ns"].name
        print(f"drgn: init_uts_ns.name.nodename = {uts.nodename.string_()!r}, release = {uts.release.string_()!r}")
        assert uts.nodename.string_() == b"NinjaNinja"
        assert uts.release.string_().decode() == guest["release"]
        # no DWARF: drgn's kallsyms reader (the kallsyms_* tables VMCOREINFO names) and the
        # UAPI layout of struct new_utsname (nodename at offset 65)
        from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

        bare = drgn.Program()
        bare.set_core_dump(path)
        bare.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(bare), enable_index=0)
        sym = bare.symbol("init_uts_ns")
        print(f"drgn without DWARF: {sym.name} at {sym.address:#x}: {bare.read(sym.address + 65, 11)!r}")
        assert bare.read(sym.address + 65, 11) == b"NinjaNinja\0"
        # the metadata of this real capture
        with open(path + ".json") as f:
            meta = json.load(f)
        validate_json(meta, "dump")
        print("metadata:", json.dumps({k: v for k, v in meta.items() if k not in ("iomem", "vmcoreinfo")}, indent=1))
        assert meta["kernel"] == {k: guest[k] for k in ("release", "banner", "boot_id")}
        kaslr = guest["_text"] - _vmlinux_symbol(vmlinux, "_text")
        assert int(meta["kaslr"]["offset"], 16) == kaslr and meta["kaslr"]["agree"] is True
        assert f"KERNELOFFSET={kaslr:x}\n" in meta["vmcoreinfo"]["text"]
        with open(path, "rb") as f:
            loads = [s.header for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
            assert len(loads) == len(meta["ranges"])
            for ld, r in zip(loads, meta["ranges"]):
                assert (ld["p_paddr"], ld["p_filesz"], ld["p_offset"]) == (
                    int(r["start"], 16),
                    r["length"],
                    int(r["file_offset"], 16),
                )
                assert ld["p_vaddr"] == int(meta["kaslr"]["direct_map"], 16) + ld["p_paddr"]
                f.seek(ld["p_offset"])
                h = hashlib.sha256()
                for left in range(ld["p_filesz"], 0, -(8 << 20)):
                    h.update(f.read(min(left, 8 << 20)))
                assert h.hexdigest() == r["sha256"]
        with open(path + ".sha256") as f:
            assert f.read().split()[0] == meta["sha256"]
    finally:
        for name in (path, path + ".sha256", path + ".json"):
            if os.path.exists(name):
                os.unlink(name)


# -- AVML: the same bytes as LiME, compressed; volatility3 reads a whole-RAM capture -------------


def test_avml_of_static_memory_is_the_lime_once_decompressed_and_streams(lab_vm, gdir):
    from lime_reader import avml_to_lime, libsnappy

    if libsnappy() is None:
        pytest.skip("libsnappy (Debian libsnappy1v5) is not installed on the host")
    ranges = _static_ranges(lab_vm)
    for fmt in ("lime", "avml"):
        res = dump(lab_vm, "-f", fmt, *ranges, "-o", f"{gdir}/s.{fmt}")
        assert res.rc == 0, res
    lime, packed = fetch(lab_vm, f"{gdir}/s.lime"), fetch(lab_vm, f"{gdir}/s.avml")
    assert avml_to_lime(packed) == lime and len(packed) < len(lime)
    # -o - through a pipe into an independent reader in the guest: the same bytes as the file
    reader = f"{shlex.quote(sys.executable)} -c {shlex.quote(STREAM_READER)}"
    for fmt in ("lime", "avml", "elf"):
        res = lab_vm.run(
            f"{shlex.quote(sys.executable)} -m pyphys dump -f {fmt} {' '.join(ranges)} -o - 2>{gdir}/err | {reader}",
            timeout=1800,
        )
        assert res.rc == 0, (res, lab_vm.run(f"cat {gdir}/err").out)
        size, digest, magic = res.out.split()
        assert magic == {"lime": b"EMiL", "avml": b"AVML", "elf": b"\x7fELF"}[fmt].hex()
        assert f"sha256 {digest}  -" in lab_vm.run(f"cat {gdir}/err").out
        if fmt != "elf":
            assert digest == hashlib.sha256(lime if fmt == "lime" else packed).hexdigest()


STREAM_READER = (
    "import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest(), d[:4].hex())"
)


def _devmem_reads_linu_at_one(vm, offsets: list[int]) -> bool:
    """The banner offsets volatility3 found are physical addresses: busybox devmem reads "Linu" at
    one of them. Not at every one: a copy of the banner in a page freed since the dump (page cache,
    a freed buffer) may hold anything by now; linux_banner in the kernel's rodata stays."""
    words = [int(vm.run(f"busybox devmem {offset:#x} 32").out.strip(), 16) for offset in offsets[:16]]
    print("devmem at the banners' offsets:", [f"{w:#010x}" for w in words])
    return any(word.to_bytes(4, "little") == b"Linu" for word in words)


def _volatility_banners(path: str) -> list[tuple[str, str]]:
    vol = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from volatility3.cli import main; sys.argv[0] = 'vol'; main()",
            "-q",
            "-r",
            "csv",
            "-f",
            path,
            "banners.Banners",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert vol.returncode == 0, vol.stderr[-3000:]
    rows = list(csv.reader(io.StringIO(vol.stdout[vol.stdout.index("TreeDepth,") :])))
    assert rows[0] == ["TreeDepth", "Offset", "Banner"], vol.stdout[-3000:]
    return [(row[1], row[2]) for row in rows[1:] if len(row) == 3 and row[2].startswith("Linux version ")]


def test_whole_ram_avml_opens_in_volatility3(lab_vm):
    pytest.importorskip("volatility3")
    from volatility3.framework.layers import avml as vavml

    if not vavml.HAS_SNAPPY:
        pytest.skip("volatility3 finds no libsnappy (Debian libsnappy1v5)")
    outdir = shared_outdir(lab_vm)
    if not outdir:
        pytest.skip("no directory shared read-write with the guest (LabVM.shared_dir / PYPHYS_VM_OUTDIR)")
    path = os.path.join(outdir, f"ram-{uuid.uuid4().hex[:8]}.avml")
    try:
        res = dump(lab_vm, "-f", "avml", "--no-sha256", "-o", path)
        assert res.rc == 0, res
        print("\n".join(res.out.splitlines()[:2]))  # rate and compression ratio, for the record
        release = lab_vm.run("uname -r").out.strip()
        found = _volatility_banners(path)
        assert any(f"Linux version {release} " in banner for _, banner in found), found
        offsets = [int(o, 16) for o, banner in found if f"Linux version {release} " in banner]
        assert _devmem_reads_linu_at_one(lab_vm, offsets)
    finally:
        for name in (path, path + ".json"):
            if os.path.exists(name):
                os.unlink(name)


def test_stock_kernel_elf_core_drgn_without_dwarf(stock_any_vm):
    """Debian's own kernels (STRICT_DEVMEM: through the module's device; KASLR; no vmlinux with
    DWARF here): the ELF core carries their VMCOREINFO, and drgn finds init_uts_ns through the
    kallsyms tables it names and reads the guest's uname -n there."""
    drgn = pytest.importorskip("drgn", reason="drgn is not installed (pip install 'pyphys[forensics]')")
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    vm = stock_any_vm
    outdir = shared_outdir(vm)
    if not outdir:
        pytest.skip("no directory shared read-write with the guest (LabVM.shared_dir / PYPHYS_VM_OUTDIR)")
    path = os.path.join(outdir, f"ram-{uuid.uuid4().hex[:8]}.elf")
    vm.load_module(mem_device=1)
    try:
        res = vm.pyphys("dump", "-f", "elf", "--no-sha256", "-o", path, timeout=1800)
        assert res.rc == 0, res
        assert "backend module" in res.out, res.out
        print(res.out.splitlines()[0])
        uname = vm.run("uname -n").out.strip().encode()
        text = int(vm.run("grep ' _text$' /proc/kallsyms").out.split()[0], 16)
        with open(path + ".json") as f:
            meta = json.load(f)
        prog = drgn.Program()
        prog.set_core_dump(path)
        assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
        prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
        sym = prog.symbol("init_uts_ns")
        assert prog.read(sym.address + 65, len(uname) + 1) == uname + b"\0"
        assert prog.symbol("_text").address == text  # the same KASLR'd address the guest shows
        assert int(meta["kaslr"]["offset"], 16) == int(meta["kaslr"]["vmcoreinfo"], 16)
        assert meta["kaslr"]["agree"] is True, meta["kaslr"]
    finally:
        for name in (path, path + ".json"):
            if os.path.exists(name):
                os.unlink(name)
        vm.load_module()
