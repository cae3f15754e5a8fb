"""Grading a lab: the student's results file, the grader API the per-lab graders use, the report.

``pyphys lab check N`` reads ``/tmp/labN.txt`` (:func:`read_results`), hands its values to the
``grade(g)`` function of :mod:`pyphys.labs.labN` with a :class:`Grader`, and prints the
:class:`Report` (:func:`format_report`). A grader states each check in one line::

    g.expect("pid", pid, wrong="is not the lab 1 process (its first line of output names it)")
    g.expect("buffer_phys", phys, "(busybox devmem there reads it)", "is not where the buffer lives",
             show=hex, slips=phys_slips(phys, vaddr))

``expect`` reads the answer as the truth's type (int: decimal or 0x hex; bool: yes/no; str: as
written), records MISSING, OK or WRONG, and names a recognised slip (a PFN where an address
was asked). The truth comes from :mod:`pyphys.labs.probes`; a probe that fails raises a
:class:`~pyphys.errors.PyphysError`, and ``with g.needs(KEYS):`` (or, for the whole lab,
:func:`check` itself) turns it into ERROR for the values still without a verdict -- the
precondition is stated once, not once per value.
"""

from __future__ import annotations

import contextlib

from pyphys import TYPE_CHECKING
from pyphys.errors import NotFoundError, PyphysError, UsageError, oserrors
from pyphys.labs.probes import PAGE_SIZE
from pyphys.record import Record

if TYPE_CHECKING:
    from typing import Callable

    from pyphys.labs import Lab

OK, WRONG, MISSING, ERROR = "OK", "WRONG", "MISSING", "ERROR"


# ---------------------------------------------------------------------------------------------
# The results file
# ---------------------------------------------------------------------------------------------
def parse_results(text: str) -> dict[str, str]:
    """``key = value`` (or ``key: value``) lines -> {key: value}. ``#`` starts a comment line or,
    after a space, a trailing comment; a value in double quotes may use escapes (\\r, \\x00) and
    keeps ``#``. UsageError names the first malformed line."""
    import re

    line_re = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*[=:]\s?(.*)$")
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            raise UsageError(f"line {lineno} is not `key = value`: {line.strip()[:60]!r}")
        key, value = m.group(1).lower(), m.group(2).strip()
        if value.startswith('"'):
            end = value.rfind('"')
            if end == 0:
                raise UsageError(f"line {lineno}: the quoted value of {key} has no closing quote")
            try:
                value = value[1:end].encode("latin-1", "backslashreplace").decode("unicode_escape")
            except UnicodeDecodeError as err:
                raise UsageError(f"line {lineno}: bad escape in the value of {key}: {err.reason}") from None
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        out[key] = value
    return out


def read_results(lab: Lab, path: str | None = None) -> tuple[str, dict[str, str]]:
    """(path, values) of the student's results file. NotFoundError says how to make one."""
    path = path or lab.results_path
    try:
        with oserrors(f"cannot read {path}"), open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except NotFoundError:
        raise NotFoundError(
            f"no results file {path}",
            f"write one: `pyphys lab check {lab.number} --template > {path}`, then fill it in",
        ) from None
    return path, parse_results(text)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
class Item(Record):
    """One graded value: OK, WRONG, MISSING, or ERROR (the checker could not establish the truth)."""

    __slots__ = ("key", "status", "detail")


class Report(Record):
    """What ``pyphys lab check N`` found: one item per value of the lab, and notes."""

    __slots__ = ("lab", "path", "items", "notes")
    _defaults = {"items": [], "notes": []}

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(i.status == OK for i in self.items)

    def to_json(self) -> dict:
        return {
            "lab": self.lab,
            "path": self.path,
            "passed": self.passed,
            "items": [i.to_json() for i in self.items],
            "notes": list(self.notes),
        }


