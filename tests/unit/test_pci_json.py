"""docs/json.md for ``pci config --json`` and ``pci show --json``: register values, IDs, BAR
addresses and capability offsets as ``0x`` strings, quantities as integers, the command and
status bits as pci_regs.h's names under ``flags``; the schemas refuse the older shapes (plain
integers, lspci's flag words, a blob under ``raw``). The bytes compared against are the
captured config files, read here by hand."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import sys

import jsonschema
import pytest

from pyphys import cli, paths, pci_config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import validate_json  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pci")
MACHINES = ("lab-guest", "stock-guest", "host")
# include/uapi/linux/pci_regs.h, PCI_COMMAND_* and PCI_STATUS_*: bit -> name without the prefix
COMMAND = {0x1: "io", 0x2: "memory", 0x4: "master", 0x100: "serr", 0x400: "intx_disable"}
STATUS = {0x8: "interrupt", 0x10: "cap_list", 0x20: "66mhz", 0x80: "fast_back", 0x8000: "detected_parity"}


def _run(machine: str, *argv: str) -> dict:
    old = paths.set_roots(sys=os.path.join(FIX, machine, "sys"), proc=os.path.join(FIX, machine, "proc"))
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            assert cli.main(["pci", *argv]) == 0
        return json.loads(buf.getvalue())
    finally:
        paths.set_roots(**old)


def _devices(machine: str) -> list[str]:
    return sorted(os.listdir(os.path.join(FIX, machine, "sys/bus/pci/devices")))


def _config(machine: str, slot: str) -> bytes:
    with open(os.path.join(FIX, machine, "sys/bus/pci/devices", slot, "config"), "rb") as f:
        return f.read()


def _word(cfg: bytes, off: int, n: int) -> int:
    return int.from_bytes(cfg[off : off + n], "little")


def _caps_by_hand(cfg: bytes) -> list[tuple[int, int]]:
    """(offset, id) of the classic list, walked from the raw bytes."""
    out, pos = [], cfg[0x34] & ~3 if _word(cfg, 6, 2) & 0x10 and cfg[0x0E] & 0x7F == 0 else 0
    while pos and len(out) < 48:
        out.append((pos, cfg[pos]))
        pos = cfg[pos + 1] & ~3
    return out


@pytest.mark.parametrize("machine", MACHINES)
def test_config_json_values_are_the_bytes_as_hex(machine):
    seen_caps = 0
    for slot in _devices(machine):
        cfg = _config(machine, slot)
        doc = _run(machine, "config", slot, "--json")
        validate_json(doc, "pci-config")
        cmd, sts = _word(cfg, 4, 2), _word(cfg, 6, 2)
        assert doc["command"]["value"] == f"0x{cmd:04x}" and doc["status"]["value"] == f"0x{sts:04x}"
        assert {n for b, n in COMMAND.items() if cmd & b} <= set(doc["command"]["flags"])
        assert {n for b, n in COMMAND.items() if not cmd & b}.isdisjoint(doc["command"]["flags"])
        assert {n for b, n in STATUS.items() if sts & b} <= set(doc["status"]["flags"])
        assert {n for b, n in STATUS.items() if not sts & b}.isdisjoint(doc["status"]["flags"])
        assert doc["revision"] == f"0x{cfg[8]:02x}" and doc["bist"] == f"0x{cfg[0x0F]:02x}"
        assert doc["registers"]["command"] == f"0x{cmd:04x}"
        assert doc["registers"]["vendor"] == f"0x{_word(cfg, 0, 2):04x}"
        for bar in doc["bars"]:
            off = int(bar["offset"], 16)
            assert off == 0x10 + 4 * bar["index"]
            width = len(bar["value"]) - 2
            assert int(bar["value"], 16) == _word(cfg, off, width // 2)
            assert int(bar["address"], 16) == int(bar["value"], 16) & ~(0x3 if bar["type"] == "io" else 0xF)
        if cfg[0x0E] & 0x7F == 0:
            classic = [(int(c["offset"], 16), int(c["id"], 16)) for c in doc["capabilities"] if not c["extended"]]
            assert classic == _caps_by_hand(cfg), slot
            seen_caps += len(classic)
        for cap in doc["capabilities"]:
            assert len(cap["id"]) == (6 if cap["extended"] else 4)
            if "flags_register" in cap["fields"]:
                assert cap["fields"]["flags_register"] == f"0x{_word(cfg, int(cap['offset'], 16) + 2, 2):04x}"
    assert seen_caps


@pytest.mark.parametrize("machine", MACHINES)
def test_show_json_config_is_the_config_json(machine):
    for slot in _devices(machine):
        show = _run(machine, "show", slot, "--json")
        validate_json(show, "pci-show")
        conf = _run(machine, "config", slot, "--json")
        strip = lambda bars: [{k: v for k, v in b.items() if k not in ("start", "size")} for b in bars]  # noqa: E731
        assert strip(show["config"]["bars"]) == conf["bars"]
        assert show["config"]["capabilities"] == conf["capabilities"]
        assert show["revision"] in (None, conf["revision"])


def _old_shapes(doc: dict) -> list[dict]:
    """The shapes before one dialect: each must be refused by the schema."""
    out = []
    for key, value in (("command", 0x107), ("revision", 0), ("bist", 0)):
        d = copy.deepcopy(doc)
        d[key] = value
        out.append(d)
    d = copy.deepcopy(doc)
    d["command_flags"] = ["I/O", "Mem"]
    out.append(d)
    d = copy.deepcopy(doc)
    d["command"]["flags"] = ["I/O", "Mem"]
    out.append(d)
    if doc["bars"]:
        for key, value in (("offset", 16), ("value", 49281), ("address", 49280)):
            d = copy.deepcopy(doc)
            d["bars"][0][key] = value
            out.append(d)
        d = copy.deepcopy(doc)
        d["bars"][0]["raw"] = d["bars"][0].pop("value")
        out.append(d)
    if doc["capabilities"]:
        for key, value in (("offset", 152), ("id", 17)):
            d = copy.deepcopy(doc)
            d["capabilities"][0][key] = value
            out.append(d)
        d = copy.deepcopy(doc)
        d["capabilities"][0]["fields"]["flags"] = 1
        out.append(d)
        d = copy.deepcopy(doc)
        d["capabilities"][0]["raw"] = d["capabilities"][0].pop("data")
        out.append(d)
    d = copy.deepcopy(doc)
    d["registers"]["vendor"] = 0x1234
    out.append(d)
    return out


def test_schemas_refuse_the_old_shapes():
    slot = next(s for s in _devices("lab-guest") if _config("lab-guest", s)[0x34])
    doc = _run("lab-guest", "config", slot, "--json")
    assert doc["bars"] and doc["capabilities"]
    validate_json(doc, "pci-config")
    for bad in _old_shapes(doc):
        with pytest.raises(jsonschema.ValidationError):
            validate_json(bad, "pci-config")
    show = _run("lab-guest", "show", slot, "--json")
    for bad in _old_shapes(show["config"]):
        with pytest.raises(jsonschema.ValidationError):
            validate_json({**show, "config": bad}, "pci-show")


def test_decoded_header_json_of_a_crafted_bridge():
    """A bridge: buses as integers, its layout's registers each as a value of its own width."""
    bridge = bytearray(256)
    bridge[0:4], bridge[0x0A:0x0C], bridge[0x0E] = bytes.fromhex("8680a8a0"), b"\x04\x06", 0x81
    bridge[0x04:0x06] = (0x0407).to_bytes(2, "little")
    bridge[0x18:0x1C] = bytes([0, 1, 3, 0x40])
    bridge[0x1E:0x20] = (0x2280).to_bytes(2, "little")
    doc = pci_config.decode_config(bytes(bridge)).to_json()
    assert doc["command"] == {"value": "0x0407", "flags": ["io", "memory", "master", "intx_disable"]}
    assert doc["bridge_buses"] == [0, 1, 3] and doc["multifunction"] is True
    assert doc["registers"]["secondary_status"] == "0x2280" and doc["registers"]["primary_bus"] == "0x00"
    assert doc["registers"]["prefetchable_base_upper"] == "0x00000000"
