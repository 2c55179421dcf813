"""Helpers for kill tests: the processes a test started (read from /proc), their sockets, and the bytes a
fault server sent them.

Everything here looks only at descendants of a process the test started, so a test never signals a
process of anyone else's.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from tests.helpers.faultserver import RequestRecord, Resource
from tests.helpers.runner_util import wait_for

#: The probe (the first request of every download) asks for digests; part requests do not.
PROBE_HEADER = "Want-Repr-Digest"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: str
    name: str = ""  # the kernel's name (/proc/PID/comm): getm-supervisor, getm-host-N, python3...


def processes() -> dict[int, Proc]:
    """Every process /proc shows now (those that vanish while we read are left out)."""
    out: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        out[int(name)] = Proc(int(name), int(fields[1]), int(fields[2]), fields[0], cmdline, comm)
    return out


def descendants(root: int, table: dict[int, Proc] | None = None) -> list[Proc]:
    """Living (not zombie) descendants of `root`, parents before children."""
    table = processes() if table is None else table
    children: dict[int, list[Proc]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p)
    out: list[Proc] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.state != "Z":
                out.append(child)
            todo.append(child.pid)
    return out


def fetch_workers(root: int) -> set[int]:
    """Pids of the fetch workers under `root`: the children of the multiprocessing fork server it runs
    (workers are forked from it, see getm_tui.engine.workers.START)."""
    table = processes()
    tree = descendants(root, table)
    servers = [
        p
        for p in tree
        if "multiprocessing.forkserver" in p.cmdline
        and "multiprocessing.forkserver" not in table.get(p.ppid, p).cmdline
    ]
    return {c.pid for s in servers for c in tree if c.ppid == s.pid}


def kill_group_and_wait(pgid: int, known: Iterable[int], timeout: float = 15.0) -> None:
    """SIGKILL the process group we started (its leader is our child), then wait until neither a
    member of the group nor any process we saw under it is left."""
    known = set(known)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_for(lambda: not group_left(pgid, known), timeout)


def group_left(pgid: int, known: Iterable[int]) -> list[Proc]:
    """Processes of group `pgid`, or among `known`, still running."""
    known = set(known)
    return [p for p in processes().values() if p.state != "Z" and (p.pgid == pgid or p.pid in known)]


def tcp_ports(pid: int) -> set[int]:
    """Local ports of the IPv4/IPv6 TCP sockets process `pid` holds."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def is_probe(r: RequestRecord) -> bool:
    return any(k.lower() == PROBE_HEADER.lower() for k in r.request_headers)


def first_byte(r: RequestRecord) -> int:
    """Where the body of a GET starts in the file (0 without a Range header)."""
    if not r.range:
        return 0
    m = _RANGE.match(r.range.strip())
    assert m, r.range
    return int(m[1])


def served(r: RequestRecord) -> tuple[int, int]:
    """The bytes of the file this request was sent, as [start, end)."""
    a = first_byte(r)
    return a, a + r.body_bytes


def gets(res: Resource, since: int = 0) -> list[RequestRecord]:
    return [r for r in res.requests[since:] if r.method == "GET"]


def in_flight(res: Resource, ports: set[int], left_at_least: int) -> list[RequestRecord]:
    """Part requests from `ports` still being sent, with at least `left_at_least` bytes to go."""
    return [
        r
        for r in gets(res)
        if r.client_port in ports
        and not is_probe(r)
        and r.status == 206
        and r.body_bytes > 0
        and r.body_length - r.body_bytes >= left_at_least
    ]


def overlap(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Pairs of intervals, one from each list, that share at least one byte."""
    return [(x, y) for x in a for y in b if max(x[0], y[0]) < min(x[1], y[1])]


def self_overlap(intervals: list[tuple[int, int]]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Pairs of intervals of one list that share at least one byte."""
    s = sorted(i for i in intervals if i[1] > i[0])
    return [(x, y) for x, y in zip(s, s[1:], strict=False) if y[0] < x[1]]
