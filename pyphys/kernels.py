"""The guest kernels pyphys boots, named and resolved explicitly, and what goes with each.

The matrix the test suite boots, each kernel once per run (:data:`MATRIX`):

- ``lab``: Debian's linux-source-6.12, ``make tinyconfig`` plus kernel/lab.config and
  kernel/lab-6.12.config (STRICT_DEVMEM off, DWARF for drgn), built by scripts/build-kernel.sh
  and cached. ``PYPHYS_LAB_VERSION=6.1`` builds and boots the 6.1 lab instead; ``lab-6.1`` and
  ``lab-6.12`` name one regardless of that setting.
- ``stock``: Debian 12's ``linux-image-amd64`` (6.1) exactly as shipped (STRICT_DEVMEM=y).
- ``stock-6.12``: Debian 12's ``linux-image-6.12-amd64`` exactly as shipped.

Each stock kernel is the release its Debian metapackage depends on (never "the newest image
in /boot"), with pyphys.ko built against the matching headers package. Every kernel carries
the path of ``page-types`` built from the same kernel source (scripts/build-page-types.sh).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pyphys.errors import LabError
from pyphys.record import Record

REPO = Path(__file__).resolve().parents[1]
MATRIX = ("lab", "stock", "stock-6.12")
LAB_VERSIONS = ("6.12", "6.1")
# name -> (image metapackage, headers metapackage, source series for page-types)
STOCK = {
    "stock": ("linux-image-amd64", "linux-headers-amd64", "6.1"),
    "stock-6.12": ("linux-image-6.12-amd64", "linux-headers-6.12-amd64", "6.12"),
}


class Kernel(Record):
    """A bootable guest kernel: ``name`` (lab, stock, stock-6.12, lab-6.1), ``image``
    (bzImage/vmlinuz), ``kdir`` (tree or headers for out-of-tree modules), ``release``
    (uname -r), ``series`` ("6.1", "6.12"), ``page_types`` (the same source's page-types),
    ``vmlinux`` (with DWARF, lab kernels only), ``build_seconds`` (lab kernels)."""

    __slots__ = ("name", "image", "kdir", "release", "series", "page_types", "vmlinux", "build_seconds")
    _defaults = {"page_types": None, "vmlinux": None, "build_seconds": None}

    @property
    def is_lab(self) -> bool:
        return self.name.startswith("lab")


def names() -> tuple[str, ...]:
    """Every kernel name :func:`resolve` accepts."""
    return MATRIX + tuple(f"lab-{v}" for v in LAB_VERSIONS)


def lab_version(name: str = "lab") -> str:
    """The source series of lab kernel ``name`` (``lab`` follows PYPHYS_LAB_VERSION)."""
    if name == "lab":
        version = os.environ.get("PYPHYS_LAB_VERSION") or LAB_VERSIONS[0]
    else:
        version = name[len("lab-") :]
    if version not in LAB_VERSIONS:
        raise LabError(
            f"no lab kernel {version!r}",
            f"PYPHYS_LAB_VERSION is one of {', '.join(LAB_VERSIONS)} (kernel/lab-<version>.config)",
        )
    return version


def script(name: str) -> str:
    """Path of scripts/NAME in this checkout."""
    path = REPO / "scripts" / name
    if not path.exists():
        raise LabError(f"{path} not found", "the lab VM runs from a pyphys checkout (git clone, then `make demo`)")
    return str(path)


def run_script(argv: list[str], quiet: bool) -> str:
    """Run one of the build scripts; returns the last line it printed (a path)."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE if quiet else None, text=True)
    except OSError as err:
        raise LabError(f"cannot run {argv[0]}: {err.strerror}") from err
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-15:] if quiet else []
        raise LabError(
            f"{os.path.basename(argv[0])} failed (exit {proc.returncode})" + ("\n" + "\n".join(tail) if tail else "")
        )
    return proc.stdout.strip().splitlines()[-1]


