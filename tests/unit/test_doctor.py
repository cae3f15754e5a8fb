"""pyphys doctor on canned trees captured from real machines: this host and Debian's stock kernel."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from pyphys import cli, doctor, paths

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "doctor"


def tree(tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(FIX / name, dst)
    cfg = dst / "proc" / "config"
    if cfg.exists():  # the fixture keeps the config as text; the kernel serves it gzipped
        with gzip.open(dst / "proc" / "config.gz", "wt") as f:
            f.write(cfg.read_text())
        cfg.unlink()
    return dst


@pytest.fixture
def machine(tmp_path):
    saved = []

    def use(name):
        root = tree(tmp_path, name)
        saved.append(paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev")))
        return root

    yield use
    for old in reversed(saved):
        paths.set_roots(**old)


def by_name(checks):
    return {c.name: c for c in checks}


def test_host_says_no_devmem(machine):
    root = machine("host-firecracker-6.18")
    checks = by_name(doctor.run_checks(boot_dir=str(root / "boot")))
    assert checks["/dev/mem"].status == "BLOCKED"
    assert "CONFIG_DEVMEM is off" in checks["/dev/mem"].detail and "make shell" in checks["/dev/mem"].fix
    assert checks["kernel config"].detail.endswith("config.gz")
    assert checks["CONFIG_STRICT_DEVMEM"].status == "OK"
    assert checks["module loading"].status == "BLOCKED" and "CONFIG_MODULES" in checks["module loading"].detail
    assert checks["lockdown"].status == "WARN" and "integrity" in checks["lockdown"].detail
    assert checks["RAM access"].status == "BLOCKED"


def test_stock_names_strict_devmem(machine):
    root = machine("stock-debian-6.1")
    checks = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))
    assert checks["kernel config"].detail.endswith("boot/config-6.1.0-56-amd64")
    strict = checks["CONFIG_STRICT_DEVMEM"]
    assert strict.status == "BLOCKED" and "mem_device=1" in strict.fix
    assert (
        checks["CONFIG_IO_STRICT_DEVMEM"].status == "WARN" and "iomem=relaxed" in checks["CONFIG_IO_STRICT_DEVMEM"].fix
    )
    assert checks["lockdown"].status == "OK"
    assert checks["pyphys.ko"].status == "OK" and "0x38ae000" in checks["pyphys.ko"].detail
    assert checks["module signing"].status == "INFO"
    assert checks["PAT"].status == "INFO" and "nopat" in checks["PAT"].fix
    assert checks["CAP_SYS_RAWIO"].status == "OK"


def test_iomem_relaxed_and_nopat(machine):
    root = machine("stock-debian-6.1")
    (root / "proc" / "cmdline").write_text("console=ttyS0 iomem=relaxed nopat\n")
    checks = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))
    assert checks["CONFIG_IO_STRICT_DEVMEM"].status == "OK"
    assert "nopat" in checks["PAT"].detail


def test_lockdown_integrity_blocks(machine):
    root = machine("stock-debian-6.1")
    (root / "sys" / "kernel" / "security" / "lockdown").write_text("none [integrity] confidentiality\n")
    (root / "proc" / "cmdline").write_text("lockdown=integrity\n")
    c = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))["lockdown"]
    assert c.status == "BLOCKED" and "[integrity] (lockdown=integrity on the command line)" in c.detail


def zero_kallsyms(root):
    """Rewrite the canned /proc/kallsyms as a hidden reader sees it: every address 0."""
    ks = root / "proc" / "kallsyms"
    ks.write_text("".join("0000000000000000 " + line.split(" ", 1)[1] for line in ks.read_text().splitlines(True)))


def test_kptr_reports_what_this_process_reads(machine):
    """The sysctl alone does not decide: the check reads /proc/kallsyms."""
    root = machine("stock-debian-6.1")
    (root / "proc" / "sys" / "kernel" / "kptr_restrict").write_text("0\n")
    c = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))["kptr_restrict"]
    assert c.status == "OK" and c.detail == "=0: /proc/kallsyms shows addresses to this process"
    zero_kallsyms(root)
    c = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))["kptr_restrict"]
    assert c.status == "WARN" and c.detail == "=0: /proc/kallsyms shows zeros to this process"
    (root / "proc" / "kallsyms").unlink()
    c = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))["kptr_restrict"]
    assert c.status == "INFO" and "unreadable" in c.detail


def test_not_root(machine):
    root = machine("stock-debian-6.1")
    (root / "proc" / "self" / "status").write_text("CapEff:\t0000000000000000\n")
    (root / "proc" / "sys" / "kernel" / "kptr_restrict").write_text("1\n")
    zero_kallsyms(root)  # what a reader without CAP_SYSLOG gets at kptr_restrict=1
    checks = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))
    assert checks["CAP_SYS_RAWIO"].status == "BLOCKED"
    assert checks["CAP_SYS_ADMIN"].status == "WARN"
    assert checks["kptr_restrict"].status == "WARN"


def test_signing_enforced_and_no_module(machine):
    root = machine("stock-debian-6.1")
    (root / "sys" / "module" / "module" / "parameters" / "sig_enforce").write_text("Y\n")
    shutil.rmtree(root / "sys" / "kernel" / "pyphys")
    checks = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))
    assert checks["module signing"].status == "WARN"
    # the kernel's own tool, for the release the fixture's /proc says runs (Debian ships it there)
    assert "/lib/modules/6.1.0-56-amd64/build/scripts/sign-file sha256 " in checks["module signing"].fix
    assert checks["pyphys.ko"].status == "INFO" and "pyphys module install" in checks["pyphys.ko"].fix


def test_no_config_anywhere(machine, tmp_path):
    machine("stock-debian-6.1")
    checks = by_name(doctor.run_checks(boot_dir=str(tmp_path / "nowhere"), probe=False))
    assert checks["kernel config"].status == "WARN"


def test_kconfig_parser():
    import io

    cfg = doctor.parse_kconfig(io.StringIO('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="str"\n# comment\n'))
    assert cfg == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "str"}


def test_cli_report_lines(machine, capsys):
    machine("host-firecracker-6.18")
    assert cli.main(["doctor"]) == 1  # /dev/mem is BLOCKED on this host
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("BLOCKED /dev/mem: ")
    assert out[1].startswith("        fix: ")
    assert all(line.split()[0] in ("OK", "BLOCKED", "WARN", "INFO", "fix:", "summary:") for line in out)
    assert out[-1].startswith("summary: ") and "/dev/mem" in out[-1]


def test_lab_kernel_allows_ram(machine):
    root = machine("lab-6.1")
    checks = by_name(doctor.run_checks(boot_dir=str(root / "boot"), probe=False))
    assert checks["kernel config"].detail.endswith("config.gz")
    assert checks["CONFIG_STRICT_DEVMEM"].status == "OK"
    assert checks["module signing"].status == "OK"
    assert checks["pyphys.ko"].status == "OK"
    assert not [c for c in checks.values() if c.status == "BLOCKED"]


def test_exit_status_follows_blocked(machine, capsys):
    """0 only when no line says BLOCKED, 1 as soon as one does; --json the same."""
    import json

    machine("lab-6.1")
    rc = cli.main(["doctor", "--no-probe"])
    text = capsys.readouterr().out
    assert "BLOCKED" not in text and rc == 0
    machine("host-firecracker-6.18")
    rc = cli.main(["doctor", "--no-probe", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert any(c["status"] == "BLOCKED" for c in doc) and rc == 1
