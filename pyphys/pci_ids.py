"""Vendor, device and class names: pciutils' ``pci.ids`` when installed, else the class table.

The database is optional (``PYPHYS_PCI_IDS`` names another file; ``""`` disables it); without
it devices are shown by their numeric IDs, as ``lspci -n`` does.
"""

from __future__ import annotations

import os
import re

from pyphys import TYPE_CHECKING
from pyphys.layouts import pci as L

if TYPE_CHECKING:
    from pyphys.pci_devices import PciDevice


class PciIds:
    """Vendor, device and class names from a pci.ids text (format: pciutils' pci.ids header)."""

    def __init__(self, text: str):
        self.text = text
        self._class_at = text.find("\nC ")

    def _block(self, key: str, start: int = 0, end: int | None = None) -> int | None:
        pos = self.text.find(f"\n{key}  ", start, end)
        return None if pos < 0 else pos + 1

    @staticmethod
    def _name_at(text: str, pos: int) -> str:
        line = text[pos : text.find("\n", pos)]
        return line.split("  ", 1)[1].strip() if "  " in line else ""

    def names(self, vendor: int, device: int) -> tuple[str | None, str | None]:
        """(vendor name, device name), None where unknown."""
        end = self._class_at if self._class_at > 0 else None
        pos = self._block(f"{vendor:04x}", 0, end)
        if pos is None:
            return None, None
        vname = self._name_at(self.text, pos)
        nxt = re.compile(r"\n[0-9a-fC]").search(self.text, pos)
        block_end = nxt.start() if nxt else len(self.text)
        dpos = self.text.find(f"\n\t{device:04x}  ", pos, block_end)
        return vname, (self._name_at(self.text, dpos + 2) if dpos >= 0 else None)

    def class_name(self, base: int, sub: int) -> str | None:
        if self._class_at < 0:
            return None
        pos = self.text.find(f"\nC {base:02x}  ", self._class_at - 1)
        if pos < 0:
            return None
        pos += 1
        nxt = self.text.find("\nC ", pos)
        spos = self.text.find(f"\n\t{sub:02x}  ", pos, nxt if nxt > 0 else None)
        if spos >= 0:
            return self._name_at(self.text, spos + 2)
        return self._name_at(self.text, pos)


_IDS_CACHE: dict[str, PciIds | None] = {}
PCI_IDS_PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids")


def _ids() -> PciIds | None:
    """The pci.ids database (``PYPHYS_PCI_IDS`` overrides, "" disables), or None."""
    env = os.environ.get("PYPHYS_PCI_IDS")
    candidates = (env,) if env is not None else PCI_IDS_PATHS
    key = "|".join(candidates)
    if key not in _IDS_CACHE:
        _IDS_CACHE[key] = None
        for path in candidates:
            if not path:
                continue
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    _IDS_CACHE[key] = PciIds(f.read())
                break
            except OSError:
                continue
    return _IDS_CACHE[key]


def device_names(dev: PciDevice) -> tuple[str | None, str | None]:
    """(vendor name, device name) from pci.ids when installed, else (None, None)."""
    ids = _ids()
    return ids.names(dev.vendor, dev.device) if ids else (None, None)


def vendor_name(vendor: int) -> str | None:
    """The vendor's name from pci.ids when installed, else None."""
    ids = _ids()
    return ids.names(vendor, 0)[0] if ids else None


def class_name(class_code: int | None) -> str:
    """``RAM memory`` for 0x050000: subclass name, else base class name, else ``Class xxxx``."""
    if class_code is None:
        return "Unknown class"
    base, sub = class_code >> 16, (class_code >> 8) & 0xFF
    names = _ids()
    name = names.class_name(base, sub) if names else None
    return name or L.SUBCLASS_NAMES.get((base, sub)) or L.BASE_CLASS_NAMES.get(base) or f"Class {base:02x}{sub:02x}"
