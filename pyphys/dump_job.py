"""One run of :func:`pyphys.dump.dump`: from the checked ranges to the installed file, its
sidecars and its metadata, with checkpoints for ``--resume`` (:mod:`pyphys.dump_resume`)."""

from __future__ import annotations

import os
import time

from pyphys import dump_io, dump_meta, dump_resume
from pyphys.errors import PyphysError, UsageError
from pyphys.layouts import avml


class Target:
    """Where the dump goes: ``path`` (absolute) or standard output, and its sidecars."""

    def __init__(self, path: str, *, file_hash: bool, meta, force: bool, resume: bool, note):
        self.stream = path == "-"
        self.force = force
        self.resume = resume
        if self.stream:
            self.path = "-"
            self.directory = None
            self.sha_path = None
            self.meta_path = os.path.abspath(meta) if isinstance(meta, str) else None
            self.tmp = self.state_path = None
            if self.meta_path:
                dump_io.check_target(self.meta_path, force)
            return
        if path in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1") or os.path.realpath(path) == os.path.realpath(
            "/dev/stdout"
        ):
            raise UsageError(f"-o {path}: to write to standard output, give -o -")
        self.path = os.path.abspath(path)
        self.directory = os.path.dirname(self.path)
        if not os.path.isdir(self.directory):
            raise PyphysError(f"cannot write to {self.directory}: no such directory")
        self.sha_path = self.path + ".sha256" if file_hash else None
        self.meta_path = self.path + ".json" if meta is True else (os.path.abspath(meta) if meta else None)
        dump_io.check_target(self.path, force)
        # FILE.sha256 is checked even when not written: left next to a new FILE it would
        # describe the old one (with --force it is removed once the new FILE is in place)
        dump_io.check_target(self.path + ".sha256", force)
        if self.meta_path:
            dump_io.check_target(self.meta_path, force)
        self.tmp = dump_io.partial_name(self.path)
        self.state_path = self.tmp + ".json"
        leftover = [p for p in (self.tmp, self.state_path) if os.path.lexists(p)]
        if leftover and dump_io.partial_in_use(self.tmp):
            raise PyphysError(f"another pyphys dump is writing {self.path} now", "wait for it, or dump to another file")
        if resume and not leftover:
            raise UsageError(f"nothing to resume: no interrupted dump of {self.path} ({self.tmp} is absent)")
        if leftover and not resume:
            for p in leftover:
                os.unlink(p)
            note(f"removed {self.tmp}, left by an interrupted dump (give --resume to continue one instead)")