def format_report(report: Report) -> str:
    """The report as the CLI prints it: one line per value, then a verdict."""
    from pyphys.labs import LABS

    width = max((len(i.key) for i in report.items), default=0)
    lines = [f"Lab {report.lab}: {LABS[report.lab].title}", f"results: {report.path}"]
    for i in report.items:
        lines.append(f"  {i.status:<7}  {i.key:<{width}}  {i.detail}")
    for n in report.notes:
        lines.append(f"  note: {n}")
    good = sum(i.status == OK for i in report.items)
    if report.passed:
        lines.append(f"All {good} values are right. Lab {report.lab} passed.")
    else:
        lines.append(
            f"{good} of {len(report.items)} right. Fix the lines above that are not OK and run "
            f"`pyphys lab check {report.lab}` again."
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The grader API
# ---------------------------------------------------------------------------------------------
_BOOLS = {
    **dict.fromkeys(("yes", "y", "true", "1", "on", "enabled", "active", "set"), True),
    **dict.fromkeys(("no", "n", "false", "0", "off", "disabled", "inactive", "not set", "unset"), False),
}


def yes_no(v: bool) -> str:
    return "yes" if v else "no"


def _quoted(v: str) -> str:
    return repr(v if len(v) <= 40 else v[:40] + "...")


def _join(shown: str, msg: str) -> str:
    """The answer as shown, then the verdict's words ("0x1000 (pagemap)", "0x1000, a THP head")."""
    if not msg or not shown:
        return shown or msg
    return shown + ("" if msg[0] in ",;:" else " ") + msg


class Grader:
    """Collects one verdict per value while a lab's ``grade(g)`` compares the student's values
    with the truth. The first verdict of a key stands; later ones for it are ignored."""

    def __init__(self, report: Report, values: dict[str, str]):
        self.report = report
        self.values = values
        self.graded: set[str] = set()

    # -- verdicts --------------------------------------------------------------------------------
    def _verdict(self, key: str, status: str, detail: str) -> None:
        if key not in self.graded:
            self.graded.add(key)
            self.report.items.append(Item(key, status, detail))

    def ok(self, key: str, detail: str) -> None:
        self._verdict(key, OK, detail)

    def wrong(self, key: str, detail: str) -> None:
        self._verdict(key, WRONG, detail)

    def error(self, key: str, detail: str) -> None:
        """The checker could not establish the truth for ``key`` (``detail`` says why)."""
        self._verdict(key, ERROR, detail)

    @contextlib.contextmanager
    def needs(self, *keys: str):
        """``with g.needs(K1, K2): truth = probe(); g.expect(K1, ...)``: a PyphysError inside (a
        probe that failed) becomes ERROR, with its message, for each of ``keys`` still ungraded."""
        try:
            yield
        except PyphysError as err:
            for k in keys:
                self.error(k, str(err))

    # -- the student's answers -------------------------------------------------------------------
    def text(self, key: str) -> str | None:
        """The student's text for ``key``; records MISSING and returns None when absent or empty."""
        v = self.values.get(key)
        if v is None or v == "":
            self._verdict(key, MISSING, "no value in the results file")
            return None
        return v

    def number(self, key: str) -> int | None:
        """The answer as a number (decimal or 0x hex: pyphys.dialect); WRONG when it is not one."""
        from pyphys.dialect import parse_number

        v = self.text(key)
        if v is None:
            return None
        try:
            return parse_number(v, "")
        except UsageError as err:
            self.wrong(key, str(err).strip())
            return None

    def boolean(self, key: str) -> bool | None:
        """The answer as yes/no (also y/n, true/false, on/off, ...); WRONG when it is neither."""
        v = self.text(key)
        if v is None:
            return None
        b = _BOOLS.get(v.strip().lower())
        if b is None:
            self.wrong(key, f"{v!r} is not yes or no")
        return b

    def path(self, key: str) -> str | None:
        """The answer as the path of an existing file ($VARS and ~ expanded); WRONG when there is none."""
        import os

        v = self.text(key)
        if v is None:
            return None
        path = os.path.expandvars(os.path.expanduser(v))
        if not os.path.isfile(path):
            self.wrong(key, f"{v} does not exist")
            return None
        return path

    def expect(
        self,
        key: str,
        truth: int | bool | str,
        ok: str = "",
        wrong: str | Callable[[object], str] = "",
        *,
        show: Callable[[object], str] | None = None,
        slips: dict | None = None,
        normalize: Callable[[object], object] | None = None,
    ):
        """Grade ``key`` against ``truth``, reading the answer as the truth's type; returns the
        answer (None when missing or malformed).

        OK says ``show(answer) + ok``, WRONG ``show(answer) + wrong`` (``wrong`` may be a function
        of the answer), then `` -- slips[answer]`` when the answer is a recognised slip.
        ``show`` defaults to decimal, yes/no, or the quoted text; ``normalize`` is applied to the
        answer and the truth before they are compared (str.lower, errno_name, ...).
        """
        if isinstance(truth, bool):
            v, show = self.boolean(key), show or yes_no
        elif isinstance(truth, int):
            v, show = self.number(key), show or str
        else:
            v, show = self.text(key), show or _quoted
        if v is None:
            return None
        same = normalize(v) == normalize(truth) if normalize else v == truth
        if same:
            self.ok(key, _join(show(v), ok))
        else:
            slip = (slips or {}).get(v)
            self.wrong(key, _join(show(v), wrong(v) if callable(wrong) else wrong) + (f" -- {slip}" if slip else ""))
        return v


# -- recognisable slips: {wrong answer: what it is} -----------------------------------------------
def slips_of(*pairs: tuple[int | None, str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for value, why in pairs:
        if value is not None:
            out.setdefault(value, why)  # the first explanation of a value wins
    return out


def pfn_slips(pfn: int, vaddr: int | None = None) -> dict[int, str]:
    """The wrong answers to "which PFN?" that are a known slip, and what each is."""
    return slips_of(
        (pfn * PAGE_SIZE, "that is the physical address; the PFN is the address divided by the page size"),
        (
            None if vaddr is None else vaddr // PAGE_SIZE,
            "that is the VIRTUAL page number; the PFN is in the pagemap entry",
        ),
        (vaddr, "that is the virtual address"),
    )


def phys_slips(phys: int, vaddr: int | None = None) -> dict[int, str]:
    """The wrong answers to "which physical address?" that are a known slip, and what each is."""
    return slips_of(
        (phys // PAGE_SIZE, f"that is the PFN: physical address = PFN x {PAGE_SIZE} + offset in the page"),
        (vaddr, "that is the virtual address"),
        (
            phys - phys % PAGE_SIZE if phys % PAGE_SIZE else None,
            "that is the start of the page; add the offset within it",
        ),
    )


# ---------------------------------------------------------------------------------------------
# pyphys lab check N
# ---------------------------------------------------------------------------------------------
def check(number: int, path: str | None = None) -> Report:
    """Grade the results file of lab ``number`` (default /tmp/labN.txt) against live ground truth.

    Raises UsageError (no such lab, malformed file) and NotFoundError (no file); everything the
    grader finds, including truth it could not establish, is an :class:`Item` of the report.
    """
    import os
    import sys

    from pyphys import labs

    lab = labs.get(number)
    path, values = read_results(lab, path)
    report = Report(number, path)
    unknown = sorted(set(values) - {k.name for k in lab.keys})
    if unknown:
        report.notes.append(
            f"ignored unknown key(s): {', '.join(unknown)} (`pyphys lab check {number} --template` lists the keys)"
        )
    if os.geteuid() != 0:
        report.notes.append("not root: the checker cannot read physical addresses (run it in the lab VM, as root)")
    running = os.environ.get("PYPHYS_LAB")
    if running and running != str(number):
        report.notes.append(
            f"this VM was started for lab {running}; lab {number} may need other settings (`pyphys lab start {number}`)"
        )
    g = Grader(report, values)
    # a precondition of the whole lab (its process, its kernel, the module) failed: every value says why
    with g.needs(*(k.name for k in lab.keys)):
        name = f"pyphys.labs.lab{number}"
        __import__(name)  # (not importlib.import_module: the importlib package costs a start-up)
        sys.modules[name].grade(g)
    for k in lab.keys:  # every value gets a verdict, even when a grader stopped early
        if g.text(k.name) is not None:
            g.error(k.name, "not checked: fix the values above first")
    order = {k.name: i for i, k in enumerate(lab.keys)}
    report.items.sort(key=lambda i: order.get(i.key, len(order)))
    return report
