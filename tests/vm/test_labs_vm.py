"""The classroom labs in the lab VM: each reference solution passes `pyphys lab check N`, and a
deliberately wrong result fails it with a message that names the value and says what to do.

Ground truth is the checker's business (pyphys/labs/probes.py reads the kernel's interfaces directly);
these tests add their own where the host can see it: the ivshmem backing file on the host, uname -n
after `pyphys undo`. Every test restores what it changed (module parameters, hostname, the module
buffer, the ivshmem file) and writes to a private journal, so other VM tests are unaffected.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

import pytest

from pyphys.labvm import REPO, pty_session

PY = shlex.quote(sys.executable)


def _env(vm, n: int, **extra: str) -> dict:
    env = {"PYPHYS_JOURNAL": f"/tmp/pyphys-test-lab{n}-journal.jsonl", "PYPHYS_LAB": str(n)}
    env.update(extra)
    return env


def _solve(vm, n: int, env: dict):
    res = vm.run(f"cd {shlex.quote(str(REPO))} && sh labs/solutions/lab{n}.sh", env=env, timeout=900)
    assert res.rc == 0, f"reference solution of lab {n} failed\n{res}"
    return res


def _check(vm, n: int, env: dict, path: str | None = None):
    extra = f" --file {shlex.quote(path)}" if path else ""
    return vm.run(f"cd {shlex.quote(str(REPO))} && {PY} -m pyphys lab check {n}{extra}", env=env, timeout=300)


def _results(vm, n: int) -> dict:
    res = vm.run(f"cat /tmp/lab{n}.txt")
    assert res.rc == 0, res
    return dict(line.split(" = ", 1) for line in res.out.splitlines() if " = " in line)


def _write_results(vm, path: str, values: dict) -> None:
    text = "".join(f"{k} = {v}\n" for k, v in values.items())
    assert vm.run(f"cat > {shlex.quote(path)}", input=text).rc == 0


def _line(out: str, key: str) -> str:
    """The report line of ``key`` (status and detail)."""
    m = re.search(rf"^\s+(OK|WRONG|MISSING|ERROR)\s+{re.escape(key)}\s+(.*)$", out, re.M)
    assert m, f"no report line for {key}:\n{out}"
    return f"{m.group(1)} {m.group(2)}"


def _assert_passed(res, n: int) -> None:
    assert res.rc == 0, f"lab {n} check failed\n{res}"
    assert f"Lab {n} passed" in res.out, res.out
    assert not re.search(r"^\s+(WRONG|MISSING|ERROR)\s", res.out, re.M), res.out


def _restore_buffer(vm) -> None:
    code = (
        "import struct;open('/sys/kernel/pyphys/buffer','r+b').write("
        "b''.join(struct.pack('<I',0x50590000|i) for i in range(1024)))"
    )
    assert vm.python(code).rc == 0


def _cleanup(vm, n: int) -> None:
    vm.run(f"rm -f /tmp/lab{n}.txt /tmp/lab{n}-wrong.txt /tmp/pyphys-test-lab{n}-journal.jsonl")


# ----------------------------------------------------------------------------------------------
def test_lab1_pagemap_huge_page_fork_cow(lab_vm):
    env = _env(lab_vm, 1)
    try:
        out = _solve(lab_vm, 1, env).out
        _assert_passed(_check(lab_vm, 1, env), 1)
        values = _results(lab_vm, 1)
        # outside the checker: the frame numbers the solution found obey what pagemap.rst says
        assert int(values["huge_pfn"], 0) % 512 == 0, out  # a THP's head is 2 MiB-aligned
        assert values["huge_pages"] == "512"
        assert values["cow_pfn_before"] != values["cow_child_pfn_after"]
        assert values["shared_exclusive"] == "no" and values["cow_exclusive_after"] == "yes"
        assert values["buffer_text"].startswith("lab 1 secret ")
        # the kernel's own page-types, built from the guest kernel's source, as the lab text runs it
        st = json.loads(lab_vm.run("cat /tmp/lab1-process.json").out)
        pt = lab_vm.kernel.page_types
        assert pt, "no page-types for the lab kernel (scripts/build-page-types.sh)"
        res = lab_vm.run(f"{shlex.quote(pt)} -p {st['pid']} -a {st['buffer'] // 4096} -L -N")
        assert res.rc == 0, res
        voffset, pfn = res.out.split()[-3:-1]  # the one line: voffset, offset (PFN), flags
        assert int(voffset, 16) == st["buffer"] // 4096 and int(pfn, 16) == int(values["buffer_pfn"], 0), res.out

        wrong = dict(values, buffer_phys=values["buffer_pfn"], cow_child_pfn_after=values["cow_pfn_before"])
        del wrong["huge_pages"]
        _write_results(lab_vm, "/tmp/lab1-wrong.txt", wrong)
        res = _check(lab_vm, 1, env, "/tmp/lab1-wrong.txt")
        assert res.rc == 1, res
        assert "that is the PFN" in _line(res.out, "buffer_phys")
        assert "parent's frame" in _line(res.out, "cow_child_pfn_after")
        assert _line(res.out, "huge_pages").startswith("MISSING")
        assert _line(res.out, "buffer_pfn").startswith("OK")
    finally:
        lab_vm.run(
            "kill $(python3 -c \"import json; print(json.load(open('/tmp/lab1-process.json'))['pid'])\") "
            "2>/dev/null; sleep 0.5; rm -f /tmp/lab1-process.json /tmp/lab1-process.log"
        )
        _cleanup(lab_vm, 1)


def test_lab1_without_its_process_says_how_to_start_it(lab_vm):
    env = _env(lab_vm, 1)
    try:
        _write_results(lab_vm, "/tmp/lab1-wrong.txt", {"pid": "1", "buffer_pfn": "0x1234"})
        res = _check(lab_vm, 1, env, "/tmp/lab1-wrong.txt")
        assert res.rc == 1
        assert "lab1_process.py" in _line(res.out, "buffer_pfn")
        assert "Traceback" not in res.err
    finally:
        _cleanup(lab_vm, 1)


def test_lab2_module_buffer_both_ways(lab_vm):
    env = _env(lab_vm, 2)
    try:
        _solve(lab_vm, 2, env)
        _assert_passed(_check(lab_vm, 2, env), 2)
        values = _results(lab_vm, 2)
        assert int(values["word7_value"], 16) == 0x50590007  # the module's documented load pattern

        swapped = int.from_bytes(int(values["word7_value"], 16).to_bytes(4, "big"), "little")
        wrong = dict(values, word7_value=hex(swapped))
        del wrong["message"]
        _write_results(lab_vm, "/tmp/lab2-wrong.txt", wrong)
        res = _check(lab_vm, 2, env, "/tmp/lab2-wrong.txt")
        assert res.rc == 1, res
        assert "little-endian" in _line(res.out, "word7_value")
        assert _line(res.out, "message").startswith("MISSING")

        # a text without its NUL (6 bytes at 0x200: byte 0x206 is the pattern's 0x59): it reads on
        assert lab_vm.run("printf hello! | dd of=/sys/kernel/pyphys/buffer bs=1 seek=512 conv=notrunc").rc == 0
        _write_results(lab_vm, "/tmp/lab2-wrong.txt", dict(values, message_offset="0x200", message="hello!"))
        res = _check(lab_vm, 2, env, "/tmp/lab2-wrong.txt")
        assert res.rc == 1
        assert "no NUL byte ends it" in _line(res.out, "message")

        _restore_buffer(lab_vm)  # the kernel's buffer back to its pattern: the poke is gone
        res = _check(lab_vm, 2, env)
        assert res.rc == 1
        assert "load-time pattern" in _line(res.out, "poke_value")
    finally:
        _restore_buffer(lab_vm)
        _cleanup(lab_vm, 2)


def test_lab3_hostname_through_devmem(lab_vm):
    env = _env(lab_vm, 3)
    before = lab_vm.run("uname -n").out.strip()
    try:
        _solve(lab_vm, 3, env)
        assert lab_vm.run("uname -n").out.strip() == "NinjaNinja"
        _assert_passed(_check(lab_vm, 3, env), 3)
        values = _results(lab_vm, 3)
        assert values["old_hostname"] == before

        _write_results(lab_vm, "/tmp/lab3-wrong.txt", dict(values, new_hostname="Other", nodename_region="System RAM"))
        res = _check(lab_vm, 3, env, "/tmp/lab3-wrong.txt")
        assert res.rc == 1, res
        assert "not what uname -n shows" in _line(res.out, "new_hostname")
        assert "innermost" in _line(res.out, "nodename_region")
    finally:
        res = lab_vm.run(f"{PY} -m pyphys undo --all", env=env)
        assert lab_vm.run("uname -n").out.strip() == before, res
    try:
        # the right name, set the wrong way: sethostname(2) is not /dev/mem
        assert lab_vm.run("hostname Sneaky").rc == 0
        _write_results(lab_vm, "/tmp/lab3.txt", dict(values, new_hostname="Sneaky"))
        res = _check(lab_vm, 3, env)
        assert res.rc == 1
        assert "sethostname" in _line(res.out, "new_hostname")
    finally:
        lab_vm.run(f"hostname {shlex.quote(before)}")
        assert lab_vm.run("uname -n").out.strip() == before
        _cleanup(lab_vm, 3)


def test_lab4_on_the_lab_kernel_points_to_the_stock_kernel(lab_vm):
    env = _env(lab_vm, 4)
    try:
        _write_results(lab_vm, "/tmp/lab4.txt", {"strict_devmem": "y"})
        res = _check(lab_vm, 4, env)
        assert res.rc == 1
        assert "pyphys lab start 4" in _line(res.out, "strict_devmem")
    finally:
        _cleanup(lab_vm, 4)


def test_lab4_strict_devmem_pat_module_device(stock_vm):
    env = _env(stock_vm, 4, PYPHYS_KO=stock_vm.ko)
    try:
        _write_results(stock_vm, "/tmp/lab4-wrong.txt", {"module_word0": "0x50590000"})
        res = _check(stock_vm, 4, env, "/tmp/lab4-wrong.txt")  # module still without its device
        assert "mem_device=1" in _line(res.out, "module_word0")

        _solve(stock_vm, 4, env)
        _assert_passed(_check(stock_vm, 4, env), 4)
        values = _results(stock_vm, 4)
        assert values["devmem_errno"] == "EPERM" and values["strict_devmem"] == "y"
        assert int(values["module_word0"], 16) == 0x50590000

        _write_results(stock_vm, "/tmp/lab4-wrong.txt", dict(values, devmem_errno="EINVAL", pat="no"))
        res = _check(stock_vm, 4, env, "/tmp/lab4-wrong.txt")
        assert res.rc == 1, res
        assert "busybox devmem" in _line(res.out, "devmem_errno")
        assert _line(res.out, "pat").startswith("WRONG")
    finally:
        stock_vm.load_module()  # default parameters: no /dev/pyphys_mem
        _cleanup(stock_vm, 4)


def test_lab5_edu_and_ivshmem(lab_vm):
    env = _env(lab_vm, 5)
    host_message = f"hello from the host {os.getpid():x}".encode()
    with open(lab_vm.shm_path, "r+b") as f:  # the host's side of the shared memory
        f.write(host_message + b"\0")
    try:
        _solve(lab_vm, 5, env)
        with open(lab_vm.shm_path, "rb") as f:  # the guest's string landed in the host's file
            f.seek(0x100)
            assert f.read(12) == b"Dunia,vipi?\r"
        _assert_passed(_check(lab_vm, 5, env), 5)
        values = _results(lab_vm, 5)
        assert values["host_message"] == host_message.decode()
        assert values["edu_id"].lower() == "0x010000ed" and int(values["factorial_out"]) == 720

        wrong = dict(values, liveness_out=values["liveness_in"], guest_message='"Dunia,vipi?"', factorial_out="24")
        _write_results(lab_vm, "/tmp/lab5-wrong.txt", wrong)
        res = _check(lab_vm, 5, env, "/tmp/lab5-wrong.txt")
        assert res.rc == 1, res
        assert "not what edu answers" in _line(res.out, "liveness_out")
        assert _line(res.out, "guest_message").startswith("WRONG")
        assert "status bit 0" in _line(res.out, "factorial_out")
    finally:
        with open(lab_vm.shm_path, "r+b") as f:
            f.write(bytes(0x200))
        _cleanup(lab_vm, 5)


def test_lab6_dumps_odirect_efault(lab_vm):
    env = _env(lab_vm, 6, LABDIR=lab_vm.shared_dir)
    try:
        _solve(lab_vm, 6, env)
        _assert_passed(_check(lab_vm, 6, env), 6)
        values = _results(lab_vm, 6)
        assert values["efault_errno"] == "EFAULT"
        # the host sees the dumps in the shared directory: check one independently of the guest
        with open(os.path.join(lab_vm.shared_dir, "buffer.raw"), "rb") as f:
            first = f.read(8)
        assert first == bytes.fromhex("0000595001005950"), first  # words 0x50590000, 0x50590001

        wrong = dict(values, lime_data_offset="0", efault_errno="EINVAL", padded_offset="0")
        _write_results(lab_vm, "/tmp/lab6-wrong.txt", wrong)
        res = _check(lab_vm, 6, env, "/tmp/lab6-wrong.txt")
        assert res.rc == 1, res
        assert "LiME v1 header" in _line(res.out, "lime_data_offset")
        assert "lab6_efault.py" in _line(res.out, "efault_errno")
        assert "physical address" in _line(res.out, "padded_offset")
    finally:
        lab_vm.run(f"rm -f {shlex.quote(lab_vm.shared_dir)}/buffer.*")
        _cleanup(lab_vm, 6)


# ----------------------------------------------------------------------------------------------
def test_lab_start_gives_a_shell_where_the_lab_works(tmp_path):
    """`pyphys lab start 5` on the host, as a student runs it: a prompt, the module loaded, the
    host's message in ivshmem, and the solution passing the check in the shell the command opened."""
    import shutil

    if not shutil.which("qemu-system-x86_64") or not shutil.which(
        "vng", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    ):
        pytest.skip("QEMU or virtme-ng is not installed (make setup)")
    to_prompt, out = pty_session(
        [sys.executable, "-m", "pyphys", "lab", "start", "5", "--dir", str(tmp_path)],
        b"[lab 5 ",
        [
            "export PYPHYS_JOURNAL=/tmp/journal-e2e.jsonl",
            'test -d /sys/kernel/pyphys && echo "MODULE""-LOADED"',
            "echo LABDIR=$LABDIR",
            "sh labs/solutions/lab5.sh >/dev/null",
            "pyphys lab check 5",
            "echo CHECK-RC=$?",
            "exit",
        ],
    )
    assert to_prompt is not None, out[-3000:]
    assert "MODULE-LOADED" in out, out[-3000:]
    assert f"LABDIR={tmp_path / 'lab5'}" in out
    assert "Lab 5 passed" in out and "CHECK-RC=0" in out, out[-3000:]
    print(f"lab 5 start to prompt: {to_prompt:.1f} s")


