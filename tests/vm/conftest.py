"""Lab VM fixtures: each kernel is booted once per test run, not once per test.

``lab_vm`` is the project's lab kernel (STRICT_DEVMEM off); ``stock_vm`` is Debian's kernel
as shipped (STRICT_DEVMEM=y). Both have pyphys.ko loaded and QEMU's edu and ivshmem-plain
devices attached. Without QEMU or virtme-ng the tests skip, which under CI=true is a failure
(tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from pyphys.errors import LabError

_vms: dict = {}


def _prerequisites() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed (make setup)"
    bindir = os.path.dirname(sys.executable)
    if not shutil.which("vng", path=bindir + os.pathsep + os.environ.get("PATH", "")):
        return "virtme-ng is not installed in this environment (make setup)"
    return None


def _boot(kernel: str):
    from pyphys.labvm import LabVM

    if kernel in _vms:
        vm = _vms[kernel]
        if isinstance(vm, Exception):
            pytest.fail(f"the {kernel} lab VM failed to boot earlier in this run: {vm}")
        return vm
    missing = _prerequisites()
    if missing:
        pytest.skip(missing)
    log_dir = os.environ.get("PYPHYS_VM_LOGDIR")
    log = os.path.join(log_dir, f"{kernel}-console.log") if log_dir else None
    vm = LabVM(kernel, log_path=log)
    try:
        vm.start()
    except LabError as err:
        _vms[kernel] = err
        vm.close()
        pytest.fail(f"the {kernel} lab VM did not boot: {err}")
    _vms[kernel] = vm
    return vm


@pytest.fixture(scope="session")
def lab_vm():
    """The lab kernel (STRICT_DEVMEM off) with pyphys.ko loaded, booted once per session."""
    vm = _boot("lab")
    yield vm


@pytest.fixture(scope="session")
def stock_vm():
    """Debian's stock kernel (STRICT_DEVMEM=y) with pyphys.ko loaded, booted once per session."""
    vm = _boot("stock")
    yield vm


@pytest.fixture(params=["lab", "stock"])
def any_vm(request):
    """Both kernels in turn (each still booted only once)."""
    return request.getfixturevalue(f"{request.param}_vm")


def pytest_sessionfinish(session, exitstatus):
    for vm in _vms.values():
        if not isinstance(vm, Exception):
            vm.close()
    _vms.clear()


def pytest_collection_modifyitems(items):
    """Everything under tests/vm is a VM test; run the lab kernel's tests before the stock kernel's."""
    for item in items:
        if "/tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)