class Job:
    """The state of one dump while it runs (see :func:`pyphys.dump.dump` for the options)."""

    def __init__(self, target: Target, plan, ranges_explicit: bool, tree, opts: dict):
        self.t = target
        self.plan = plan
        self.explicit = ranges_explicit
        self.tree = tree
        self.o = opts
        self.fd = -1
        self.sink = None
        self.reader = None
        self.done = 0
        self.since_checkpoint = 0
        self.kept = False
        self.resuming = False
        want_file_hash = opts["sha256"] and plan.fmt != "padded"
        self.file_hash = dump_io.Hasher(want_file_hash, "sha256")
        self.range_hash = dump_io.Hasher(opts["sha256"], "range-sha256")
        self.state: dump_resume.State | None = None
        self.data_offsets: list[int] = []

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint(self, seg: int, done: int, record: int, count: int) -> None:
        if self.state is None:
            return
        self.sink.sync()
        self.state.checkpoints.append(
            dump_resume.Checkpoint(
                seg, done, self.sink.pos, record, count, self.file_hash.peek(), self.range_hash.peek()
            )
        )
        self.state.range_sha256 = list(self.range_hash.digests)
        self.state.data_offsets = list(self.data_offsets)
        self.state.save()
        self.since_checkpoint = 0

    def _resume_point(self, source: dict) -> dump_resume.Checkpoint | None:
        """Load and check the state; verify what the partial file holds; None for a fresh run."""
        if self.t.stream:
            return None
        self.state = dump_resume.State(
            self.t.state_path, self.plan.fmt, [s.range for s in self.plan.segments], source, self.o["block_size"]
        )
        if not self.t.resume:
            return None
        old = dump_resume.load(self.t.state_path)
        dump_resume.check_same(old, self.state, self.t.path)
        cp = old.last
        if cp.range_sha256 is None:
            raise UsageError(
                f"cannot resume {self.t.path}: it was started with --no-sha256, so nothing vouches for what it holds",
                "start over without --resume",
            )
        if not self.range_hash.enabled:
            raise UsageError("--resume needs the SHA-256s it verifies with: drop --no-sha256")
        self.state.started = old.started
        self.state.checkpoints = old.checkpoints
        self.resuming = True
        dump_resume.verify(self.t.tmp, old, self.plan, self.file_hash, self.range_hash, self.t.path)
        self.data_offsets = list(old.data_offsets)
        self.done = sum(s.range.length for s in self.plan.segments[: cp.seg]) + cp.done
        return cp

    # -- the copy ----------------------------------------------------------------------------
    def run(self, pm, reason: str, fallback, facts) -> dump_meta.Metadata:
        from pyphys import physmem
        from pyphys.dump import blocks

        kernel, info, kaslr, warnings = facts
        started = time.time()
        clock = time.monotonic()
        source = {"boot_id": kernel.boot_id, "release": kernel.release, "kaslr": kaslr.offset}
        plan, o = self.plan, self.o
        segs = plan.segments
        total = plan.data_bytes
        try:
            cp = self._resume_point(source)
        except BaseException:  # refused: the partial file stays exactly as it was
            self.file_hash.abort()
            self.range_hash.abort()
            raise
        start_seg, start_done = (cp.seg, cp.done) if cp else (0, 0)
        if self.state is not None and cp is None:
            self.state.started = started
        try:
            if self.t.stream:
                self.fd = 1
                self.sink = dump_io.StreamSink(1, self.file_hash)
            else:
                self.fd = dump_io.open_partial(self.t.tmp, o["direct"], self.t.directory, cp is not None)
                dump_io.check_space(self.t.directory, plan.allocated_bytes, cp.pos if cp else 0)
                if cp is None:
                    self.state.save()  # a run killed before its first checkpoint is recognised as such
                pos = cp.pos if cp else 0
                if o["direct"]:
                    self.sink = dump_io.DirectSink(self.fd, self.file_hash, o["block_size"], pos)
                else:
                    self.sink = dump_io.BufferedSink(self.fd, self.file_hash, pos)
            todo = (
                b
                for i in range(start_seg, len(segs))
                for b in blocks(segs[i].range, o["block_size"], start_done if i == start_seg else 0)
            )
            self.reader = dump_io.Reader(pm, todo, fallback)
            progress, on_write = o["progress"], o["on_write"]
            if progress:
                progress(self.done, total)
            if cp is None and plan.prefix:
                self.sink.write(plan.prefix)
            all_zero = True
            for i in range(start_seg, len(segs)):
                seg = segs[i]
                length = seg.range.length
                done = start_done if i == start_seg else 0
                comp = None
                if done == 0:
                    if plan.fmt == "padded" and seg.file_offset > self.sink.pos:
                        self.sink.skip(seg.file_offset - self.sink.pos)
                    record = self.sink.pos
                    if seg.header:
                        self.sink.write(seg.header)
                    self.data_offsets.append(self.sink.pos)
                else:
                    record = cp.record
                if plan.fmt == "avml":
                    comp = avml.RecordCompressor(cp.count if (cp and i == start_seg and done) else 0)
                while done < length:
                    data = self.reader.next()
                    if all_zero and not physmem.all_zero(data):
                        all_zero = False
                    self.range_hash.update(data)
                    self.sink.write(comp.compress(data) if comp else data)
                    n = len(data)
                    del data
                    done += n
                    self.done += n
                    self.since_checkpoint += n
                    if on_write:
                        on_write(self.fd, self.done)
                    if progress:
                        progress(self.done, total)
                    if self.since_checkpoint >= o["checkpoint"] and done < length:
                        self.checkpoint(i, done, record, comp.count if comp else 0)
                if comp:
                    self.sink.write(comp.finish())
                self.range_hash.cut()
                if self.since_checkpoint >= o["checkpoint"] and i + 1 < len(segs):
                    self.checkpoint(i + 1, 0, self.sink.pos, 0)
            self.sink.close()
            if not self.t.stream:
                os.fsync(self.fd)
                os.close(self.fd)
                self.fd = -1
            digest = self.file_hash.finish()
            self.range_hash.finish()
        except BaseException as exc:
            self._fail(exc)
            if isinstance(exc, OSError):
                raise dump_io.explain_write(
                    exc, self.t.path, self.done, total, self.t.tmp if self.kept else None
                ) from exc
            raise
        finally:
            if self.reader is not None:
                self.reader.close()
        if all_zero and total:
            warnings.append(
                f"every byte read was zero: {pm.path} may be returning zeros for RAM it hides "
                "(CONFIG_STRICT_DEVMEM, drivers/char/mem.c read_mem); check with `pyphys doctor`, "
                "or load pyphys.ko mem_device=1 and use --backend module"
            )
        if self.reader.fell_back:
            fb = self.reader.fell_back
            spots = ", ".join(f"{a:#x}+{n:#x}" for a, n, _ in fb[:4])
            more = f" and {len(fb) - 4} more" if len(fb) > 4 else ""
            reason += f"; read(2) refused {spots}{more} ({fb[0][2]}): read through mmap instead"
        size = self.sink.pos
        doc = dump_meta.Metadata(
            path=self.t.path,
            format=plan.fmt,
            size=size,
            sha256=digest,
            started=self.state.started if self.state and self.state.started else started,
            finished=time.time(),
            seconds=round(time.monotonic() - clock, 3),
            backend=pm.backend,
            backend_reason=reason,
            direct=o["direct"],
            kernel=kernel,
            kaslr=kaslr,
            vmcoreinfo=info,
            ranges=[
                dump_meta.RangeInfo(s.range.start, s.range.end, s.range.length, s.virt, off, h)
                for s, off, h in zip(segs, self.data_offsets, self.range_hash.digests or [None] * len(segs))
            ],
            skipped=dump_meta.skipped(self.tree, [s.range for s in segs], self.explicit),
            iomem=dump_meta.iomem_map(self.tree),
            resumed_from=cp.pos if cp else None,
            warnings=warnings,
            sidecars=[p for p in (self.t.sha_path if digest else None, self.t.meta_path) if p],
        )
        self._install(doc, digest)
        return doc

    def _install(self, doc, digest: str | None) -> None:
        import json

        t = self.t
        if t.stream:
            if t.meta_path:
                dump_io.write_small(t.meta_path, json.dumps(doc.to_json(), indent=1).encode() + b"\n", 0o600)
            return
        made = []
        try:
            if t.sha_path and digest:
                # sha256sum's format: "HEX  NAME" (two spaces: text mode), NAME relative so that
                # `sha256sum -c FILE.sha256` works in the dump's directory
                tmp = t.sha_path + dump_io.PARTIAL_SUFFIX
                dump_io.write_small(tmp, f"{digest}  {os.path.basename(t.path)}\n".encode(), 0o644)
                made.append((tmp, t.sha_path))
            if t.meta_path:
                tmp = t.meta_path + dump_io.PARTIAL_SUFFIX
                dump_io.write_small(tmp, json.dumps(doc.to_json(), indent=1).encode() + b"\n", 0o600)
                made.append((tmp, t.meta_path))
            dump_io.install(t.tmp, t.path, t.force)
        except BaseException:
            for tmp, _ in made:
                _unlink(tmp)
            raise
        for tmp, final in made:
            dump_io.install(tmp, final, True)
        if not (t.sha_path and digest) and os.path.lexists(t.path + ".sha256"):
            os.unlink(t.path + ".sha256")  # stale: it described the FILE just replaced
        _unlink(t.state_path)
        dump_io.fsync_dir(t.directory)

    def _fail(self, exc: BaseException) -> None:
        if self.reader is not None:
            self.reader.close()
        self.file_hash.abort()
        self.range_hash.abort()
        if self.sink is not None:
            self.sink.release()
        if self.fd > 1:
            os.close(self.fd)
        self.fd = -1
        if self.t.stream:
            return
        # an interrupt or a write error keeps what a later --resume can continue from
        resumable = isinstance(exc, (KeyboardInterrupt, OSError)) and self.state is not None and self.state.last
        if resumable or self.resuming:  # a failed resume leaves the partial file as it found it
            self.kept = True
            return
        _unlink(self.t.tmp)
        _unlink(self.t.state_path)


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
