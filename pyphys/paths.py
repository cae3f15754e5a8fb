"""Injectable roots for /proc, /sys and /dev (after psutil's ``get_procfs_path``).

Every path pyphys opens under /proc, /sys or /dev is built here, so tests can point the
real parsers at a canned tree: ``PYPHYS_PROC``, ``PYPHYS_SYS``, ``PYPHYS_DEV`` in the
environment, or :func:`set_roots` from code.
"""

from __future__ import annotations

import os

_roots = {
    "proc": os.environ.get("PYPHYS_PROC", "/proc"),
    "sys": os.environ.get("PYPHYS_SYS", "/sys"),
    "dev": os.environ.get("PYPHYS_DEV", "/dev"),
}


def set_roots(proc: str | None = None, sys: str | None = None, dev: str | None = None) -> dict:
    """Point pyphys at other roots; returns the previous ones (pass them back to restore)."""
    old = dict(_roots)
    for key, value in (("proc", proc), ("sys", sys), ("dev", dev)):
        if value is not None:
            _roots[key] = value
    return old


def proc(*parts: object) -> str:
    """Path under the procfs root, e.g. ``proc(pid, "pagemap")``."""
    return os.path.join(_roots["proc"], *map(str, parts))


def sys(*parts: object) -> str:
    """Path under the sysfs root, e.g. ``sys("kernel", "pyphys", "buffer_phys")``."""
    return os.path.join(_roots["sys"], *map(str, parts))


def dev(*parts: object) -> str:
    """Path under the /dev root, e.g. ``dev("mem")``."""
    return os.path.join(_roots["dev"], *map(str, parts))


def cache_dir(create: bool = True) -> str:
    """pyphys's cache (guest kernels, module builds, VM shares), outside any checkout:
    ``PYPHYS_CACHE``, else ``$XDG_CACHE_HOME/pyphys``, else ``~/.cache/pyphys``. The shell
    scripts use the same rule (scripts/common.sh)."""
    base = os.environ.get("PYPHYS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyphys"
    )
    if create:
        os.makedirs(base, exist_ok=True)
    return base


def journal_path() -> str:
    """Where the write journal lives (``PYPHYS_JOURNAL`` overrides)."""
    env = os.environ.get("PYPHYS_JOURNAL")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/pyphys/journal.jsonl"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "pyphys", "journal.jsonl")
