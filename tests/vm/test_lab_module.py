"""pyphys.ko in every kernel of the matrix (lab, stock 6.1, stock 6.12): sysfs ABI, modes, load/unload,
and the buffer through /dev/mem and busybox devmem where the kernel allows it."""

from __future__ import annotations

import re
import struct

import pytest

from pyphys import kmod_install

SYS = "/sys/kernel/pyphys"
PATTERN_BASE = 0x50590000
SPLAT = re.compile(r"WARNING:|BUG:|Call Trace|general protection|Oops", re.I)


def _num(vm, name: str) -> int:
    res = vm.run(f"cat {SYS}/{name}")
    assert res.rc == 0, res
    return int(res.out.strip(), 0)


def _restore_pattern(vm) -> None:
    code = (
        "import struct;open('/sys/kernel/pyphys/buffer','r+b').write("
        "b''.join(struct.pack('<I',0x50590000|i) for i in range(1024)))"
    )
    assert vm.python(code).rc == 0


def test_sysfs_files_and_modes(any_vm):
    res = any_vm.run(f"stat -c '%n %a' {SYS}/*")
    assert res.rc == 0, res
    modes = {line.split()[0].rsplit("/", 1)[1]: line.split()[1] for line in res.out.strip().splitlines()}
    assert modes == {
        "buffer": "600",
        "buffer_phys": "400",
        "buffer_size": "444",
        "nodename_len": "444",
        "nodename_phys": "400",
    }
    assert _num(any_vm, "buffer_size") == 4096
    assert _num(any_vm, "nodename_len") == 65


def test_non_root_gets_eacces_on_address_files(any_vm):
    code = (
        "import os, errno\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "for name in ('buffer_phys', 'nodename_phys', 'buffer'):\n"
        "    try:\n"
        "        open('/sys/kernel/pyphys/' + name).read(); print(name, 'READABLE')\n"
        "    except PermissionError as e:\n"
        "        print(name, errno.errorcode[e.errno])\n"
    )
    res = any_vm.python(code)
    assert res.rc == 0, res
    assert res.out.split() == ["buffer_phys", "EACCES", "nodename_phys", "EACCES", "buffer", "EACCES"]


def test_buffer_file_reads_and_writes_on_every_kernel(any_vm):
    """The binary sysfs file (the bin_attribute callbacks, whose signature changed in 6.16) on each
    kernel: the ABI's load pattern, a write read back, EFBIG at the end, truncation across it."""
    code = (
        "import errno, os, struct\n"
        "p = '/sys/kernel/pyphys/buffer'\n"
        "b = open(p, 'rb').read()\n"
        "print(len(b), b == b''.join(struct.pack('<I', 0x50590000 | i) for i in range(1024)))\n"
        "fd = os.open(p, os.O_RDWR)\n"
        "print(os.pwrite(fd, b'\\x78\\x56\\x34\\x12', 0x100), os.pread(fd, 4, 0x100).hex())\n"
        "try:\n"
        "    os.pwrite(fd, b'x', 4096); print('no error')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "print(os.pwrite(fd, b'abcdefgh', 4092))\n"
    )
    try:
        res = any_vm.python(code)
        assert res.rc == 0, res
        assert res.out.split() == ["4096", "True", "4", "78563412", "EFBIG", "4"], res.out
    finally:
        _restore_pattern(any_vm)


def test_nodename_address_matches_kallsyms(any_vm):
    """The module's virt_to_phys of the nodename lies in 'Kernel data' per /proc/iomem."""
    phys = _num(any_vm, "nodename_phys")
    iomem = any_vm.run("cat /proc/iomem").out
    spans = [
        tuple(int(x, 16) for x in m.groups())
        for m in re.finditer(r"^\s*([0-9a-f]+)-([0-9a-f]+) : Kernel (?:data|bss)", iomem, re.M)
    ]
    assert spans, iomem
    assert any(lo <= phys <= hi for lo, hi in spans), (hex(phys), spans)


def test_buffer_pattern_via_devmem_and_busybox(lab_vm):
    """/dev/mem (pyphys physmem) and busybox devmem both see the module's pattern."""
    _restore_pattern(lab_vm)
    phys = _num(lab_vm, "buffer_phys")
    code = (
        f"from pyphys import physmem\n"
        f"with physmem.open_physmem('mmap') as m: import sys; sys.stdout.write(m.read({phys}, 4096).hex())"
    )
    res = lab_vm.python(code)
    assert res.rc == 0, res
    data = bytes.fromhex(res.out)
    words = struct.unpack("<1024I", data)
    assert words == tuple(PATTERN_BASE | i for i in range(1024))
    for i in (0, 1, 255, 1023):
        bb = lab_vm.run(f"busybox devmem {phys + 4 * i:#x} 32")
        assert bb.rc == 0, bb
        assert int(bb.out, 16) == PATTERN_BASE | i


