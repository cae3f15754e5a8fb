"""Bad input, every subcommand, through the real CLI (in-process ``main()``).

Each case must give: an exit status other than 0 (2 where the input itself is malformed), exactly
one line on stderr, no traceback, nothing on stdout, and nothing written anywhere: the stand-in
tree (a sparse file as /dev/mem, sparse files as the PCI BARs, the journal, every other file and
directory) is snapshotted before and after, holes and data extents included.

The machine is a canned one: /proc, /sys and pyphys.ko's sysfs captured from Debian's stock 6.1
kernel in the lab guest (tests/fixtures/doctor/stock-debian-6.1), with the lab guest's PCI tree
(tests/fixtures/pci/lab-guest).

The cases themselves are the table in tests/unit/bad_input_cases.py; this module runs them.
docs/bad-inputs.md lists every case with its outcome; it is generated from this file
(``python tests/unit/test_bad_input.py`` rewrites it) and a test checks it is current.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

if __name__ == "__main__":  # run as a script: this checkout's pyphys, whatever the venv points at
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bad_input_cases import CASES, C  # noqa: E402

from pyphys import cli, paths  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIX = REPO / "tests" / "fixtures"
DOC = REPO / "docs" / "bad-inputs.md"
MEM_SIZE = 1 << 30  # the stand-in /dev/mem: 1 GiB, sparse but for the first 64K
BUFFER = 0x1000  # where our sysfs says the module's buffer is (inside the first 64K)


BATCHES = {
    "batch-bad-addr": f"w {BUFFER:#x} 32 0x1\nw zz 32 0x1\n",
    "batch-bad-width": f"w {BUFFER:#x} 32 0x1\nr {BUFFER:#x} q\n",
    "batch-bad-verb": f"w {BUFFER:#x} 32 0x1\nx {BUFFER:#x}\n",
    "batch-bad-value": f"w {BUFFER:#x} 32 0x1\nw {BUFFER + 4:#x} 8 0x100\n",
}


def make_tree(root: Path) -> None:
    """The stand-in machine under ``root``."""
    shutil.copytree(FIX / "doctor" / "stock-debian-6.1", root)
    pci = FIX / "pci" / "lab-guest"
    shutil.copytree(pci / "sys" / "bus", root / "sys" / "bus", symlinks=True)
    shutil.copytree(pci / "proc" / "bus", root / "proc" / "bus", symlinks=True)
    for dev in (root / "sys" / "bus" / "pci" / "devices").iterdir():
        for line_no, line in enumerate((dev / "resource").read_text().splitlines()[:6]):
            start, end, _flags = (int(x, 16) for x in line.split())
            if end:
                with open(dev / f"resource{line_no}", "wb") as f:
                    f.truncate(end - start + 1)
    (root / "dev").mkdir(exist_ok=True)
    with open(root / "dev" / "mem", "wb") as f:
        f.write(bytes(range(256)) * 256)
        f.truncate(MEM_SIZE)
    kmod = root / "sys" / "kernel" / "pyphys"
    (kmod / "buffer_phys").write_text(f"{BUFFER:#x}\n")
    (kmod / "buffer_size").write_text("4096\n")
    for name, text in BATCHES.items():
        (root / name).write_text(text)
    (root / "exists").write_text("a file that is there\n")
    (root / "notadir").write_text("a file, not a directory\n")


def _extents(path: str) -> list:
    """(offset, sha256) of each data extent of a (sparse) file."""
    out = []
    with open(path, "rb") as f:
        fd, pos, size = f.fileno(), 0, os.fstat(f.fileno()).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            f.seek(start)
            out.append((start, hashlib.sha256(f.read(end - start)).hexdigest()))
            pos = end
    return out


#: outcomes of test_bad_input, by case id, for test_doc_is_current
RESULTS: dict = {}


def snapshot(root: Path) -> dict:
    """Everything under ``root``: each entry's type, size, mtime and (files) data extents."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            key = os.path.relpath(p, root)
            if os.path.islink(p):
                snap[key] = ("link", os.readlink(p))
            elif os.path.isfile(p):
                snap[key] = ("file", st.st_size, st.st_mtime_ns, _extents(p))
            else:
                snap[key] = ("dir", st.st_mtime_ns)
    return snap


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input") / "m"
    make_tree(root)
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    yield root
    paths.set_roots(**old)


