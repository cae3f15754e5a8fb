"""edu's DMA engine from user space: every refusal happens before a register is written."""

from __future__ import annotations

import pytest

from pyphys import edu, kmod
from pyphys.errors import UsageError


class Dev:
    def __init__(self, vendor=0x1234, device=0x11E8):
        self.vendor, self.device = vendor, device
        self.short_address = self.address = "00:04.0"
        self.ids = f"{vendor:04x}:{device:04x}"


BUF = 0x3AB5E000


@pytest.fixture
def module(monkeypatch):
    monkeypatch.setattr(kmod, "is_loaded", lambda: True)
    monkeypatch.setattr(kmod, "info", lambda: kmod.ModuleInfo(BUF, 4096, 0x1A00000, 65))


def plan(dev=None, direction="to-ram", ram=BUF, length=64, offset=0, mask=0xFFFFFFFF, force=False):
    edu._check_plan(dev or Dev(), direction, ram, length, offset, mask, force)


def test_inside_the_buffer_is_allowed(module):
    plan()
    plan(ram=BUF + 4096 - 64, offset=4096 - 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dev=Dev(0x1AF4, 0x1110)), "not QEMU's edu"),
        (dict(direction="sideways"), "unknown direction"),
        (dict(offset=4096 - 32), "do not fit edu's 4096-byte buffer"),
        (dict(length=0), "do not fit"),
        (dict(length=4097), "do not fit"),
        (dict(mask=(1 << 28) - 1), "above edu's DMA mask"),
        (dict(ram=BUF - 1), "outside pyphys.ko's buffer"),
        (dict(ram=BUF + 4096 - 63), "outside pyphys.ko's buffer"),
    ],
)
def test_refusals(module, kwargs, match):
    with pytest.raises(UsageError, match=match):
        plan(**kwargs)


def test_force_allows_other_ram_but_never_the_device_or_mask_limits(module):
    plan(ram=0x100000, force=True)
    with pytest.raises(UsageError, match="do not fit"):
        plan(ram=0x100000, offset=4095, force=True)
    with pytest.raises(UsageError, match="DMA mask"):
        plan(ram=1 << 33, force=True)


def test_without_the_module_only_force_goes_through(monkeypatch):
    monkeypatch.setattr(kmod, "is_loaded", lambda: False)
    with pytest.raises(UsageError, match="pyphys.ko is not loaded"):
        plan()
    plan(force=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["pci", "dma", "1234:11e8", "to-ram", "0x1000"],
        ["pci", "dma", "1234:11e8", "to-ram", "0x1000+zz"],
        ["pci", "dma", "1234:11e8", "up", "0x1000+16"],
        ["pci", "dma", "1234:11e8", "to-ram", "0x1000+16", "--device-offset", "0x1000"],
        ["pci", "dma", "1234:11e8", "to-ram", "0x1000+16", "--dma-mask", "zz"],
    ],
)
def test_cli_bad_input_is_one_line(argv, capsys):
    from pyphys.cli import main

    try:
        rc = main(argv)
    except SystemExit as exit:  # argparse's own refusals
        rc = exit.code
    assert rc == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
