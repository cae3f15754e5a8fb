"""``pyphys devmem``: read/write physical memory, busybox devmem compatible, journaled and verified.

    pyphys devmem ADDR [WIDTH [VALUE]]        # like busybox: prints 0x%0*X (WIDTH/4 digits)
    pyphys devmem ADDR --range LEN [--json]   # hexdump -C style
    pyphys devmem ADDR --write-bytes 'Hi\\r\\x00' | --write-hex 'deadbeef'
    pyphys devmem --batch FILE|-              # lines: `r ADDR [W]`, `w ADDR W VALUE`, one process

ADDR is a number, or a named region: ``buffer[+OFF]`` and ``nodename[+OFF]`` (pyphys.ko's sysfs),
``sym:NAME[+OFF]`` (``pyphys ksym``). Writes into System RAM must stay inside a named region
(or the module's buffer/nodename, which are recognised by address); anything else needs
``--force``. Every write is journaled first (``pyphys undo``), read back and verified. Every
access reports the /proc/iomem region on stderr (``-q`` silences it). Bad input is refused
before anything is opened or written.
"""

from __future__ import annotations

import sys

from pyphys import TYPE_CHECKING
from pyphys.dialect import parse_number
from pyphys.errors import PyphysError, RegionError, UsageError, VerifyError

if TYPE_CHECKING:
    pass

BUSYBOX_WIDTHS = {"b": 8, "h": 16, "w": 32, "l": 64}  # busybox devmem's letter widths (x86-64 long)
BACKENDS = ("auto", "mmap", "rw", "module")
MAX_RANGE = 64 << 20


class Named:
    """A region the user may write: ``name`` at ``start`` for ``size`` bytes."""

    __slots__ = ("name", "start", "size")

    def __init__(self, name: str, start: int, size: int):
        self.name, self.start, self.size = name, start, size

    def __repr__(self) -> str:
        return f"Named({self.name!r}, {self.start:#x}, {self.size})"

    def contains(self, addr: int, n: int) -> bool:
        return self.start <= addr and addr + n <= self.start + self.size


