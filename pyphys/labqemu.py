"""The lab VM's command lines: the vng (virtme-ng) argv, the QEMU devices, the kernel's words.

Pure functions of their arguments (plus finding vng and QEMU on PATH): :class:`pyphys.labvm.LabVM`
and :func:`pyphys.labvm.interactive_shell` boot what these build.
"""

from __future__ import annotations

import os
import shutil
import sys

from pyphys import kernels
from pyphys.errors import LabError

REPO = kernels.REPO
IVSHMEM_SIZE = 1 << 20
EDU_DMA_MASK = 0xFFFFFFFF  # -device edu,dma_mask=: what `pyphys pci dma --dma-mask` must be told


def _vng() -> tuple[str, dict]:
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    vng = shutil.which("vng", path=env["PATH"])
    if not vng:
        raise LabError("virtme-ng (vng) is not installed", "pip install virtme-ng, or run `make setup`")
    if not shutil.which("qemu-system-x86_64"):
        raise LabError("qemu-system-x86_64 is not installed", "apt-get install qemu-system-x86, or run `make setup`")
    return vng, env


def qemu_device_opts(
    shm_path: str,
    agent_sock: str | None,
    *,
    ivshmem_size: int = IVSHMEM_SIZE,
    swap_path: str | None = None,
    cpu: str | None = None,
    devices: tuple[str, ...] | list[str] = (),
) -> list[str]:
    """QEMU options for the lab's devices: edu, ivshmem-plain (backed by ``shm_path``), a PCIe
    root port with a driverless virtio device behind it (PCI Express and extended capabilities
    on real config space), the swap disk, the agent port, then ``devices`` (raw QEMU words)."""
    # edu masks every DMA address to 28 bits unless told otherwise (edu.c); with 32 bits the
    # whole RAM of a guest of up to 2 GiB is in reach, as a 32-bit-DMA PCI device would see it
    opts = [
        "-device", f"edu,dma_mask={EDU_DMA_MASK:#x}",
        "-object", f"memory-backend-file,id=pyphysshm,size={ivshmem_size},share=on,mem-path={shm_path}",
        "-device", "ivshmem-plain,memdev=pyphysshm",
        "-device", "pcie-root-port,id=pyphysrp,chassis=1,slot=1",
        "-device", "virtio-rng-pci,bus=pyphysrp,ats=on",
    ]  # fmt: skip
    if swap_path:
        opts += [
            "-drive", f"file={swap_path},format=raw,if=none,id=pyphysswap,cache=writethrough",
            "-device", "virtio-blk-pci,drive=pyphysswap,serial=pyphys-swap",
        ]  # fmt: skip
    if agent_sock:
        opts += [
            "-chardev", f"socket,id=pyphysagent,path={agent_sock},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=pyphysagent,name=pyphys.agent",
        ]  # fmt: skip
    if cpu:
        opts += ["-cpu", cpu]  # after virtme-ng's own -cpu: QEMU takes the last one
    return opts + list(devices)


def lab_append(kernel: kernels.Kernel, pat: bool = False) -> list[str]:
    """Kernel command-line words a lab kernel boots with.

    The 9p root: virtme-ng boots a kernel without an initramfs with rootfstype=9p but no
    root=, and init/do_mounts.c mounts a root that is not a block device through
    mount_nodev_root(), whose mount source is root= (the 9p tag, "/dev/root"). Linux 6.1
    strips "/dev/" from root= first, hence "/dev/" + "/dev/root" there.

    ``nopat`` unless ``pat``: with PAT active, x86's phys_mem_access_prot_allowed()
    (arch/x86/mm/pat/memtype.c) refuses every mmap of System RAM through /dev/mem when
    STRICT_DEVMEM is off, to avoid a second mapping with another memory type -- the lab's
    exercises map RAM, as the classic advice says (boot with nopat). The la57 boot keeps PAT.
    """
    if not kernel.is_lab:
        return []
    words = ["root=/dev//dev/root"] if kernel.series == "6.1" else ["root=/dev/root"]
    return words if pat else words + ["nopat"]


def vng_argv(
    kernel: kernels.Kernel,
    *,
    kvm: bool,
    memory: str,
    cpus: int,
    qemu_opts: list[str],
    command: str | None,
    rwdir: str | None = None,
    append: tuple[str, ...] | list[str] = (),
    overlays: tuple[str, ...] | list[str] = (),
    pat: bool = False,
) -> list[str]:
    """The vng command line (without the vng path); ``pat`` keeps PAT on a lab kernel."""
    argv = ["-r", kernel.image, "--force-9p", "--memory", memory, "--cpus", str(cpus), "--name", "pyphys-lab",
            "--cwd", str(REPO), "--qemu-opts=" + " ".join(qemu_opts)]  # fmt: skip
    if rwdir:
        argv += ["--rwdir", rwdir]
    for path in overlays:
        argv += ["--overlay-rwdir", path]
    if not kvm:
        argv.insert(2, "--disable-kvm")
    words = lab_append(kernel, pat) + list(append)
    if words:
        argv += ["--append", " ".join(words)]
    if command is not None:
        argv += ["--", command]
    return argv
