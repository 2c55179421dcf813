"""Every command that steers a job, given three ways: the verb (`getm-tui pause ID`...), a command to a
real supervisor, and the app's keys. Each path starts from the same queue and must leave the same rows,
the same history and the same files; the verb and the supervisor must tell the user the same lines.

A slow job of top priority holds the supervisor's one slot, so that the jobs the commands act on stay
where the commands leave them (a resumed job waits queued instead of running).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from getm_tui.app.app import GetmApp
from getm_tui.config import Settings
from getm_tui.queue.interface import open_queue
from getm_tui.queue.records import Finished
from getm_tui.queue.states import TRANSITIONS
from getm_tui.runner import protocol as P
from getm_tui.runner.link import SupervisorLink
from tests.helpers.app_util import select, until
from tests.helpers.runner_util import cli, wait_for

MiB = 1024 * 1024
UNREACHABLE = "http://127.0.0.1:9/never.bin"  # never fetched: the blocker holds the only slot
RENEWED = "http://127.0.0.1:9/never.bin?X-Amz-Signature=SECRET"  # the new URL of the job whose URL expired


@dataclass
class Queue:
    """One path's copy of the queue: its data dir, its download dir, and the ids of its jobs by role."""

    data_dir: str
    out: Path
    ids: dict[str, int]


def seed(tmp_path: Path, path_name: str, blocker_url: str) -> Queue:
    """The same jobs, in the same states and with the same ids, for every path."""
    out = tmp_path / path_name / "out"
    out.mkdir(parents=True)
    data_dir = str(tmp_path / path_name / "data")
    done_file = out / "done.bin"
    done_file.write_bytes(b"done")
    (out / "done.bin.getm-part").write_bytes(b"")
    with open_queue(data_dir) as q:
        roles = ["blocker", "queued", "paused", "failed", "done", "done2", "settings", "canceled", "expired"]
        specs = [{"url": UNREACHABLE, "directory": str(out), "info": {"insecure": True}} for _ in roles]
        specs[0] = {"url": blocker_url, "directory": str(out), "priority": 100}
        ids = dict(zip(roles, q.add_many(specs), strict=True))
        q.apply(TRANSITIONS["pause"], [ids["paused"]])
        for role in ("failed", "done", "done2"):
            assert q.claim(ids[role])
        q.fail(ids["failed"], "checksum mismatch", mismatch=True, kept=False)
        for role in ("done", "done2"):
            q.finish(ids[role], Finished(str(done_file), 4, "verified", "0000abcd", [{"algorithm": "md5"}]))
        q.remove([ids["canceled"]], False, running={ids["canceled"]})  # left by a supervisor that stopped
        assert q.claim(ids["expired"])
        q.fail(ids["expired"], "signed URL expired: HTTP 403 from http://127.0.0.1:9/never.bin", False, True)
    return Queue(data_dir, out, ids)


# (what, job role): the commands every path gives, in order; pause and retry of a done job are refused.
COMMANDS = [
    ("pause", "queued"),
    ("resume", "paused"),
    ("retry", "failed"),
    ("retry", "canceled"),
    ("pause", "done2"),
    ("retry", "done2"),
    ("rm", "done"),  # with its file
    ("new url", "expired"),  # retry --url, the supervisor's SetURL, the app's new-URL dialog
]
# Settings have no verb: the supervisor and the app set them.
PRIORITY, CONCURRENCY = 5, 7


def state(q: Queue) -> dict[str, Any]:
    """Rows, history and files, with what differs between copies (times, the directory) taken out."""
    prefix = str(q.out)
    with open_queue(q.data_dir) as queue:
        rows = {}
        for job in queue.jobs():
            role = next(r for r, i in q.ids.items() if i == job.id)
            if role == "blocker":
                continue
            row = {k: v for k, v in vars(job).items() if k not in ("created", "updated", "started")}
            row["directory"] = row["directory"].replace(prefix, "OUT")
            row["path"] = row["path"] and row["path"].replace(prefix, "OUT")
            row["finished"] = job.finished is not None
            events = [(e.kind, e.message.replace(prefix, "OUT")) for e in queue.events(job.id)]
            rows[role] = (row, events)
    files = sorted(p.name for p in q.out.iterdir() if not p.name.startswith("slow"))
    return {"rows": rows, "files": files}


def settings(q: Queue) -> Settings:
    return Settings(download_dir=str(q.out), part_size=1 * MiB, concurrency=2, max_active=1, retries=1)


def by_verb(q: Queue) -> list[str]:
    said = []
    for what, role in COMMANDS:
        extra = ["--delete-file"] if what == "rm" else []
        if what == "new url":
            what, extra = "retry", ["--url", RENEWED]
        out = cli(q.data_dir, what, str(q.ids[role]), *extra)
        assert out.returncode == 0, out.stderr
        said += [line.removeprefix("getm-tui: ") for line in out.stderr.splitlines()]
    return said


def blocker_active(q: Queue) -> bool:
    with open_queue(q.data_dir) as queue:
        return queue.get(q.ids["blocker"]).state == "active"


def settled(q: Queue) -> bool:
    """Every command has reached the queue (the last ones given are the settings)."""
    with open_queue(q.data_dir) as queue:
        job = queue.get(q.ids["settings"])
        return (job.priority, job.concurrency) == (PRIORITY, CONCURRENCY) and q.ids["done"] not in queue.ids()


def setting(q: Queue, field: str) -> Any:
    with open_queue(q.data_dir) as queue:
        return getattr(queue.get(q.ids["settings"]), field)


