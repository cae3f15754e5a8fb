"""pyphys.ko builds with ``-Werror`` and ``W=1`` against every kernel tree on this machine.

Ground truth is outside the module: the kernel's own build system and compiler, and the tree's
UTS_RELEASE against ``modinfo``'s vermagic. The trees are every installed headers package
(``/lib/modules/*/build``, ``/usr/src/linux-headers-*``) and every finished lab kernel tree in
the cache. Under CI=true a skip here is a failure: setup.sh installs the 6.1 and 6.12 headers.

No tree newer than 6.12 can be installed here. For 6.13 to 6.18 the *shaped* builds compile the
module against the 6.12 headers with ``include/linux/sysfs.h`` rewritten to the 6.13-6.15 and
6.16-6.18 forms of the two structures that changed (from the upstream commits that kmod/compat.h
cites) and ``LINUX_VERSION_CODE`` set to match, so each branch of compat.h meets the field types
it was written for; the old, non-const source must fail the 6.18 shape. kmod/COMPAT.md says what
this does and does not prove.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyphys import kernels, paths

pytestmark = pytest.mark.kbuild

REPO = Path(__file__).resolve().parents[2]
KMOD = REPO / "kmod"
SOURCES = ("pyphys.c", "compat.h", "Kbuild", "Makefile")
CACHE = Path(paths.cache_dir(create=False))


def _release(kdir: Path) -> str:
    text = (kdir / "include" / "generated" / "utsrelease.h").read_text()
    match = re.search(r'#define UTS_RELEASE "([^"]+)"', text)
    assert match, text
    return match[1]


def _trees() -> dict[str, Path]:
    """Every configured tree that can build external modules, by kernel release (one per real path)."""
    candidates = sorted(glob.glob("/lib/modules/*/build")) + sorted(glob.glob("/usr/src/linux-headers-*"))
    candidates += [str(Path(p).parent / "linux") for p in sorted(glob.glob(str(CACHE / "lab-*" / ".complete")))]
    found: dict[str, Path] = {}
    seen = set()
    for c in candidates:
        real = Path(c).resolve()
        if real in seen or not (real / "Module.symvers").is_file() or not (real / ".config").is_file():
            continue
        seen.add(real)
        try:
            release = _release(real)
        except OSError:
            continue
        name = f"lab-{release}" if str(real).startswith(str(CACHE)) else release
        found[name] = real
    return found


TREES = _trees()


def _make(kdir: Path, src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        shutil.copy2(src / name, out / name)
    return subprocess.run(
        ["make", "-C", str(kdir), f"M={out}", "W=1", *extra, "modules"],
        capture_output=True,
        text=True,
        timeout=900,
    )


def _assert_clean(proc: subprocess.CompletedProcess, out: Path) -> Path:
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    # gcc says "warning:", modpost says "WARNING:"; -Werror makes gcc's errors, modpost's stay warnings.
    assert not re.search(r"warning:", log, re.I), log
    ko = out / "pyphys.ko"
    assert ko.is_file(), log
    return ko


def _vermagic(ko: Path) -> str:
    modinfo = shutil.which("modinfo") or next(
        (p for p in ("/usr/sbin/modinfo", "/sbin/modinfo") if os.access(p, os.X_OK)), None
    )
    if modinfo is None:
        pytest.skip("modinfo (package kmod) is not installed")
    out = subprocess.run([modinfo, "-F", "vermagic", str(ko)], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


@pytest.mark.parametrize("name", sorted(TREES) or ["no-tree"])
def test_module_builds_clean(name: str, tmp_path: Path) -> None:
    if name not in TREES:
        pytest.skip("no kernel headers or lab tree installed (apt-get install linux-headers-amd64)")
    kdir = TREES[name]
    ko = _assert_clean(_make(kdir, KMOD, tmp_path / "m", "KCFLAGS=-Werror"), tmp_path / "m")
    assert _vermagic(ko) == _release(kdir)


def test_every_stock_headers_package_is_built() -> None:
    """Each headers metapackage of the kernel matrix that is installed resolves to a tree above."""
    expected = {}
    for name, (_image, headers_pkg, _series) in kernels.STOCK.items():
        dep = kernels._dpkg_depends(headers_pkg)
        if dep:
            expected[name] = dep[len("linux-headers-") :]
    if not expected:
        pytest.skip("no linux-headers metapackage of the kernel matrix is installed (make setup)")
    assert set(expected.values()) <= set(TREES), (expected, sorted(TREES))


# -- shaped builds: the sysfs structures of 6.13-6.15 and 6.16-6.18 on the 6.12 headers ----------

# 6.12's fields, as the 6.12 headers have them (each must occur exactly once).
READ_612 = (
    "\tssize_t (*read)(struct file *, struct kobject *, struct bin_attribute *,\n\t\t\tchar *, loff_t, size_t);\n"
)
WRITE_612 = (
    "\tssize_t (*write)(struct file *, struct kobject *, struct bin_attribute *,\n\t\t\t char *, loff_t, size_t);\n"
)
BIN_ATTRS_612 = "\tstruct bin_attribute\t**bin_attrs;\n"
BIN_ATTR_MACRO_612 = "\t.read\t= _read,\t\t\t\t\t\t\\\n\t.write\t= _write,\t\t\t\t\t\t\\\n"

CONST_RW = "(struct file *, struct kobject *, const struct bin_attribute *, char *, loff_t, size_t);\n"

# 6.13-6.15: eb2e6c3a8d66 added const read_new/write_new and made __BIN_ATTR() pick the field by
# the callback's type; 906c508afdca put a const bin_attrs_new in a union with bin_attrs.
SHAPE_613 = {
    READ_612: READ_612 + "\tssize_t (*read_new)" + CONST_RW,
    WRITE_612: WRITE_612 + "\tssize_t (*write_new)" + CONST_RW,
    BIN_ATTRS_612: "\tunion {\n\t\tstruct bin_attribute\t**bin_attrs;\n"
    "\t\tconst struct bin_attribute\t*const *bin_attrs_new;\n\t};\n",
    BIN_ATTR_MACRO_612: "".join(
        f"\t.{field}{suffix} = _Generic(_{field}, __pyphys_new * : {a}, default : {b}),\\\n"
        for field in ("read", "write")
        for suffix, a, b in (("", "NULL", f"_{field}"), ("_new", f"_{field}", "NULL"))
    ),
}
# 6.16-6.18: 97d06802d10a and 9bec944506fa made read/write and bin_attrs const; 6.18 removed the
# _new fields (1d6249c1ce82, 44d454fcffa8), which nothing here uses.
SHAPE_618 = {
    READ_612: "\tssize_t (*read)" + CONST_RW,
    WRITE_612: "\tssize_t (*write)" + CONST_RW,
    BIN_ATTRS_612: "\tconst struct bin_attribute\t*const *bin_attrs;\n",
}
SHAPES = {"6.15": SHAPE_613, "6.18": SHAPE_618}


def _headers_612() -> Path | None:
    """A Debian 6.12 headers package: an object tree whose Makefile includes the source tree's."""
    for name, kdir in sorted(TREES.items()):
        if name.startswith("6.12.") and re.match(r"include (\S+)/Makefile", (kdir / "Makefile").read_text()):
            return kdir
    return None


