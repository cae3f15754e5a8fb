"""What allows or blocks physical-memory access on this machine, each finding with its fix.

:func:`run_checks` returns :class:`Check` rows (OK / BLOCKED / WARN / INFO). Sources, all
through :mod:`pyphys.paths` so tests run on canned trees: /dev/mem, the kernel config
(/proc/config.gz, else /boot/config-RELEASE), /proc/cmdline (nopat, iomem=relaxed, lockdown=,
nomodule), /sys/kernel/security/lockdown, /proc/self/status capabilities, kptr_restrict,
/proc/self/pagemap, /proc/iomem, pyphys.ko's sysfs and device, module loading/signing, and
finally a live probe: one read of System RAM through :func:`pyphys.physmem.open_physmem`.
"""

from __future__ import annotations

import gzip
import os
import stat
from typing import IO

from pyphys import paths
from pyphys.errors import FILE_MODE, NO_ADMIN, PyphysError, no_cap, root_hint
from pyphys.record import Record

OK, BLOCKED, WARN, INFO = "OK", "BLOCKED", "WARN", "INFO"
#: include/uapi/linux/capability.h
CAP_SYS_RAWIO = 17
CAP_SYS_ADMIN = 21
CAP_SYSLOG = 34


class Check(Record):
    """One finding: ``status`` is OK, BLOCKED, WARN or INFO; ``fix`` what to do about it."""

    __slots__ = ("name", "status", "detail", "fix")
    _defaults = {"fix": ""}

    name: str
    status: str
    detail: str
    fix: str


# -- sources -----------------------------------------------------------------------------------
def parse_kconfig(stream: IO[str]) -> dict[str, str]:
    """Kernel .config text -> {"CONFIG_X": "y"|"m"|value, ...}; "# CONFIG_X is not set" -> "n"."""
    out: dict[str, str] = {}
    for line in stream:
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2 : -len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def kernel_release() -> str:
    """The running kernel's release (/proc/sys/kernel/osrelease, else uname)."""
    text = _read(paths.proc("sys", "kernel", "osrelease"))
    return text.strip() if text else os.uname().release


def load_kconfig(boot_dir: str = "/boot") -> tuple[dict[str, str] | None, str]:
    """(config, where it came from) from /proc/config.gz or BOOT_DIR/config-RELEASE; (None, why) if neither."""
    gz = paths.proc("config.gz")
    try:
        with gzip.open(gz, "rt") as f:
            return parse_kconfig(f), gz
    except (OSError, EOFError):
        pass
    boot = os.path.join(boot_dir, f"config-{kernel_release()}")
    try:
        with open(boot) as f:
            return parse_kconfig(f), boot
    except OSError:
        return None, f"neither {gz} (CONFIG_IKCONFIG_PROC) nor {boot}"


def cmdline() -> list[str]:
    """Kernel command line words."""
    return (_read(paths.proc("cmdline")) or "").split()


def capabilities() -> int | None:
    """Effective capability mask of this process (/proc/self/status CapEff), None if unknown."""
    text = _read(paths.proc("self", "status")) or ""
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split()[1], 16)
            except (IndexError, ValueError):
                return None
    return None


def _has(caps: int | None, bit: int) -> bool | None:
    return None if caps is None else bool(caps >> bit & 1)


# -- checks ------------------------------------------------------------------------------------
def _check_devmem(cfg: dict | None) -> Check:
    from pyphys import physmem

    path = paths.dev("mem")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        why = "CONFIG_DEVMEM is off" if cfg and cfg.get("CONFIG_DEVMEM") == "n" else "no device node"
        return Check("/dev/mem", BLOCKED, f"{path} does not exist ({why})", physmem.NO_DEVMEM_HINT)
    except OSError as err:
        return Check("/dev/mem", WARN, f"cannot stat {path}: {os.strerror(err.errno or 0)}")
    kind = f"char {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" if stat.S_ISCHR(st.st_mode) else "not a char device"
    mode = stat.filemode(st.st_mode)
    rw = os.access(path, os.R_OK | os.W_OK)
    detail = f"{path} present ({kind}, {mode}, uid {st.st_uid} gid {st.st_gid})"
    if not rw:
        return Check("/dev/mem", BLOCKED, detail + ": not readable+writable by this user", root_hint(FILE_MODE))
    return Check("/dev/mem", OK, detail)