def run_case(case: C, root: Path, capsys, monkeypatch) -> tuple[int, str, str]:
    """Run ``case`` through cli.main() in ``root``; (exit status, stdout, stderr)."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYPHYS_JOURNAL", str(root / "journal.jsonl"))
    monkeypatch.setenv("PYPHYS_PCI_IDS", "")
    monkeypatch.setenv("PYPHYS_LOCK_TIMEOUT", "0.2")
    monkeypatch.setenv("PYPHYS_CACHE", str(root / "cache"))
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("PYPHYS_LABS_DIR", raising=False)
    monkeypatch.delenv("PYPHYS_LAB", raising=False)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    argv = [a.replace("{T}", str(root)) for a in case.argv]
    capsys.readouterr()
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own exits
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err.replace(str(root), "{T}")


def check(case: C, rc: int, out: str, err: str, changed: list) -> list[str]:
    """What is wrong with one outcome (empty: the case passed)."""
    problems = []
    if rc == 0 or (case.code is not None and rc != case.code):
        problems.append(f"exit status {rc}, wanted {case.code or 'non-zero'}")
    lines = err.splitlines()
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    elif not re.match(r"pyphys( [a-z][a-z-]*){0,2}: ", err):
        problems.append("the line does not start with `pyphys COMMAND: `")
    elif (
        case.argv
        and case.argv[0] in cli.COMMANDS
        and not err.startswith(("pyphys: ", f"pyphys {case.argv[0]}: ", f"pyphys {case.argv[0]} "))
    ):
        problems.append(f"the line names another command than {case.argv[0]}")
    if "Traceback" in err:
        problems.append("a traceback")
    if out:
        problems.append(f"stdout: {out[:80]!r}")
    if case.want and case.want not in err:
        problems.append(f"message lacks {case.want!r}")
    if changed:
        problems.append("written: " + ", ".join(changed[:5]))
    return problems


def diff(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for c in CASES
    ],
)
def test_bad_input(case, machine, capsys, monkeypatch):
    outside = [p for p in ("/nonexistent",) if os.path.exists(p)]
    before = snapshot(machine)
    rc, out, err = run_case(case, machine, capsys, monkeypatch)
    changed = diff(before, snapshot(machine))
    changed += [p for p in ("/nonexistent",) if os.path.exists(p) and p not in outside]
    problems = check(case, rc, out, err, changed)
    RESULTS[case.id] = (case, rc, err, problems)
    assert not problems, f"{case.id}: " + "; ".join(problems) + f"\nstderr: {err}"


#: cases also run as a real process (bin/pyphys): nothing more at exit, no traceback from the interpreter
IN_A_PROCESS = [
    "(nothing)",
    "devmem 0x10000000000000000",
    "devmem 0x1000 q",
    "devmem --batch {T}/batch-bad-addr",
    "ksym init_uts_ns+0xffffffffffffffffff",
    "iomem 0x1000 zz",
    "pagemap self 1a000",
    "dump -o {T}/out 0x2000-0x1000",
    "lab start 1 --memory zz --dir /nonexistent/x",
    "pci read 00:0a.0 7 0",
    "undo --last 0",
]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in IN_A_PROCESS], ids=lambda c: c.id)
def test_bad_input_in_a_process(case, machine):
    import subprocess

    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PYPHYS_PROC=str(machine / "proc"),
        PYPHYS_SYS=str(machine / "sys"),
        PYPHYS_DEV=str(machine / "dev"),
        PYPHYS_JOURNAL=str(machine / "journal.jsonl"),
        PYPHYS_PCI_IDS="",
        PYPHYS_CACHE=str(machine / "cache"),
        HOME=str(machine / "home"),
    )
    before = snapshot(machine)
    argv = [a.replace("{T}", str(machine)) for a in case.argv]
    p = subprocess.run(
        [sys.executable, str(REPO / "bin" / "pyphys"), *argv], capture_output=True, text=True, env=env, timeout=60
    )
    problems = check(
        case, p.returncode, p.stdout, p.stderr.replace(str(machine), "{T}"), diff(before, snapshot(machine))
    )
    assert not problems, f"{case.id}: " + "; ".join(problems) + f"\nstderr: {p.stderr}"


def test_enough_cases_on_every_subcommand():
    assert {c.id for c in CASES} >= set(IN_A_PROCESS)
    assert len(CASES) >= 150
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES), "duplicate cases"
    covered = {c.argv[0] for c in CASES if c.argv}
    assert set(cli.COMMANDS) <= covered, set(cli.COMMANDS) - covered


# -- docs/bad-inputs.md ---------------------------------------------------------------------------
def render(results: list[tuple[C, int, str, list[str]]]) -> str:
    """The markdown table of every case and its outcome."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t").replace("\x07", "\\a")

    rows = [
        "# Bad input: what pyphys answers",
        "",
        "Every row is a command line that must be refused: an exit status other than 0 (2 for",
        "malformed input), one line on standard error, nothing on standard output, and nothing",
        "written. The test suite runs each one (tests/unit/test_bad_input.py) against a stand-in",
        "machine and regenerates this page with `python tests/unit/test_bad_input.py`.",
        "Rows marked *known bug* are refused wrongly today and are expected to fail until fixed.",
        "",
        f"{len(results)} cases.",
        "",
        "| command line | exit | stderr | outcome |",
        "|---|---|---|---|",
    ]
    for case, rc, err, problems in results:
        line = "`pyphys " + cell(case.id) + "`" + (f" ({case.note})" if case.note else "")
        if case.env:
            line = "`" + cell(case.id.replace(" ", " pyphys ", 1)) + "`" + (f" ({case.note})" if case.note else "")
        outcome = "ok" if not problems else ("known bug: " if case.xfail else "FAILS: ") + "; ".join(problems)
        first = err.splitlines()[0] if err.strip() else ""
        rows.append(f"| {line} | {rc} | {cell(first)} | {cell(outcome)} |")
    return "\n".join(rows) + "\n"


