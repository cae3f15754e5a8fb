"""The pyphys error tree.

Every failure a user can cause or meet is a :class:`PyphysError` carrying one actionable
line: what failed, why (the kernel's reason where there is one), and what to try. The CLI
prints ``str(err)`` on stderr and exits with ``err.exit_code``; it never shows a traceback.
``OSError`` is converted at the I/O layer (:func:`from_oserror`), not in the logic.
"""

from __future__ import annotations

import errno
import os

from pyphys import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeVar

    _T = TypeVar("_T")


class PyphysError(Exception):
    """Base class: ``message`` says what failed, ``hint`` what to try."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(PyphysError):
    """Bad input from the user: a malformed address, width, value, name or range."""

    exit_code = 2


class NotFoundError(PyphysError):
    """A thing the user named does not exist (process, device, symbol, file, mapping)."""


class PermissionDeniedError(PyphysError):
    """The kernel refused for lack of privilege (not root, missing capability)."""


class DevMemBlockedError(PyphysError):
    """The kernel refused a physical access by policy (STRICT_DEVMEM, lockdown, PAT)."""


class ModuleNotLoadedError(PyphysError):
    """pyphys.ko (or its device) is needed and absent."""


class RegionError(PyphysError):
    """An address lies outside the region the user named, in a hole, or past RAM."""


class VerifyError(PyphysError):
    """A write was read back and the bytes differ from what was written."""


class JournalError(PyphysError):
    """The write journal cannot be used, or an undo would clobber newer bytes."""


class ProcessGoneError(NotFoundError):
    """The process exited (or became a zombie) while pyphys was reading it."""


class LabError(PyphysError):
    """The lab VM could not be built, booted or reached."""


def _is_proc_pid(text: str) -> bool:
    """True if ``text`` names a file under /proc/PID/ (or self, thread-self)."""
    _, found, rest = text.partition("/proc/")
    part = rest.split("/", 1)[0]
    return bool(found) and "/" in rest and (part.isdigit() or part in ("self", "thread-self"))


#: what still refuses root: the check root's usual rights do not pass (for :func:`root_hint`)
PTRACE_CHECK = (
    "the kernel's ptrace access check refused (Yama kernel.yama.ptrace_scope, "
    "or CAP_SYS_PTRACE missing, as in a container)"
)
FILE_MODE = (
    "root passes a file's mode only with CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH, which this process lacks "
    "(a container, or a dropped capability), or a security module refused it; see `pyphys doctor`"
)


def no_cap(cap: str) -> str:
    """For :func:`root_hint`: root that still lacks capability ``cap``."""
    return f"this process lacks {cap} (a container, or a dropped capability; see `pyphys doctor`)"


NO_ADMIN = no_cap("CAP_SYS_ADMIN")
REFUSED = "a missing capability, lockdown or a security module refused it; see `pyphys doctor`"


def root_hint(root: str, user: str = "run as root (sudo)") -> str:
    """The advice for a refusal that root's rights usually lift, the one place pyphys chooses it
    by euid: ``user`` for an ordinary user (default: run as root); for a process that already
    runs as root, ``root``: the check that still refuses (a capability it lacks, the ptrace
    access check, lockdown, kptr_restrict, STRICT_DEVMEM, a file mode, a security module)."""
    return user if os.geteuid() != 0 else f"already root: {root}"


def _denied_hint(err: OSError, what: str) -> str:
    """What to do about EACCES: sudo for a user; for root, what can still refuse it."""
    if _is_proc_pid(str(err.filename or "")) or _is_proc_pid(what):
        return root_hint(PTRACE_CHECK)
    return root_hint(REFUSED)


def from_oserror(err: OSError, what: str, hint: str | None = None) -> PyphysError:
    """Turn an ``OSError`` raised while doing ``what`` into the matching PyphysError.

    ``hint`` overrides the generic advice for the errno.
    """
    reason = os.strerror(err.errno) if err.errno else str(err)
    msg = f"{what}: {reason}"
    code = err.errno
    if code == errno.ENOENT:
        return NotFoundError(msg, hint or "it does not exist on this system")
    if code in (errno.EACCES,):
        return PermissionDeniedError(msg, hint or _denied_hint(err, what))
    if code == errno.EPERM:
        return PermissionDeniedError(
            msg, hint or root_hint(REFUSED, "the kernel refused: run as root, or see `pyphys doctor`")
        )
    if code == errno.ESRCH:
        return ProcessGoneError(msg, hint)
    if code in (errno.EBUSY, errno.EWOULDBLOCK):
        return PyphysError(msg, hint or "something else holds it; try again")
    return PyphysError(msg, hint)


class oserrors:  # noqa: N801  (used like a function: `with oserrors("read x"):`)
    """Convert ``OSError`` into a :class:`PyphysError` once, at the I/O layer (after psutil's
    ``wrap_exceptions``): as a context manager ``with oserrors("open /dev/mem"): ...`` or a
    decorator ``@oserrors("read pagemap")``. ``what`` may be a callable of the OSError for
    messages that need its filename. A PyphysError raised inside passes through unchanged.
    """

    __slots__ = ("what", "hint")

    def __init__(self, what, hint: str | None = None):
        self.what, self.hint = what, hint

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if kind is not None and issubclass(kind, OSError):
            what = self.what(err) if callable(self.what) else self.what
            raise from_oserror(err, what, self.hint) from err
        return False

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        return wrapper


class FileHolder:
    """For the objects that hold a device file open in ``_fd`` (physical memory, config space,
    a BAR): :meth:`close` runs :meth:`_release` (what must go first: mappings) and closes the
    file once; ``with obj:`` closes it at the end. Lives here, beside :class:`oserrors`, because
    every such object already imports this module for its errors."""

    __slots__ = ()
    _fd: int | None

    def _release(self) -> None:
        """Undo what depends on the open file (unmap windows); nothing by default."""

    def close(self) -> None:
        self._release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
