"""``pyphys undo`` and ``pyphys journal``: restore and list journaled writes.

    pyphys undo            # the most recent write still in effect (all of a group: REG=V1,V2,...)
    pyphys undo 7 9        # entries 7 and 9 (newest first)
    pyphys undo --last 3   # the three most recent
    pyphys undo --all      # every write still in effect, newest first
    pyphys journal [--all] [--json]

Undo checks every selected entry before writing anything: where memory no longer holds what
pyphys wrote, it refuses and writes nothing.
"""

from __future__ import annotations

import sys

from pyphys.dialect import parse_number
from pyphys.errors import UsageError


def _target_text(kind: str, target: dict) -> str:
    if kind == "phys":
        return f"phys/{target.get('backend', '?')}"
    inner = ",".join(f"{k}={v}" for k, v in sorted(target.items()))
    return f"{kind}/{inner}" if inner else kind


def _short(hexstr: str, limit: int = 16) -> str:
    return hexstr if len(hexstr) <= 2 * limit else hexstr[: 2 * limit] + "..."


def run_undo(args) -> int:
    """Undo the selected entries; prints one line per entry."""
    import json

    from pyphys import journal

    if args.ids in (["last"], ["all"]):  # `pyphys undo last` / `pyphys undo all` read naturally
        args.all = args.all or args.ids == ["all"]
        args.ids = []
    picks = [bool(args.ids), args.all, args.last is not None]
    if sum(picks) > 1:
        raise UsageError("give entry ids, --last N or --all, not several")
    ids = [parse_number(i, "journal entry id", minimum=1) for i in args.ids]
    count = parse_number(args.last, "--last", minimum=1) if args.last is not None else None
    which = ids if ids else ("all" if args.all else "last")
    with journal.Journal() as jr:
        results = jr.undo(which, count=count, dry_run=args.dry_run)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "addr": f"{r.addr:#x}",
                        "kind": r.kind,
                        "target": r.target,
                        "restored": r.restored.hex(),
                        "status": r.status,
                        "label": r.label,
                        "readback": r.readback.hex() if r.readback is not None else None,
                    }
                    for r in results
                ]
            )
        )
        return 0
    verb = "would restore" if args.dry_run else "restored"
    for r in results:
        what = verb if r.status in ("restored", "register") else "already held"
        note = ""
        if r.status == "register":
            note = (
                f"; it now reads {_short(r.readback.hex())}: a register whose reads differ from what was"
                f" written (it did so when pyphys wrote it too)"
            )
        print(
            f"#{r.id} {_target_text(r.kind, r.target)} {r.addr:#x}: {what} {_short(r.restored.hex())} ({r.label}){note}"
        )
    return 0


def run_journal(args) -> int:
    """List journal entries (those in effect, or --all)."""
    import json

    from pyphys import journal

    jr = journal.Journal()
    entries = jr.entries()
    shown = entries if args.all else [e for e in entries if e.active]
    if args.json:
        print(json.dumps([e.to_json() for e in shown]))
        return 0
    if jr.bad_lines:
        print(f"pyphys journal: {jr.bad_lines} unreadable line(s) skipped in {jr.path}", file=sys.stderr)
    if not shown:
        print(f"no {'' if args.all else 'active '}entries in {jr.path}", file=sys.stderr)
        return 0
    for e in shown:
        state = "undone" if e.undone else "aborted" if e.aborted else "active"
        extra = f" (read back {_short(e.actual.hex())})" if e.actual is not None else ""
        print(
            f"#{e.id:<4} {e.time}  {state:<7} {_target_text(e.kind, e.target)} {e.addr:#x} "
            f"{_short(e.old.hex())} -> {_short(e.new.hex())}{extra}  {e.label}"
        )
    return 0


def register(sub, name: str, help_text: str) -> None:
    """Add ``undo`` or ``journal`` (both live here)."""
    if name == "journal":
        p = sub.add_parser(name, help=help_text, description="List the writes pyphys journaled (newest last).")
        p.add_argument("--all", action="store_true", help="also undone and aborted entries")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=run_journal)
        return
    p = sub.add_parser(
        name,
        help=help_text,
        description="Restore the bytes pyphys overwrote, newest first; refuses (writing nothing) "
        "where memory no longer holds what pyphys wrote.",
    )
    p.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help="journal entry ids, or last / all (default: the last write, a whole group of them)",
    )
    p.add_argument("--last", metavar="N", help="the N most recent writes still in effect")
    p.add_argument("--all", action="store_true", help="every write still in effect")
    p.add_argument("--dry-run", action="store_true", help="check and show, write nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_undo)
