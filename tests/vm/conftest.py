"""Lab VM fixtures: each guest is booted once per test run, not once per test.

The kernel matrix (pyphys.kernels.MATRIX): ``lab`` (Linux 6.12 built by the project,
STRICT_DEVMEM off), ``stock`` (Debian's 6.1 as shipped) and ``stock-6.12`` (Debian's 6.12
as shipped). Every guest has pyphys.ko loaded, QEMU's edu and ivshmem-plain devices, a PCIe
root port with a driverless virtio device behind it, and a swap disk backed by a host file.
``la57`` is the lab kernel once more on a CPU with 5-level paging, ``pti=on`` and PAT active.

Tests about kernel behaviour take ``any_vm`` (every kernel of the matrix) or ``stock_any_vm``
(both stock kernels) and so run once per kernel; tests of one kernel take its fixture.
Without QEMU or virtme-ng the tests skip, which under CI=true is a failure (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from pyphys.errors import LabError

# fixture name -> LabVM arguments. The 4-level boots take LA57 away from QEMU's TCG "max" CPU;
# the la57 boot keeps it (the lab kernel has CONFIG_X86_5LEVEL), adds pti=on (KPTI's
# user-half page tables) and keeps PAT active (lab boots otherwise get nopat: labvm.lab_append).
# The stock boots may write (in throw-away overlays) where `pyphys module install` puts things:
# DKMS's source tree and state, and the kernel's module directory.
# The test guests get 640 MiB (a lab started by hand gets 1 GiB): every whole-RAM dump test
# reads all of it through 9p at a few MB/s under TCG, so RAM size is most of their time. Not
# 512 MiB: below 512 MiB of managed RAM the kernel turns THP off at boot (mm/huge_memory.c,
# hugepage_init), and labs 1, 7 and 9 need a 2 MiB THP.
INSTALL_DIRS = ("/usr/src", "/var/lib/dkms", "/usr/lib/modules")
MEMORY = os.environ.get("PYPHYS_TEST_VM_MEMORY", "640M")
BOOTS = {
    "lab": dict(kernel="lab", cpu="max,la57=off", memory=MEMORY),
    "stock": dict(kernel="stock", cpu="max,la57=off", overlays=INSTALL_DIRS, memory=MEMORY),
    "stock-6.12": dict(kernel="stock-6.12", cpu="max,la57=off", overlays=INSTALL_DIRS, memory=MEMORY),
    "la57": dict(kernel="lab", cpu="max,la57=on", append=["pti=on"], label="la57", pat=True, memory=MEMORY),
}
MATRIX = ("lab", "stock", "stock-6.12")
_vms: dict = {}


def _prerequisites() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed (make setup)"
    bindir = os.path.dirname(sys.executable)
    if not shutil.which("vng", path=bindir + os.pathsep + os.environ.get("PATH", "")):
        return "virtme-ng is not installed in this environment (make setup)"
    return None


def boot(name: str):
    """The running guest ``name`` of BOOTS, booted on first use."""
    from pyphys.labvm import LabVM

    if name in _vms:
        vm = _vms[name]
        if isinstance(vm, Exception):
            pytest.fail(f"the {name} lab VM failed to boot earlier in this run: {vm}")
        return vm
    missing = _prerequisites()
    if missing:
        pytest.skip(missing)
    log_dir = os.environ.get("PYPHYS_VM_LOGDIR")
    log = os.path.join(log_dir, f"{name}-console.log") if log_dir else None
    vm = LabVM(log_path=log, **BOOTS[name])
    try:
        vm.start()
    except LabError as err:
        _vms[name] = err
        vm.close()
        pytest.fail(f"the {name} lab VM did not boot: {err}")
    _vms[name] = vm
    return vm


@pytest.fixture(scope="session")
def lab_vm():
    """The lab kernel (6.12, STRICT_DEVMEM off) with pyphys.ko loaded."""
    return boot("lab")


@pytest.fixture(scope="session")
def stock_vm():
    """Debian's stock 6.1 kernel (STRICT_DEVMEM=y) with pyphys.ko loaded."""
    return boot("stock")


@pytest.fixture(scope="session")
def stock612_vm():
    """Debian's stock 6.12 kernel (STRICT_DEVMEM=y) with pyphys.ko loaded."""
    return boot("stock-6.12")


@pytest.fixture(scope="session")
def la57_vm():
    """The lab kernel on a CPU with LA57 (5-level paging), booted with pti=on."""
    return boot("la57")


@pytest.fixture(params=MATRIX)
def any_vm(request):
    """Every kernel of the matrix in turn (each still booted only once)."""
    return boot(request.param)


@pytest.fixture(params=("stock", "stock-6.12"))
def stock_any_vm(request):
    """Both stock kernels in turn."""
    return boot(request.param)


def pytest_sessionfinish(session, exitstatus):
    for vm in _vms.values():
        if not isinstance(vm, Exception):
            vm.close()
    _vms.clear()


def _kernel_of(item) -> str:
    """The guest an item needs first (for ordering): its parameter, else its fixtures."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for value in callspec.params.values():
            if value in BOOTS:
                return value
    for fixture, name in (("lab_vm", "lab"), ("stock_vm", "stock"), ("stock612_vm", "stock-6.12"), ("la57_vm", "la57")):
        if fixture in getattr(item, "fixturenames", ()):
            return name
    return ""


def pytest_collection_modifyitems(config, items):
    """Everything under tests/vm is a VM test; tests are grouped by the guest they use, in the
    order of BOOTS, so each guest's tests run together (stable within a group). Tests marked
    ``install`` (a DKMS build under TCG: tens of minutes per kernel) are left out of a run unless
    PYPHYS_INSTALL_TESTS=1 (`make test-install`), so `make test` stays inside CI's time."""
    if os.environ.get("PYPHYS_INSTALL_TESTS") != "1":
        left_out = [item for item in items if item.get_closest_marker("install")]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not item.get_closest_marker("install")]
    order = {name: i for i, name in enumerate(BOOTS)}
    vm_items = []
    for item in items:
        if "/tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)
            vm_items.append(item)
    if not vm_items:
        return
    first = items.index(vm_items[0])
    chosen = set(vm_items)
    rest = [i for i in items if i not in chosen]
    vm_items.sort(key=lambda it: order.get(_kernel_of(it), -1))
    items[:] = rest[:first] + vm_items + rest[first:]
