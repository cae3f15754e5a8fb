"""``pyphys dump``: physical memory to a file (raw, padded, LiME), buffered or O_DIRECT."""

from __future__ import annotations

import argparse
import signal
import sys
import time

DESCRIPTION = """\
Dump physical memory to FILE. Without RANGE, every top-level "System RAM" range of
/proc/iomem (as LiME does). RANGE is START-END (END inclusive, as /proc/iomem prints it) or
START+LENGTH (LENGTH may end in K, M, G): 0x100000-0x1fffff, 0x100000+1M.

Formats: raw (ranges back to back, ascending), padded (file offset = physical address;
holes stay sparse), lime (a 32-byte LiME v1 header before each range; volatility3 reads it).
The file is written under a temporary name next to FILE, fsync'ed and renamed when complete,
with a sha256sum-format sidecar FILE.sha256. A full disk or an interrupt removes the partial
file. --direct writes with O_DIRECT through a page-aligned bounce buffer (docs/dump.md
explains why writing straight from a /dev/mem mapping fails with EFAULT).
"""


def register(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "ranges", nargs="*", metavar="RANGE", help="START-END (inclusive) or START+LENGTH; default: all System RAM"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "-f", "--format", default="lime", choices=("raw", "padded", "lime"), help="output format (default: lime)"
    )
    p.add_argument("--direct", action="store_true", help="write with O_DIRECT (bypass the page cache)")
    p.add_argument("--force", action="store_true", help="overwrite FILE (and FILE.sha256) if they exist")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "mmap", "rw", "module"),
        help="how to read physical memory (see pyphys doctor; default: auto)",
    )
    p.add_argument("--no-sha256", dest="sha256", action="store_false", help="skip the SHA-256 sidecar")
    p.add_argument(
        "--block-size", default="2M", metavar="SIZE", help="bytes per read/write, a multiple of 4K (default: 2M)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar even on a terminal")
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
        from pyphys.dump import _size

        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        frac = done / total if total else 1.0
        eta = (total - done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(frac * width)
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"\r[{bar}] {frac * 100:5.1f}%  {_size(done)} / {_size(total)}  "
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
    from pyphys import dump as dumplib
    from pyphys.dialect import parse_number
    from pyphys.errors import UsageError

    ranges = [dumplib.parse_range(text) for text in args.ranges] or None
    text = args.block_size.strip()
    scale = dumplib._SUFFIXES.get(text[-1:].lower(), 1)
    block = parse_number(text[:-1] if scale > 1 else text, "block size", minimum=1) * scale
    if block % dumplib.DIRECT_ALIGN or block > 64 << 20:
        raise UsageError(f"block size {args.block_size} must be a multiple of 4K and at most 64M")

    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())
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
            block_size=block,
            progress=progress,
        )
    except KeyboardInterrupt as exc:
        progress.clear()
        why = f"killed by {exc.args[0]}" if isinstance(exc, _Signalled) else "interrupted"
        at = (
            f" after {dumplib._size(progress.done)} of {dumplib._size(progress.total)}"
            if progress.total
            else " before any memory was read"
        )
        print(f"pyphys dump: {why}{at}: the partial file was removed; {args.output} was not written", file=sys.stderr)
        return 130 if not isinstance(exc, _Signalled) else 128 + int(getattr(signal, exc.args[0]))
    finally:
        progress.clear()
        for s, handler in old.items():
            signal.signal(s, handler)

    lay = result.layout
    mode = "O_DIRECT" if result.direct else "buffered"
    print(
        f"wrote {result.path}: {lay.fmt}, {len(lay.segments)} range(s), {dumplib._size(lay.data_bytes)} of "
        f"memory in {result.seconds:.2f} s ({result.rate / 1e6:.1f} MB/s, {mode}, backend {result.backend})"
    )
    if result.sha256:
        print(f"sha256 {result.sha256}  (sidecar {result.sidecar})")
    if "refused" in result.backend_reason:
        print(f"read: {result.backend_reason}")
    print(f"  {'physical range':<34} {'bytes':>14}  {'file offset':>14}")
    for seg in lay.segments:
        print(f"  {str(seg.range):<34} {seg.range.length:>#14x}  {seg.file_offset:>#14x}")
    for warning in result.warnings:
        print(f"pyphys dump: warning: {warning}", file=sys.stderr)
    return 0
