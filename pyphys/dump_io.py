"""The moving parts of :mod:`pyphys.dump`: reading physical memory ahead, hashing in threads,
writing (buffered, O_DIRECT or a stream), and the partial file that becomes the dump.

Why a bounce buffer for O_DIRECT: an O_DIRECT write pins the *source* user pages with
get_user_pages; a /dev/mem mmap is a remap_pfn_range() mapping, flagged VM_IO|VM_PFNMAP
(mm/memory.c), which mm/gup.c check_vma_flags() refuses with -EFAULT. So the data is first
copied out of physical memory (through :mod:`pyphys.physmem`, the one place that opens
/dev/mem) into a page-aligned anonymous ``mmap``, and that buffer is what O_DIRECT writes.
docs/dump.md has the whole story.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
import threading

from pyphys import TYPE_CHECKING
from pyphys.errors import PyphysError, RegionError, UsageError, from_oserror

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Callable

#: O_DIRECT alignment for file offsets, lengths and buffer addresses. open(2) NOTES: Linux
#: 2.6+ needs the logical block size of the device (512 or 4096); 4096 satisfies both and
#: is the page size, which is what an anonymous mmap is aligned to anyway.
DIRECT_ALIGN = 4096
#: blocks queued to each SHA-256 thread, and read ahead of the writer: with the ones being
#: read, written and hashed, a handful of blocks are alive whatever the dump's size
_HASH_QUEUE = 2
_READ_AHEAD = 2
PARTIAL_SUFFIX = ".pyphys-partial"


def partial_name(path: str) -> str:
    """The one name an unfinished dump of ``path`` has: found again by the next run into
    ``path`` (to resume it or remove it), hidden, in the same directory (rename is atomic)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}{PARTIAL_SUFFIX}")


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - pwrite raises instead on Linux
            raise OSError(errno.EIO, "pwrite wrote nothing")
        view = view[n:]
        offset += n


# -- hashing ---------------------------------------------------------------------------------


