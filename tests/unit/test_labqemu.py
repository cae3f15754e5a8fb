"""The lab VM's command lines (pyphys.labqemu), built without booting anything."""

from __future__ import annotations

from pyphys import kernels, labqemu, labvm


def kernel(name="lab", series="6.12"):
    return kernels.Kernel(name, "/k/bzImage", "/k", "6.12.0-pyphys", series)


def test_lab_kernel_words_and_tcg_by_default():
    argv = labqemu.vng_argv(kernel(), kvm=False, memory="1G", cpus=2, qemu_opts=["-device", "edu"], command="true")
    assert argv[:3] == ["-r", "/k/bzImage", "--disable-kvm"]
    assert argv[argv.index("--append") + 1] == "root=/dev/root nopat"
    assert argv[-2:] == ["--", "true"] and "--qemu-opts=-device edu" in argv
    with_kvm = labqemu.vng_argv(kernel(), kvm=True, memory="1G", cpus=2, qemu_opts=[], command=None, pat=True)
    assert "--disable-kvm" not in with_kvm and with_kvm[with_kvm.index("--append") + 1] == "root=/dev/root"
    assert "--" not in with_kvm


def test_root_word_for_6_1_and_none_for_stock():
    assert labqemu.lab_append(kernel("lab-6.1", "6.1")) == ["root=/dev//dev/root", "nopat"]
    assert labqemu.lab_append(kernel("stock", "6.1")) == []


def test_devices_and_names_still_reachable_from_labvm():
    opts = labqemu.qemu_device_opts("/dev/shm/x", "/tmp/agent", swap_path="/tmp/swap", cpu="max,-la57")
    assert opts[:2] == ["-device", "edu,dma_mask=0xffffffff"] and opts[-2:] == ["-cpu", "max,-la57"]
    assert "virtserialport,chardev=pyphysagent,name=pyphys.agent" in opts
    assert any(o.startswith("memory-backend-file,id=pyphysshm,size=1048576,") for o in opts)
    assert labvm.lab_append is labqemu.lab_append and labvm.IVSHMEM_SIZE == labqemu.IVSHMEM_SIZE
