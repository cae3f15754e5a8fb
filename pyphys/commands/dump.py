"""``pyphys dump``: physical memory to a file or a pipe (raw, padded, LiME, AVML, ELF core)."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from pyphys.cli import FILE
from pyphys.commands._common import add_json, emit, emit_json, note, warn

FORMATS = ("raw", "padded", "lime", "avml", "elf")
DESCRIPTION = """\
Dump physical memory to FILE, or stream it with -o -. Without RANGE, every top-level
"System RAM" range of /proc/iomem (as LiME does), cut to whole pages (as AVML does). RANGE is
START+LENGTH or START-END (END exclusive): 0x100000+1M, 0x100000-0x200000.

Formats: raw (ranges back to back), padded (file offset = physical address; holes stay
sparse), lime (a LiME v1 header before each range: volatility3 reads it), avml (AVML's
snappy-compressed LiME, as avml --compress writes it), elf (an ELF core with the kernel's
VMCOREINFO note: drgn and crash open it with vmlinux).

The file is written as .FILE.pyphys-partial next to FILE, checkpointed, fsync'ed and renamed
when complete; an interrupted dump is continued by --resume (after its checkpoints' SHA-256s
are verified, and only under the same boot) or replaced by the next run. Sidecars: FILE.sha256
(sha256sum -c format; none for padded, whose holes are not hashed) and FILE.json, the metadata:
kernel release and banner, KASLR offset, /proc/iomem, per-range SHA-256, what was skipped and
why (docs/dump.md). With -o - the memory goes to stdout, the digest to stderr, the metadata to
--meta PATH if given.
"""


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "ranges", nargs="*", metavar="RANGE", help="START+LENGTH or START-END (END exclusive); default: all System RAM"
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="file to write, or - for standard output"
    ).complete = FILE
    p.add_argument("-f", "--format", default="lime", choices=FORMATS, help="output format (default: lime)")
    p.add_argument("--direct", action="store_true", help="write with O_DIRECT (bypass the page cache)")
    p.add_argument(
        "--force", action="store_true", help="replace FILE and its sidecars if they exist (regular files only)"
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted dump of FILE after verifying it")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "mmap", "rw", "module"),
        help="how to read physical memory (see pyphys doctor; default: auto)",
    )
    p.add_argument("--no-sha256", dest="sha256", action="store_false", help="no SHA-256s (no FILE.sha256, no --resume)")
    p.add_argument(
        "--meta", metavar="PATH", help="write the metadata here (default: FILE.json; with -o -: none)"
    ).complete = FILE
    p.add_argument("--no-meta", dest="meta", action="store_false", help="no metadata sidecar")
    p.add_argument(
        "--block-size", default="2M", metavar="SIZE", help="bytes per read/write, a multiple of 4K (default: 2M)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes, even on a terminal")
    add_json(p, "the dump's metadata (the FILE.json document)")
    p.set_defaults(func=run)


class _Progress:
    """A one-line bar with rate and ETA on a terminal (stderr); silent otherwise."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last = 0.0
        self.done = 0
        self.total = 0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        from pyphys.dump_io import size_text

        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        frac = done / total if total else 1.0
        eta = (total - done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(frac * width)
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"\r[{bar}] {frac * 100:5.1f}%  {size_text(done)} / {size_text(total)}  "
            f"{rate / 1e6:7.1f} MB/s  ETA {int(eta) // 60}:{int(eta) % 60:02d} "
        )
        self.stream.write(line)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


class _Signalled(KeyboardInterrupt):
    """SIGTERM/SIGHUP turned into the same clean-up path as Ctrl-C."""


def _on_signal(signum, _frame):
    raise _Signalled(signal.Signals(signum).name)


