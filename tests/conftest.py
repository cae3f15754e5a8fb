"""Shared pytest settings: under CI=true a skipped VM test is a failure."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a skip of a VM or host-root test into a failure when running under CI."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and (item.get_closest_marker("vm") or item.get_closest_marker("host_root")):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is a failure for VM/host-root tests: {reason}"