class Op:
    """One access: ``kind`` "r"/"w", ``addr``, ``width`` bits, ``value`` (writes), ``data`` (byte writes).

    Plain classes here (no dataclasses): see pyphys.iomem.Region on import cost in the guest.
    """

    __slots__ = ("kind", "addr", "width", "value", "data", "region", "line", "text")

    def __init__(
        self,
        kind: str,
        addr: int,
        width: int = 32,
        value: int | None = None,
        data: bytes | None = None,
        region: Named | None = None,
        line: int = 0,
        text: str = "",
    ):
        self.kind, self.addr, self.width, self.value, self.data = kind, addr, width, value, data
        self.region, self.line, self.text = region, line, text

    def __repr__(self) -> str:
        return f"Op({self.kind!r}, {self.addr:#x}, {self.width}, value={self.value!r}, line={self.line})"

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.width // 8

    def payload(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.value is not None
        return self.value.to_bytes(self.width // 8, "little")


# -- parsing -----------------------------------------------------------------------------------
def parse_width(text: str | None) -> int:
    """Width in bits: 8/16/32/64 or busybox's b/h/w/l; default 32. UsageError otherwise."""
    if text is None:
        return 32
    t = text.strip().lower()
    if t in BUSYBOX_WIDTHS:
        return BUSYBOX_WIDTHS[t]
    try:
        width = int(t, 10)
    except ValueError:
        raise UsageError(f"width {text!r} is not one of 8, 16, 32, 64 (bits) or b, h, w, l") from None
    if width not in (8, 16, 32, 64):
        raise UsageError(f"width {text!r} is not one of 8, 16, 32, 64 (bits)")
    return width


def parse_value(text: str, width: int) -> int:
    """VALUE for a ``width``-bit write; UsageError if not a number, negative, or too wide."""
    value = parse_number(text, "value")
    if value >> width:
        raise UsageError(f"value {text!r} is wider than {width} bits (max {(1 << width) - 1:#x})")
    return value


def decode_escapes(text: str) -> bytes:
    """Text with C-style escapes (\\r \\n \\t \\\\ \\x00 \\0) -> bytes (UTF-8 for other characters)."""
    import codecs

    try:
        return codecs.escape_decode(text.encode("utf-8"))[0]
    except ValueError as err:
        raise UsageError(f"--write-bytes {text!r}: bad escape ({err})") from None


def decode_hex(text: str) -> bytes:
    """'de ad be ef' / 'deadbeef' / '0xdeadbeef' (byte order as written) -> bytes."""
    t = text.strip()
    if t[:2].lower() == "0x":
        t = t[2:]
    try:
        data = bytes.fromhex(t.replace(":", " "))
    except ValueError:
        raise UsageError(f"--write-hex {text!r} is not hex bytes (e.g. 'de ad be ef')") from None
    if not data:
        raise UsageError("--write-hex: no bytes given")
    return data


class Resolver:
    """Turns ADDR expressions into addresses, knowing the named regions (lazily, once each)."""

    def __init__(self) -> None:
        self._module: list[Named] | None = None
        self._module_error: PyphysError | None = None
        self._syms: dict[str, Named] = {}

    def module_regions(self) -> list[Named]:
        """pyphys.ko's buffer and nodename, or [] when the module is not loaded."""
        if self._module is None:
            self._module = []
            try:
                from pyphys import kmod

                info = kmod.info()
                self._module = [
                    Named("pyphys buffer", info.buffer_phys, info.buffer_size),
                    Named("nodename", info.nodename_phys, info.nodename_len),
                ]
            except ImportError:
                pass
            except PyphysError as err:
                self._module_error = err
        return self._module

    def _named(self, name: str) -> Named:
        if name in ("buffer", "nodename"):
            regions = {r.name.split()[-1]: r for r in self.module_regions()}
            if name not in regions:
                err = self._module_error
                raise UsageError(
                    f"{name!r} needs pyphys.ko's sysfs: {err.message if err else 'module not loaded'}",
                    err.hint if err else None,
                )
            return regions[name]
        if name.startswith("sym:"):
            sym = name[4:]
            if sym not in self._syms:
                from pyphys import ksym

                report = ksym.lookup(sym)
                if report.phys is None:
                    detail = "; ".join(f"{s.name}: {s.note}" for s in report.sources if s.note)
                    raise UsageError(f"no agreed physical address for symbol {sym!r}", detail or None)
                self._syms[sym] = Named(f"symbol {sym}", report.phys, report.size or 1)
            return self._syms[sym]
        raise UsageError(f"address {name!r} is not a number (use decimal, 0x-hex, buffer, nodename or sym:NAME)")

    def resolve(self, text: str) -> tuple[int, Named | None]:
        """(address, the named region it was given relative to, if any). UsageError on bad input."""
        t = text.strip()
        if not t:
            raise UsageError("empty address")
        if t[0].isdigit() or t[0] in "+-":
            return parse_number(t, "address"), None
        base, plus, off = t.partition("+")
        region = self._named(base.strip())
        offset = parse_number(off.strip(), "offset") if plus else 0
        return region.start + offset, region

    def known_at(self, addr: int) -> Named | None:
        """The module region (buffer/nodename) holding ``addr``, if any."""
        for r in self.module_regions():
            if r.contains(addr, 1):
                return r
        return None


# -- policy ------------------------------------------------------------------------------------
def describe(pm, resolver: Resolver, addr: int) -> str:
    """'System RAM > pyphys buffer+0x10' for messages."""
    tree = pm.regions.tree
    text = tree.describe(addr) if tree is not None else "unknown region (/proc/iomem unreadable or hidden)"
    named = resolver.known_at(addr)
    if named is None:
        for r in resolver._syms.values():
            if r.contains(addr, 1):
                named = r
    if named is not None:
        text += f" > {named.name}" + (f"+{addr - named.start:#x}" if addr != named.start else "")
    return text


def check_access(pm, resolver: Resolver, op: Op, force: bool) -> None:
    """RegionError unless the access is allowed: no holes or past-RAM addresses; RAM writes in a named region."""
    if force:
        return
    tree = pm.regions.tree
    what = f"{op.addr:#x}" + (f"+{op.size:#x}" if op.size > 1 else "")
    if tree is None:
        if op.kind == "w":
            raise RegionError(
                f"cannot tell which region {what} is in (/proc/iomem unreadable or hidden)",
                "run as root, or add --force if you are sure",
            )
        return
    holes = tree.holes(op.addr, op.size)
    if holes:
        a = holes[0][0]
        last = max(r.end for r in tree.regions) if tree.regions else -1
        where = f"past the end of the physical map ({last:#x})" if a > last else "in a hole of the physical address map"
        raise RegionError(
            f"{a:#x} is {where}: no /proc/iomem region (RAM ends at {tree.ram_end:#x})",
            "accessing it may read bus garbage or hang the machine; `pyphys iomem` shows the map; "
            "--force to try anyway",
        )
    if op.kind != "w":
        return
    touches_ram = tree.is_ram(op.addr, 1) or tree.is_ram(op.addr + op.size - 1, 1)
    if not touches_ram:
        return  # MMIO and firmware regions: the user's business (drivers/char/mem.c allows it)
    named = op.region
    if named is not None:
        if named.contains(op.addr, op.size):
            return
        raise RegionError(
            f"write {what} runs outside {named.name} ({named.start:#x}+{named.size:#x})",
            "stay inside the region you named, or add --force",
        )
    for r in resolver.module_regions():
        if r.contains(op.addr, op.size):
            op.region = r
            return
    known = (
        ", ".join(f"{r.name} {r.start:#x}+{r.size:#x}" for r in resolver.module_regions())
        or "none: pyphys.ko not loaded"
    )
    raise RegionError(
        f"refusing to write System RAM at {what} ({tree.describe(op.addr)}) outside a region you named",
        f"a stray write can crash the kernel; name one (buffer, nodename, sym:NAME; known: {known}) or add --force",
    )


# -- output ------------------------------------------------------------------------------------
def hexdump(addr: int, data: bytes) -> str:
    """``hexdump -C`` layout, offsets being physical addresses; repeated lines squeezed to '*'."""
    lines = []
    prev = None
    squeezed = False
    width = max(8, len(f"{addr + len(data):x}"))
    for pos in range(0, len(data), 16):
        chunk = data[pos : pos + 16]
        if chunk == prev and len(chunk) == 16:
            if not squeezed:
                lines.append("*")
                squeezed = True
            continue
        prev, squeezed = chunk, False
        hexes = [f"{b:02x}" for b in chunk]
        left = " ".join(hexes[:8])
        right = " ".join(hexes[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{addr + pos:0{width}x}  {left:<23}  {right:<23}  |{text}|")
    lines.append(f"{addr + len(data):0{width}x}")
    return "\n".join(lines)


def fmt_word(value: int, width: int) -> str:
    """busybox devmem's read format: ``0x%0*llX`` with width/4 digits."""
    return f"0x{value:0{width // 4}X}"


# -- running -----------------------------------------------------------------------------------
def _dumps(obj: object) -> str:
    import json  # only for --json: one module fewer to load on a plain read

    return json.dumps(obj)


def _note(args, text: str) -> None:
    if not args.quiet:
        print(f"pyphys devmem: {text}", file=sys.stderr)


def parse_batch(lines: list[str], resolver: Resolver) -> list[Op]:
    """Parse a batch script; UsageError naming the line for the first bad one."""
    ops = []
    for n, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        try:
            kind = parts[0].lower()
            if kind in ("r", "read"):
                if not 2 <= len(parts) <= 3:
                    raise UsageError("expected `r ADDR [WIDTH]`")
                addr, region = resolver.resolve(parts[1])
                op = Op("r", addr, parse_width(parts[2] if len(parts) > 2 else None), region=region)
            elif kind in ("w", "write"):
                if len(parts) != 4:
                    raise UsageError("expected `w ADDR WIDTH VALUE`")
                addr, region = resolver.resolve(parts[1])
                width = parse_width(parts[2])
                op = Op("w", addr, width, parse_value(parts[3], width), region=region)
            else:
                raise UsageError(f"unknown operation {parts[0]!r} (r or w)")
            if op.addr % (op.width // 8):
                raise UsageError(f"address {op.addr:#x} is not aligned to {op.width} bits")
        except UsageError as err:
            raise UsageError(f"batch line {n}: {err.message}", err.hint) from None
        op.line, op.text = n, text
        ops.append(op)
    if not ops:
        raise UsageError("the batch script has no operations")
    return ops


def run_batch(pm, ops: list[Op], journal=None) -> list[dict]:
    """Run ``ops`` in order with one journal append (one fsync) for all writes.

    Old bytes are predicted before any write (memory overlaid with the batch's earlier writes)
    and journaled first; a different value found just before a write is appended as an ``old``
    marker. Returns one dict per op. Raises VerifyError (remaining writes marked aborted).
    """
    from pyphys import journal as jmod

    writes = [op for op in ops if op.kind == "w"]
    results: list[dict] = []
    slots: dict = {}

    def slot_of(op: Op, fresh: bool = False):
        # the (view, index) of one exact-width access, resolved once per address and width
        key = (op.addr, op.width)
        slot = None if fresh else slots.get(key, False)
        if slot is False or fresh:
            slot = slots[key] = pm.word_slot(op.addr, op.width, writable=op.kind == "w")
        return slot

    def get(op: Op) -> int:
        slot = slot_of(op)
        if slot is None:
            return pm.read_word(op.addr, op.width)
        try:
            return slot[0][slot[1]]
        except ValueError:  # its window was evicted (released view): map again
            return get(op) if slot_of(op, fresh=True) is not None else pm.read_word(op.addr, op.width)

    def put(op: Op, value: int) -> None:
        slot = slot_of(op)
        if slot is None:
            pm.write_word(op.addr, op.width, value)
            return
        try:
            slot[0][slot[1]] = value
        except ValueError:
            if slot_of(op, fresh=True) is None:
                pm.write_word(op.addr, op.width, value)
            else:
                put(op, value)

    if not writes:
        for op in ops:
            results.append({"op": "r", "addr": op.addr, "width": op.width, "value": get(op)})
        return results
    own = journal is None
    jr = journal if journal is not None else jmod.Journal()
    try:
        with jr.locked():
            overlay: dict[int, int] = {}
            olds: list[bytes] = []
            for op in writes:
                cur = bytearray(get(op).to_bytes(op.size, "little"))
                for i in range(op.size):
                    if op.addr + i in overlay:
                        cur[i] = overlay[op.addr + i]
                olds.append(bytes(cur))
                for i, b in enumerate(op.payload()):
                    overlay[op.addr + i] = b
            target = pm.describe()
            ids = jr.record_many(
                [
                    ("phys", target, op.addr, old, op.payload(), f"devmem batch line {op.line}: {op.text}", op.width)
                    for op, old in zip(writes, olds)
                ]
            )
            pending = dict(zip(map(id, writes), zip(ids, olds)))
            done: set[int] = set()
            try:
                for op in ops:
                    if op.kind == "r":
                        results.append({"op": "r", "addr": op.addr, "width": op.width, "value": get(op)})
                        continue
                    entry_id, predicted = pending[id(op)]
                    before = get(op).to_bytes(op.size, "little")
                    if before != predicted:
                        jr.mark(entry_id, "old", before)
                    assert op.value is not None
                    put(op, op.value)
                    done.add(entry_id)
                    back = get(op)
                    results.append(
                        {
                            "op": "w",
                            "addr": op.addr,
                            "width": op.width,
                            "value": op.value,
                            "readback": back,
                            "journal_id": entry_id,
                        }
                    )
                    if back != op.value:
                        jr.mark(entry_id, "actual", back.to_bytes(op.size, "little"))
                        raise VerifyError(
                            f"batch line {op.line}: wrote {fmt_word(op.value, op.width)} at {op.addr:#x}, "
                            f"read back {fmt_word(back, op.width)}",
                            f"journal entry {entry_id}",
                        )
            finally:
                left = [i for i in ids if i not in done]
                if left:
                    jr.mark_many(left, "aborted")
    finally:
        if own:
            jr.close()
    return results


def run(args) -> int:
    """Entry point: validate everything, then open, check regions, access, report."""
    if args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r} (choose from {', '.join(BACKENDS)})")
    modes = [m for m in ("range", "write_bytes", "write_hex", "batch") if getattr(args, m) is not None]
    if len(modes) > 1:
        raise UsageError("use only one of --range, --write-bytes, --write-hex, --batch")
    resolver = Resolver()

    if args.batch is not None:
        if args.addr is not None:
            raise UsageError("--batch takes its addresses from the script, not the command line")
        lines = _read_batch(args.batch)
        ops = parse_batch(lines, resolver)
        return _run_batch_cmd(args, ops, resolver)

    if args.addr is None:
        raise UsageError("give an address: pyphys devmem ADDR [WIDTH [VALUE]]")
    addr, region = resolver.resolve(args.addr)
    mode = modes[0] if modes else None
    if mode in ("write_bytes", "write_hex", "range") and args.width is not None:
        raise UsageError(f"--{mode.replace('_', '-')} takes no WIDTH/VALUE arguments")
    if mode == "range":
        length = parse_number(args.range, "length", minimum=1, maximum=MAX_RANGE)
        op = Op("r", addr, 8, region=region)
        op.data = bytes(length)  # size only
    elif mode in ("write_bytes", "write_hex"):
        data = decode_escapes(args.write_bytes) if mode == "write_bytes" else decode_hex(args.write_hex)
        if not data:
            raise UsageError("--write-bytes: no bytes given")
        op = Op("w", addr, 8, data=data, region=region)
    else:
        width = parse_width(args.width)
        if addr % (width // 8):
            raise UsageError(f"address {addr:#x} is not aligned to {width} bits ({width // 8} bytes)")
        if args.value is not None:
            op = Op("w", addr, width, parse_value(args.value, width), region=region)
        else:
            op = Op("r", addr, width, region=region)

    from pyphys import physmem

    with physmem.open_physmem(args.backend, writable=op.kind == "w") as pm:
        check_access(pm, resolver, op, args.force)
        # the region report needs pyphys.ko's sysfs (kmod); a quiet plain read skips it
        where = describe(pm, resolver, addr) if (op.kind == "w" or args.json or not args.quiet) else ""
        if op.kind == "r" and mode == "range":
            data = pm.read(addr, op.size)
            if args.json:
                print(
                    _dumps(
                        {
                            "addr": f"{addr:#x}",
                            "length": len(data),
                            "region": where,
                            "backend": pm.backend,
                            "hex": data.hex(),
                        }
                    )
                )
            else:
                print(hexdump(addr, data))
            _note(args, f"{addr:#x}+{op.size:#x}: {where} (backend {pm.backend}: {pm.reason})")
            return 0
        if op.kind == "r":
            value = pm.read_word(addr, op.width)
            if args.json:
                print(
                    _dumps(
                        {
                            "addr": f"{addr:#x}",
                            "width": op.width,
                            "value": fmt_word(value, op.width),
                            "region": where,
                            "backend": pm.backend,
                        }
                    )
                )
            else:
                print(fmt_word(value, op.width))
            _note(args, f"{addr:#x}: {where} (backend {pm.backend}: {pm.reason})")
            return 0
        from pyphys import journal

        label = f"devmem {args.addr} " + (
            f"{op.width} {op.value:#x}" if op.value is not None else f"bytes {op.payload()[:32].hex()}"
        )
        rec = journal.journaled_write(
            pm,
            addr,
            op.payload(),
            kind="phys",
            label=label,
            verify=False,
            width=op.width if op.value is not None else None,
        )
        if not rec.verified:
            if op.value is not None:
                wrote, got = fmt_word(op.value, op.width), fmt_word(int.from_bytes(rec.readback, "little"), op.width)
            else:
                wrote, got = rec.new[:16].hex(), rec.readback[:16].hex()
            raise VerifyError(
                f"wrote {wrote} at {addr:#x} ({where}) but read back {got}",
                f"a register with side effects, or something else writes here; journal entry {rec.id}",
            )
        if args.json:
            print(
                _dumps(
                    {
                        "addr": f"{addr:#x}",
                        "old": rec.old.hex(),
                        "new": rec.new.hex(),
                        "readback": rec.readback.hex(),
                        "journal_id": rec.id,
                        "region": where,
                        "backend": pm.backend,
                    }
                )
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


def _run_batch_cmd(args, ops: list[Op], resolver: Resolver) -> int:
    from pyphys import physmem

    with physmem.open_physmem(args.backend, writable=any(op.kind == "w" for op in ops)) as pm:
        for op in ops:
            try:
                check_access(pm, resolver, op, args.force)
            except RegionError as err:
                raise RegionError(f"batch line {op.line}: {err.message}", err.hint) from None
        results = run_batch(pm, ops)
        if args.json:
            for r, op in zip(results, ops):
                r["addr"] = f"{r['addr']:#x}"
                r["value"] = fmt_word(r["value"], r["width"])
                if "readback" in r:
                    r["readback"] = fmt_word(r["readback"], r["width"])
                r["line"] = op.line
            print(_dumps(results))
        else:
            out = [fmt_word(r["value"], r["width"]) for r in results if r["op"] == "r"]
            if out:
                sys.stdout.write("\n".join(out) + "\n")
        writes = [r for r in results if r["op"] == "w"]
        _note(
            args,
            f"batch: {len(results) - len(writes)} read(s), {len(writes)} write(s) verified (backend {pm.backend})"
            + (f"; journal entries {writes[0]['journal_id']}..{writes[-1]['journal_id']}" if writes else ""),
        )
    return 0


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
    p.add_argument("--range", metavar="LEN", help="read LEN bytes, shown like hexdump -C")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--write-bytes", metavar="TEXT", help="write TEXT (escapes like \\r \\n \\x00 allowed)")
    p.add_argument("--write-hex", metavar="HEX", help="write these hex bytes, e.g. 'de ad be ef'")
    p.add_argument("--batch", metavar="FILE", help="run `r ADDR [W]` / `w ADDR W VALUE` lines from FILE (- for stdin)")
    p.add_argument("--backend", default="auto", metavar="NAME", help="auto (default), mmap, rw or module")
    p.add_argument("--force", action="store_true", help="allow RAM writes outside a named region, and holes")
    p.add_argument("-q", "--quiet", action="store_true", help="no region/journal notes on stderr")
    p.set_defaults(func=run)