def lab_kernel(name: str = "lab", quiet: bool = False) -> Kernel:
    """Build (or reuse from the cache) a lab kernel: STRICT_DEVMEM off."""
    version = lab_version(name)
    out = run_script([script("build-kernel.sh"), version], quiet)
    tree = os.path.join(out, "linux")
    with open(os.path.join(tree, "include/config/kernel.release")) as f:
        release = f.read().strip()
    secs = None
    try:
        with open(os.path.join(out, "build-seconds")) as f:
            secs = float(f.read())
    except (OSError, ValueError):
        pass
    return Kernel(
        name,
        os.path.join(tree, "arch/x86/boot/bzImage"),
        tree,
        release,
        version,
        os.path.join(tree, "page-types"),
        os.path.join(tree, "vmlinux"),
        secs,
    )


def _dpkg_depends(package: str) -> str | None:
    """The first package ``package`` depends on (a Debian metapackage's versioned image), or None."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}|${Depends}", package], capture_output=True, text=True
        ).stdout
    except OSError:
        return None
    status, _, depends = out.partition("|")
    if "install ok installed" not in status or not depends.strip():
        return None
    return depends.split(",")[0].split("|")[0].split("(")[0].strip()


def stock_kernel(name: str = "stock", quiet: bool = False) -> Kernel:
    """Debian's kernel ``name`` exactly as shipped, with its headers and page-types."""
    image_pkg, headers_pkg, series = STOCK[name]
    image_dep = _dpkg_depends(image_pkg)
    if image_dep is None:
        raise LabError(f"the {name} kernel needs the Debian package {image_pkg}", f"apt-get install {image_pkg}")
    release = image_dep[len("linux-image-") :]
    image = f"/boot/vmlinuz-{release}"
    if not os.path.exists(image) or not os.path.isdir(f"/lib/modules/{release}"):
        raise LabError(
            f"{image_dep} is not fully installed ({image} or /lib/modules/{release} missing)",
            f"apt-get install --reinstall {image_dep}",
        )
    kdir = f"/usr/src/linux-headers-{release}"
    if not os.path.isdir(kdir):
        raise LabError(f"the {name} kernel's headers are missing ({kdir})", f"apt-get install {headers_pkg}")
    page_types = run_script([script("build-page-types.sh"), series], quiet)
    return Kernel(name, image, kdir, release, series, page_types)


def resolve(name: str, quiet: bool = False) -> Kernel:
    """The kernel called ``name`` (see :func:`names`), built or located."""
    if name in STOCK:
        return stock_kernel(name, quiet)
    if name == "lab" or name.startswith("lab-"):
        return lab_kernel(name, quiet)
    raise LabError(f"unknown kernel {name!r}", f"choose one of {', '.join(names())}")


def host_page_types() -> str | None:
    """page-types for reading THIS machine's pagemap (host tests and benches): ``$PYPHYS_PAGE_TYPES``
    when set (None if it is not executable), else the newest one scripts/build-page-types.sh
    built, else the one in the newest cached lab kernel tree (nothing is built here)."""
    env = os.environ.get("PYPHYS_PAGE_TYPES")
    if env:
        return env if os.access(env, os.X_OK) else None
    import glob

    from pyphys import paths

    cache = paths.cache_dir(create=False)
    built = [p for p in glob.glob(os.path.join(cache, "page-types-*", "page-types")) if os.access(p, os.X_OK)]
    if built:  # scripts/build-page-types.sh, for the stock kernels' sources
        return max(built, key=os.path.getmtime)
    trees = glob.glob(os.path.join(cache, "lab-*"))
    for tree in sorted((t for t in trees if os.path.isdir(t)), key=os.path.getmtime, reverse=True):
        for sub in ("tools/vm/page-types", "tools/mm/page-types"):
            path = os.path.join(tree, "linux", sub)
            if os.path.exists(os.path.join(tree, ".complete")) and os.access(path, os.X_OK):
                return path
    return None


def build_module(kernel: Kernel, quiet: bool = False) -> str:
    """Build (or reuse) pyphys.ko for ``kernel``; returns the .ko path (a host path the guest sees)."""
    return run_script([script("build-module.sh"), kernel.kdir], quiet)
