"""pyphys/__init__.py's docstring is the map of the package: every module and subpackage named once,
one line each, and nothing named that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import pyphys

PKG = Path(pyphys.__file__).resolve().parent
ENTRY = re.compile(r"^- ``([a-z_][a-z0-9_.]*)``: \S", re.M)


def _modules() -> set[str]:
    names = set()
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "kmod_src" or rel.name == "__main__.py":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
            if not parts:
                continue
        names.add(".".join(parts))
    return names


def test_docstring_names_every_module_once():
    named = ENTRY.findall(pyphys.__doc__)
    assert len(named) == len(set(named)), sorted(n for n in named if named.count(n) > 1)
    have = _modules()
    assert sorted(have - set(named)) == [], "modules missing from the map in pyphys/__init__.py"
    assert sorted(set(named) - have) == [], "the map names modules that do not exist"


def test_map_lines_fit():
    lines = [ln for ln in pyphys.__doc__.splitlines() if ENTRY.match(ln)]
    assert lines and all(len(ln) <= 116 for ln in lines), [ln for ln in lines if len(ln) > 116]
