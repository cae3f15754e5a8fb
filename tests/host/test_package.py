"""The wheel and the sdist carry pyphys.ko's sources, and an installed wheel finds them.

``pip install pyphys`` users have no checkout, yet ``pyphys module build|install`` needs
pyphys.c, compat.h, Kbuild, Makefile and dkms.conf. They ship as package data in
``pyphys/kmod_src`` (a symlink to kmod/ in the checkout). Ground truth is the repository's own
kmod/ tree as git tracks it: every tracked file is in the wheel and the sdist, byte for byte,
and nothing else is; the build products a ``make`` in kmod/ leaves (planted in the copy that is
packaged) are not. The wheel is then installed into a fresh venv, whose pyphys must find the
sources inside its own site-packages and build pyphys.ko from them with the kernel's Kbuild.

The wheel is built without build isolation (no download) when the venv can build wheels
(setuptools 70.1+, or ``wheel``: the test extra installs it), else with it.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KMOD = REPO / "kmod"
#: what `make` in kmod/ leaves beside the sources (kbuild's outputs; .gitignore lists them)
BUILD_OUTPUTS = ("pyphys.ko", "pyphys.o", "pyphys.mod", "pyphys.mod.c", "pyphys.mod.o", ".pyphys.o.cmd")
BUILD_OUTPUTS += ("modules.order", "Module.symvers")
PACKAGED = ("pyproject.toml", "README.md", "bin", "pyphys", "kmod")


def _tracked() -> dict[str, bytes]:
    """kmod/'s files as git tracks them: name -> content."""
    proc = subprocess.run(["git", "-C", str(REPO), "ls-files", "kmod"], capture_output=True, text=True, check=True)
    names = [line.split("/", 1)[1] for line in proc.stdout.splitlines()]
    assert names and all("/" not in n for n in names), names
    return {n: (KMOD / n).read_bytes() for n in names}


def _env() -> dict[str, str]:
    """The environment without PYTHONPATH, which points at the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _can_build_wheels() -> bool:
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist) built from a copy of the checkout with build products planted in kmod/."""
    base = tmp_path_factory.mktemp("package")
    src = base / "src"
    src.mkdir()
    for name in PACKAGED:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    assert (src / "pyphys" / "kmod_src").is_symlink()
    for name in BUILD_OUTPUTS:
        (src / "kmod" / name).write_bytes(b"\x7fELF build output")
    dist = base / "dist"
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), "."]
    if _can_build_wheels():
        argv.insert(5, "--no-build-isolation")
    proc = subprocess.run(argv, cwd=src, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(dist)], cwd=src, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = dist.glob("pyphys-*.whl")
    (sdist,) = dist.glob("pyphys-*.tar.gz")
    return wheel, sdist


def test_the_wheel_carries_kmod_byte_for_byte_and_no_build_output(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        shipped = {n.split("/", 2)[2]: z.read(n) for n in z.namelist() if n.startswith("pyphys/kmod_src/")}
        assert not [n for n in z.namelist() if n.endswith((".ko", ".o", ".mod", ".mod.c", ".cmd", ".symvers"))]
    tracked = _tracked()
    assert sorted(shipped) == sorted(tracked)
    for name, data in tracked.items():
        assert shipped[name] == data, name
    assert not set(BUILD_OUTPUTS) & set(shipped)


def test_the_sdist_carries_kmod_as_plain_files(built):
    _, sdist = built
    with tarfile.open(sdist) as t:
        members = {m.name.partition("/")[2]: m for m in t.getmembers()}
        shipped = {
            k.split("/", 2)[2]: t.extractfile(m).read()
            for k, m in members.items()
            if k.startswith("pyphys/kmod_src/") and m.isfile()
        }
        assert not [k for k, m in members.items() if m.issym() or m.islnk()]
    tracked = _tracked()
    assert sorted(shipped) == sorted(tracked)
    for name, data in tracked.items():
        assert shipped[name] == data, name


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh venv with the wheel installed (no dependencies: the checks below import none)."""
    wheel, _ = built
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(root)], check=True, timeout=120
    )
    py = root / "bin" / "python"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-compile",
            str(wheel),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def _in_venv(venv: Path, *argv: str) -> subprocess.CompletedProcess:
    # from a directory without a pyphys/ in it, so only the installed one can be imported
    return subprocess.run(argv, cwd=venv, env=_env(), capture_output=True, text=True, timeout=300)


def test_the_installed_wheel_finds_the_sources_in_its_site_packages(venv):
    code = (
        "import json, sysconfig, pyphys.kmod_install as k;"
        "print(json.dumps([str(k.source_dir()), k.__file__, sysconfig.get_path('purelib')]))"
    )
    proc = _in_venv(venv, str(venv / "bin" / "python"), "-c", code)
    assert proc.returncode == 0, proc.stderr
    source, module, purelib = (Path(p) for p in json.loads(proc.stdout))
    site = Path(purelib).resolve()
    assert module.resolve().is_relative_to(site), module
    assert source.resolve().is_relative_to(site) and not source.is_symlink(), source
    for name, data in _tracked().items():
        assert (source / name).read_bytes() == data, name
    assert not [p.name for p in source.iterdir() if p.name not in _tracked()]


def test_the_installed_command_runs_module_status(venv):
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    proc = _in_venv(venv, str(venv / "bin" / "pyphys"), "module", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["release"] == release


def _headers() -> str | None:
    for kdir in sorted(glob.glob("/lib/modules/*/build")):
        if os.path.isfile(os.path.join(kdir, "Module.symvers")) and os.path.isfile(os.path.join(kdir, "Makefile")):
            return os.path.basename(os.path.dirname(kdir))
    return None


@pytest.mark.kbuild
def test_the_installed_wheel_builds_the_module(venv, tmp_path):
    """`pyphys module build` from the wheel alone, checked with modinfo against the headers' release."""
    release = _headers()
    if release is None or not shutil.which("make"):
        pytest.skip("no kernel headers under /lib/modules/*/build, or no make (scripts/setup.sh installs them)")
    out = tmp_path / "build"
    proc = _in_venv(venv, str(venv / "bin" / "pyphys"), "module", "build", "--kernel", release, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ko = Path(proc.stdout.strip())
    assert ko == out / "pyphys.ko" and ko.is_file()
    modinfo = shutil.which("modinfo") or "/usr/sbin/modinfo"
    vermagic = subprocess.run([modinfo, "-F", "vermagic", str(ko)], capture_output=True, text=True, check=True)
    assert vermagic.stdout.split()[0] == release


@pytest.mark.kbuild
def test_the_signing_hint_names_a_file_that_exists():
    """The sign-file path the hints give is where the headers package puts the kernel's tool."""
    from pyphys.kmod_install import sign_command

    release = _headers()
    if release is None:
        pytest.skip("no kernel headers under /lib/modules/*/build")
    tool = sign_command(release).split()[0]
    assert os.access(tool, os.X_OK), tool
