"""Top functions per process role from `py-spy record --format raw --subprocesses` output.

    py-spy record -f raw -o a.raw --subprocesses [--idle] -- getm-tui get URL -c 4 -o OUT -q
    python benchmarks/pyspy_top.py a.raw [more.raw ...] [--top 15]

A flame graph shows one process at a time well but not shares across a coordinator and its workers; this
groups the samples by role (the `getm-tui` process is the coordinator, spawned children are workers) and
prints, for each role, the share of its samples spent in each function: self (the leaf frame) and
inclusive (anywhere on the stack), with the frame's file:line dropped so a function counts once.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
# With --subprocesses a stack starts with its process and each ancestor: `process PID:"CMDLINE";` (the
# command line may itself contain `;`, so these are matched whole before splitting frames).
PROCESSES = re.compile(r'^(?:process \d+:"[^"]*"(?:;|$))+')


def role_of(processes: str) -> str:
    """The innermost process names the role: getm-tui's spawned children are its workers."""
    innermost = processes.rstrip(";").rsplit("process ", 1)[-1]
    if "resource_tracker" in innermost:
        return "resource tracker"
    if "spawn_main" in innermost or "multiprocessing" in innermost:
        return "workers"
    return "coordinator"


def function_of(frame: str) -> str:
    """`name (path:line)` -> `name (file)`: the line is dropped so one function is one row."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['func']} ({Path(m['file']).name})"


def load(paths: list[Path]) -> dict[str, tuple[Counter[str], Counter[str], int]]:
    """role -> (self counts, inclusive counts, total samples)."""
    roles: dict[str, tuple[Counter[str], Counter[str], int]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            m = PROCESSES.match(stack)
            role = role_of(m.group(0)) if m else "coordinator"
            rest = stack[m.end() :] if m else stack
            funcs = [function_of(f) for f in rest.split(";") if f] or ["(no Python frame)"]
            self_c, incl_c, total = roles.get(role, (Counter(), Counter(), 0))
            n = int(count)
            self_c[funcs[-1]] += n
            for f in set(funcs):
                incl_c[f] += n
            roles[role] = (self_c, incl_c, total + n)
    return roles


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("raw", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    for role, (self_c, incl_c, total) in sorted(load(args.raw).items()):
        print(f"== {role}: {total} samples")
        print("   self %  function")
        for func, n in self_c.most_common(args.top):
            print(f"   {100 * n / total:6.1f}  {func}")
        print("   incl %  function")
        for func, n in incl_c.most_common(args.top):
            print(f"   {100 * n / total:6.1f}  {func}")
        print()


if __name__ == "__main__":
    main()