def _shaped_tree(version: str, dest: Path) -> tuple[Path, Path]:
    """(object tree reporting ``version``, sysfs.h of that shape) built from the 6.12 headers."""
    kdir = _headers_612()
    if kdir is None:
        pytest.skip("the shaped builds need Debian's 6.12 headers (apt-get install linux-headers-6.12-amd64)")
    srctree = Path(re.match(r"include (\S+)/Makefile", (kdir / "Makefile").read_text())[1])
    text = (srctree / "include" / "linux" / "sysfs.h").read_text()
    for old, new in SHAPES[version].items():
        assert text.count(old) == 1, f"the 6.12 sysfs.h no longer has {old!r}"
        text = text.replace(old, new)
    if "__pyphys_new" in text:
        text = text.replace(
            "/* macros to create static binary attributes easier */",
            "typedef ssize_t __pyphys_new" + CONST_RW + "/* macros to create static binary attributes easier */",
        )
    sysfs = dest / "sysfs.h"
    sysfs.write_text(text)
    # The object tree is small (config, generated headers, Module.symvers); its symlinks are relative.
    obj = dest / "obj"
    shutil.copytree(kdir, obj, symlinks=True)
    for link in [p for p in obj.rglob("*") if p.is_symlink()]:
        target = os.readlink(link)
        if not os.path.isabs(target):
            link.unlink()
            link.symlink_to(os.path.normpath(os.path.join(kdir / link.parent.relative_to(obj), target)))
    major, minor = (int(x) for x in version.split("."))
    vh = obj / "include" / "generated" / "uapi" / "linux" / "version.h"
    body = vh.read_text()
    body = re.sub(r"(#define LINUX_VERSION_CODE )\d+", rf"\g<1>{(major << 16) + (minor << 8)}", body)
    body = re.sub(r"(#define LINUX_VERSION_PATCHLEVEL )\d+", rf"\g<1>{minor}", body)
    body = re.sub(r"(#define LINUX_VERSION_SUBLEVEL )\d+", r"\g<1>0", body)
    vh.unlink()
    vh.write_text(body)
    return obj, sysfs


