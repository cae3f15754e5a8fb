"""What users read: the generated completion and man page, the paths hints name, and the words
user-facing text must not use.

- scripts/setup.sh's own completion/man lines are run (against this checkout's parser) and every
  subcommand and action, with each of its options, must appear in the bash and zsh completion
  and in the man page; the man page's EXIT STATUS must say what README.md's table says.
- Every path named in a help text or a message (a string in pyphys/ that is not a docstring) must
  exist in the repository, be made by a Makefile target, or be a standard system path.
- Help texts, messages, lab texts, docs and the README never cite notes, seeds or issue numbers
  a user cannot open.
"""

from __future__ import annotations

import argparse
import ast
import glob
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyphys import cli

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def walk(parser, path=()):
    """(path, parser) of the command and every subcommand and action, depth first."""
    yield path, parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


@pytest.fixture(scope="module")
def parsers():
    return list(walk(cli.build_parser()))


# -- completion and man page ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Run scripts/setup.sh's completion and man-page lines in a scratch directory whose .venv/bin
    holds this interpreter's tools; return the three generated files' texts."""
    setup = (REPO / "scripts" / "setup.sh").read_text()
    block = re.search(r"^# bash and zsh completion and the man page.*?^log \"completion[^\n]*\n", setup, re.M | re.S)
    assert block, "scripts/setup.sh no longer generates completion and the man page"
    work = tmp_path_factory.mktemp("share")
    (work / ".venv" / "bin").mkdir(parents=True)
    for tool in ("shtab", "argparse-manpage", "python"):
        assert (BIN / tool).exists(), f"{tool} is not installed: scripts/setup.sh installs the shell extra"
        os.symlink(BIN / tool, work / ".venv" / "bin" / tool)
    os.symlink(REPO / "docs", work / "docs")
    script = f'set -euo pipefail\ntop={str(REPO)!r}\nlog() {{ printf "%s\\n" "$*" >&2; }}\n' + block.group(0)
    proc = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    share = work / ".venv" / "share"
    return {
        "bash": (share / "bash-completion" / "completions" / "pyphys").read_text(),
        "zsh": (share / "zsh" / "site-functions" / "_pyphys").read_text(),
        "man": (share / "man" / "man1" / "pyphys.1").read_text(),
    }


def options(parser) -> list[str]:
    """The options a user is shown (hidden aliases of old names, help=SUPPRESS, are not)."""
    return [s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings]


def test_every_command_and_action_is_completed(generated, parsers):
    bash, zsh = generated["bash"], generated["zsh"]
    assert len(parsers) > len(cli.COMMANDS)  # the actions of pci and lab too
    for path, parser in parsers:
        fn = "_".join(("_shtab_pyphys", *path)).replace("-", "_")
        listed = re.search(rf"^{fn}_option_strings=\((.*)\)$", bash, re.M)
        assert listed, f"bash completion lacks `pyphys {' '.join(path)}`"
        assert set(listed.group(1).split()) == set(options(parser)), path
        if path:
            siblings = "_".join(("_shtab_pyphys", *path[:-1])) + "_subparsers"
            assert re.search(rf"^{siblings}=\(.*\b{re.escape(path[-1])}\b.*\)$", bash, re.M), path
            assert re.search(rf"(?m)^\s*'?{re.escape(path[-1])}[:']", zsh) or f"{path[-1]}:" in zsh, path
        for opt in options(parser):
            if opt.startswith("--"):
                assert opt in zsh, (path, opt)


def test_bash_completion_completes(generated, tmp_path):
    """The generated file in a real bash: COMMAND, then ACTION, then an option."""
    (tmp_path / "c").write_text(generated["bash"])
    script = (
        f"source {tmp_path / 'c'}\n"
        'complete_at() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _shtab_pyphys; '
        'echo "${COMPREPLY[*]}"; }\n'
        "complete_at pyphys la\ncomplete_at pyphys lab st\ncomplete_at pyphys dump --block\n"
        "complete_at pyphys dump -o ram\ncomplete_at pyphys lab start 1 --dir lab\n"
    )
    (tmp_path / "ram.lime").write_text("")
    (tmp_path / "labs").mkdir()
    (tmp_path / "lab.txt").write_text("")
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.stdout.splitlines() == ["lab", "start", "--block-size", "ram.lime", "labs"]


def test_man_page_documents_every_command_and_option(generated, parsers):
    man = generated["man"].replace("\\-", "-")
    assert man.startswith(".TH PYPHYS")
    for path, parser in parsers:
        if path:
            assert f"'pyphys {' '.join(path)}'" in man, path
        for opt in options(parser):
            assert opt in man or opt in ("-h", "--help"), (path, opt)  # every command's -h goes without saying


def readme_statuses() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Exit status\n", 1)[1].split("\n## ", 1)[0]
    return {
        k: v.replace("`", "").replace("\\|", "|") for k, v in re.findall(r"^\| (\d+|128\+N) \| (.+) \|$", section, re.M)
    }


def test_man_exit_status_says_what_the_readme_says(generated):
    man = generated["man"]
    section = man.split(".SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    rows = dict(re.findall(r"^\.B (\S+)\n(?!\.)(.+)$", section, re.M))
    rows = {k: v.replace("\\-", "-") for k, v in rows.items() if k != "pyphys"}
    assert rows == readme_statuses()


# -- paths named in hints -------------------------------------------------------------------------
PATH = re.compile(
    r"(?<![\w.~$/*)-])(?:~?/[A-Za-z0-9_.+*-]+(?:/[A-Za-z0-9_.+*-]+)*/?"
    r"|(?:scripts|docs|kmod|labs|bin|tests|kernel)/[A-Za-z0-9_.+*-]+(?:/[A-Za-z0-9_.+*-]+)*/?)"
)
#: where a standard system path may start
SYSTEM = {"proc", "sys", "dev", "tmp", "var", "etc", "usr", "boot", "lib", "bin", "sbin", "run", "opt", "home", "root"}
#: the pyphys-made paths under the user's home (paths.py, labs/start.py)
HOME = {"~/.cache", "~/.cache/pyphys", "~/.local/state", "~/pyphys-labs"}
#: build products a hint may name, with the Makefile target that makes them
BUILT = {"kmod/pyphys.ko": "module"}
#: Linux source files cited as the kernel's reason (not files of this repository)
KERNEL_SOURCE = re.compile(r"^kernel/[a-z_/]+\.c$")
#: wrong today in another helper's file: path -> why
KNOWN: dict[str, str] = {}


def _docstrings(tree) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def messages(path: Path):
    """The strings of a module that are not docstrings; an f-string with ``*`` for each field."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "*" for v in node.values]
            skip.update(id(v) for v in node.values)
            yield node.lineno, "".join(str(p) for p in parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def named_paths() -> dict[str, list[str]]:
    """Every path named in a message or a help text -> where."""
    found: dict[str, list[str]] = {}
    for p in sorted((REPO / "pyphys").rglob("*.py")):
        for line, text in messages(p):
            for m in PATH.findall(re.sub(r"<[\w -]+>", "*", text)):
                found.setdefault(m, []).append(f"{p.relative_to(REPO)}:{line}")
    for path, parser in walk(cli.build_parser()):
        for m in PATH.findall(parser.format_help()):
            found.setdefault(m, []).append(f"pyphys {' '.join(path)} --help")
    return found


def exists(path: str) -> bool:
    p = path.rstrip("/")
    if p.startswith("~"):
        return p in HOME
    if p.startswith("/"):
        return p.split("/")[1] in SYSTEM
    if p in BUILT:
        return re.search(rf"^{BUILT[p]}:", (REPO / "Makefile").read_text(), re.M) is not None
    if KERNEL_SOURCE.match(p):
        return True
    return bool(glob.glob(str(REPO / p)))


NAMED = named_paths()


def test_paths_are_found():
    assert {"docs/json.md", "docs/labs/", "/tmp/labN.txt"} <= set(NAMED)


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN[p])) if p in KNOWN else p for p in NAMED],
)
def test_named_path_exists(path):
    assert exists(path), (
        f"{path} (named in {', '.join(NAMED[path][:3])}) is neither in the repository nor a system path"
    )