def _check_config(cfg: dict | None, where: str, words: list[str]) -> list[Check]:
    from pyphys import physmem

    if cfg is None:
        return [
            Check("kernel config", WARN, f"not found: {where}", "enable CONFIG_IKCONFIG_PROC or install /boot/config-*")
        ]
    out = [Check("kernel config", INFO, f"read from {where}")]
    strict = cfg.get("CONFIG_STRICT_DEVMEM", "n")
    if strict == "y":
        out.append(
            Check(
                "CONFIG_STRICT_DEVMEM",
                BLOCKED,
                "=y: /dev/mem refuses System RAM (EPERM on mmap, zeros or EPERM on read)",
                physmem.STRICT_HINT,
            )
        )
    else:
        out.append(Check("CONFIG_STRICT_DEVMEM", OK, "not set: /dev/mem reaches System RAM"))
    io = cfg.get("CONFIG_IO_STRICT_DEVMEM", "n")
    relaxed = "iomem=relaxed" in words
    if io == "y" and not relaxed:
        out.append(
            Check(
                "CONFIG_IO_STRICT_DEVMEM",
                WARN,
                "=y: MMIO claimed by a driver is refused, and mappings are revoked when a driver claims it",
                "boot with iomem=relaxed, or unbind the driver before mapping its BAR",
            )
        )
    elif io == "y":
        out.append(Check("CONFIG_IO_STRICT_DEVMEM", OK, "=y but iomem=relaxed is on the command line"))
    else:
        out.append(Check("CONFIG_IO_STRICT_DEVMEM", OK, "not set: driver-claimed MMIO is reachable"))
    return out


def _check_pat(cfg: dict | None, words: list[str]) -> Check:
    if "nopat" in words:
        return Check("PAT", INFO, "nopat on the command line: no memory-type conflicts")
    flags = ""
    for line in (_read(paths.proc("cpuinfo")) or "").splitlines():
        if line.startswith("flags"):
            flags = line
            break
    cpu = " pat" in flags or flags.endswith(" pat")
    if cfg is not None and cfg.get("CONFIG_X86_PAT") == "y" and cpu:
        return Check(
            "PAT",
            INFO,
            "active: a /dev/mem mapping must not conflict with a range's existing memory type",
            "if mmap fails with EINVAL and dmesg says 'conflicting memory types': boot with nopat, or use --backend rw",
        )
    return Check("PAT", INFO, "not active" if cfg is not None else "unknown (no config)")


def _check_lockdown(cfg: dict | None, words: list[str]) -> Check:
    from pyphys import physmem

    mode = physmem.lockdown_mode()
    asked = [w for w in words if w.startswith("lockdown=")]
    if mode is None:
        forced = [
            m for m in ("INTEGRITY", "CONFIDENTIALITY") if cfg and cfg.get(f"CONFIG_LOCK_DOWN_KERNEL_FORCE_{m}") == "y"
        ]
        if forced:
            return Check(
                "lockdown",
                WARN,
                f"/sys/kernel/security/lockdown unreadable, but the config forces lockdown={forced[0].lower()}: "
                "/dev/mem and unsigned modules are refused",
                "mount securityfs to confirm; use a kernel without LOCK_DOWN_KERNEL_FORCE_*",
            )
        return Check("lockdown", OK, "no lockdown LSM (/sys/kernel/security/lockdown absent)")
    if mode == "none":
        return Check("lockdown", OK, "[none]")
    why = f" ({asked[0]} on the command line)" if asked else ""
    return Check(
        "lockdown",
        BLOCKED,
        f"[{mode}]{why}: /dev/mem cannot be opened, unsigned modules cannot load",
        "boot with lockdown=none (and Secure Boot off, or a kernel without LOCK_DOWN_KERNEL_FORCE_*)",
    )


