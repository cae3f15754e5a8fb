"""`pyphys lab shell` (what `make shell` runs) gives a student a working shell, driven like a person would: tmux."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest


def _pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p", "-S", "-200"], capture_output=True, text=True
    ).stdout


def _wait_for(session: str, needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _pane(session)
        if needle in text:
            return text
        time.sleep(1)
    raise AssertionError(f"{needle!r} did not appear in {timeout:.0f} s; screen:\n{_pane(session)}")


def test_interactive_shell_has_pyphys_and_the_module():
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (make setup)")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed (make setup)")
    session = f"pyphys-shell-{os.getpid()}"
    cmd = f"{sys.executable} -m pyphys lab shell; echo SHELL-EXITED-$?; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", cmd], check=True)
    try:
        _wait_for(session, "root@pyphys-lab", 400)
        subprocess.run(
            [
                "tmux",
                "send-keys",
                "-t",
                session,
                "pyphys hostname --dry-run NinjaNinja; cat /sys/kernel/pyphys/buffer_size; echo END-$((6*7))",
                "Enter",
            ],
            check=True,
        )
        screen = _wait_for(session, "END-42", 180)
        assert "would write b'NinjaNinja\\x00'" in screen
        assert "\n4096\n" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "exit", "Enter"], check=True)
        _wait_for(session, "SHELL-EXITED-0", 60)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
