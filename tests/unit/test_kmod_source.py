"""kmod/pyphys.c: kernel coding style (checkpatch) and a warning-free out-of-tree build.

Ground truth comes from outside the module: the kernel's own scripts/checkpatch.pl, the
kernel's build system, the headers' UTS_RELEASE and `modinfo` (kmod). What the module does
once loaded (file modes, addresses, the buffer pattern) is checked in the lab VM tests.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyphys import paths

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "kmod" / "pyphys.c"
COMPAT = REPO / "kmod" / "compat.h"
# compat.h holds the version checks and older kernels' spellings on purpose (the Makefile's
# checkpatch target ignores the same three types there); pyphys.c is checked with no exception.
COMPAT_IGNORE = "LINUX_VERSION_CODE,CONSTANT_COMPARISON,DEPRECATED_API"
BUILD_MODULE = REPO / "scripts" / "build-module.sh"
CACHE = Path(paths.cache_dir(create=False))

# checkpatch's summary line: "total: 0 errors, 0 warnings, 0 checks, 426 lines checked"
TOTAL_RE = re.compile(r"^total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?(\d+) lines checked", re.M)


def _kernel_trees() -> list[Path]:
    """Kernel source trees that carry scripts/checkpatch.pl: $PYPHYS_KERNEL_TREE, then the lab tree."""
    candidates = []
    if os.environ.get("PYPHYS_KERNEL_TREE"):
        candidates.append(Path(os.environ["PYPHYS_KERNEL_TREE"]))
    candidates += [Path(p) for p in sorted(glob.glob(str(CACHE / "lab-*" / "linux")))]
    return [t for t in candidates if (t / "scripts" / "checkpatch.pl").is_file()]


def _checkpatch(path: Path, *options: str) -> tuple[tuple[int, int, int], str]:
    trees = _kernel_trees()
    if not trees:
        pytest.skip(
            f"no kernel tree with scripts/checkpatch.pl (set PYPHYS_KERNEL_TREE or run scripts/build-kernel.sh; "
            f"looked in {CACHE})"
        )
    if not shutil.which("perl"):
        pytest.skip("perl is not installed: checkpatch.pl cannot run")
    tree = trees[0]
    # Run from the tree: checkpatch reads spelling.txt and const_structs.checkpatch next to itself.
    proc = subprocess.run(
        [
            str(tree / "scripts" / "checkpatch.pl"),
            "--strict",
            "--no-tree",
            "--no-summary-file",
            "--color=never",
            *options,
            "-f",
            str(path),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    match = TOTAL_RE.search(output)
    assert match, f"checkpatch printed no summary line (rc={proc.returncode}):\n{output}"
    return (int(match[1]), int(match[2]), int(match[3] or 0)), output


def test_checkpatch_strict_is_clean() -> None:
    counts, output = _checkpatch(SOURCE)
    assert counts == (0, 0, 0), f"checkpatch --strict: errors, warnings, checks = {counts}\n{output}"


def test_checkpatch_compat_header_is_clean() -> None:
    counts, output = _checkpatch(COMPAT, "--ignore", COMPAT_IGNORE)
    assert counts == (0, 0, 0), f"checkpatch --strict on compat.h: errors, warnings, checks = {counts}\n{output}"


def test_pyphys_c_has_no_version_checks() -> None:
    """Every LINUX_VERSION_CODE test lives in compat.h, next to the commit it cites."""
    assert "LINUX_VERSION_CODE" not in SOURCE.read_text()
    text = COMPAT.read_text()
    for block in re.findall(r"/\*(?:(?!\*/).)*\*/\s*#if LINUX_VERSION_CODE[^\n]*", text, re.S):
        assert re.search(r"\b[0-9a-f]{12}\b", block), f"a version check without the commit it cites:\n{block}"
    assert text.count("#if LINUX_VERSION_CODE") == len(re.findall(r"\*/\s*#if LINUX_VERSION_CODE", text)), (
        "every version check follows the comment that explains it"
    )


def test_checkpatch_catches_a_planted_defect(tmp_path: Path) -> None:
    """The clean verdict above means something only if the same run flags real defects."""
    bad = tmp_path / "pyphys.c"
    text = SOURCE.read_text()
    # sprintf in a show() (checkpatch wants sysfs_emit) and a space-indented line.
    planted = text.replace('return sysfs_emit(buf, "%zu\\n",', 'return sprintf(buf, "%zu\\n",', 1)
    planted = planted.replace("\tif (!capable(CAP_SYS_RAWIO))", "        if (!capable(CAP_SYS_RAWIO))", 1)
    assert planted != text
    bad.write_text(planted)
    (errors, warnings, checks), output = _checkpatch(bad)
    assert errors + warnings >= 2, output


def _stock_kdirs() -> list[Path]:
    """Debian's stock kernel headers, reached as /lib/modules/<release>/build."""
    return [Path(p) for p in sorted(glob.glob("/lib/modules/*/build")) if Path(p, "Module.symvers").is_file()]