def _check_caps() -> list[Check]:
    caps = capabilities()
    out = []
    raw = _has(caps, CAP_SYS_RAWIO)
    admin = _has(caps, CAP_SYS_ADMIN)
    if raw is None:
        out.append(Check("CAP_SYS_RAWIO", WARN, "capabilities unknown (/proc/self/status unreadable)"))
    else:
        out.append(
            Check(
                "CAP_SYS_RAWIO",
                OK if raw else BLOCKED,
                "present" if raw else "missing: opening /dev/mem returns EPERM",
                "" if raw else root_hint(no_cap("CAP_SYS_RAWIO")),
            )
        )
    if admin is not None:
        out.append(
            Check(
                "CAP_SYS_ADMIN",
                OK if admin else WARN,
                "present" if admin else "missing: pagemap PFNs and /proc/iomem addresses read as zero",
                "" if admin else root_hint(NO_ADMIN),
            )
        )
    return out


def _check_kptr() -> Check:
    from pyphys import ksym

    level = ksym.kptr_restrict()
    shown = ksym.kallsyms_shows_addresses()  # what this process reads, not what the sysctl implies
    setting = "unknown" if level is None else f"={level}"
    if shown:
        return Check("kptr_restrict", OK, f"{setting}: /proc/kallsyms shows addresses to this process")
    if shown is None:
        return Check("kptr_restrict", INFO, f"{setting}: /proc/kallsyms unreadable (needs CONFIG_KALLSYMS)")
    return Check("kptr_restrict", WARN, f"{setting}: /proc/kallsyms shows zeros to this process", ksym.kptr_hint())


