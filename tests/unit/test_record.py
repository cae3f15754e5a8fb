"""pyphys.record: fields declared once give construction, equality and the JSON form."""

from __future__ import annotations

import json

import pytest

from pyphys.record import Record, encode


class Word(Record):
    __slots__ = ("phys", "width", "value", "data", "region", "notes")
    _defaults = {"data": b"", "region": None, "notes": []}
    _json = {"phys": "hex", "value": "hex", "region": "omit"}


def test_fields_positional_keyword_and_defaults():
    w = Word(0x1000, 32, 0xED)
    assert (w.phys, w.width, w.value, w.data, w.region) == (0x1000, 32, 0xED, b"", None)
    assert Word(phys=0x1000, width=32, value=0xED) == w
    assert w != Word(0x1000, 32, 0xEE)
    assert Word(1, 8, 0).notes is not Word(1, 8, 0).notes  # mutable defaults are not shared
    assert "phys=4096" in repr(w)


def test_bad_construction():
    with pytest.raises(TypeError, match="needs 'value'"):
        Word(1, 2)
    with pytest.raises(TypeError, match="no field"):
        Word(1, 2, 3, colour="red")
    with pytest.raises(TypeError, match="at most"):
        Word(*range(7))


def test_json_form():
    w = Word(0x1ACBBA1, 32, 0xFFFFFFFFFFFFFFFF, b"\x01\xff", region="x", notes=["a"])
    assert w.to_json() == {
        "phys": "0x1acbba1",
        "width": 32,
        "value": "0xffffffffffffffff",
        "data": "01ff",
        "notes": ["a"],
    }
    assert json.loads(json.dumps(encode([w, {"n": w}])))[1]["n"]["phys"] == "0x1acbba1"


def test_subclass_adds_fields_and_replace():
    class Tagged(Word):
        __slots__ = ("tag",)
        _defaults = {**Word._defaults, "tag": "t"}

    t = Tagged(1, 8, 2)
    assert Tagged._fields[-1] == "tag" and t.tag == "t"
    assert t.replace(tag="u").tag == "u" and t.tag == "t"


def test_unencodable_is_a_type_error():
    with pytest.raises(TypeError):
        encode(object())


class Point(Record):
    __slots__ = ("x", "y")
    _frozen = True
    _defaults = {"y": 0}


def test_frozen_records_refuse_changes_and_hash_by_fields():
    p = Point(1, 2)
    with pytest.raises(AttributeError, match="frozen"):
        p.x = 5
    with pytest.raises(AttributeError, match="frozen"):
        del p.y
    assert (p.x, p.y) == (1, 2)
    assert hash(p) == hash(Point(x=1, y=2)) and len({p, Point(1, 2), Point(1)}) == 2
    assert p.replace(y=3) == Point(1, 3) and p.y == 2
    with pytest.raises(TypeError):
        hash(Word(1, 8, 0))  # a mutable record is not hashable


def test_records_pickle_and_copy():
    import copy
    import pickle

    for r in (Point(1, 2), Word(0x1000, 32, 0xED, notes=["n"])):
        assert pickle.loads(pickle.dumps(r)) == r
        assert copy.copy(r) == r and copy.deepcopy(r) == r
    w = Word(1, 8, 0, notes=["a"])
    assert copy.deepcopy(w).notes is not w.notes


def test_record_needs_no_dataclasses():
    import os
    import subprocess
    import sys

    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = "import sys, pyphys.record; assert not {'dataclasses', 'inspect', 'typing'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=top)).returncode == 0


def test_pyphys_defines_records_one_way():
    """No module of pyphys uses dataclasses or namedtuple for its results: Record is the one way."""
    import pathlib
    import re

    top = pathlib.Path(__file__).resolve().parents[2] / "pyphys"
    pattern = re.compile(r"^\s*(from dataclasses import|import dataclasses|from collections import namedtuple)", re.M)
    offenders = [str(p.relative_to(top)) for p in top.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    assert len(list(top.rglob("*.py"))) > 50  # the walk found the package
