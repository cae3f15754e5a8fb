"""``pyphys devmem``: read/write physical memory, busybox devmem compatible, journaled and verified.

    pyphys devmem ADDR [WIDTH [VALUE]]        # like busybox: prints 0x%0*X (WIDTH/4 digits)
    pyphys devmem ADDR --range LEN [--json]   # hexdump -C style
    pyphys devmem ADDR --string 'Hi\\r\\x00' | --hex 'deadbeef'   # as pyphys pci write
    pyphys devmem --batch FILE|-              # lines: `r ADDR [W]`, `w ADDR W VALUE`, one process

ADDR is a number, or a named region: ``buffer[+OFF]`` and ``nodename[+OFF]`` (pyphys.ko's sysfs),
``sym:NAME[+OFF]`` (``pyphys ksym``). Writes into System RAM must stay inside a named region
(or the module's buffer/nodename, which are recognised by address); anything else needs
``--force``. Every write is journaled first (``pyphys undo``), read back and verified. Every
access reports the /proc/iomem region on stderr (``-q`` silences it). Bad input is refused
before anything is opened or written.
"""

from __future__ import annotations

import argparse
import sys

from pyphys.commands._common import emit, emit_json, note
from pyphys.dialect import (
    check_aligned,
    decode_escapes,
    decode_hex,
    fmt_value,
    hexdump,
    json_value,
    parse_size,
    parse_value,
    parse_width,
    printable,
    written_json,
)
from pyphys.errors import UsageError

BACKENDS = ("auto", "mmap", "rw", "module")


def _note(args, text: str) -> None:
    # region names come from /proc/iomem verbatim: C-style, so none reaches the terminal raw
    note("devmem", printable(text), args.quiet)


def _op(args, resolver, mode: str | None):
    """The one access the command line asks for (UsageError before anything is opened)."""
    from pyphys.devmem import MAX_RANGE, Op

    addr, region = resolver.resolve(args.addr)
    if mode in ("string", "hex", "range") and args.width is not None:
        raise UsageError(f"--{mode} takes no WIDTH/VALUE arguments")
    if mode == "range":
        length = parse_size(args.range, "length", maximum=MAX_RANGE)
        op = Op("r", addr, 8, region=region)
        op.data = bytes(length)  # size only
        return op
    if mode == "string":
        return Op("w", addr, 8, data=decode_escapes(args.string, "--string"), region=region)
    if mode == "hex":
        return Op("w", addr, 8, data=decode_hex(args.hex, "--hex"), region=region)
    width = parse_width(args.width)
    check_aligned(addr, width)
    if args.value is not None:
        return Op("w", addr, width, parse_value(args.value, width), region=region)
    return Op("r", addr, width, region=region)


def run(args) -> int:
    """Entry point: validate everything, then open, check regions, access, report."""
    from pyphys import devmem

    if args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r} (choose from {', '.join(BACKENDS)})")
    modes = [m for m in ("range", "string", "hex", "batch") if getattr(args, m) is not None]
    if len(modes) > 1 or args.string_twice or args.hex_twice:
        raise UsageError("use only one of --range, --string, --hex, --batch")
    resolver = devmem.Resolver()

    if args.batch is not None:
        if args.addr is not None:
            raise UsageError("--batch takes its addresses from the script, not the command line")
        ops = devmem.parse_batch(_read_batch(args.batch), resolver)
        return _run_batch_cmd(args, ops, resolver)

    if args.addr is None:
        raise UsageError("give an address: pyphys devmem ADDR [WIDTH [VALUE]]")
    mode = modes[0] if modes else None
    op = _op(args, resolver, mode)
    addr = op.addr

    from pyphys import physmem

    with physmem.open_physmem(args.backend, writable=op.kind == "w") as pm:
        devmem.check_access(pm, resolver, op, args.force)
        # the region report needs pyphys.ko's sysfs (kmod); a quiet plain read skips it
        where = devmem.describe(pm, resolver, addr) if (op.kind == "w" or args.json or not args.quiet) else ""
        if op.kind == "r" and mode == "range":
            data = pm.read(addr, op.size)
            if args.json:
                emit_json(
                    {
                        "phys": f"{addr:#x}",
                        "length": len(data),
                        "region": where,
                        "backend": pm.backend,
                        "data": data.hex(),
                    }
                )
            else:
                emit(hexdump(data, addr))
            _note(args, f"{addr:#x}+{op.size:#x}: {where} (backend {pm.backend}: {pm.reason})")
            return 0
        if op.kind == "r":
            value = pm.read_word(addr, op.width)
            if args.json:
                emit_json(
                    {
                        "phys": f"{addr:#x}",
                        "width": op.width,
                        "value": json_value(value, op.width),
                        "region": where,
                        "backend": pm.backend,
                    }
                )
            else:
                emit(fmt_value(value, op.width))
            _note(args, f"{addr:#x}: {where} (backend {pm.backend}: {pm.reason})")
            return 0
        label = f"devmem {args.addr} " + (
            f"{op.width} {op.value:#x}" if op.value is not None else f"bytes {op.payload()[:32].hex()}"
        )
        rec = devmem.write(pm, op, label, where)
        if args.json:
            emit_json(
                {
                    "phys": f"{addr:#x}",
                    "width": op.width if op.value is not None else None,
                    **written_json(rec.old, rec.new, rec.readback, op.width if op.value is not None else None),
                    "journal_id": rec.id,
                    "region": where,
                    "backend": pm.backend,
                }
            )
        _note(
            args,
            f"wrote {len(rec.new)} byte(s) at {addr:#x} ({where}, backend {pm.backend}); read back OK; "
            f"journal entry {rec.id} (`pyphys undo {rec.id}` restores {rec.old[:16].hex()})",
        )
    return 0


