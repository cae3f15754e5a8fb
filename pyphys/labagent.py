"""The guest half of the lab VM's command channel (runs inside the QEMU guest).

The host (:mod:`pyphys.labvm`) attaches a virtio-serial port named ``pyphys.agent`` whose
other end is a unix socket on the host. This agent finds the port through
/sys/class/virtio-ports/*/name, says it is ready, then runs one request at a time:
``{"id", "cmd", "timeout", "input"}`` -> ``{"id", "rc", "out", "err"}`` (JSON lines). The
command's exit status and output come back over that channel, not by scraping a console.
``{"op": "exit"}`` ends the agent and with it the guest.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import sys
import time

PORT_NAME = "pyphys.agent"


def find_port(name: str = PORT_NAME, wait: float = 30.0) -> str:
    """Return /dev/vportXpY of the virtio-serial port called ``name``."""
    deadline = time.monotonic() + wait
    loaded = False
    while True:
        for path in glob.glob("/sys/class/virtio-ports/*/name"):
            with open(path) as f:
                if f.read().strip() == name:
                    return "/dev/" + os.path.basename(os.path.dirname(path))
        if not loaded:
            # Debian's stock kernel builds virtio_console as a module.
            subprocess.run(["modprobe", "virtio_console"], capture_output=True)
            loaded = True
        if time.monotonic() > deadline:
            raise SystemExit(f"pyphys agent: no virtio-serial port named {name}")
        time.sleep(0.2)


def handle(req: dict) -> dict:
    """Run one request in ``sh -c`` and return its status and output."""
    inp = req.get("input")
    data = inp.encode() if isinstance(inp, str) else None
    env = dict(os.environ, **req.get("env", {}))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", req["cmd"]],
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=req.get("timeout") or None,
            env=env,
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = 124, exc.stdout or b"", (exc.stderr or b"") + b"\n[pyphys agent] timed out\n"
    resp = {"id": req.get("id"), "rc": rc, "seconds": round(time.monotonic() - started, 3)}
    if req.get("binary"):
        resp["out_b64"] = base64.b64encode(out).decode()
    else:
        resp["out"] = out.decode("utf-8", "replace")
    resp["err"] = err.decode("utf-8", "replace")
    return resp


def main() -> int:
    """Serve requests on the agent port until told to exit."""
    port = find_port()
    fd = os.open(port, os.O_RDWR)
    rfile = os.fdopen(fd, "rb", buffering=0)
    wfile = os.fdopen(os.dup(fd), "wb", buffering=0)

    def send(obj: dict) -> None:
        # virtio_console's port_fops_write() takes at most 32 KiB a call: loop on short writes.
        view = memoryview(json.dumps(obj).encode() + b"\n")
        while view:
            view = view[wfile.write(view) :]

    send({"ready": True, "uname": os.uname().release, "pid": os.getpid()})
    buf = b""
    while True:
        chunk = rfile.read(65536)
        if not chunk:
            time.sleep(0.05)  # host not connected (yet/any more): the port reads EOF
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            req = json.loads(line)
            if req.get("op") == "exit":
                send({"id": req.get("id"), "bye": True})
                return 0
            try:
                send(handle(req))
            except Exception as exc:  # the agent must survive a bad request
                send({"id": req.get("id"), "rc": 125, "out": "", "err": f"[pyphys agent] {exc!r}\n"})


if __name__ == "__main__":
    sys.exit(main())
