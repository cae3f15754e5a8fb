"""Golden outputs: ``pyphys pci config --json`` and ``pci show --json``/``-vv`` on every device
of the captured trees, and the decoded-header JSON of crafted headers (a CardBus bridge, an
unknown header type, a 64-byte read), byte for byte.

tests/fixtures/pci/golden/outputs.json holds the SHA-256 of each output as it was when the
header's fields were declared in one place (pyphys.layouts.pci.CONFIG_HEADER): a change of the
decoder or of the JSON must show up here. ``python tests/unit/test_pci_golden.py`` rewrites the
file (only for an intended change of output, said so in the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyphys import cli, paths, pci_config  # noqa: E402

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "pci"
GOLDEN = FIX / "golden" / "outputs.json"
MACHINES = ("lab-guest", "stock-guest", "host")


def _crafted() -> dict[str, bytes]:
    """Headers no capture has: a CardBus bridge with its subsystem IDs, one cut before them, an
    unknown header type, a bridge without capabilities, and a normal header read to 64 bytes."""
    cardbus = bytearray(0x48)
    cardbus[0:4] = bytes.fromhex("4c10ac8a")  # 104c:8aac
    cardbus[0x0E] = 0x02
    cardbus[0x18:0x1B] = bytes([0, 2, 5])
    cardbus[0x40:0x44] = bytes.fromhex("2810d403")
    unknown = bytearray(64)
    unknown[0:4], unknown[0x0E] = bytes.fromhex("86801234"), 0x05
    bridge = bytearray(256)
    bridge[0:4], bridge[0x0A:0x0C], bridge[0x0E] = bytes.fromhex("8680a8a0"), b"\x04\x06", 0x81
    bridge[0x18:0x1C] = bytes([0, 1, 3, 0x40])
    short = bytearray(64)
    short[0:8] = bytes.fromhex("f41a00100700 1000".replace(" ", ""))
    short[0x10:0x14], short[0x34] = (0xFEA00000).to_bytes(4, "little"), 0x40
    return {
        "cardbus": bytes(cardbus),
        "cardbus-cut": bytes(cardbus[:0x40]),
        "unknown-type": bytes(unknown),
        "bridge": bytes(bridge),
        "short": bytes(short),
    }


def outputs(capsys=None) -> dict[str, str]:
    """Label -> SHA-256 of each output."""
    import contextlib
    import io

    os.environ["PYPHYS_PCI_IDS"] = ""
    out: dict[str, str] = {}
    for machine in MACHINES:
        old = paths.set_roots(sys=str(FIX / machine / "sys"), proc=str(FIX / machine / "proc"))
        try:
            for slot in sorted(os.listdir(FIX / machine / "sys" / "bus" / "pci" / "devices")):
                for argv in (["config", slot, "--json"], ["show", slot, "--json"], ["show", slot, "-vv"]):
                    buf = io.StringIO()
                    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
                        rc = cli.main(["pci", *argv])
                    text = f"{rc}\n{buf.getvalue()}"
                    out[f"{machine} {' '.join(argv)}"] = hashlib.sha256(text.encode()).hexdigest()
        finally:
            paths.set_roots(**old)
    for name, data in _crafted().items():
        text = json.dumps(pci_config.decode_config(data).to_json(), indent=2)
        out[f"decode {name}"] = hashlib.sha256(text.encode()).hexdigest()
    return out


def test_outputs_are_the_golden_ones():
    want = json.loads(GOLDEN.read_text())
    got = outputs()
    assert sorted(got) == sorted(want)
    changed = [k for k in want if got[k] != want[k]]
    assert not changed, f"{len(changed)} outputs changed: " + ", ".join(changed[:8])


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(outputs(), indent=1, sort_keys=True) + "\n")
    print(f"{GOLDEN}: {len(json.loads(GOLDEN.read_text()))} outputs")
