"""pyphys.ko on the user's own machine: build, install, load, remove (``pyphys module``).

The module is built with the kernel's own Kbuild against ``/lib/modules/RELEASE/build`` (the
running kernel's headers unless told otherwise), in pyphys's cache, never in the checkout.
:func:`install` goes through DKMS when ``dkms`` is installed (it rebuilds the module for every
kernel it later gets headers for and, on Debian and Ubuntu, signs it with its MOK key), else it
copies the .ko to ``/lib/modules/RELEASE/extra`` and runs depmod; either way it then loads it
with modprobe and checks that /sys/kernel/pyphys appeared. When loading fails,
:func:`explain_load_failure` says why in one line, from :class:`LoadFacts` read off the system
(lockdown, Secure Boot, signature enforcement, the module's vermagic). Nothing here touches
physical memory, so nothing is journaled; what install and uninstall change is listed in their
results.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from pyphys import kmod, paths
from pyphys.errors import NotFoundError, PermissionDeniedError, PyphysError, UsageError
from pyphys.record import Record

NAME = "pyphys"
#: pyphys.ko's sources inside the package: a symlink to the checkout's kmod/, whose files a
#: wheel or sdist carries as plain copies (pyproject.toml lists them)
SOURCE_DIR = Path(__file__).resolve().parent / "kmod_src"
SOURCES = ("pyphys.c", "compat.h", "Kbuild", "Makefile", "dkms.conf")
MODULES_DIR = "/lib/modules"
DKMS_SRC = "/usr/src"
#: the SecureBoot EFI variable (UEFI spec, EFI_GLOBAL_VARIABLE GUID): 4 attribute bytes, then 0 or 1
SECURE_BOOT_VAR = ("firmware", "efi", "efivars", "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
DKMS_MOK = "/var/lib/dkms/mok.pub"
HEADERS_HINT = (
    "install the headers of that kernel: apt-get install linux-headers-{r} (Debian, Ubuntu), "
    "dnf install kernel-devel-{r} (Fedora), pacman -S linux-headers (Arch)"
)
_RELEASE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]*")


class BuildResult(Record):
    """A finished build: ``ko`` (path), ``release``, ``kdir``, ``log`` (path), ``seconds``."""

    __slots__ = ("ko", "release", "kdir", "log", "seconds")

    ko: str
    release: str
    kdir: str
    log: str
    seconds: float


class LoadFacts(Record):
    """What decides whether this kernel loads a module (None: could not tell)."""

    __slots__ = ("release", "vermagic", "lockdown", "secure_boot", "sig_enforce", "modules_disabled", "root")
    _defaults = {
        "vermagic": None,
        "lockdown": None,
        "secure_boot": None,
        "sig_enforce": None,
        "modules_disabled": False,
        "root": True,
    }

    release: str
    vermagic: str | None  # the .ko's, first word (modinfo -F vermagic)
    lockdown: str | None  # none / integrity / confidentiality
    secure_boot: bool | None
    sig_enforce: bool | None
    modules_disabled: bool
    root: bool


class InstallResult(Record):
    """What :func:`install` did: ``method`` (dkms or kbuild), ``changed`` (paths), ``loaded``."""

    __slots__ = ("release", "method", "module", "changed", "loaded", "note")
    _defaults = {"changed": [], "loaded": False, "note": ""}

    release: str
    method: str
    module: str
    changed: list
    loaded: bool
    note: str


def sign_command(release: str, ko: str = "pyphys.ko") -> str:
    """The kernel's own signing tool, for ``release``, as a command line with the key to fill in
    (the private key and certificate of a key in that kernel's keyring, or one enrolled as a MOK)."""
    return f"{MODULES_DIR}/{release}/build/scripts/sign-file sha256 KEY.priv KEY.der {ko}"


def check_release(release: str) -> str:
    """``release`` if it can be a kernel release (uname -r), else UsageError."""
    if not _RELEASE_RE.fullmatch(release or ""):
        raise UsageError(f"{release!r} is not a kernel release (like {running_release()}, what `uname -r` prints)")
    return release


def running_release() -> str:
    """The running kernel's release."""
    try:
        with open(paths.proc("sys", "kernel", "osrelease")) as f:
            return f.read().strip()
    except OSError:
        return os.uname().release


def source_dir() -> Path:
    """The directory holding pyphys.ko's sources (pyphys/kmod_src: kmod/ of a checkout, or the
    copies an installed wheel carries)."""
    missing = [n for n in SOURCES if not (SOURCE_DIR / n).is_file()]
    if missing:
        raise NotFoundError(
            f"pyphys.ko's sources are not in this pyphys ({SOURCE_DIR} lacks {', '.join(missing)})",
            "reinstall pyphys (pip install --force-reinstall pyphys), or run it from a checkout (scripts/setup.sh)",
        )
    return SOURCE_DIR


def dkms_version() -> str:
    """PACKAGE_VERSION from kmod/dkms.conf: the name of the DKMS source tree (/usr/src/pyphys-VERSION)."""
    text = (source_dir() / "dkms.conf").read_text()
    match = re.search(r'^PACKAGE_VERSION="([^"]+)"', text, re.M)
    if not match:
        raise PyphysError(f"{source_dir() / 'dkms.conf'} has no PACKAGE_VERSION")
    return match[1]


def headers_dir(release: str) -> str:
    """/lib/modules/RELEASE/build, if it is a tree that can build modules; else one line saying what to install."""
    kdir = os.path.join(MODULES_DIR, release, "build")
    if not os.path.isdir(kdir):
        raise NotFoundError(f"no kernel headers for {release} ({kdir} is missing)", HEADERS_HINT.format(r=release))
    if not os.path.isfile(os.path.join(kdir, "Makefile")):
        raise NotFoundError(
            f"{kdir} is not a kernel build tree (no Makefile): its headers are incomplete",
            HEADERS_HINT.format(r=release),
        )
    return kdir


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise NotFoundError(f"{argv[0]} is not installed", "install kmod (and make, gcc) first") from None


def first_error(log: str) -> str:
    """The line of a build log a user should read first: the first compiler or make error."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for pattern in (r"\berror:", r"\*\*\*", r"(?i)error"):
        for ln in lines:
            if re.search(pattern, ln):
                return ln
    return lines[-1] if lines else "(no output)"


def build(release: str | None = None, kdir: str | None = None, out_dir: str | None = None) -> BuildResult:
    """Build pyphys.ko for ``release`` (default: the running kernel) or against ``kdir``.

    Raises NotFoundError (no headers, no make), PyphysError (the build failed: its first error,
    the kernel release and the log's path)."""
    src = source_dir()
    if kdir is None:
        release = check_release(running_release() if release is None else release)
        kdir = headers_dir(release)
    else:
        if not os.path.isdir(kdir):
            raise NotFoundError(f"--kdir {kdir}: not a directory", "give a kernel tree or /lib/modules/RELEASE/build")
        release = _tree_release(kdir)
    out = Path(out_dir or os.path.join(paths.cache_dir(), "module", release))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy2(src / name, out / name)
    log = out / "build.log"
    start = time.monotonic()
    proc = _run(["make", "-C", kdir, f"M={out}", "modules"])
    log.write_text(proc.stdout + proc.stderr)
    ko = out / f"{NAME}.ko"
    if proc.returncode != 0 or not ko.is_file():
        raise PyphysError(
            f"building pyphys.ko for {release} failed: {first_error(proc.stdout + proc.stderr)}",
            f"full log: {log}",
        )
    return BuildResult(str(ko), release, kdir, str(log), time.monotonic() - start)


def _tree_release(kdir: str) -> str:
    try:
        with open(os.path.join(kdir, "include", "generated", "utsrelease.h")) as f:
            match = re.search(r'#define UTS_RELEASE "([^"]+)"', f.read())
    except OSError:
        match = None
    if not match:
        raise NotFoundError(
            f"--kdir {kdir}: no include/generated/utsrelease.h",
            "not a configured kernel tree: run `make modules_prepare` in it, or use /lib/modules/RELEASE/build",
        )
    return match[1]


# -- why a load failed --------------------------------------------------------------------------
def parse_sb_state(text: str) -> bool | None:
    """``mokutil --sb-state`` -> True (SecureBoot enabled), False (disabled), None (unknown)."""
    low = text.lower()
    if "secureboot enabled" in low:
        return True
    if "secureboot disabled" in low or "doesn't support secure boot" in low or "not supported" in low:
        return False
    return None


def secure_boot() -> bool | None:
    """Whether the firmware booted with Secure Boot on: the EFI variable, else mokutil, else None."""
    try:
        with open(paths.sys(*SECURE_BOOT_VAR), "rb") as f:
            data = f.read()
        if len(data) >= 5:
            return data[4] == 1
    except OSError:
        if not os.path.isdir(paths.sys("firmware", "efi")) and os.path.isdir(paths.sys("firmware")):
            return False  # booted without EFI: no Secure Boot
    if shutil.which("mokutil"):
        proc = _run(["mokutil", "--sb-state"])
        return parse_sb_state(proc.stdout + proc.stderr)
    return None


def _read_flag(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def vermagic(ko: str) -> str | None:
    """The first word of the module's vermagic (its kernel release), or None."""
    if not shutil.which("modinfo") and not os.path.exists("/usr/sbin/modinfo"):
        return None
    proc = _run([shutil.which("modinfo") or "/usr/sbin/modinfo", "-F", "vermagic", ko])
    words = proc.stdout.split()
    return words[0] if proc.returncode == 0 and words else None


def gather_facts(release: str, ko: str | None = None) -> LoadFacts:
    """The :class:`LoadFacts` of this machine (through :mod:`pyphys.paths`)."""
    from pyphys.physmem import lockdown_mode

    sig = _read_flag(paths.sys("module", "module", "parameters", "sig_enforce"))
    return LoadFacts(
        release=release,
        vermagic=vermagic(ko) if ko else None,
        lockdown=lockdown_mode(),
        secure_boot=secure_boot(),
        sig_enforce=None if sig is None else sig == "Y",
        modules_disabled=_read_flag(paths.proc("sys", "kernel", "modules_disabled")) == "1",
        root=os.geteuid() == 0,
    )


def _said(message: str, *codes: int) -> bool:
    low = message.lower()
    return any(os.strerror(c).lower() in low for c in codes)


def explain_load_failure(message: str, facts: LoadFacts) -> str:
    """One line saying why the kernel refused to load pyphys.ko (``message``: what insmod or
    modprobe printed) and what to do about it."""
    sign_fix = (
        f"enroll DKMS's signing key (mokutil --import {DKMS_MOK}, reboot, confirm in MokManager) and run "
        "`pyphys module install` again"
    )
    if facts.modules_disabled:
        return "module loading is disabled until the next boot (kernel.modules_disabled=1): reboot, then install again"
    if _said(message, errno.EEXIST):
        return "a pyphys module is already loaded: `pyphys module uninstall` (or rmmod pyphys) first"
    if facts.vermagic and facts.vermagic != facts.release:
        return (
            f"pyphys.ko was built for kernel {facts.vermagic} but this kernel is {facts.release} (version magic "
            f"mismatch): rebuild it with `pyphys module install --kernel {facts.release}`"
        )
    if _said(message, errno.ENOEXEC):
        return (
            f"the kernel refused pyphys.ko's format (Invalid module format: version magic or layout differ from "
            f"{facts.release}'s); rebuild it against /lib/modules/{facts.release}/build; dmesg names the difference"
        )
    signature = _said(message, errno.EKEYREJECTED, errno.ENOKEY, errno.EBADMSG)
    refused = _said(message, errno.EPERM, errno.EACCES)
    if refused and not facts.root:
        return "loading a kernel module needs root (CAP_SYS_MODULE): run it with sudo"
    if signature or refused:
        if facts.secure_boot:
            return (
                "Secure Boot is on, so this kernel loads only modules signed with a key it trusts and pyphys.ko's "
                f"signature is missing or unknown: {sign_fix}, or turn Secure Boot off in the firmware"
            )
        if facts.lockdown in ("integrity", "confidentiality"):
            return (
                f"the kernel is locked down ({facts.lockdown}), which allows only signed modules: {sign_fix}, or "
                "boot with lockdown=none on a kernel that permits it"
            )
        if facts.sig_enforce:
            return (
                "this kernel enforces module signatures (module.sig_enforce=1 or MODULE_SIG_FORCE): sign pyphys.ko "
                f"with a key in its keyring ({sign_command(facts.release)}), or boot with module.sig_enforce=0"
            )
        if signature:
            return f"the kernel rejected pyphys.ko's signature ({message.strip()}): {sign_fix}"
    if "unknown symbol" in message.lower():
        return (
            "pyphys.ko uses kernel symbols this kernel does not provide (Unknown symbol; dmesg names them): it was "
            f"built against other headers; rebuild with `pyphys module install --kernel {facts.release}`"
        )
    return f"loading pyphys.ko failed: {message.strip() or 'no reason given'} (dmesg may say more)"


# -- install, uninstall, status -----------------------------------------------------------------
def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionDeniedError(f"{what} changes /lib/modules and loads a kernel module", "run it with sudo")


def _dkms() -> str | None:
    return shutil.which("dkms")


def _dkms_status() -> list[str]:
    dkms = _dkms()
    if not dkms:
        return []
    proc = _run([dkms, "status", NAME])
    return [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith(NAME)]


def _load(release: str, ko: str | None) -> None:
    """modprobe pyphys (insmod KO when given); PyphysError with the reason when the kernel says no."""
    argv = ["insmod", ko] if ko else ["modprobe", NAME]
    proc = _run(argv)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise PyphysError(explain_load_failure(message[0], gather_facts(release, ko)))


def install(release: str | None = None, use_dkms: bool | None = None) -> InstallResult:
    """Build and install pyphys.ko for ``release`` (default: running) and load it if that kernel runs.

    ``use_dkms``: None = DKMS when installed, False = never. Raises PermissionDeniedError (not
    root), NotFoundError (no headers, no dkms when asked for), PyphysError (build or load failed)."""
    release = check_release(running_release() if release is None else release)
    _need_root("pyphys module install")
    headers_dir(release)
    if use_dkms and not _dkms():
        raise NotFoundError("dkms is not installed", "install it (apt-get install dkms), or leave out --dkms")
    changed: list[str] = []
    if use_dkms is not False and _dkms():
        version = dkms_version()
        tree = os.path.join(DKMS_SRC, f"{NAME}-{version}")
        os.makedirs(tree, exist_ok=True)
        for name in SOURCES:
            shutil.copy2(source_dir() / name, os.path.join(tree, name))
        changed.append(tree)
        if not any(f"{NAME}/{version}" in s or f"{NAME}, {version}" in s for s in _dkms_status()):
            _dkms_step(["add", f"{NAME}/{version}"], release)
        _dkms_step(["install", "--force", f"{NAME}/{version}", "-k", release], release)
        changed.append(f"dkms {NAME}/{version} for {release}")
        method, module = "dkms", _installed_module(release) or f"{NAME}/{version}"
    else:
        res = build(release)
        dest = os.path.join(MODULES_DIR, release, "extra", f"{NAME}.ko")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(res.ko, dest)
        _run(["depmod", "-a", release])
        changed.append(dest)
        method, module = "kbuild", dest
    result = InstallResult(release, method, module, changed)
    if release != running_release():
        result.note = f"not loaded: {release} is not the running kernel ({running_release()})"
        return result
    if kmod.is_loaded():
        result.note = "a pyphys module was already loaded: kept it (`pyphys module uninstall` removes it)"
        result.loaded = True
        return result
    _load(release, None)
    if not kmod.is_loaded():
        raise PyphysError("modprobe pyphys succeeded but /sys/kernel/pyphys did not appear")
    result.loaded = True
    return result


def _dkms_step(args: list[str], release: str) -> None:
    proc = _run([_dkms() or "dkms", *args])
    if proc.returncode != 0:
        out = proc.stdout + proc.stderr
        log = re.search(r"(/var/lib/dkms\S+make\.log)", out)
        raise PyphysError(
            f"dkms {args[0]} failed for {release}: {first_error(out)}",
            f"full log: {log[1]}" if log else "run it by hand to see all of its output",
        )


def _installed_module(release: str) -> str | None:
    """Path of pyphys.ko(.xz/.zst) under /lib/modules/RELEASE, or None."""
    base = os.path.join(MODULES_DIR, release)
    for dirpath, dirs, files in os.walk(base):  # (build and source are symlinks, not followed)
        dirs[:] = [d for d in dirs if dirpath != base or d not in ("build", "source")]
        for f in files:
            if f.split(".ko", 1)[0] == NAME and ".ko" in f:
                return os.path.join(dirpath, f)
    return None


def uninstall(release: str | None = None) -> list[str]:
    """Unload pyphys.ko, remove it from DKMS and /lib/modules; returns what was removed."""
    if release is not None:
        check_release(release)
    _need_root("pyphys module uninstall")
    removed = []
    if kmod.is_loaded():
        proc = _run(["rmmod", NAME])
        if proc.returncode != 0:
            raise PyphysError(
                f"rmmod pyphys failed: {(proc.stderr or proc.stdout).strip()}", "is /dev/pyphys_mem open?"
            )
        removed.append("loaded module pyphys")
    if _dkms_status():
        version = dkms_version()
        args = ["remove", f"{NAME}/{version}"] + (["-k", release] if release else ["--all"])
        _dkms_step(args, release or "every kernel")
        removed.append(f"dkms {NAME}/{version}")
        tree = os.path.join(DKMS_SRC, f"{NAME}-{version}")
        if not release and os.path.isdir(tree):
            shutil.rmtree(tree)
            removed.append(tree)
    releases = [release] if release else sorted(os.listdir(MODULES_DIR)) if os.path.isdir(MODULES_DIR) else []
    for rel in releases:
        dest = os.path.join(MODULES_DIR, rel, "extra", f"{NAME}.ko")
        if os.path.exists(dest):
            os.unlink(dest)
            _run(["depmod", "-a", rel])
            removed.append(dest)
    return removed


def status(release: str | None = None) -> dict:
    """What pyphys.ko looks like on this machine, and whether this kernel would load it."""
    release = check_release(running_release() if release is None else release)
    kdir = os.path.join(MODULES_DIR, release, "build")
    facts = gather_facts(release)
    blocked = None
    if facts.secure_boot or facts.lockdown in ("integrity", "confidentiality") or facts.sig_enforce:
        blocked = explain_load_failure(os.strerror(errno.EKEYREJECTED), facts)
    return {
        "release": release,
        "headers": kdir if os.path.isdir(kdir) else None,
        "loaded": kmod.is_loaded(),
        "installed": _installed_module(release),
        "dkms": _dkms_status(),
        "lockdown": facts.lockdown,
        "secure_boot": facts.secure_boot,
        "sig_enforce": facts.sig_enforce,
        "unsigned_load": blocked or "allowed",
    }
