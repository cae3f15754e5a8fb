"""Starting a lab on the host: ``pyphys lab start N`` boots lab N's VM and opens its shell.

Everything the user named is validated before anything is written: the lab number, the guest
memory, the directory for $LABDIR, then the kernel and the module (which may need building).
Only then is $LABDIR made and the guest's shell, bashrc and ``pyphys`` wrapper written into it.
"""

from __future__ import annotations

import os

from pyphys import TYPE_CHECKING
from pyphys.errors import UsageError, oserrors

if TYPE_CHECKING:
    from pyphys.labs import Lab

MIN_MEMORY = 256 << 20  # the lab guest runs Python from the host's files; less leaves no page cache


def _q(s: str) -> str:
    import shlex

    return shlex.quote(str(s))


def labs_base(base: str | None = None) -> str:
    """The host directory holding each lab's $LABDIR: ``base`` (--dir), $PYPHYS_LABS_DIR, or
    ~/pyphys-labs. A directory the user named must exist or be creatable in an existing one."""
    named = base or os.environ.get("PYPHYS_LABS_DIR")
    if not named:
        return os.path.join(os.path.expanduser("~"), "pyphys-labs")
    path = os.path.abspath(os.path.expanduser(named))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--dir {named}: not a directory")
    if not os.path.isdir(os.path.dirname(path)):
        raise UsageError(f"--dir {named}: {os.path.dirname(path)} does not exist", "name an existing directory")
    return path


def lab_dir(number: int, base: str) -> str:
    """Lab ``number``'s $LABDIR under ``base``, shared read-write with its guest (made if missing)."""
    path = os.path.join(base, f"lab{number}")
    with oserrors(f"cannot make {path}"):
        os.makedirs(os.path.join(path, ".pyphys", "bin"), exist_ok=True)
    return path


def guest_shell_script(lab: Lab, *, python: str, repo: str, ko: str, labdir: str, page_types: str | None = None) -> str:
    """The guest's login shell for lab ``lab`` (virtme-ng ``--shell``): environment (with
    $PAGE_TYPES, the kernel's own pagemap tool built from the guest kernel's source), module,
    banner, bash."""
    params = " ".join(f"{k}={v}" for k, v in lab.module_params)
    tools = f"export PAGE_TYPES={_q(page_types)}\n" if page_types else ""
    rc = os.path.join(labdir, ".pyphys", "bashrc")
    doc = os.path.relpath(lab.doc, repo)
    return f"""#!/bin/sh
# Written by `pyphys lab start {lab.number}`: lab {lab.number}'s shell in the guest.
export PATH={_q(os.path.join(labdir, ".pyphys", "bin"))}:{_q(os.path.dirname(python))}:$PATH
export PYTHONPATH={_q(repo)} PYTHONDONTWRITEBYTECODE=1
export PYPHYS_LAB={lab.number} LABDIR={_q(labdir)} PYPHYS_KO={_q(ko)}
{tools}cd {_q(repo)}
if insmod "$PYPHYS_KO" {params} 2>/tmp/.pyphys-insmod.err; then
    echo "pyphys.ko loaded{(" (" + params + ")") if params else ""}: /sys/kernel/pyphys/"
else
    echo "insmod $PYPHYS_KO failed: $(cat /tmp/.pyphys-insmod.err)"
fi
cat <<'EOF'

  Lab {lab.number}: {lab.title}
  Read:    {doc}   (on the host, or here: less {doc})
  Results: {lab.results_path}   (`pyphys lab check {lab.number} --template > {lab.results_path}`, then edit it)
  Check:   pyphys lab check {lab.number}
  Leave:   exit   (the VM powers off; $LABDIR keeps your files on the host)

EOF
echo "  \\$LABDIR = $LABDIR (shared with the host, read-write)"
echo
exec /bin/bash --rcfile {_q(rc)} -i
"""


def guest_bashrc(lab: Lab) -> str:
    return f"PS1='[lab {lab.number} \\W]# '\nalias ll='ls -l'\n"


def start(number: int, *, kvm: bool = False, memory: str = "1G", base: str | None = None) -> int:
    """Boot lab ``number``'s VM and give the user its shell; returns the shell's exit status.

    Raises UsageError (no such lab, bad memory size or directory) before anything is written,
    and LabError (kernel, QEMU or virtme-ng missing).
    """
    import secrets
    import sys

    from pyphys import kernels, labs, labvm
    from pyphys.dialect import parse_size

    lab = labs.get(number)
    mem = parse_size(memory, "--memory")
    if mem < MIN_MEMORY:
        raise UsageError(f"--memory {memory}: the lab VM needs at least {MIN_MEMORY >> 20}M")
    base = labs_base(base)
    kernel = kernels.resolve(lab.kernel)
    ko = kernels.build_module(kernel)

    labdir = lab_dir(number, base)
    repo = str(labvm.REPO)
    shell = os.path.join(labdir, ".pyphys", "shell.sh")
    files = {
        shell: guest_shell_script(
            lab, python=sys.executable, repo=repo, ko=ko, labdir=labdir, page_types=kernel.page_types
        ),
        os.path.join(labdir, ".pyphys", "bashrc"): guest_bashrc(lab),
        os.path.join(labdir, ".pyphys", "bin", "pyphys"): (
            f'#!/bin/sh\nexec {_q(sys.executable)} {_q(os.path.join(repo, "bin", "pyphys"))} "$@"\n'
        ),
    }
    for path, text in files.items():
        with oserrors(f"cannot write {path}"), open(path, "w") as f:
            f.write(text)
            os.fchmod(f.fileno(), 0o755)
    shm = f"/dev/shm/pyphys-lab{number}-{os.getpid()}"
    shm_data = b""
    if number == 5:
        # the host's half of the shared-memory exercise: a message the student reads in BAR2
        shm_data = f"hello from the host {secrets.token_hex(4)}".encode() + b"\0"
    swap = None
    if number == 8:
        # lab 8's swap disk: a sparse file on the host, a virtio disk with serial pyphys-swap in the guest
        swap = os.path.join(labdir, "swapdisk.img")
        with oserrors(f"cannot create {swap}"), open(swap, "wb") as f:
            f.truncate(labvm.SWAP_SIZE)
    intro = (
        f"pyphys lab start {number}: {lab.title}\n"
        f"  booting the {lab.kernel} kernel {kernel.release} under QEMU "
        f"({'KVM, falling back to TCG' if kvm else 'TCG, about 20-60 s'}); the host's files are the guest's root\n"
        f"  lab text:  {lab.doc}\n"
        f"  $LABDIR:   {labdir} (read-write in the guest, kept after the VM stops)\n"
        f"  ivshmem:   BAR2 is backed by the host file {shm}"
        + ("  (look: hd " + shm + " | head)" if number == 5 else "")
        + "\n"
        + (f"  swap disk: serial pyphys-swap in the guest, backed by the host file {swap}\n" if swap else "")
    )
    return labvm.interactive_shell(
        lab.kernel,
        memory=f"{mem >> 20}M",
        kvm=kvm,
        shell=shell,
        rwdir=labdir,
        shm_path=shm,
        shm_data=shm_data,
        intro=intro,
        swap_path=swap,
    )