def by_supervisor(q: Queue) -> list[str]:
    link = SupervisorLink(q.data_dir, settings(q))
    assert link.open() == "started"
    said: list[str] = []
    # Not what the blocker's download logs (the supervisor forwards those as "job ID: ...").
    refusals = lambda: [m for m in said if not m.startswith(f"job {q.ids['blocker']}:")]  # noqa: E731
    reader = threading.Thread(
        target=link.read_forever,
        args=(lambda msg: isinstance(msg, P.LogLine) and said.append(msg.message),),
        daemon=True,
    )
    reader.start()
    try:
        wait_for(lambda: blocker_active(q))
        messages: dict[str, Any] = {"pause": P.Pause, "resume": P.Resume, "retry": P.Retry}
        for what, role in COMMANDS:
            ids = (q.ids[role],)
            if what == "new url":
                assert link.send(P.SetURL(ids[0], RENEWED))
                continue
            assert link.send(P.Remove(ids, delete_file=True) if what == "rm" else messages[what](ids))
        assert link.send(P.SetPriority(q.ids["settings"], PRIORITY))
        assert link.send(P.SetConcurrency(q.ids["settings"], CONCURRENCY))
        wait_for(lambda: settled(q))
        wait_for(lambda: len(refusals()) >= 2)  # the two refusals, told to this front end
    finally:
        link.close()
        reader.join(10)
    return refusals()


def by_app(q: Queue) -> None:
    app = GetmApp(q.data_dir, settings(q))

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: app.mode == "started", "the supervisor link")
        await until(pilot, lambda: blocker_active(q), "the blocker running")
        keys = {"pause": "space", "resume": "space", "retry": "r"}
        for what, role in COMMANDS:
            job_id = q.ids[role]
            await select(pilot, job_id)
            if what == "rm":
                await pilot.press("delete")
                await until(pilot, lambda: app.screen.query("#confirm-delete"), "the confirmation")
                await pilot.click("#confirm-delete")
            elif what == "new url":
                await pilot.press("u")
                await until(pilot, lambda: app.screen.query("#new-url-input"), "the new-URL dialog")
                app.screen.query_one("#new-url-input", Input).value = RENEWED
                await pilot.press("enter")
                await until(pilot, lambda job_id=job_id: app.rows[job_id].job.url == RENEWED, "the new URL")
            else:
                before = app.rows[job_id].job.state
                await pilot.press(keys[what])
                # The app knows the new state (or said why not) before the next key.
                await until(
                    pilot,
                    lambda job_id=job_id, before=before: (
                        app.rows[job_id].job.state != before or len(app._notifications) > 0
                    ),
                    f"{what} of {role}",
                )
                app.clear_notifications()
        await select(pilot, q.ids["settings"])
        # One press at a time, each waited for in the queue: a poll of the queue that lands between quick
        # presses may show the row as it was a press ago, and the next press counts from there.
        for key, field, values in (
            ("right_square_bracket", "priority", range(1, PRIORITY + 1)),
            ("plus", "concurrency", range(3, CONCURRENCY + 1)),  # from the default of 2
        ):
            for value in values:
                await pilot.press(key)
                await until(pilot, lambda f=field, v=value: setting(q, f) == v, f"{field} {value}")
        await until(pilot, lambda: settled(q), "the commands in the queue")

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await scenario(pilot)

    try:
        asyncio.run(main())
    finally:
        if app.link is not None:
            app.link.close()


@pytest.fixture
def blocker(fault_server: Any) -> str:
    return fault_server.add("/slow.bin", bytes(64 * MiB), rate_limit=MiB // 4)


@pytest.mark.slow
def test_each_command_leaves_the_same_rows_history_and_files_whichever_way_it_is_given(tmp_path, blocker):
    verb_q = seed(tmp_path, "verb", blocker)
    supervisor_q = seed(tmp_path, "supervisor", blocker)
    app_q = seed(tmp_path, "app", blocker)
    initial = state(verb_q)

    verb_said = by_verb(verb_q)
    # The settings have no verb: given through the queue interface, as the supervisor gives them.
    with open_queue(verb_q.data_dir) as q:
        q.set_priority(verb_q.ids["settings"], PRIORITY)
        q.set_concurrency(verb_q.ids["settings"], CONCURRENCY)
    supervisor_said = by_supervisor(supervisor_q)
    by_app(app_q)

    by_verb_state = state(verb_q)
    assert by_verb_state != initial
    assert state(supervisor_q) == by_verb_state
    assert state(app_q) == by_verb_state
    d2 = verb_q.ids["done2"]
    assert verb_said == supervisor_said == [f"job {d2} is done; not paused", f"job {d2} is done; not retried"]

    rows = by_verb_state["rows"]
    assert "done" not in rows and by_verb_state["files"] == []  # removed with its file and partial file
    assert rows["queued"][0]["state"] == "paused"
    assert rows["queued"][1] == [("command", "pause: queued -> paused")]
    assert rows["failed"][0]["state"] == "queued" and rows["failed"][0]["verdict"] is None
    assert rows["failed"][0]["error"] is None and rows["failed"][0]["attempts"] == 1
    assert rows["canceled"][0]["state"] == "queued" and rows["canceled"][0]["info"]["insecure"]
    assert rows["done2"] == initial["rows"]["done2"]
    expired = rows["expired"]
    assert (expired[0]["state"], expired[0]["url"], expired[0]["error"]) == ("queued", RENEWED, None)
    assert expired[1][-1] == ("command", "new url: failed -> queued: http://127.0.0.1:9/never.bin?***")