def run(args) -> int:
    import os

    from pyphys import dump as dumplib
    from pyphys.dialect import parse_size
    from pyphys.dump_io import partial_name, size_text
    from pyphys.errors import PyphysError, UsageError

    ranges = [dumplib.parse_range(text) for text in args.ranges] or None
    block = parse_size(args.block_size, "block size", maximum=64 << 20)
    if block % 4096:
        raise UsageError(f"block size {args.block_size} must be a multiple of 4K and at most 64M")
    stream = args.output == "-"
    if stream and args.json:
        raise UsageError("--json and -o - both want standard output", "give --meta PATH for the metadata")
    meta = True if args.meta is None else args.meta
    if isinstance(meta, str) and not os.path.isdir(os.path.dirname(os.path.abspath(meta))):
        # refused here, before any memory is read: the sidecar is written last
        raise PyphysError(f"--meta {meta}: cannot write to {os.path.dirname(os.path.abspath(meta))}: no such directory")

    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())

    def tell(text: str) -> None:
        progress.clear()
        if text.startswith("warning: "):
            warn("dump", text[len("warning: ") :])
        else:
            note("dump", text, args.quiet)

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = dumplib.dump(
            args.output,
            ranges,
            args.format,
            direct=args.direct,
            force=args.force,
            backend=args.backend,
            sha256=args.sha256,
            meta=meta,
            resume=args.resume,
            block_size=block,
            progress=progress,
            note=tell,
        )
    except KeyboardInterrupt as exc:
        progress.clear()
        why = f"killed by {exc.args[0]}" if isinstance(exc, _Signalled) else "interrupted"
        at = (
            f" after {size_text(progress.done)} of {size_text(progress.total)}"
            if progress.total
            else " before any memory was read"
        )
        kept = not stream and os.path.exists(partial_name(os.path.abspath(args.output)))
        if stream:
            what = "the stream on standard output stops short"
        elif kept:
            what = f"kept {partial_name(os.path.abspath(args.output))} up to its last checkpoint: --resume continues it"
            what += f"; {args.output} was not written"
        else:
            what = f"the partial file was removed; {args.output} was not written"
        print(f"pyphys dump: {why}{at}: {what}", file=sys.stderr)
        return 130 if not isinstance(exc, _Signalled) else 128 + int(getattr(signal, exc.args[0]))
    finally:
        progress.clear()
        for s, handler in old.items():
            signal.signal(s, handler)

    for warning in result.warnings:
        warn("dump", warning)
    if args.json:
        emit_json(result)
        return 0
    lines = _summary(result)
    if stream:  # stdout holds the memory: the summary and the digest go to stderr
        for line in lines:
            sys.stderr.write(line + "\n")
    else:
        for line in lines:
            emit(line)
    return 0


def _summary(result) -> list[str]:
    from pyphys.dump_io import size_text

    data = sum(r.length for r in result.ranges)
    rate = data / result.seconds / 1e6 if result.seconds > 0 else 0.0
    mode = "O_DIRECT" if result.direct else "buffered"
    resumed = f", resumed at file offset {result.resumed_from:#x}" if result.resumed_from is not None else ""
    out = [
        f"wrote {result.path}: {result.format}, {len(result.ranges)} range(s), {size_text(data)} of memory "
        f"in {result.seconds:.2f} s ({rate:.1f} MB/s, {mode}, backend {result.backend}{resumed})"
    ]
    if result.format == "avml" and result.size:
        out.append(f"compressed to {size_text(result.size)} ({data / result.size:.2f}:1)")
    if result.sha256:
        out.append(f"sha256 {result.sha256}  {result.path if result.path != '-' else '-'}")
    if result.kaslr.offset is not None:
        out.append(f"kaslr offset {result.kaslr.offset:#x}")
    if result.sidecars:
        out.append("sidecars: " + " ".join(result.sidecars))
    if "refused" in result.backend_reason:
        out.append(f"read: {result.backend_reason}")
    out.append(f"  {'physical range':<34} {'bytes':>14}  {'file offset':>14}  sha256")
    for r in result.ranges:
        rng = f"{r.start:#x}-{r.end:#x}"
        digest = (r.sha256 or "-")[:16]
        out.append(f"  {rng:<34} {r.length:>#14x}  {r.file_offset:>#14x}  {digest}")
    return out