def _read_batch(source: str) -> list[str]:
    if source == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(source) as f:
            return f.read().splitlines()
    except OSError as err:
        from pyphys.errors import from_oserror

        raise from_oserror(err, f"read batch script {source}") from err
    except UnicodeDecodeError:
        raise UsageError(f"batch script {source} is not text") from None


def _run_batch_cmd(args, ops: list, resolver) -> int:
    from pyphys import devmem, physmem

    with physmem.open_physmem(args.backend, writable=any(op.kind == "w" for op in ops)) as pm:
        devmem.check_all(pm, resolver, ops, args.force)
        results = devmem.run_batch(pm, ops)
        if args.json:
            for r, op in zip(results, ops):
                r["phys"] = f"{r.pop('addr'):#x}"
                r["value"] = json_value(r["value"], r["width"])
                if "readback" in r:
                    r["readback"] = json_value(r["readback"], r["width"])
                r["line"] = op.line
            emit_json({"results": results})
        else:
            out = [fmt_value(r["value"], r["width"]) for r in results if r["op"] == "r"]
            if out:
                emit("\n".join(out))
        writes = [r for r in results if r["op"] == "w"]
        _note(
            args,
            f"batch: {len(results) - len(writes)} read(s), {len(writes)} write(s) verified (backend {pm.backend})"
            + (f"; journal entries {writes[0]['journal_id']}..{writes[-1]['journal_id']}" if writes else ""),
        )
    return 0


class _Once(argparse.Action):
    """Store the value; note a second one (``--string A --write-bytes B``) so run() refuses it."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            setattr(namespace, f"{self.dest}_twice", True)
        setattr(namespace, self.dest, values)


def register(sub, name: str, help_text: str) -> None:
    """Add the ``devmem`` subcommand."""
    p = sub.add_parser(
        name,
        help=help_text,
        description="Read or write physical memory like `busybox devmem ADDR [WIDTH [VALUE]]` "
        "(WIDTH in bits: 8/16/32/64, default 32), plus ranges, byte strings and batches. "
        "Writes are journaled (`pyphys undo`), read back and verified.",
    )
    p.add_argument(
        "addr", nargs="?", metavar="ADDR", help="physical address, or buffer[+OFF], nodename[+OFF], sym:NAME[+OFF]"
    )
    p.add_argument("width", nargs="?", metavar="WIDTH", help="access width in bits: 8, 16, 32 (default), 64")
    p.add_argument("value", nargs="?", metavar="VALUE", help="write this value (one exact-width store)")
    p.add_argument("--range", metavar="LEN", help="read LEN bytes (a size: 256, 0x100, 4K), shown like hexdump -C")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--string", action=_Once, metavar="TEXT", help="write TEXT (escapes like \\r \\n \\x00 allowed)")
    p.add_argument("--hex", action=_Once, metavar="HEX", help="write these hex bytes, e.g. 'de ad be ef'")
    # the names devmem had before it took pci write's --string/--hex: hidden, kept for existing scripts
    p.add_argument("--write-bytes", dest="string", action=_Once, help=argparse.SUPPRESS)
    p.add_argument("--write-hex", dest="hex", action=_Once, help=argparse.SUPPRESS)
    p.set_defaults(string_twice=False, hex_twice=False)
    p.add_argument("--batch", metavar="FILE", help="run `r ADDR [W]` / `w ADDR W VALUE` lines from FILE (- for stdin)")
    p.add_argument("--backend", default="auto", metavar="NAME", help="auto (default), mmap, rw or module")
    p.add_argument("--force", action="store_true", help="allow RAM writes outside a named region, and holes")
    p.add_argument("-q", "--quiet", action="store_true", help="no region/journal notes on stderr")
    p.set_defaults(func=run)
