"""Lab 3's grader: the hostname changed through /dev/mem, judged by the module's nodename_phys
(the kernel's own __pa_symbol), /proc/iomem, uname(2), the boot command line and the journal."""

from __future__ import annotations

import os

from pyphys.labs import probes
from pyphys.labs.grading import phys_slips
from pyphys.labs.probes import ProbeError


def grade(g) -> None:
    phys = probes.sysfs_number("kernel", "pyphys", "nodename_phys")
    region = probes.innermost_region(phys)
    mem = probes.dev_read(phys, 65).split(b"\0", 1)[0].decode("utf-8", "replace")
    now = os.uname().nodename
    g.expect(
        "nodename_phys",
        phys,
        "(the module computed it with __pa_symbol)",
        "is not the nodename's address: `pyphys ksym nodename`",
        show=hex,
        slips=phys_slips(phys),
    )
    g.expect(
        "nodename_region",
        region or "",
        "(/proc/iomem)",
        "is not the innermost region: `pyphys iomem NODENAME_PHYS`",
        normalize=lambda s: s.strip().lower(),
    )

    # the boot name: virtme-ng puts it on the kernel command line; else the journal's first old bytes
    writes = [e for e in probes.journal_entries() if e.kind == "phys" and e.addr == phys]
    boot = next((a.split("=", 1)[1] for a in probes.cmdline() if a.startswith("virtme_hostname=")), None)
    old = boot or (writes[0].old.split(b"\0", 1)[0].decode("utf-8", "replace") if writes else None)
    with g.needs("old_hostname"):
        if old is None:
            raise ProbeError(
                "cannot tell the boot hostname here (no virtme_hostname= on the kernel command line, "
                "no journaled write)"
            )
        g.expect("old_hostname", old, wrong="is not the name the VM booted with (`pyphys journal` shows the old bytes)")

    v = g.text("new_hostname")
    if v is None:
        return
    active = [e for e in writes if e.active and e.new.split(b"\0", 1)[0] == v.encode()]
    if now == old:
        g.wrong("new_hostname", "uname -n still shows the old name: change it through /dev/mem first")
    elif v != now:
        g.wrong("new_hostname", f"{v!r} is not what uname -n shows now")
    elif mem != now:
        g.error("new_hostname", f"/dev/mem at the nodename reads {mem!r} but uname(2) says {now!r} (report this)")
    elif active:
        g.ok("new_hostname", f"{v!r}: uname(2), /dev/mem and pyphys's journal (entry {active[-1].id}) agree")
    else:
        g.wrong(
            "new_hostname",
            f"uname -n shows {v!r}, but pyphys's journal has no write of it to the nodename: did you run "
            "`hostname` (sethostname(2))? Write it through /dev/mem with `pyphys hostname NAME` or "
            "`pyphys devmem nodename --string 'NAME\\x00'`",
        )