def test_lab7_edu_dma_into_the_module_buffer(lab_vm):
    env = _env(lab_vm, 7)
    slot = lab_vm.run("cd /sys/bus/pci/devices && grep -l 0x11e8 */device | cut -d/ -f1").out.strip()
    command = f"/sys/bus/pci/devices/{slot}/config"
    saved = lab_vm.python(f"print(open({command!r},'rb').read()[4:6].hex())").out.strip()
    try:
        _solve(lab_vm, 7, env)
        _assert_passed(_check(lab_vm, 7, env), 7)
        values = _results(lab_vm, 7)
        # outside pyphys: the module's own sysfs buffer holds the message where the device put it
        buf = lab_vm.python("print(open('/sys/kernel/pyphys/buffer','rb').read()[0x800:0x815].hex())")
        assert bytes.fromhex(buf.out.strip()) == b"Habari kutoka kwa DMA"
        assert int(values["command_after"], 0) & 4 and not int(values["command_before"], 0) & 4
        # the journal holds the RAM's old bytes: undo puts the buffer's load-time pattern back
        undo = lab_vm.run(f"{PY} -m pyphys undo {values['journal_entry']}", env=env)
        assert undo.rc == 0, undo
        word = lab_vm.run(f"busybox devmem {int(values['buffer_phys'], 0) + 0x800:#x} 32")
        assert int(word.out, 16) == 0x50590000 | (0x800 // 4), word

        wrong = dict(
            values, copy_offset="0x900", command_before=values["command_after"], changed_text=values["message"]
        )
        _write_results(lab_vm, "/tmp/lab7-wrong.txt", wrong)
        res = _check(lab_vm, 7, env, "/tmp/lab7-wrong.txt")
        assert res.rc == 1, res
        assert "bit 2 set" in _line(res.out, "command_before")
        assert _line(res.out, "copy_offset").startswith("WRONG")
        assert "begins like the message" in _line(res.out, "changed_text")
    finally:
        lab_vm.python(f"import os;fd=os.open({command!r},os.O_WRONLY);os.pwrite(fd,bytes.fromhex({saved!r}),4)")
        _restore_buffer(lab_vm)
        _cleanup(lab_vm, 7)


def test_lab8_page_to_swap_and_back(lab_vm):
    env = _env(lab_vm, 8)
    try:
        _solve(lab_vm, 8, env)
        _assert_passed(_check(lab_vm, 8, env), 8)
        values = _results(lab_vm, 8)
        # outside the guest: the host file behind the swap disk holds the page at the entry's offset
        with open(lab_vm.swap_path, "rb") as f:
            f.seek(int(values["swap_offset"], 0) * 4096)
            assert f.read(len(values["swap_text"])).decode() == values["swap_text"]
        assert values["swap_text"].startswith("lab 8 was here, secret ")

        wrong = dict(values, swap_offset=hex(int(values["swap_offset"], 0) * 4096), swap_type="3")
        _write_results(lab_vm, "/tmp/lab8-wrong.txt", wrong)
        res = _check(lab_vm, 8, env, "/tmp/lab8-wrong.txt")
        assert res.rc == 1, res
        assert "in bytes; the entry counts pages" in _line(res.out, "swap_offset")
        assert _line(res.out, "swap_type").startswith("WRONG")
    finally:
        lab_vm.run("pkill -f lab8_process.py; swapoff -a; rm -f /tmp/lab8-process.json /tmp/lab8-process.out")
        _cleanup(lab_vm, 8)


def test_lab9_page_walk_by_hand(lab_vm):
    env = _env(lab_vm, 9)
    try:
        _solve(lab_vm, 9, env)
        _assert_passed(_check(lab_vm, 9, env), 9)
        values = _results(lab_vm, 9)
        st = json.loads(lab_vm.run("cat /tmp/lab9-process.json").out)
        # outside the checker: the raw pagemap entry names the frame the hand walk arrived at,
        # and busybox devmem reads the process's text there
        entry = lab_vm.python(
            f"import struct;f=open('/proc/{st['pid']}/pagemap','rb');f.seek({st['buffer'] // 4096 * 8});"
            "print(struct.unpack('<Q',f.read(8))[0])"
        )
        pfn = int(entry.out) & ((1 << 55) - 1)
        assert int(values["buffer_phys"], 0) == pfn * 4096 + st["buffer"] % 4096, values
        word = lab_vm.run(f"busybox devmem {values['buffer_phys']} 32")
        assert int(word.out, 16).to_bytes(4, "little") == st["text"].encode()[:4], word
        assert int(values["pte_entry"], 0) & 0x000FFFFFFFFFF000 == pfn * 4096
        assert int(values["huge_pmd_entry"], 0) >> 7 & 1 and int(values["huge_phys"], 0) % (2 << 20) == 0
        phys = int(lab_vm.run("cat /sys/kernel/pyphys/buffer_phys").out, 0)
        assert int(values["direct_vaddr"], 0) - int(values["direct_base"], 0) == phys
        assert values["memory_type"] == "WB"  # ordinary RAM, PAT index 0 of the power-on PAT

        wrong = dict(
            values,
            indices=" ".join(reversed(values["indices"].split())),
            pte_addr=hex(int(values["pte_addr"], 0) & ~0xFFF),
            pte_entry=hex(int(values["pte_entry"], 0) & 0xFFFFFFFF),
            direct_page_size=str(int(values["direct_page_size"]) // 4096),
        )
        del wrong["huge_phys"]
        _write_results(lab_vm, "/tmp/lab9-wrong.txt", wrong)
        res = _check(lab_vm, 9, env, "/tmp/lab9-wrong.txt")
        assert res.rc == 1, res
        assert "bottom level first" in _line(res.out, "indices")
        assert "start of the page table" in _line(res.out, "pte_addr")
        assert "low 32 bits" in _line(res.out, "pte_entry")
        assert "counts 4 KiB pages" in _line(res.out, "direct_page_size")
        assert _line(res.out, "huge_phys").startswith("MISSING")
        assert _line(res.out, "buffer_phys").startswith("OK")
    finally:
        lab_vm.run("pkill -f lab9_process.py; sleep 0.5; rm -f /tmp/lab9-process.json /tmp/lab9-process.log")
        _cleanup(lab_vm, 9)
