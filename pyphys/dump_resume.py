"""Checkpoints of an unfinished dump, and ``--resume``: continue it only where it is provably
the same dump of the same memory.

While a dump runs, its partial file (:func:`pyphys.dump_io.partial_name`) gets a state file
next to it, ``PARTIAL.json``, rewritten atomically after every checkpoint: the file is
fsync'ed first, so whatever the state lists is on disk. It names the format, the ranges, the
boot (``boot_id``), the kernel release and KASLR offset, and one SHA-256 per stretch written
between two checkpoints. A resume refuses when any of those differ (another boot's memory is
another machine's, as far as a dump is concerned), re-reads the stretches and compares their
hashes (a damaged or altered partial file is refused too), and then carries on from the last
checkpoint, in the same file.
"""

from __future__ import annotations

import json
import os

from pyphys.errors import PyphysError, UsageError
from pyphys.record import Record

VERSION = 1
VERIFY_BLOCK = 4 << 20


class Checkpoint(Record):
    """How far the dump got: range ``seg`` has ``done`` bytes in the file, which ends at
    ``pos``; the range's record (header) starts at ``record``; ``count`` is an avml record's
    compressed bytes so far. ``file_sha256`` is the SHA-256 of the file's written bytes up to
    ``pos`` (None for padded: its holes are not hashed), ``range_sha256`` that of the range's
    ``done`` bytes: both are copies of the running digests, so checkpoints cost no hashing."""

    __slots__ = ("seg", "done", "pos", "record", "count", "file_sha256", "range_sha256")


class State:
    """The state file's content; :meth:`save` writes it, :func:`load` reads it back."""

    def __init__(self, path: str, fmt: str, ranges, source: dict, block_size: int):
        self.path = path
        self.fmt = fmt
        self.ranges = [(r.start, r.end) for r in ranges]
        self.source = source  # boot_id, release, kaslr: what must not change
        self.block_size = block_size
        self.started: float | None = None
        self.checkpoints: list[Checkpoint] = []
        self.range_sha256: list[str | None] = []  # digests of the ranges completed
        self.data_offsets: list[int | None] = []  # where each completed range's bytes begin

    def save(self) -> None:
        from pyphys.dump_io import write_small

        doc = {
            "version": VERSION,
            "format": self.fmt,
            "ranges": [[f"{s:#x}", f"{e:#x}"] for s, e in self.ranges],
            "source": self.source,
            "block_size": self.block_size,
            "started": self.started,
            "checkpoints": [c.as_dict() for c in self.checkpoints],
            "range_sha256": self.range_sha256,
            "data_offsets": self.data_offsets,
        }
        write_small(self.path, json.dumps(doc).encode(), 0o600)

    @property
    def last(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None


def load(path: str) -> State:
    try:
        with open(path) as f:
            doc = json.load(f)
        st = State(path, doc["format"], [], doc["source"], doc["block_size"])
        st.ranges = [(int(s, 16), int(e, 16)) for s, e in doc["ranges"]]
        st.started = doc["started"]
        st.checkpoints = [Checkpoint(**c) for c in doc["checkpoints"]]
        st.range_sha256 = list(doc["range_sha256"])
        st.data_offsets = list(doc["data_offsets"])
        if doc["version"] != VERSION:
            raise ValueError(f"state version {doc['version']}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PyphysError(
            f"cannot resume: {path} is unreadable or not a pyphys dump state ({err})",
            "start over without --resume (the partial file is then replaced)",
        ) from None
    return st


def check_same(old: State, new: State, target: str) -> None:
    """UsageError naming the first difference that makes ``old`` another dump than ``new``."""
    what = None
    if old.fmt != new.fmt:
        what = f"it was started as format {old.fmt}, not {new.fmt}"
    elif old.ranges != new.ranges:
        what = "it was started with other ranges"
    elif old.block_size != new.block_size and new.fmt == "avml":
        what = f"it was started with --block-size {old.block_size}"
    else:
        for key, label in (("boot_id", "boot"), ("release", "kernel"), ("kaslr", "KASLR offset")):
            if old.source.get(key) != new.source.get(key):
                what = (
                    f"it was started under another {label} ({old.source.get(key)}; now {new.source.get(key)}): "
                    "the memory it holds is gone"
                )
                break
    if what:
        raise UsageError(f"cannot resume {target}: {what}", "start over without --resume")
    if old.last is None:
        raise UsageError(f"cannot resume {target}: the interrupted dump reached no checkpoint", "start over")


def written_extents(plan, lo: int, hi: int) -> list[tuple[int, int]]:
    """The parts of file bytes ``lo``..``hi`` that hold written data: all of them, except in a
    padded file, whose holes were never written (and are not hashed)."""
    if plan.fmt != "padded":
        return [(lo, hi)] if hi > lo else []
    out = []
    for seg in plan.segments:
        a, b = max(lo, seg.file_offset), min(hi, seg.file_offset + seg.range.length)
        if a < b:
            out.append((a, b))
    return out


def _read(fd: int, lo: int, hi: int):
    while lo < hi:
        data = os.pread(fd, min(VERIFY_BLOCK, hi - lo), lo)
        if not data:
            raise PyphysError(f"the partial file ends at {lo:#x}, before its last checkpoint")
        yield data
        lo += len(data)


def verify(tmp: str, state: State, plan, file_hash, range_hash, target: str) -> None:
    """Re-read what the partial file ``tmp`` holds up to the last checkpoint, feeding the running
    hashes (``file_hash`` of the whole file, ``range_hash`` per range) as if just written,
    and refuse on the first digest that differs from the checkpoint's."""
    import hashlib

    cp = state.last
    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if file_hash.enabled:
            for lo, hi in written_extents(plan, 0, cp.pos):
                for data in _read(fd, lo, hi):
                    file_hash.update(data)
            if file_hash.peek() != cp.file_sha256:
                _mismatch(target, f"file bytes 0x0-{cp.pos:#x}")
        else:  # padded: the completed ranges, one by one
            for i, seg in enumerate(plan.segments[: cp.seg]):
                h = hashlib.sha256()
                for data in _read(fd, seg.file_offset, seg.file_offset + seg.range.length):
                    h.update(data)
                if h.hexdigest() != state.range_sha256[i]:
                    _mismatch(target, f"range {seg.range}")
        range_hash.digests[:] = state.range_sha256
        if cp.done:
            for data in replay_range(fd, plan, cp):
                range_hash.update(data)
            if range_hash.peek() != cp.range_sha256:
                _mismatch(target, f"the first {cp.done:#x} bytes of range {plan.segments[cp.seg].range}")
    finally:
        os.close(fd)


def _mismatch(target: str, what: str) -> None:
    raise PyphysError(
        f"cannot resume {target}: {what} no longer match their checkpoint's SHA-256 "
        "(the partial file was changed or damaged)",
        "start over without --resume",
    )


def replay_range(fd: int, plan, cp: Checkpoint):
    """The memory bytes already in the file for the range being dumped at ``cp`` (its
    per-range hash continues from them): read back, or for avml decompressed."""
    seg = plan.segments[cp.seg]
    if plan.fmt != "avml":
        off = seg.file_offset if seg.file_offset is not None else cp.record + len(seg.header)
        yield from _read(fd, off, off + cp.done)
        return
    from pyphys.layouts import avml

    yield from avml.decode_frames(_read(fd, cp.record + avml.HEADER_SIZE, cp.pos))
