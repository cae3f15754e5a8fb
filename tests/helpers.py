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


def page_types(series: str = "6.12") -> str | None:
    """page-types built from linux-source-SERIES (scripts/build-page-types.sh), or None."""
    import subprocess

    script = REPO / "scripts" / "build-page-types.sh"
    if not os.path.exists(f"/usr/src/linux-source-{series}.tar.xz"):
        return None
    proc = subprocess.run([str(script), series], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else None