def _check_pagemap() -> Check:
    import ctypes
    import struct

    buf = ctypes.create_string_buffer(4096 * 2)
    buf[0] = b"x"  # fault it in
    vaddr = ctypes.addressof(buf)
    try:
        with open(paths.proc("self", "pagemap"), "rb") as f:
            f.seek(vaddr // os.sysconf("SC_PAGE_SIZE") * 8)
            raw = f.read(8)
    except OSError as err:
        return Check(
            "pagemap PFNs",
            WARN,
            f"/proc/self/pagemap unreadable: {os.strerror(err.errno or 0)}",
            "needs CONFIG_PROC_PAGE_MONITOR",
        )
    if len(raw) != 8:
        return Check("pagemap PFNs", WARN, "/proc/self/pagemap returned no entry")
    entry = struct.unpack("<Q", raw)[0]
    pfn = entry & ((1 << 55) - 1)  # Documentation/admin-guide/mm/pagemap.rst: bits 0-54
    if entry >> 63 & 1 and pfn:
        return Check("pagemap PFNs", OK, "visible (a present page has a non-zero PFN)")
    if entry >> 63 & 1:
        return Check(
            "pagemap PFNs", WARN, "hidden: PFNs read as 0 without CAP_SYS_ADMIN (pagemap.rst)", root_hint(NO_ADMIN)
        )
    return Check("pagemap PFNs", INFO, "test page not present")


def _check_iomem() -> Check:
    from pyphys import iomem

    try:
        tree = iomem.load()
    except PyphysError as err:
        return Check("/proc/iomem", WARN, str(err))
    if tree.hidden:
        return Check("/proc/iomem", WARN, "addresses shown as zeros", iomem.hidden_hint())
    return Check("/proc/iomem", OK, f"visible; System RAM ends at {tree.ram_end:#x}")


def _check_module(cfg: dict | None, words: list[str]) -> list[Check]:
    from pyphys import kmod, physmem
    from pyphys.kmod_install import sign_command

    out = []
    sysdir = paths.sys("kernel", "pyphys")
    if os.path.isdir(sysdir):
        try:
            info = kmod.info()
            out.append(
                Check(
                    "pyphys.ko",
                    OK,
                    f"loaded: buffer at {info.buffer_phys:#x} ({info.buffer_size} bytes), "
                    f"nodename at {info.nodename_phys:#x}",
                )
            )
        except (ImportError, PyphysError) as err:
            out.append(Check("pyphys.ko", WARN, f"loaded but its sysfs is unreadable: {err}"))
    else:
        out.append(
            Check(
                "pyphys.ko",
                INFO,
                f"not loaded ({sysdir} absent)",
                kmod.LOAD_HINT,
            )
        )
    if os.path.exists(paths.dev("pyphys_mem")):
        out.append(
            Check(
                "/dev/pyphys_mem",
                INFO,
                "present: RAM access without STRICT_DEVMEM's policy (root-only; a deliberate security trade-off)",
            )
        )
    else:
        out.append(
            Check("/dev/pyphys_mem", INFO, "absent (the module's device is off by default)", physmem.NO_MODULE_DEV_HINT)
        )
    # can modules be loaded at all, and must they be signed?
    disabled = (_read(paths.proc("sys", "kernel", "modules_disabled")) or "").strip() == "1"
    if cfg is not None and cfg.get("CONFIG_MODULES", "n") == "n":
        out.append(
            Check(
                "module loading", BLOCKED, "CONFIG_MODULES is off", "use a kernel with module support (the lab kernel)"
            )
        )
    elif "nomodule" in words or disabled:
        why = "nomodule on the command line" if "nomodule" in words else "kernel.modules_disabled=1"
        out.append(Check("module loading", BLOCKED, why, "reboot without it, or use the lab VM: make shell"))
    else:
        sig = (_read(paths.sys("module", "module", "parameters", "sig_enforce")) or "").strip()
        force = cfg is not None and cfg.get("CONFIG_MODULE_SIG_FORCE") == "y"
        if sig == "Y" or force:
            out.append(
                Check(
                    "module signing",
                    WARN,
                    "enforced: an unsigned pyphys.ko will not load",
                    f"sign it with a key in the kernel's keyring ({sign_command(kernel_release())}) or boot with "
                    "module.sig_enforce=0 on a kernel without MODULE_SIG_FORCE",
                )
            )
        elif cfg is not None and cfg.get("CONFIG_MODULE_SIG") == "y":
            out.append(Check("module signing", INFO, "not enforced: an unsigned pyphys.ko loads and taints the kernel"))
        else:
            out.append(Check("module signing", OK, "no signature needed"))
    return out


def _check_probe() -> Check:
    from pyphys import physmem

    if not os.path.exists(paths.dev("mem")) and not os.path.exists(paths.dev("pyphys_mem")):
        return Check("RAM access", BLOCKED, "no /dev/mem and no /dev/pyphys_mem on this system", physmem.NO_DEVMEM_HINT)
    try:
        with physmem.open_physmem("auto") as pm:
            addr = pm.regions.first_ram_page()
            if addr is None:
                return Check(
                    "RAM access", WARN, f"opened via {pm.backend}, but no System RAM address to probe ({pm.reason})"
                )
            pm.read_word(addr, 32)
            return Check("RAM access", OK, f"read System RAM at {addr:#x} via backend {pm.backend} ({pm.reason})")
    except PyphysError as err:
        return Check("RAM access", BLOCKED, err.message, err.hint or "")


def run_checks(boot_dir: str = "/boot", probe: bool = True) -> list[Check]:
    """Every check, in report order."""
    cfg, where = load_kconfig(boot_dir)
    words = cmdline()
    checks = [_check_devmem(cfg)]
    checks += _check_config(cfg, where, words)
    checks.append(_check_pat(cfg, words))
    checks.append(_check_lockdown(cfg, words))
    checks += _check_caps()
    checks.append(_check_kptr())
    checks.append(_check_pagemap())
    checks.append(_check_iomem())
    checks += _check_module(cfg, words)
    if probe:
        checks.append(_check_probe())
    return checks