@pytest.mark.parametrize("version", sorted(SHAPES))
def test_module_builds_clean_against_newer_sysfs_shapes(version: str, tmp_path: Path) -> None:
    obj, sysfs = _shaped_tree(version, tmp_path)
    # sysfs.h is force-included first; its include guard turns the 6.12 one into a no-op.
    _assert_clean(_make(obj, KMOD, tmp_path / "m", f"KCFLAGS=-Werror -include {sysfs}"), tmp_path / "m")


def test_non_const_callbacks_fail_the_618_shape(tmp_path: Path) -> None:
    """The shaped build means something only if the pre-6.16 spelling fails it, as GCC 14 would."""
    obj, sysfs = _shaped_tree("6.18", tmp_path)
    src = tmp_path / "src"
    shutil.copytree(KMOD, src)
    compat = src / "compat.h"
    compat.write_text(compat.read_text().replace("#define PYPHYS_BIN_CONST const\n", "#define PYPHYS_BIN_CONST\n", 1))
    proc = _make(obj, src, tmp_path / "m", f"KCFLAGS=-Werror -include {sysfs}")
    assert proc.returncode != 0
    assert "incompatible-pointer-types" in proc.stderr, proc.stderr


# -- DKMS: kmod/dkms.conf builds the module with dkms itself, in scratch trees ------------------
@pytest.mark.parametrize("name", sorted(n for n in TREES if not n.startswith("lab-")) or ["no-headers"])
def test_dkms_builds_the_module(name: str, tmp_path: Path) -> None:
    """`dkms add` + `dkms build` of kmod/ as `pyphys module install` registers it (dkms's own trees
    are pointed into tmp_path; only its MOK signing key, if missing, is made in /var/lib/dkms)."""
    if name not in TREES:
        pytest.skip("no kernel headers installed (apt-get install linux-headers-amd64)")
    dkms = shutil.which("dkms") or ("/usr/sbin/dkms" if os.access("/usr/sbin/dkms", os.X_OK) else None)
    if dkms is None:
        pytest.skip("dkms is not installed (make setup installs it)")
    from pyphys import kmod_install

    version = kmod_install.dkms_version()
    src = tmp_path / "src"
    shutil.copytree(KMOD, src / f"pyphys-{version}")
    for tree in ("dkms", "inst"):
        (tmp_path / tree).mkdir()
    trees = ["--dkmstree", str(tmp_path / "dkms"), "--sourcetree", str(src), "--installtree", str(tmp_path / "inst")]
    add = subprocess.run([dkms, *trees, "add", f"pyphys/{version}"], capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stdout + add.stderr
    build = subprocess.run(
        [dkms, *trees, "build", f"pyphys/{version}", "-k", name], capture_output=True, text=True, timeout=900
    )
    assert build.returncode == 0, build.stdout + build.stderr
    # (compressed as the kernel's own modules are: pyphys.ko.xz for Debian's 6.12)
    built = sorted((tmp_path / "dkms" / "pyphys" / version / name / os.uname().machine / "module").glob("pyphys.ko*"))
    assert len(built) == 1, build.stdout
    assert _vermagic(built[0]) == name
    st = subprocess.run([dkms, *trees, "status", "pyphys"], capture_output=True, text=True, timeout=60)
    assert f"pyphys/{version}, {name}" in st.stdout and "built" in st.stdout, st.stdout
