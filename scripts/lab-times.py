"""Each classroom lab as a student runs it: `pyphys lab start N` on a terminal, then the lab's
reference solution and `pyphys lab check N` typed at the prompt it opens.

Prints one row per lab: seconds from the command to the guest's prompt, seconds for the
whole session (solution + check + power-off), and whether the check passed.
Usage: python scripts/lab-times.py [N ...]   (default: every lab; `make lab-times`)
Exit status 0 only if every lab reached its prompt and passed its check.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str]) -> int:
    sys.path.insert(0, TOP)
    from pyphys import labs
    from pyphys.labvm import pty_session

    numbers = [int(a) for a in argv] or sorted(labs.LABS)
    rows, failed = [], False
    for n in numbers:
        lab = labs.get(n)
        with tempfile.TemporaryDirectory(prefix=f"pyphys-lab{n}-") as base:
            t0 = time.monotonic()
            to_prompt, out = pty_session(
                [sys.executable, "-m", "pyphys", "lab", "start", str(n), "--dir", base],
                f"[lab {n} ".encode(),
                [
                    f"export PYPHYS_JOURNAL=/tmp/lab-times-{n}.jsonl",
                    f"sh labs/solutions/lab{n}.sh >/tmp/lab{n}-solution.log 2>&1 || tail -20 /tmp/lab{n}-solution.log",
                    f"pyphys lab check {n}",
                    "echo CHECK-RC=$?",
                    "exit",
                ],
                timeout=900,
            )
            total = time.monotonic() - t0
        passed = to_prompt is not None and "CHECK-RC=0" in out
        failed |= not passed
        if not passed:
            sys.stderr.write(f"--- lab {n}: last output ---\n{out[-3000:]}\n")
        rows.append((n, lab.kernel, to_prompt, total, passed))
        print(
            f"[lab-times] lab {n}: prompt after {to_prompt or float('nan'):.1f} s, "
            f"session {total:.1f} s, check {'passed' if passed else 'FAILED'}",
            file=sys.stderr,
            flush=True,
        )
    print("| lab | kernel | `pyphys lab start N` to prompt | whole session (solution + check + exit) | check |")
    print("|---|---|---|---|---|")
    for n, kernel, to_prompt, total, passed in rows:
        prompt = f"{to_prompt:.1f} s" if to_prompt is not None else "no prompt"
        print(f"| {n} | {kernel} | {prompt} | {total:.1f} s | {'passed' if passed else 'FAILED'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
