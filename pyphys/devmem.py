"""devmem's library: named addresses, the write policy, and journaled batches.

:class:`Resolver` turns ADDR expressions into addresses: a number, ``buffer[+OFF]`` and
``nodename[+OFF]`` (pyphys.ko's sysfs), ``sym:NAME[+OFF]`` (:mod:`pyphys.ksym`).
:func:`check_access` is the policy: no holes of the physical map or addresses past its end,
and writes into System RAM only inside a region the user named (or the module's buffer and
nodename, recognised by address) unless forced. :func:`write` journals, writes and verifies
one access; :func:`parse_batch` and :func:`run_batch` do a whole script with one journal append.
The ``pyphys devmem`` command parses its arguments, calls these, and formats the results.
"""

from __future__ import annotations

from pyphys.dialect import check_aligned, fmt_value, parse_number, parse_value, parse_width
from pyphys.errors import NO_ADMIN, PyphysError, RegionError, UsageError, VerifyError, root_hint
from pyphys.record import Record

MAX_RANGE = 64 << 20


class Named(Record):
    """A region the user may write: ``name`` at ``start`` for ``size`` bytes."""

    __slots__ = ("name", "start", "size")

    def __repr__(self) -> str:
        return f"Named({self.name!r}, {self.start:#x}, {self.size})"

    def contains(self, addr: int, n: int) -> bool:
        return self.start <= addr and addr + n <= self.start + self.size


class Op(Record):
    """One access: ``kind`` "r"/"w", ``addr``, ``width`` bits, ``value`` (writes), ``data`` (byte
    writes), the ``region`` (:class:`Named`) it lies in, and the script ``line`` and ``text`` it
    came from."""

    __slots__ = ("kind", "addr", "width", "value", "data", "region", "line", "text")
    _defaults = {"width": 32, "value": None, "data": None, "region": None, "line": 0, "text": ""}

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

    def symbol_at(self, addr: int) -> Named | None:
        """The symbol already resolved (``sym:NAME``) whose extent holds ``addr``, if any."""
        for r in self._syms.values():
            if r.contains(addr, 1):
                return r
        return None


# -- policy ------------------------------------------------------------------------------------
def describe(pm, resolver: Resolver, addr: int) -> str:
    """'System RAM > pyphys buffer+0x10' for messages."""
    tree = pm.regions.tree
    text = tree.describe(addr) if tree is not None else "unknown region (/proc/iomem unreadable or hidden)"
    named = resolver.known_at(addr) or resolver.symbol_at(addr)
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
                root_hint(NO_ADMIN, "run as root") + ", or add --force if you are sure",
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


def check_all(pm, resolver: Resolver, ops: list[Op], force: bool) -> None:
    """:func:`check_access` for every op of a batch, before any is run; the error names the line."""
    for op in ops:
        try:
            check_access(pm, resolver, op, force)
        except RegionError as err:
            raise RegionError(f"batch line {op.line}: {err.message}", err.hint) from None


# -- one write ---------------------------------------------------------------------------------
def write(pm, op: Op, label: str, where: str):
    """Journal, write and read back ``op`` (a word write or a byte string) on ``pm``.

    Returns the journal's WriteRecord; VerifyError (naming ``where`` and the journal entry)
    if the read-back differs.
    """
    from pyphys import journal

    word = op.value is not None
    rec = journal.journaled_write(
        pm, op.addr, op.payload(), kind="phys", label=label, verify=False, width=op.width if word else None
    )
    if not rec.verified:
        if word:
            wrote, got = fmt_value(op.value, op.width), fmt_value(int.from_bytes(rec.readback, "little"), op.width)
        else:
            wrote, got = rec.new[:16].hex(), rec.readback[:16].hex()
        raise VerifyError(
            f"wrote {wrote} at {op.addr:#x} ({where}) but read back {got}",
            f"a register with side effects, or something else writes here; journal entry {rec.id}",
        )
    return rec


# -- batches -----------------------------------------------------------------------------------
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
            check_aligned(op.addr, op.width)
        except UsageError as err:
            raise UsageError(f"batch line {n}: {err.message}", err.hint) from None
        op.line, op.text = n, text
        ops.append(op)
    if not ops:
        raise UsageError("the batch script has no operations")
    return ops


class _Slots:
    """``pm`` for a batch's exact-width accesses: each address and width mapped once (a view and
    an index into it; writable where the batch writes that word), remapped when its window was
    evicted, ``pm``'s own word access otherwise. :func:`pyphys.journal.write_recorded` writes
    through it."""

    def __init__(self, pm, writes: list[Op]) -> None:
        self.pm = pm
        self.slots: dict = {}
        self.writable = {(op.addr, op.width) for op in writes}

    def _slot(self, addr: int, width: int, fresh: bool = False):
        key = (addr, width)
        if fresh or key not in self.slots:
            self.slots[key] = self.pm.word_slot(addr, width, writable=key in self.writable)
        return self.slots[key]

    def read_word(self, addr: int, width: int) -> int:
        slot = self._slot(addr, width)
        if slot is None:
            return self.pm.read_word(addr, width)
        try:
            return slot[0][slot[1]]
        except ValueError:  # its window was evicted (released view): map again
            slot = self._slot(addr, width, fresh=True)
            return self.pm.read_word(addr, width) if slot is None else slot[0][slot[1]]

    def write_word(self, addr: int, width: int, value: int) -> None:
        slot = self._slot(addr, width)
        if slot is not None:
            try:
                slot[0][slot[1]] = value
                return
            except ValueError:
                slot = self._slot(addr, width, fresh=True)
        if slot is None:
            self.pm.write_word(addr, width, value)
        else:
            slot[0][slot[1]] = value


def run_batch(pm, ops: list[Op], journal=None) -> list[dict]:
    """Run ``ops`` in order with one journal append (one fsync) for all writes.

    Old bytes are predicted before any write (memory overlaid with the batch's earlier writes)
    and journaled first; a different value found just before a write is appended as an ``old``
    marker. Each write goes through :func:`pyphys.journal.write_recorded`, which marks what a
    failed or mismatched write left. Returns one dict per op. Raises VerifyError (remaining
    writes marked aborted).
    """
    from pyphys import journal as jmod

    writes = [op for op in ops if op.kind == "w"]
    results: list[dict] = []
    mem = _Slots(pm, writes)

    def get(op: Op) -> int:
        return mem.read_word(op.addr, op.width)

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
                    done.add(entry_id)  # from here on write_recorded marks what happened to it
                    back = int.from_bytes(
                        jmod.write_recorded(jr, entry_id, mem, op.addr, before, op.payload(), op.width), "little"
                    )
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
                        raise VerifyError(
                            f"batch line {op.line}: wrote {fmt_value(op.value, op.width)} at {op.addr:#x}, "
                            f"read back {fmt_value(back, op.width)}",
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
