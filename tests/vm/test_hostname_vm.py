"""`pyphys hostname NAME` for real: uname -n is the judge; undo restores it."""

from __future__ import annotations

import pytest


def _uname(vm) -> str:
    res = vm.run("uname -n")
    assert res.rc == 0
    return res.out.strip()


def test_hostname_change_and_undo_on_lab(lab_vm):
    original = _uname(lab_vm)
    res = lab_vm.pyphys("hostname", "NinjaNinja")
    assert res.rc == 0, res
    try:
        assert _uname(lab_vm) == "NinjaNinja"
        assert lab_vm.run("hostname").out.strip() == "NinjaNinja"  # busybox/util-linux, via uname(2)
        assert lab_vm.run("cat /proc/sys/kernel/hostname").out.strip() == "NinjaNinja"
        assert f"before:   {original}" in res.out and "after:    NinjaNinja" in res.out
    finally:
        undo = lab_vm.pyphys("undo")
    assert undo.rc == 0, undo
    assert _uname(lab_vm) == original


def test_dry_run_writes_nothing(lab_vm):
    original = _uname(lab_vm)
    res = lab_vm.pyphys("hostname", "--dry-run", "Elsewhere")
    assert res.rc == 0, res
    assert "nothing written" in res.out
    assert _uname(lab_vm) == original


def test_refuses_when_bytes_are_not_the_hostname(lab_vm):
    """An address that does not hold `uname -n` (here: off by one byte) is refused, nothing written."""
    original = _uname(lab_vm)
    code = (
        "import os\n"
        "from pyphys import hostname, kmod, errors\n"
        "info = kmod.info()\n"
        "hostname.locate_nodename = lambda: (info.nodename_phys + 1, 65, 'test: off by one')\n"
        "try:\n"
        "    hostname.change('Wrong')\n"
        "    print('WROTE')\n"
        "except errors.PyphysError as e:\n"
        "    print('REFUSED', e)\n"
    )
    res = lab_vm.python(code)
    assert res.out.startswith("REFUSED"), res
    assert "nothing written" in res.out
    assert _uname(lab_vm) == original


@pytest.mark.parametrize(
    "name, why",
    [
        ("", "empty"),
        ("x" * 65, "65 bytes"),
        ("bad\tname", "non-printable"),
        ("bell\x07", "non-printable"),
    ],
)
def test_bad_names_one_line_no_write(lab_vm, name, why):
    original = _uname(lab_vm)
    res = lab_vm.pyphys("hostname", name)
    assert res.rc != 0
    assert "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert _uname(lab_vm) == original


def test_non_root_is_refused_in_one_line(lab_vm):
    import shlex
    import sys

    original = _uname(lab_vm)
    who = lab_vm.run_unprivileged("id -u; id -G")
    assert who.rc == 0 and who.out.split() == ["65534", "65534"], who  # really nobody, no groups
    res = lab_vm.run_unprivileged(f"{shlex.quote(sys.executable)} -m pyphys hostname NinjaNinja")
    assert res.rc != 0
    assert "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert "root" in res.err
    assert _uname(lab_vm) == original


def test_stock_kernel_refuses_with_strict_devmem_message(stock_any_vm):
    stock_any_vm.load_module()  # default parameters: no /dev/pyphys_mem, so nothing gets around the policy
    original = _uname(stock_any_vm)
    res = stock_any_vm.pyphys("hostname", "NinjaNinja")
    assert res.rc != 0
    assert "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert "CONFIG_STRICT_DEVMEM" in res.err
    assert _uname(stock_any_vm) == original
