"""Lab 4's grader: STRICT_DEVMEM and PAT on Debian's stock kernel, judged by the kernel's config,
uname(2), the errno of a fresh mmap of /dev/mem, /proc/cpuinfo and the module's device."""

from __future__ import annotations

import errno
import os
import struct

from pyphys.labs import probes
from pyphys.labs.probes import ProbeError


def _config_value(text: str) -> str:
    """'y', 'yes', 'CONFIG_STRICT_DEVMEM=y' -> 'y'."""
    t = text.strip().lower().replace("config_strict_devmem", "").lstrip("=").strip()
    return "y" if t in ("y", "yes") else t


def _blocker(text: str) -> str:
    """Any spelling of STRICT_DEVMEM (not IO_STRICT_DEVMEM) -> CONFIG_STRICT_DEVMEM."""
    t = text.upper()
    return "CONFIG_STRICT_DEVMEM" if "STRICT_DEVMEM" in t and "IO_STRICT" not in t else t


def grade(g) -> None:
    cfg = probes.kconfig()
    if cfg.get("CONFIG_STRICT_DEVMEM", "n") != "y":
        raise ProbeError(
            "this kernel has no CONFIG_STRICT_DEVMEM: lab 4 runs on Debian's stock kernel -- leave this "
            "VM (exit) and run `pyphys lab start 4` on the host"
        )
    g.expect("kernel_release", os.uname().release, wrong="is not `uname -r`")
    g.expect(
        "strict_devmem",
        "y",
        "(the kernel's config)",
        "-- `grep STRICT_DEVMEM /boot/config-$(uname -r)`",
        normalize=_config_value,
    )
    g.expect(
        "pat",
        probes.pat_in_use(cfg),
        wrong="-- see `pyphys doctor`'s PAT line, /proc/cpuinfo flags and /proc/cmdline",
    )
    g.expect(
        "doctor_blocker",
        "CONFIG_STRICT_DEVMEM",
        wrong="is not the option that blocks /dev/mem here: `pyphys doctor`, the BLOCKED lines",
        show=str,
        normalize=_blocker,
    )

    with g.needs("devmem_errno", "module_word0"):
        phys, content = probes.module_buffer()
        with g.needs("devmem_errno"):
            truth = probes.devmem_map_errno(phys)
            if truth is None:
                raise ProbeError("/dev/mem mapped the buffer here: not a STRICT_DEVMEM kernel?")
            g.expect(
                "devmem_errno",
                truth,
                f"({os.strerror(getattr(errno, truth, 0))}): drivers/char/mem.c mmap_mem(), range_is_allowed()",
                "is not what mmap of /dev/mem at the buffer returns: "
                "`busybox devmem $(cat /sys/kernel/pyphys/buffer_phys)`",
                show=str,
                normalize=probes.errno_name,
            )
        if not probes.mem_device_on():
            g.wrong(
                "module_word0",
                "/dev/pyphys_mem does not exist: reload the module with its device on: "
                "`rmmod pyphys && insmod $PYPHYS_KO mem_device=1`",
            )
            return
        seen = struct.unpack("<I", probes.dev_read(phys, 4, "pyphys_mem"))[0]
        if seen != struct.unpack_from("<I", content, 0)[0]:
            raise ProbeError("/dev/pyphys_mem and the kernel's sysfs disagree on word 0 of the buffer (report this)")
        g.expect(
            "module_word0",
            seen,
            "(/dev/pyphys_mem and the kernel's sysfs agree)",
            "is not word 0 of the buffer: `pyphys devmem buffer --backend module`",
            show=hex,
        )
