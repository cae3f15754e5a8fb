"""pyphys/kmod_install.py: why a module load failed, from canned machines; builds and their errors.

The refusal messages are the ones kmod's insmod/modprobe and busybox print (strerror of the
errno the kernel returned: EKEYREJECTED and ENOKEY for a missing or unknown signature, ENOEXEC
for a version magic or format mismatch, EPERM under lockdown or without CAP_SYS_MODULE). The
facts come from canned /sys and /proc trees: the lockdown file's format is the kernel's
(security/lockdown/lockdown.c), the SecureBoot EFI variable's is the UEFI spec's (4 attribute
bytes, then the value), mokutil's --sb-state lines are mokutil's own.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import pytest

from pyphys import kmod_install, paths
from pyphys.errors import NotFoundError, PermissionDeniedError, PyphysError, UsageError
from pyphys.kmod_install import LoadFacts, explain_load_failure

REPO = Path(__file__).resolve().parents[2]
REL = "6.12.117+deb12-amd64"
KEY_REJECTED = f"insmod: ERROR: could not insert module pyphys.ko: {os.strerror(errno.EKEYREJECTED)}"
NO_KEY = f"modprobe: ERROR: could not insert 'pyphys': {os.strerror(errno.ENOKEY)}"
BAD_FORMAT = f"insmod: ERROR: could not insert module pyphys.ko: {os.strerror(errno.ENOEXEC)}"
NOT_PERMITTED = f"insmod: can't insert 'pyphys.ko': {os.strerror(errno.EPERM)}"  # busybox
EXISTS = f"insmod: ERROR: could not insert module pyphys.ko: {os.strerror(errno.EEXIST)}"
UNKNOWN_SYMBOL = "insmod: ERROR: could not insert module pyphys.ko: Unknown symbol in module"


def facts(**kw) -> LoadFacts:
    kw.setdefault("release", REL)
    kw.setdefault("vermagic", REL)
    kw.setdefault("lockdown", "none")
    kw.setdefault("secure_boot", False)
    kw.setdefault("sig_enforce", False)
    return LoadFacts(**kw)


@pytest.mark.parametrize(
    "message, kw, want",
    [
        (KEY_REJECTED, dict(secure_boot=True, lockdown="integrity"), "Secure Boot is on"),
        (NO_KEY, dict(secure_boot=True), "mokutil --import /var/lib/dkms/mok.pub"),
        (NOT_PERMITTED, dict(secure_boot=True, lockdown="integrity"), "Secure Boot is on"),
        (KEY_REJECTED, dict(lockdown="confidentiality"), "locked down (confidentiality)"),
        (NOT_PERMITTED, dict(lockdown="integrity"), "locked down (integrity)"),
        (KEY_REJECTED, dict(sig_enforce=True), "enforces module signatures"),
        (KEY_REJECTED, dict(sig_enforce=True), f"(/lib/modules/{REL}/build/scripts/sign-file sha256 KEY.priv KEY.der "),
        (KEY_REJECTED, dict(secure_boot=None, lockdown=None, sig_enforce=None), "rejected pyphys.ko's signature"),
        (BAD_FORMAT, dict(vermagic="6.1.0-57-amd64"), "built for kernel 6.1.0-57-amd64 but this kernel is " + REL),
        (BAD_FORMAT, dict(), "Invalid module format"),
        (NOT_PERMITTED, dict(root=False), "needs root"),
        (EXISTS, dict(), "already loaded"),
        (UNKNOWN_SYMBOL, dict(), "Unknown symbol"),
        (KEY_REJECTED, dict(modules_disabled=True, secure_boot=True), "modules_disabled=1"),
        ("insmod: ERROR: something new", dict(), "loading pyphys.ko failed: insmod: ERROR: something new"),
    ],
)
def test_explain_load_failure(message, kw, want):
    line = explain_load_failure(message, facts(**kw))
    assert want in line
    assert "\n" not in line


def test_a_vermagic_mismatch_wins_over_the_signature():
    """A module for another kernel would fail the vermagic check even once signed: say that first."""
    line = explain_load_failure(BAD_FORMAT, facts(vermagic="6.1.0-57-amd64", secure_boot=True))
    assert "version magic mismatch" in line and "--kernel " + REL in line


def _canned(root: Path, lockdown=None, secure_boot=None, sig_enforce=None, disabled="0", efi=True) -> None:
    (root / "proc" / "sys" / "kernel").mkdir(parents=True)
    (root / "proc" / "sys" / "kernel" / "osrelease").write_text(REL + "\n")
    (root / "proc" / "sys" / "kernel" / "modules_disabled").write_text(disabled + "\n")
    (root / "sys" / "firmware").mkdir(parents=True)
    if lockdown is not None:
        (root / "sys" / "kernel" / "security").mkdir(parents=True)
        (root / "sys" / "kernel" / "security" / "lockdown").write_text(lockdown + "\n")
    if efi:
        var = root / "sys" / Path(*kmod_install.SECURE_BOOT_VAR)
        var.parent.mkdir(parents=True)
        if secure_boot is not None:
            var.write_bytes(b"\x06\x00\x00\x00" + bytes([secure_boot]))
    if sig_enforce is not None:
        (root / "sys" / "module" / "module" / "parameters").mkdir(parents=True)
        (root / "sys" / "module" / "module" / "parameters" / "sig_enforce").write_text(sig_enforce + "\n")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    old = paths.set_roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), dev=str(tmp_path / "dev"))
    monkeypatch.setenv("PATH", "/nonexistent")  # no mokutil, no modinfo: the files decide
    yield tmp_path
    paths.set_roots(**old)


def test_facts_of_a_secure_boot_machine(machine):
    _canned(machine, lockdown="none [integrity] confidentiality", secure_boot=1, sig_enforce="Y")
    f = kmod_install.gather_facts(REL)
    assert (f.lockdown, f.secure_boot, f.sig_enforce, f.modules_disabled) == ("integrity", True, True, False)
    assert "Secure Boot is on" in explain_load_failure(KEY_REJECTED, f)


def test_facts_of_a_plain_machine(machine):
    _canned(machine, lockdown="[none] integrity confidentiality", secure_boot=0, sig_enforce="N", disabled="1")
    f = kmod_install.gather_facts(REL)
    assert (f.lockdown, f.secure_boot, f.sig_enforce, f.modules_disabled) == ("none", False, False, True)


def test_no_efi_means_no_secure_boot(machine):
    _canned(machine, efi=False)
    assert kmod_install.secure_boot() is False
    assert kmod_install.gather_facts(REL).lockdown is None


def test_efi_without_the_variable_and_no_mokutil_is_unknown(machine):
    _canned(machine)
    assert kmod_install.secure_boot() is None


@pytest.mark.parametrize(
    "text, want",
    [
        ("SecureBoot enabled\n", True),
        ("SecureBoot disabled\n", False),
        ("SecureBoot disabled\nPlatform is in Setup Mode\n", False),
        ("This system doesn't support Secure Boot\n", False),
        ("EFI variables are not supported on this system\n", False),
        ("", None),
    ],
)
def test_parse_sb_state(text, want):
    assert kmod_install.parse_sb_state(text) is want


def test_status_says_an_unsigned_module_would_not_load(machine, monkeypatch):
    _canned(machine, lockdown="none [integrity] confidentiality", secure_boot=1)
    monkeypatch.setattr(kmod_install, "MODULES_DIR", str(machine / "lib-modules"))
    st = kmod_install.status()
    assert st["release"] == REL and st["headers"] is None and st["loaded"] is False
    assert "Secure Boot is on" in st["unsigned_load"]


# -- bad input and missing pieces -------------------------------------------------------------
@pytest.mark.parametrize("release", ["", "../x", "a/b", "-k", ".hidden", "6.1 x", "é"])
def test_a_release_that_cannot_be_one_is_a_usage_error(release):
    with pytest.raises(UsageError):
        kmod_install.check_release(release)


def test_missing_headers_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(kmod_install, "MODULES_DIR", str(tmp_path))
    with pytest.raises(NotFoundError) as exc:
        kmod_install.build(release=REL, out_dir=str(tmp_path / "out"))
    assert f"no kernel headers for {REL}" in str(exc.value)
    assert f"linux-headers-{REL}" in str(exc.value) and "kernel-devel" in str(exc.value)
    assert not (tmp_path / "out").exists(), "nothing is built or created before the headers are found"


def test_install_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PermissionDeniedError, match="sudo"):
        kmod_install.install(release=REL)
    with pytest.raises(PermissionDeniedError, match="sudo"):
        kmod_install.uninstall()


def test_first_error_is_the_compiler_error():
    log = (
        "make: Entering directory '/usr/src/linux-headers-6.1.0-57-amd64'\n"
        "  CC [M]  /x/pyphys.o\n"
        "/x/pyphys.c:12:5: warning: unused variable 'a'\n"
        "/x/pyphys.c:40:9: error: 'undeclared_symbol' undeclared here (not in a function)\n"
        "make[1]: *** [scripts/Makefile.build:250: /x/pyphys.o] Error 1\n"
    )
    assert kmod_install.first_error(log).startswith("/x/pyphys.c:40:9: error: 'undeclared_symbol'")
    assert kmod_install.first_error("make: *** No rule to make target 'modules'.  Stop.\n").startswith("make: ***")
    assert kmod_install.first_error("") == "(no output)"


# -- dkms.conf and a real build ----------------------------------------------------------------
def test_dkms_conf_matches_the_package_and_the_sources():
    conf = (REPO / "kmod" / "dkms.conf").read_text()
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
    assert kmod_install.dkms_version() == version
    assert re.search(r'^BUILT_MODULE_NAME\[0\]="pyphys"$', conf, re.M)
    assert re.search(r"^MAKE\[0\]=.*KDIR=\$\{kernel_source_dir\}", conf, re.M)
    kbuild = (REPO / "kmod" / "Kbuild").read_text()
    assert re.search(r"^obj-m := pyphys\.o$", kbuild, re.M)
    for name in kmod_install.SOURCES:
        assert (REPO / "kmod" / name).is_file(), name
    includes = re.findall(r'^#include "([^"]+)"', (REPO / "kmod" / "pyphys.c").read_text(), re.M)
    assert set(includes) <= set(kmod_install.SOURCES), "a local header dkms and build() would not copy"


def _headers() -> str | None:
    for kdir in sorted(Path("/lib/modules").glob("*/build")):
        if (kdir / "Module.symvers").is_file():
            return kdir.parent.name
    return None


def test_build_against_installed_headers(tmp_path):
    release = _headers()
    if release is None:
        pytest.skip("no kernel headers installed (apt-get install linux-headers-amd64)")
    res = kmod_install.build(release=release, out_dir=str(tmp_path / "out"))
    assert res.release == release and Path(res.ko).is_file() and Path(res.log).is_file()
    assert res.ko.startswith(str(tmp_path)), "built where asked, not in the checkout"


def test_a_failing_build_names_the_error_the_release_and_the_log(tmp_path, monkeypatch):
    release = _headers()
    if release is None:
        pytest.skip("no kernel headers installed (apt-get install linux-headers-amd64)")
    src = tmp_path / "kmod"
    shutil.copytree(REPO / "kmod", src)
    c = src / "pyphys.c"
    c.write_text(c.read_text().replace("static void *pyphys_buffer;", "static void *pyphys_buffer = undeclared_x;"))
    monkeypatch.setattr(kmod_install, "SOURCE_DIR", src)
    with pytest.raises(PyphysError) as exc:
        kmod_install.build(release=release, out_dir=str(tmp_path / "out"))
    text = str(exc.value)
    assert f"building pyphys.ko for {release} failed" in text
    assert "error:" in text and "undeclared_x" in text
    assert f"full log: {tmp_path / 'out' / 'build.log'}" in text
    assert "\n" not in text
