"""Helpers shared by the test modules (importable as ``helpers``: pyproject's pytest
``pythonpath``). Each does one job; tests call these instead of keeping their own copies."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO / "docs" / "schema"
COMMON_SCHEMA = REPO / "docs" / "json.schema.json"


def _registry():
    from referencing import Registry, Resource

    resources = []
    for path in [COMMON_SCHEMA, *sorted(SCHEMA_DIR.glob("*.json"))]:
        doc = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def validate_json(doc: object, schema: str) -> None:
    """Validate ``doc`` (parsed, or text) against docs/schema/SCHEMA.json; raises
    jsonschema.ValidationError naming the first problem."""
    import jsonschema

    if isinstance(doc, str):
        doc = json.loads(doc)
    registry = _registry()
    contents = registry[f"{schema}.json"].contents
    cls = jsonschema.validators.validator_for(contents)
    cls(contents, registry=registry).validate(doc)


def cache_dir() -> str:
    """pyphys's cache directory, by the library's own rule."""
    from pyphys import paths

    return paths.cache_dir(create=False)


def file_bytes(path, off: int = 0, n: int | None = None) -> bytes:
    """``n`` bytes of the file at ``path`` from offset ``off`` (without ``n``: to its end), read
    directly, not through pyphys."""
    with open(path, "rb") as f:
        f.seek(off)
        return f.read() if n is None else f.read(n)


def page_types(series: str = "6.12") -> str | None:
    """page-types built from linux-source-SERIES (scripts/build-page-types.sh), or None."""
    import subprocess

    script = REPO / "scripts" / "build-page-types.sh"
    if not os.path.exists(f"/usr/src/linux-source-{series}.tar.xz"):
        return None
    proc = subprocess.run([str(script), series], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else None


# -- dump (tests/unit/test_dump*.py, tests/vm/test_dump_vm.py) ------------------------------------
#: the stand-in machine of the dump unit tests: 12 MiB of "RAM" whose every 8-byte word holds
#: its own physical address, behind this /proc/iomem (fixtures in tests/unit/conftest.py)
DUMP_MEM_SIZE = 0xC00000
DUMP_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-004fffff : System RAM
  00200000-002fffff : Kernel code
00500000-005fffff : PCI Bus 0000:00
  00500000-00500fff : 0000:00:03.0
00600000-007fffff : System RAM
00800000-00bfffff : System RAM
"""


def dump_ram_ranges(text: str = DUMP_IOMEM) -> list[tuple[int, int]]:
    """(start, end exclusive) of the whole 4 KiB pages of each top-level System RAM line (what
    a default dump holds, as AVML cuts them), parsed here independently of pyphys.iomem."""
    import re

    out = []
    for m in re.finditer(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$", text, re.M):
        out.append(((int(m.group(1), 16) + 4095) // 4096 * 4096, (int(m.group(2), 16) + 1) // 4096 * 4096))
    return out


def dump_mem(start: int, end: int, memfile) -> bytes:
    """Bytes ``start``..``end`` (exclusive) of the stand-in memory file."""
    return file_bytes(memfile, start, end - start)


def dump_env(tmp_path) -> dict:
    """The environment that points a pyphys child process at the stand-in /dev, /proc, /sys."""
    env = dict(os.environ)
    env.update(
        PYPHYS_DEV=str(tmp_path / "dev"),
        PYPHYS_PROC=str(tmp_path / "proc"),
        PYPHYS_SYS=str(tmp_path / "sys"),
        PYTHONPATH=str(REPO),
    )
    return env


def dump_cli(tmp_path, *args, **kw):
    """``python -m pyphys dump ARGS`` against the stand-in machine."""
    import subprocess
    import sys

    if kw.get("capture_output", True) and "stdout" not in kw:
        kw["capture_output"] = True
    kw.setdefault("text", True)
    return subprocess.run([sys.executable, "-m", "pyphys", "dump", *args], env=dump_env(tmp_path), timeout=120, **kw)


def one_line_error(proc, command: str = "dump") -> str:
    """The single stderr line of a failed pyphys call that printed nothing on stdout."""
    assert proc.returncode != 0, proc
    assert not proc.stdout, proc.stdout
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"pyphys {command}: ") or err.startswith("pyphys: "), err
    return err


# -- pci: the pci_tree fixture's stand-in machine (tests/unit/test_pci_*access.py) ----------------
def pci_cli(capsys, *argv) -> tuple[int, str, str]:
    """``pyphys pci ARGV`` in-process: (exit status, stdout, stderr)."""
    from pyphys import cli

    rc = cli.main(["pci", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def pci_journal(tree) -> list:
    """The entries of the ``pci_tree`` fixture's journal ([] before the first write)."""
    from pyphys import journal

    return journal.Journal(str(tree.journal)).entries() if tree.journal.exists() else []


def pci_config_path(tree, ids):
    """The config file of device ``ids`` in the ``pci_tree`` fixture (a regular file)."""
    return tree.root / "sys/bus/pci/devices" / tree.dev(ids).address / "config"


def pci_config_bytes(tree, ids) -> bytes:
    """The config file of device ``ids`` in the ``pci_tree`` fixture, read directly."""
    return file_bytes(pci_config_path(tree, ids))