def collect(root: Path) -> list:
    """Run every case (outside pytest) for the doc."""
    import contextlib
    import io

    results = []
    old = paths.set_roots(proc=str(root / "proc"), sys=str(root / "sys"), dev=str(root / "dev"))
    try:
        for case in CASES:
            mp = pytest.MonkeyPatch()
            out, err = io.StringIO(), io.StringIO()
            before = snapshot(root)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    rc, _o, _e = run_case(case, root, _Capture(out, err), mp)
            finally:
                mp.undo()
            changed = diff(before, snapshot(root))
            o, e = _o, _e
            results.append((case, rc, e, check(case, rc, o, e, changed)))
    finally:
        paths.set_roots(**old)
    return results


class _Capture:
    """capsys's readouterr() over two StringIOs."""

    def __init__(self, out, err):
        self.out, self.err = out, err

    def readouterr(self):
        o, e = self.out.getvalue(), self.err.getvalue()
        for s in (self.out, self.err):
            s.seek(0)
            s.truncate()
        return o, e


def test_doc_is_current(tmp_path):
    if not DOC.exists():
        pytest.fail("docs/bad-inputs.md is missing: run python tests/unit/test_bad_input.py")
    if len(RESULTS) == len(CASES):  # every case ran above, in order, on a fresh tree: reuse them
        results = [RESULTS[c.id] for c in CASES]
    else:
        make_tree(tmp_path / "m")
        results = collect(tmp_path / "m")
    want = render(results)
    assert DOC.read_text() == want, "docs/bad-inputs.md is stale: run python tests/unit/test_bad_input.py"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "m"
        make_tree(root)
        results = collect(root)
    DOC.write_text(render(results))
    bad = [r for r in results if r[3] and not r[0].xfail]
    print(
        f"{DOC.relative_to(REPO)}: {len(results)} cases, {len(bad)} failing, "
        f"{sum(1 for r in results if r[0].xfail)} known bugs",
        file=sys.stderr,
    )
