"""Permission hints by euid: an ordinary user is told to run as root; a process that already
runs as root (euid 0) is told which check still refuses it (a capability, the ptrace access
check, a file mode, kptr_restrict), never "run as root". Every call site goes through
pyphys.errors.root_hint; each kind of call site is checked here for both users."""

from __future__ import annotations

import errno
import os

import pytest

from pyphys import doctor, errors, iomem, kmod, ksym, pagemap, paths, walk
from pyphys.commands import pagemap as pagemap_cmd
from pyphys.errors import PyphysError
from pyphys.labs import probes

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pagemap")
ROOT_ADVICE = ("run as root", "needs root", "sudo", "not root")


@pytest.fixture
def hidden():
    old = paths.set_roots(proc=os.path.join(FIX, "proc-hidden"))
    yield
    paths.set_roots(**old)


def _raised(fn) -> str:
    with pytest.raises(PyphysError) as info:
        fn()
    return f"{info.value} {info.value.hint or ''}"


def _denied(*_a, **_k):
    raise PermissionError(errno.EACCES, "Permission denied")


def _eperm(*_a, **_k):
    raise PermissionError(errno.EPERM, "Operation not permitted")


def _hint_open_pfn_hidden(monkeypatch):
    return " ".join(pagemap.translate(4242, 0x10234).notes)


def _hint_scan_pfn_hidden(monkeypatch):
    return " ".join(pagemap.summarize(4242).notes)


def _hint_pages_text(monkeypatch):
    return pagemap_cmd.format_translation(pagemap.translate(4242, 0x10234))


def _hint_iomem_hidden(monkeypatch):
    tree = iomem.parse(["00000000-00000000 : System RAM\n"])
    assert tree.hidden
    return _raised(lambda: iomem.require_visible(tree)) + " " + tree.describe(0x1000)


def _hint_kptr(monkeypatch):
    monkeypatch.setattr(ksym, "kptr_restrict", lambda: 1)
    return ksym.kptr_hint()


def _hint_devmem_open_eacces(monkeypatch):
    from pyphys import physmem

    return str(physmem.explain_open(PermissionError(errno.EACCES, "x"), "/dev/mem", False).hint)


def _hint_devmem_open_eperm(monkeypatch):
    from pyphys import physmem

    monkeypatch.setattr(physmem, "lockdown_mode", lambda: "none")
    return str(physmem.explain_open(PermissionError(errno.EPERM, "x"), "/dev/mem", False).hint)


def _hint_module_file(monkeypatch):
    monkeypatch.setattr(kmod, "open", _denied, raising=False)
    return _raised(lambda: kmod._read("buffer_phys"))


def _hint_walk_open(monkeypatch):
    monkeypatch.setattr(walk.os, "open", _denied)
    return _raised(lambda: walk.read_start(1))


def _hint_devmem_no_iomem(monkeypatch):
    from pyphys import devmem

    class PM:
        class regions:
            tree = None

    return _raised(lambda: devmem.check_access(PM, devmem.Resolver(), devmem.Op("w", 0x1000, 32, 1), False))


def _hint_probe_pfn(monkeypatch):
    monkeypatch.setattr(probes, "pagemap_entry", lambda pid, vaddr: 1 << 63)
    with pytest.raises(probes.ProbeError) as info:
        probes.present_pfn(1, 0x1000)
    return str(info.value)


def _hint_doctor_caps(monkeypatch):
    monkeypatch.setattr(doctor, "capabilities", lambda: 0)
    return " ".join(c.fix for c in doctor._check_caps())


def _hint_pci_short_read(monkeypatch):
    from pyphys import pci_devices, pci_show

    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    base = os.path.join(os.path.dirname(FIX), "pci", "host")
    old = paths.set_roots(sys=os.path.join(base, "sys"), proc=os.path.join(base, "proc"))
    try:
        dev = next(d for d in pci_devices.scan() if d.vendor == 0x1AF4)
        real_read_all = pci_show.ConfigSpace.read_all
        # what a reader without CAP_SYS_ADMIN gets: the file says 256 bytes, a read returns 64
        monkeypatch.setattr(pci_show.ConfigSpace, "read_all", lambda self: real_read_all(self)[:64])
        notes = pci_show.show(dev, 2).notes
    finally:
        paths.set_roots(**old)
    return next(n for n in notes if "only 64 of 256 bytes" in n)


def _hint_oserror_eperm(monkeypatch):
    return errors.from_oserror(PermissionError(errno.EPERM, "x"), "open /sys/x").hint


# (site, what root must be told: the check that still refuses)
SITES = [
    (_hint_open_pfn_hidden, "CAP_SYS_ADMIN"),
    (_hint_scan_pfn_hidden, "CAP_SYS_ADMIN"),
    (_hint_pages_text, "CAP_SYS_ADMIN"),
    (_hint_iomem_hidden, "CAP_SYS_ADMIN"),
    (_hint_kptr, "CAP_SYSLOG"),
    (_hint_devmem_open_eacces, "CAP_DAC_OVERRIDE"),
    (_hint_devmem_open_eperm, "CAP_SYS_RAWIO"),
    (_hint_module_file, "CAP_DAC_OVERRIDE"),
    (_hint_walk_open, "CAP_DAC_OVERRIDE"),
    (_hint_devmem_no_iomem, "CAP_SYS_ADMIN"),
    (_hint_probe_pfn, "CAP_SYS_ADMIN"),
    (_hint_doctor_caps, "CAP_SYS_RAWIO"),
    (_hint_pci_short_read, "CAP_SYS_ADMIN"),
    (_hint_oserror_eperm, "capability"),
]


@pytest.mark.parametrize("site,check", SITES, ids=[s.__name__[6:] for s, _c in SITES])
def test_user_is_told_to_run_as_root(hidden, monkeypatch, site, check):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    text = site(monkeypatch)
    assert any(a in text for a in ROOT_ADVICE) and "already root" not in text, text


@pytest.mark.parametrize("site,check", SITES, ids=[s.__name__[6:] for s, _c in SITES])
def test_root_is_told_the_real_check(hidden, monkeypatch, site, check):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    text = site(monkeypatch)
    assert "already root" in text and check in text, text
    assert not any(a in text for a in ROOT_ADVICE), text


def test_ptrace_refusal_names_the_ptrace_check(monkeypatch):
    """Opening another process's pagemap: root is told about the ptrace access mode check."""
    from pyphys.pagemap import translation

    monkeypatch.setattr(translation.os, "open", _denied)
    for euid, want in ((1000, "needs root"), (0, "ptrace access check")):
        monkeypatch.setattr(os, "geteuid", lambda euid=euid: euid)
        assert want in _raised(lambda: translation._open_pagemap(1))