class Hasher:
    """SHA-256s computed in a thread so they overlap the copy: one running digest, cut into
    one digest per piece by :meth:`cut` (per range) or kept whole (the file).

    hashlib releases the GIL while hashing buffers larger than 2 KiB, so the digest runs in
    parallel with the next read and write; the queue bounds how many blocks wait (RSS).
    """

    _CUT = object()

    def __init__(self, enabled: bool, name: str = "sha256"):
        self.enabled = enabled
        self.digests: list[str] = []
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_HASH_QUEUE)
        self._thread: threading.Thread | None = None
        if enabled:
            import hashlib  # here: OpenSSL's _hashlib is the slowest import of all in the guest

            self._new = hashlib.sha256
            self._hash = hashlib.sha256()
            self._thread = threading.Thread(target=self._run, name=f"pyphys-{name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is self._CUT:
                self.digests.append(self._hash.hexdigest())
                self._hash = self._new()
            else:
                self._hash.update(item)  # type: ignore[arg-type]
            self._queue.task_done()

    def peek(self) -> str | None:
        """The digest of what was queued so far (the piece since the last cut), without
        ending it: what a checkpoint records, at no extra hashing."""
        if not self._thread:
            return None
        self._queue.join()
        return self._hash.copy().hexdigest()

    def update(self, data: object) -> None:
        """Queue immutable ``data`` (bytes, or a view the caller will not reuse)."""
        if self.enabled:
            self._queue.put(data)

    def cut(self) -> None:
        """End the current piece: its digest is appended to :attr:`digests`."""
        if self.enabled:
            self._queue.put(self._CUT)

    def finish(self) -> str | None:
        """Wait for the queue to drain; the running digest (the whole stream if never cut)."""
        if not self._thread:
            return None
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Stop the thread without finishing (error path): drop what is queued."""
        if not self._thread:
            return
        _drain(self._queue)
        self._queue.put(None)
        self._thread.join(timeout=5)
        self._thread = None


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


# -- output sinks ------------------------------------------------------------------------------


class BufferedSink:
    """Page-cache writes at tracked offsets; holes are skipped (sparse)."""

    direct = False

    def __init__(self, fd: int, hasher: Hasher, pos: int = 0):
        self.fd = fd
        self.hasher = hasher
        self.pos = pos

    def write(self, data: bytes) -> None:
        pwrite_all(self.fd, memoryview(data), self.pos)
        self.hasher.update(data)
        self.pos += len(data)

    def skip(self, n: int) -> None:
        self.pos += n

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        # ftruncate: the true size, even when the file ends in a hole
        os.ftruncate(self.fd, self.pos)

    def release(self) -> None:
        pass


class StreamSink:
    """Sequential writes to a pipe or socket (``-o -``): nothing is ever sought or truncated."""

    direct = False

    def __init__(self, fd: int, hasher: Hasher):
        self.fd = fd
        self.hasher = hasher
        self.pos = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.hasher.update(data)
        self.pos += len(data)

    def skip(self, n: int) -> None:  # pragma: no cover - padded is refused for streams
        raise UsageError("a stream cannot hold holes")

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass

    def release(self) -> None:
        pass


class DirectSink:
    """O_DIRECT writes through a page-aligned anonymous bounce buffer.

    The buffer is an anonymous ``mmap``: ordinary pages that get_user_pages can pin (unlike a
    /dev/mem mapping), aligned to the page size. Everything reaches the file in whole
    :data:`DIRECT_ALIGN` blocks at aligned offsets; the last block is zero-padded and the
    file then cut to its true size with ftruncate. Starting at ``pos`` (a resume), the
    partly written block there is read back first.
    """

    direct = True

    def __init__(self, fd: int, hasher: Hasher, size: int, pos: int = 0):
        if size % DIRECT_ALIGN:
            raise ValueError("bounce buffer size must be a multiple of DIRECT_ALIGN")
        self.fd = fd
        self.hasher = hasher
        self.size = size
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.view = memoryview(self.buf)
        self.base = pos - pos % DIRECT_ALIGN  # file offset of buf[0], always aligned
        self.fill = pos - self.base  # bytes of buf holding data (or zeros after a skip)
        if self.fill:
            got = os.preadv(fd, [self.view[:DIRECT_ALIGN]], self.base)
            self._zero(got, self.fill)

    @property
    def pos(self) -> int:
        return self.base + self.fill

    def _flush(self, nbytes: int) -> None:
        pwrite_all(self.fd, self.view[:nbytes], self.base)

    def _zero(self, lo: int, hi: int) -> None:
        if hi > lo:
            self.view[lo:hi] = bytes(hi - lo)

    def _advance(self) -> None:
        if self.fill == self.size:
            self._flush(self.size)
            self.base += self.size
            self.fill = 0

    def write(self, data: bytes) -> None:
        self.hasher.update(data)
        src = memoryview(data)
        while src:
            n = min(len(src), self.size - self.fill)
            self.view[self.fill : self.fill + n] = src[:n]
            self.fill += n
            src = src[n:]
            self._advance()

    def skip(self, n: int) -> None:
        target = self.pos + n
        if target - self.base <= self.size:
            self._zero(self.fill, target - self.base)
            self.fill = target - self.base
            self._advance()
            return
        self._flush_tail()
        # the aligned blocks in between are never written: a hole, like the buffered sink's
        self.base = target - target % DIRECT_ALIGN
        self.fill = target - self.base
        self._zero(0, self.fill)

    def _flush_tail(self) -> None:
        """Write the partly filled last block (zero-padded); the buffer keeps it."""
        if self.fill:
            end = -(-self.fill // DIRECT_ALIGN) * DIRECT_ALIGN
            self._zero(self.fill, end)
            self._flush(end)

    def sync(self) -> None:
        self._flush_tail()
        os.ftruncate(self.fd, self.pos)  # what a reader (and a resume) sees ends here
        os.fsync(self.fd)

    def close(self) -> None:
        size = self.pos
        self._flush_tail()
        os.ftruncate(self.fd, size)
        self.release()

    def release(self) -> None:
        if self.view is not None:
            self.view.release()
            self.view = None  # type: ignore[assignment]
            try:
                self.buf.close()
            except BufferError:
                pass  # a slice is still referenced by an in-flight traceback: freed with it


# -- reading -------------------------------------------------------------------------------------


class Reader:
    """Reads ``blocks`` (``(addr, length)``) in a thread, up to :data:`_READ_AHEAD` ahead.

    Reading (a copy out of physical memory in read(2)) and writing (a copy into the page
    cache, or DMA for O_DIRECT) then overlap, like two dd's in a pipe; both syscalls release
    the GIL. Errors raised while reading are re-raised in the caller by :meth:`next`.
    """

    def __init__(self, pm, blocks: Iterable[tuple[int, int]], fallback: Callable[[], object] | None = None):
        self._pm = pm
        self._blocks = blocks
        self._fallback = fallback
        self._fallback_pm = None
        #: blocks read(2) refused and the fallback read instead: (addr, length, reason)
        self.fell_back: list[tuple[int, int, str]] = []
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyphys-read", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, addr: int, n: int) -> bytes:
        try:
            return self._pm.read(addr, n)
        except RegionError as err:
            # read(2) of /dev/mem fails with EFAULT where the kernel will not copy through its
            # own mapping: a page only partly RAM (x86's 0x9f000: RAM up to 0x9fbff, BIOS after
            # it) makes xlate_dev_mem_ptr()'s memremap() refuse a "mixed" range
            # (kernel/iomem.c), and pages missing from the direct map fail
            # copy_from_kernel_nofault(). A user mapping of the same frames still works.
            if self._fallback is None:
                raise
            if self._fallback_pm is None:
                self._fallback_pm = self._fallback()
            data = self._fallback_pm.read(addr, n)  # type: ignore[attr-defined]
            self.fell_back.append((addr, n, err.message))
            return data

    def _run(self) -> None:
        try:
            for addr, n in self._blocks:
                if self._stop.is_set() or not self._put(self._read(addr, n)):
                    return
        except BaseException as err:  # handed to the writer, which raises it
            self._put(_ReadFailed(err))

    def next(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, _ReadFailed):
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        _drain(self._queue)
        self._thread.join(timeout=10)
        if self._fallback_pm is not None and not self._thread.is_alive():
            self._fallback_pm.close()  # type: ignore[attr-defined]
            self._fallback_pm = None


class _ReadFailed:
    def __init__(self, error: BaseException):
        self.error = error


def open_source(backend: str, probe: int | None = None):
    """Open physical memory for a dump: ``(PhysMem, reason, fallback)``.

    ``backend="auto"`` prefers read(2) on /dev/mem ("rw"): a dump is one long sequential
    read, and read_mem() copies from the kernel's cached direct map, where physmem's mmap
    windows are opened O_SYNC, which x86 maps uncached (arch/x86/mm/pat/memtype.c,
    phys_mem_access_prot_allowed) and which cost an mmap/munmap per window. ``probe`` (a RAM
    address, ideally above 1 MiB where STRICT_DEVMEM refuses rather than shows zeros) is
    read once; if /dev/mem refuses, the module's /dev/pyphys_mem is used when loaded.
    ``fallback`` (auto with read(2) only) opens physmem's mmap backend, for the few blocks
    read(2) cannot copy (:meth:`Reader._read`); otherwise None.
    """
    from pyphys import physmem
    from pyphys.errors import DevMemBlockedError, ModuleNotLoadedError, NotFoundError, PermissionDeniedError

    if backend != "auto":
        return physmem.open_physmem(backend=backend), f"--backend {backend}", None
    pm = None
    try:
        pm = physmem.open_physmem(backend="rw")
        if probe is not None:
            pm.read(probe, 1)
        return (
            pm,
            "auto: read(2) of /dev/mem (one copy from the kernel's cached mapping)",
            lambda: physmem.open_physmem(backend="mmap"),
        )
    except (DevMemBlockedError, PermissionDeniedError, NotFoundError) as err:
        if pm is not None:
            pm.close()
        try:
            module = physmem.open_physmem(backend="module")
        except ModuleNotLoadedError:
            raise err from None
        return module, f"auto: /dev/mem refused ({err.message}); using /dev/pyphys_mem", None


# -- the files ------------------------------------------------------------------------------------


def check_target(path: str, force: bool) -> None:
    """Refuse a directory, and anything existing without ``force``; ``force`` replaces regular
    files only (a device node or FIFO is not a file a dump may take the place of)."""
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise from_oserror(err, f"cannot check {path}") from err
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is a directory (give a file name with -o)")
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise UsageError(f"{path} is {kind}: pyphys dump writes regular files only, even with --force")
    if not force:
        raise UsageError(f"{path} exists (use --force to overwrite it)")


def check_space(directory: str, needed: int, have: int = 0) -> None:
    """Refuse up front when ``directory`` visibly cannot hold ``needed`` more bytes."""
    try:
        st = os.statvfs(directory)
    except OSError as err:
        raise from_oserror(err, f"statvfs {directory}") from err
    free = st.f_bavail * st.f_frsize
    if free < needed - have:
        raise PyphysError(
            f"not enough space in {directory}: the dump needs {size_text(needed - have)}, {size_text(free)} free",
            "free some space or write elsewhere with -o",
        )


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def install(tmp: str, path: str, force: bool) -> None:
    """Move the finished ``tmp`` to ``path``; without ``force`` never replace a file that
    appeared meanwhile (link(2) fails with EEXIST, where rename(2) would silently replace)."""
    if force:
        check_target(path, True)  # still a regular file (or nothing)?
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(f"{path} appeared while dumping (use --force to overwrite it)") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # filesystems without hard links (vfat, some FUSE): check, then rename
        if os.path.lexists(path):
            raise UsageError(f"{path} appeared while dumping (use --force to overwrite it)") from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def write_small(path: str, data: bytes, mode: int) -> None:
    """``data`` to ``path`` durably, replacing it atomically (a temporary next to it)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:  # an interrupt included: no stray temporary
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (9p, FUSE) refuse fsync on a directory: the rename still happened
    finally:
        os.close(fd)


def open_partial(tmp: str, direct: bool, directory: str, resume: bool) -> int:
    """The partial file, created (0600: a RAM image holds every secret the machine had in
    memory) or, for a resume, reopened; locked so that a second dump into the same path waits
    for nobody and refuses instead."""
    import fcntl

    flags = os.O_RDWR | os.O_CLOEXEC | (0 if resume else os.O_CREAT | os.O_EXCL)
    if direct:
        flags |= os.O_DIRECT
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as err:
        if direct and err.errno == errno.EINVAL:
            raise PyphysError(
                f"{directory} does not support O_DIRECT (open: Invalid argument)",
                "drop --direct, or write to a filesystem that has it (ext4, xfs, btrfs, 9p; tmpfs only "
                "since Linux 6.6)",
            ) from err
        raise from_oserror(err, f"cannot create a file in {directory}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise PyphysError(f"another pyphys dump is writing {tmp}", "wait for it, or dump to another file") from None
    return fd


def partial_in_use(tmp: str) -> bool:
    """True if a running dump holds the lock on the partial file ``tmp``."""
    import fcntl

    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def explain_write(err: OSError, path: str, done: int, total: int, kept: str | None) -> PyphysError:
    progress = f"after {size_text(done)} of {size_text(total)}"
    if kept:
        cleanup = f"{os.path.basename(path)} was not written; the part already written is kept for --resume"
    else:
        cleanup = f"the partial file was removed; {os.path.basename(path)} was not written"
    if err.errno == errno.ENOSPC:
        return PyphysError(f"writing {path}: no space left on device {progress}", cleanup)
    if err.errno == errno.EFBIG:
        return PyphysError(f"writing {path}: file too large (EFBIG: ulimit -f or filesystem limit) {progress}", cleanup)
    if err.errno == errno.EDQUOT:
        return PyphysError(f"writing {path}: disk quota exceeded {progress}", cleanup)
    if err.errno == errno.EPIPE:
        return PyphysError(f"writing {path}: the reader closed the pipe {progress}", "nothing more was written")
    return from_oserror(err, f"writing {path} {progress}", cleanup)