def test_devmem_write_appears_in_sysfs_and_back(lab_vm):
    phys = _num(lab_vm, "buffer_phys")
    try:
        # /dev/mem -> kernel: pyphys writes through the mapping, the module's sysfs sees it
        code = (
            f"from pyphys import physmem\n"
            f"with physmem.open_physmem('mmap', writable=True) as m: m.write({phys + 0x40}, b'hello from /dev/mem')"
        )
        assert lab_vm.python(code).rc == 0
        res = lab_vm.run(f"dd if={SYS}/buffer bs=1 skip={0x40} count=19 2>/dev/null")
        assert res.out == "hello from /dev/mem"
        # busybox devmem -> kernel
        assert lab_vm.run(f"busybox devmem {phys + 0x80:#x} 32 0xcafef00d").rc == 0
        kernel_side = lab_vm.python(
            "import struct;b=open('/sys/kernel/pyphys/buffer','rb').read();"
            "print(hex(struct.unpack_from('<I',b,0x80)[0]))"
        )
        assert kernel_side.out.strip() == "0xcafef00d"
        # kernel -> /dev/mem: a sysfs write is seen by busybox devmem and by pyphys
        code = "f=open('/sys/kernel/pyphys/buffer','r+b'); f.seek(0x100); f.write(b'\\x78\\x56\\x34\\x12')"
        assert lab_vm.python(code).rc == 0
        assert int(lab_vm.run(f"busybox devmem {phys + 0x100:#x} 32").out, 16) == 0x12345678
        code = (
            f"from pyphys import physmem\nwith physmem.open_physmem() as m: print(hex(m.read_word({phys + 0x100}, 32)))"
        )
        assert lab_vm.python(code).out.strip() == "0x12345678"
    finally:
        _restore_pattern(lab_vm)


def test_stock_kernel_refuses_devmem_of_ram(stock_any_vm):
    """CONFIG_STRICT_DEVMEM=y (both stock kernels): busybox devmem cannot map the module's buffer (RAM)."""
    phys = _num(stock_any_vm, "buffer_phys")
    res = stock_any_vm.run(f"busybox devmem {phys:#x} 32")
    assert res.rc != 0
    cfg = stock_any_vm.run("grep -E '^CONFIG_(IO_)?STRICT_DEVMEM=' /boot/config-$(uname -r)")
    assert "CONFIG_STRICT_DEVMEM=y" in cfg.out


def test_module_unloads_and_reloads_cleanly(any_vm):
    before = any_vm.run("dmesg").out
    res = any_vm.unload_module()
    assert res.rc == 0, res
    assert any_vm.run(f"test -e {SYS}").rc != 0
    any_vm.load_module()
    assert any_vm.run(f"test -e {SYS}/buffer_phys").rc == 0
    assert _num(any_vm, "buffer_size") == 4096
    new = any_vm.run("dmesg").out[len(before) :]
    assert not SPLAT.search(new), new


def _installed_traces(vm) -> str:
    """Everything `pyphys module install` may leave on the guest for pyphys, one path per line."""
    res = vm.run(
        "ls -d /usr/src/pyphys-* /var/lib/dkms/pyphys 2>/dev/null;"
        " find /lib/modules/$(uname -r) -name 'pyphys.ko*' 2>/dev/null;"
        " modinfo -n pyphys 2>/dev/null; true"
    )
    return res.out.strip()


@pytest.mark.install
def test_module_install_load_uninstall_through_dkms(stock_any_vm):
    """`pyphys module install` on each stock kernel as a user's machine would run it: DKMS builds
    pyphys.ko against that kernel's own headers, installs and loads it; `uninstall` leaves nothing
    behind. Under TCG the DKMS build (cc-option probes, BTF, signing, xz, depmod of the whole module
    tree) takes tens of minutes per kernel, so it runs by `make test-install`, not in `make test`."""
    vm = stock_any_vm
    assert vm.run("command -v dkms").rc == 0, "dkms is part of the set-up (scripts/setup.sh)"
    assert _installed_traces(vm) == ""
    assert vm.unload_module().rc == 0
    try:
        res = vm.pyphys("module", "install", "--dkms", timeout=1500)
        assert res.rc == 0, res
        status = vm.run("dkms status pyphys")
        assert "installed" in status.out, status
        installed = vm.run("modinfo -n pyphys")
        assert installed.rc == 0 and f"/lib/modules/{vm.guest_release}/" in installed.out, installed
        assert vm.run(f"modinfo -F vermagic pyphys | grep -qF {vm.guest_release}").rc == 0
        assert vm.run("grep -q '^pyphys ' /proc/modules").rc == 0
        modes = vm.run(f"stat -c '%n %a' {SYS}/buffer_phys {SYS}/nodename_phys")
        assert modes.rc == 0 and set(re.findall(r" (\d+)$", modes.out, re.M)) == {"400"}, modes
        res = vm.pyphys("module", "uninstall", timeout=600)
        assert res.rc == 0, res
        assert vm.run(f"test -e {SYS}").rc != 0
        assert _installed_traces(vm) == ""
    finally:
        version = kmod_install.dkms_version()
        vm.run(f"dkms remove pyphys/{version} --all >/dev/null 2>&1; rm -rf /usr/src/pyphys-*; true", timeout=600)
        vm.load_module()
    assert _num(vm, "buffer_size") == 4096