def _lab_kdirs() -> list[Path]:
    return [Path(p).parent / "linux" for p in sorted(glob.glob(str(CACHE / "lab-*" / ".complete")))]


def _uts_release(kdir: Path) -> str:
    text = (kdir / "include" / "generated" / "utsrelease.h").read_text()
    match = re.search(r'#define UTS_RELEASE "([^"]+)"', text)
    assert match, text
    return match[1]


def _modinfo(ko: Path) -> dict[str, list[str]]:
    modinfo = shutil.which("modinfo") or next(
        (p for p in ("/usr/sbin/modinfo", "/sbin/modinfo") if os.access(p, os.X_OK)), None
    )
    if modinfo is None:
        pytest.skip("modinfo (package kmod) is not installed")
    out = subprocess.run([modinfo, str(ko)], capture_output=True, text=True, check=True).stdout
    fields: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), []).append(value.strip())
    return fields


@pytest.mark.parametrize("which", ["stock", "lab"])
def test_module_builds_without_warnings(which: str) -> None:
    kdirs = _stock_kdirs() if which == "stock" else _lab_kdirs()
    if not kdirs:
        hint = "install linux-headers-amd64" if which == "stock" else "run scripts/build-kernel.sh"
        pytest.skip(f"no {which} kernel build tree ({hint})")
    kdir = kdirs[0]
    # build-module.sh fails on any compiler or modpost warning, so rc 0 means a clean build.
    proc = subprocess.run([str(BUILD_MODULE), str(kdir)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be exactly the .ko path, got {proc.stdout!r}"
    ko = Path(lines[0])
    assert ko.is_absolute() and ko.name == "pyphys.ko" and ko.is_file()
    assert not str(ko).startswith(str(REPO)), "the build must happen outside the repo"

    info = _modinfo(ko)
    assert info["vermagic"][0].split()[0] == _uts_release(kdir)
    assert info["license"] == ["GPL"]
    assert info["author"] == ["pyphys developers"]
    assert info["description"] and info["description"][0]
    params = info.get("parm", [])
    assert any(p.startswith("mem_device:") and p.endswith("(bool)") for p in params), params

    # Same inputs: the finished build is reused, same path, no compiler run.
    again = subprocess.run([str(BUILD_MODULE), str(kdir)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout
    assert "reusing" in again.stderr


def test_build_module_fails_loudly_on_a_bad_kdir(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BUILD_MODULE), str(tmp_path / "no-such-tree")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "no-such-tree" in proc.stderr


def test_build_module_reports_compiler_errors(tmp_path: Path) -> None:
    """A broken source must fail with the compiler's own message on stderr, not a bare exit code."""
    kdirs = _stock_kdirs() or _lab_kdirs()
    if not kdirs:
        pytest.skip("no kernel build tree (install linux-headers-amd64 or run scripts/build-kernel.sh)")
    fake_repo = tmp_path / "repo"
    shutil.copytree(REPO / "kmod", fake_repo / "kmod")
    (fake_repo / "scripts").mkdir()
    shutil.copy2(BUILD_MODULE, fake_repo / "scripts" / "build-module.sh")
    shutil.copy2(REPO / "scripts" / "common.sh", fake_repo / "scripts" / "common.sh")
    source = fake_repo / "kmod" / "pyphys.c"
    source.write_text(
        source.read_text().replace("static void *pyphys_buffer;", "static void *pyphys_buffer = undeclared_symbol;", 1)
    )
    env = dict(os.environ, PYPHYS_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [str(fake_repo / "scripts" / "build-module.sh"), str(kdirs[0])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "undeclared_symbol" in proc.stderr and "error" in proc.stderr