# -- words user-facing text must not use ---------------------------------------------------------
FORBIDDEN = re.compile(r"\bseed\b|LAB-NOTES|\bissue \d+|\bupci\b", re.I)
KNOWN_WORDS: dict[str, str] = {}


def user_texts() -> dict[str, str]:
    """name -> text: every help text, each module's messages, the docs, lab texts and README."""
    texts = {}
    for path, parser in walk(cli.build_parser()):
        texts["help: " + " ".join(("pyphys", *path))] = parser.format_help()
    for p in sorted((REPO / "pyphys").rglob("*.py")):
        texts[str(p.relative_to(REPO))] = "\n".join(t for _line, t in messages(p))
    for pattern in ("README.md", "docs/**/*.md", "docs/**/*.py", "docs/*.include", "labs/**/*"):
        for p in sorted(REPO.glob(pattern)):
            if p.is_file():
                texts[str(p.relative_to(REPO))] = p.read_text(errors="replace")
    return texts


TEXTS = user_texts()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_WORDS[n])) if n in KNOWN_WORDS else n
        for n in TEXTS
    ],
)
def test_no_internal_references(name):
    hits = sorted({m.group(0) for m in FORBIDDEN.finditer(TEXTS[name])})
    assert not hits, f"{name} cites {hits}"
