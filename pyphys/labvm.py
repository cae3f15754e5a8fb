"""The lab VM: boot a project kernel under QEMU and run commands in it.

Why virtme-ng: it boots any kernel image (the lab kernel the project builds, or Debian's
stock kernel with its modules) with the host's own filesystem as the guest's root over 9p,
so the guest runs this checkout and this venv's Python with no image to build or copy. Its
guest init returns a command's exit status over virtio-serial. On top of it pyphys adds one
more virtio-serial port, ``pyphys.agent`` (a unix socket on the host, :mod:`pyphys.labagent`
in the guest), so a test suite boots each kernel once and runs many commands, each with its
own exit status, stdout and stderr.

On the machines this project is developed on, /dev/kvm exists but a guest started with it
hangs, so guests run under TCG (QEMU's emulator) by default; ``kvm=True`` tries KVM behind a
watchdog and falls back to TCG when the guest stays silent. QEMU's command lines are built in
:mod:`pyphys.labqemu`.

Every boot attaches QEMU's ``edu`` teaching device (1234:11e8, docs/specs/edu.rst) and an
``ivshmem-plain`` device (1af4:1110) backed by a host file (:attr:`LabVM.shm_path`).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from pyphys import kernels, paths
from pyphys.errors import LabError
from pyphys.labqemu import IVSHMEM_SIZE, _vng, lab_append, qemu_device_opts, vng_argv  # noqa: F401 (lab_append: public)
from pyphys.record import Record

REPO = kernels.REPO
SWAP_SIZE = 64 << 20


class Result(Record):
    """What one guest command returned: ``rc``, ``out``, ``err``, ``seconds``."""

    __slots__ = ("rc", "out", "err", "seconds")
    _defaults = {"seconds": 0.0}

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def __str__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class LabVM:
    """One running lab guest, driven through the agent channel.

    Use as a context manager: ``with LabVM("lab") as vm: vm.run("uname -n")``. ``kernel`` is
    a name of :mod:`pyphys.kernels`; ``cpu`` a QEMU CPU model (``"max,-la57"`` for 4-level
    paging), ``append`` kernel command-line words, ``devices`` extra raw QEMU words,
    ``ivshmem_size`` the ivshmem region's size, ``swap_size`` the swap disk's (0: none),
    ``overlays`` directories the guest may write without touching the host's copy
    (virtme-ng ``--overlay-rwdir``), ``pat`` boots a lab kernel with PAT active (by default
    it gets ``nopat``: see :func:`lab_append`).
    """

    def __init__(
        self,
        kernel: str = "lab",
        *,
        memory: str = "1G",
        cpus: int = 2,
        kvm: bool = False,
        module: bool = True,
        boot_timeout: float = 300.0,
        log_path: str | None = None,
        quiet: bool = True,
        cpu: str | None = None,
        append: tuple[str, ...] | list[str] = (),
        devices: tuple[str, ...] | list[str] = (),
        ivshmem_size: int = IVSHMEM_SIZE,
        swap_size: int = SWAP_SIZE,
        overlays: tuple[str, ...] | list[str] = (),
        label: str | None = None,
        pat: bool = False,
    ):
        self.kernel_name = kernel
        self.label = label or kernel
        self.memory = memory
        self.cpus = cpus
        self.kvm = kvm
        self.want_module = module
        self.boot_timeout = boot_timeout
        self.quiet = quiet
        self.cpu = cpu
        self.append = list(append)
        self.devices = list(devices)
        self.ivshmem_size = ivshmem_size
        self.overlays = list(overlays)
        self.pat = pat
        self.kernel: kernels.Kernel | None = None
        self.ko: str | None = None
        self.tmpdir = tempfile.mkdtemp(prefix="pyphys-lab-")
        self.log_path = log_path or os.path.join(self.tmpdir, "console.log")
        tag = f"{os.getpid()}-{self.label}"
        self.shm_path = f"/dev/shm/pyphys-ivshmem-{tag}"
        # the swap disk's host file: the swap tests read a swapped-out page from it directly
        self.swap_size = swap_size
        self.swap_path = os.path.join(paths.cache_dir(), f"swapdisk-{tag}.img") if swap_size else None
        # The guest sees the host's files read-only (writes land in throw-away overlays);
        # this directory is shared read-write at the same path, for results the host must read
        # (dumps for volatility3, bench output). Outside /tmp, which the guest overlays.
        self.shared_dir = os.path.join(paths.cache_dir(), f"vmshare-{tag}")
        self.boot_seconds: float | None = None
        self.accel = "tcg"
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self.guest_release: str | None = None

    # -- life cycle ---------------------------------------------------------------
    def __enter__(self) -> LabVM:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def kernel_label(self) -> str:
        return self.label

    @property
    def page_types(self) -> str | None:
        return self.kernel.page_types if self.kernel else None

    def start(self) -> None:
        """Build what is missing, boot the guest, wait for the agent, load pyphys.ko."""
        self.kernel = kernels.resolve(self.kernel_name, quiet=self.quiet)
        byte_compile()
        if self.want_module:
            self.ko = kernels.build_module(self.kernel, quiet=self.quiet)
        with open(self.shm_path, "wb") as f:  # the ivshmem backing file, zeroed
            f.truncate(self.ivshmem_size)
        if self.swap_path:
            with open(self.swap_path, "wb") as f:  # sparse: costs nothing until the guest swaps
                f.truncate(self.swap_size)
        os.makedirs(self.shared_dir, exist_ok=True)
        if self.kvm and os.access("/dev/kvm", os.R_OK | os.W_OK):
            try:
                self._boot(kvm=True, timeout=60.0)
                self.accel = "kvm"
            except LabError:
                self._kill()  # KVM guest stayed silent (seen on these machines): fall back
                self._boot(kvm=False, timeout=self.boot_timeout)
        else:
            self._boot(kvm=False, timeout=self.boot_timeout)
        if self.ko:
            self.load_module()

    def _boot(self, kvm: bool, timeout: float) -> None:
        vng, env = _vng()
        sock_path = os.path.join(self.tmpdir, "agent.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        pybin = os.path.dirname(sys.executable)
        guest_cmd = (
            f"export PATH={shlex.quote(pybin)}:$PATH PYTHONPATH={shlex.quote(str(REPO))}; "
            f"exec {shlex.quote(sys.executable)} -m pyphys.labagent"
        )
        argv = [vng] + vng_argv(
            self.kernel,
            kvm=kvm,
            memory=self.memory,
            cpus=self.cpus,
            qemu_opts=qemu_device_opts(
                self.shm_path,
                sock_path,
                ivshmem_size=self.ivshmem_size,
                swap_path=self.swap_path,
                cpu=self.cpu,
                devices=self.devices,
            ),
            command=guest_cmd,
            rwdir=self.shared_dir,
            append=self.append,
            overlays=self.overlays,
            pat=self.pat,
        )
        log = open(self.log_path, "ab")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(REPO),
            start_new_session=True,
        )
        log.close()
        deadline = started + timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            if self._proc.poll() is not None:
                raise LabError(f"the lab VM exited during boot (status {self._proc.returncode})\n{self.log_tail()}")
            try:
                sock.connect(sock_path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise LabError(f"QEMU never opened the agent socket\n{self.log_tail()}") from None
                time.sleep(0.1)
        self._sock = sock
        self._buf = b""
        hello = self._recv(deadline)
        if not hello.get("ready"):
            raise LabError(f"unexpected first message from the guest agent: {hello}")
        self.guest_release = hello.get("uname")
        self.boot_seconds = time.monotonic() - started

    def _recv(self, deadline: float) -> dict:
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"the lab VM did not answer in time\n{self.log_tail()}")
            self._sock.settimeout(min(remaining, 1.0))
            try:
                chunk = self._sock.recv(1 << 16)
            except (socket.timeout, TimeoutError):
                if self._proc.poll() is not None:
                    raise LabError(f"the lab VM died (status {self._proc.returncode})\n{self.log_tail()}") from None
                continue
            if not chunk:
                raise LabError(f"the lab VM closed the agent channel\n{self.log_tail()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def log_tail(self, lines: int = 25) -> str:
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def close(self) -> None:
        """Ask the agent to exit (the guest powers off); kill QEMU if it lingers."""
        if self._sock is not None:
            try:
                self._send({"id": next(self._ids), "op": "exit"})
                self._recv(time.monotonic() + 10)
            except (LabError, OSError, ValueError):
                pass
        if self._proc is not None:
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._kill()
        self._close_sock()
        for path in (self.shm_path, self.swap_path, os.path.join(self.tmpdir, "agent.sock")):
            if path is None:
                continue
            try:
                os.unlink(path)
            except OSError:
                pass
        shutil.rmtree(self.shared_dir, ignore_errors=True)

    def _close_sock(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _kill(self) -> None:
        self._close_sock()
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self._proc.wait()

    # -- commands -----------------------------------------------------------------
    def _send(self, obj: dict) -> None:
        if self._sock is None:
            raise LabError("the lab VM is not running")
        self._sock.sendall(json.dumps(obj).encode() + b"\n")

    def run(
        self, cmd: str, timeout: float = 120, input: str | None = None, binary: bool = False, env: dict | None = None
    ) -> Result:
        """Run ``sh -c cmd`` as root in the guest; returns its status and output."""
        rid = next(self._ids)
        self._send({"id": rid, "cmd": cmd, "timeout": timeout, "input": input, "binary": binary, "env": env or {}})
        resp = self._recv(time.monotonic() + timeout + 30)
        if resp.get("id") != rid:
            raise LabError(f"agent answered request {resp.get('id')} instead of {rid}")
        out = resp.get("out", "")
        if binary:
            import base64

            out = base64.b64decode(resp.get("out_b64", ""))
        return Result(resp["rc"], out, resp.get("err", ""), resp.get("seconds", 0.0))

    def python(self, code: str, timeout: float = 120, input: str | None = None) -> Result:
        """Run Python ``code`` in the guest with this checkout importable."""
        return self.run(f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}", timeout=timeout, input=input)

    def pyphys(self, *args: str, timeout: float = 120, input: str | None = None) -> Result:
        """Run ``python -m pyphys ARGS`` in the guest."""
        argv = " ".join(shlex.quote(str(a)) for a in args)
        return self.run(f"{shlex.quote(sys.executable)} -m pyphys {argv}", timeout=timeout, input=input)

    def run_unprivileged(self, cmd: str, uid: int = 65534, gid: int = 65534, timeout: float = 120) -> Result:
        """Run ``sh -c cmd`` in the guest as an ordinary user (nobody by default).

        The guest's root file system is the host's, so this checkout's interpreter may sit
        under a directory only root can enter (a pyenv or venv under /root).  For the
        command's own mount namespace such directories are covered with a world-searchable
        tmpfs into which only the needed child is bound back; nothing else is widened and the
        host is untouched.  The user then gets no capabilities and no supplementary groups.
        """
        mounts = []
        for n, (parent, child) in enumerate(sorted(_closed_ancestors(_interpreter_paths()).items())):
            mounts.append(
                f"mkdir -p /tmp/.pyphys-open/{n} && mount --bind {shlex.quote(parent)} /tmp/.pyphys-open/{n}"
                f" && mount -t tmpfs -o mode=0755 pyphys-open {shlex.quote(parent)}"
            )
            for c in sorted(child):
                mounts.append(
                    f"mkdir {shlex.quote(parent + '/' + c)} && mount --bind /tmp/.pyphys-open/{n}/{shlex.quote(c)}"
                    f" {shlex.quote(parent + '/' + c)}"
                )
        inner = " && ".join(
            mounts
            + [f"exec setpriv --reuid={uid} --regid={gid} --clear-groups --inh-caps=-all -- sh -c {shlex.quote(cmd)}"]
        )
        return self.run(f"unshare --mount --propagation private sh -c {shlex.quote(inner)}", timeout=timeout)

    def load_module(self, **params: object) -> None:
        """(Re)load pyphys.ko with ``params`` (e.g. ``mem_device=1``)."""
        if not self.ko:
            self.ko = kernels.build_module(self.kernel, quiet=self.quiet)
        self.run("rmmod pyphys 2>/dev/null; true")
        args = " ".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in params.items())
        res = self.run(f"insmod {shlex.quote(self.ko)} {args}")
        if res.rc != 0:
            raise LabError(f"insmod {self.ko} {args} failed in the {self.kernel_name} guest: {res.err.strip()}")

    def unload_module(self) -> Result:
        """rmmod pyphys; returns the command result."""
        return self.run("rmmod pyphys")


def _default_guest_shell(ko: str) -> str:
    """A login shell for the guest: this venv's bin on PATH (vng does not pass the host's
    PATH through), pyphys.ko loaded, then an interactive bash. Lives in the cache, which the
    guest sees (read-only) at the same path."""
    path = os.path.join(paths.cache_dir(), f"guest-shell-{os.getpid()}.sh")
    with open(path, "w") as f:
        f.write(
            "#!/bin/bash\n"
            f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH\n"
            f"export PYTHONPATH={shlex.quote(str(REPO))}\n"
            f"insmod {shlex.quote(ko)} && echo 'pyphys.ko loaded: ls -l /sys/kernel/pyphys'\n"
            "exec /bin/bash -i\n"
        )
    os.chmod(path, 0o755)
    return path


def interactive_shell(
    kernel: str = "lab",
    memory: str = "1G",
    kvm: bool = False,
    *,
    shell: str | None = None,
    rwdir: str | None = None,
    shm_path: str | None = None,
    shm_data: bytes = b"",
    intro: str | None = None,
    cpu: str | None = None,
    append: tuple[str, ...] | list[str] = (),
    swap_path: str | None = None,
) -> int:
    """Boot ``kernel`` with the lab devices and give the user a shell in it; returns vng's status.

    For the classroom labs (:func:`pyphys.labs.start`): ``shell`` is the guest's login shell
    (vng --shell), ``rwdir`` a host directory shared read-write at the same path, ``shm_path``
    and ``shm_data`` the ivshmem backing file and what it starts with, ``intro`` replaces the
    message printed before booting; ``cpu``, ``append`` and ``swap_path`` as for :class:`LabVM`.
    """
    k = kernels.resolve(kernel)
    ko = kernels.build_module(k)
    byte_compile()
    vng, env = _vng()
    shm = shm_path or f"/dev/shm/pyphys-ivshmem-shell-{os.getpid()}"
    with open(shm, "wb") as f:
        f.truncate(IVSHMEM_SIZE)
        f.write(shm_data)
    own_shell = shell is None
    if own_shell:
        shell = _default_guest_shell(ko)
    print(
        intro
        or f"pyphys lab: booting the {kernel} kernel {k.release} under QEMU "
        f"({'KVM' if kvm else 'TCG, about 20-60 s'}); the host's files are the guest's root.\n"
        f"  pyphys.ko is loaded at login; `pyphys` is on PATH\n"
        f"  ivshmem BAR2 is backed by the host file {shm}\n"
        f"  leave with:       exit  (or Ctrl-D)",
        file=sys.stderr,
    )
    opts = qemu_device_opts(shm, None, swap_path=swap_path, cpu=cpu)
    argv = [vng] + vng_argv(k, kvm=kvm, memory=memory, cpus=2, qemu_opts=opts, command=None, rwdir=rwdir, append=append)
    if shell:
        argv += ["--shell", shell]
    try:
        return subprocess.call(argv, env=env, cwd=str(REPO))
    finally:
        for path in [shm] + ([shell] if own_shell else []):
            try:
                os.unlink(path)
            except OSError:
                pass


def byte_compile() -> None:
    """Bring this checkout's .pyc files up to date on the host before a boot.

    The guest sees the host's files read-only, so it cannot write .pyc files itself: every
    module edited since the host last imported it would be compiled from source at every
    guest start (0.75 s of a 3.7 s `pyphys dump` under TCG). pip does the same at install.
    """
    import compileall

    pkg = os.path.dirname(os.path.abspath(__file__))
    if os.access(pkg, os.W_OK):
        compileall.compile_dir(pkg, quiet=2, workers=1)


def _interpreter_paths() -> list[str]:
    """What an unprivileged guest process needs to reach to run this checkout's Python."""
    import sysconfig

    import pyphys

    dirs = [sys.prefix, sys.base_prefix, os.path.dirname(pyphys.__file__)]
    dirs += [sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    # a path inside each directory, so that the directory itself must be searchable too
    return [os.path.realpath(sys.executable)] + [os.path.join(os.path.realpath(d), "-") for d in dirs if d]


def _closed_ancestors(paths: list[str]) -> dict[str, set[str]]:
    """Directories on ``paths`` that others may not search, with the child each path needs."""
    import stat

    closed: dict[str, set[str]] = {}
    for path in paths:
        parts = path.strip("/").split("/")
        for i in range(len(parts) - 1):
            parent = "/" + "/".join(parts[:i])
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                closed.setdefault(parent.rstrip("/") or "/", set()).add(parts[i])
    return closed


def pty_session(argv: list[str], prompt: bytes, commands: list[str], timeout: float = 600.0):
    """Run ``argv`` on a pseudo-terminal in the repository, as a person at a terminal would: wait
    for ``prompt``, type ``commands`` on one line (the last one should end the session).
    Returns (seconds until the prompt appeared, or None; everything printed)."""
    import pty
    import select
    import signal

    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # child: the host side of `pyphys lab start`, as a student runs it
        os.chdir(str(REPO))
        os.execv(argv[0], argv)
    buf, to_prompt = b"", None
    try:
        while time.monotonic() < t0 + timeout:
            ready, _, _ = select.select([fd], [], [], 5)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the session ended
                break
            if not data:
                break
            buf += data
            if to_prompt is None and prompt in buf:
                to_prompt = time.monotonic() - t0
                os.write(fd, ("; ".join(commands) + "\n").encode())
        else:
            os.kill(pid, signal.SIGTERM)
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    return to_prompt, buf.decode("utf-8", "replace")
