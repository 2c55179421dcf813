"""The Textual app driven by the Pilot, with a real supervisor on a temporary queue.

Every key of the main screen, the add dialog's validation, every command of the palette, quitting (the
supervisor the app started stops and records progress) and attaching to a headless runner. Jobs fetch
from the loopback fault server; throttled resources keep a job active while a test acts on it. Waits poll
the app or the queue with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, Static, TextArea

from getm_tui.app.rows import SORTS
from getm_tui.app.screens.add import AddDialog
from getm_tui.app.screens.confirm import ConfirmRemove
from getm_tui.app.screens.details import DetailsScreen
from getm_tui.app.screens.main import MainScreen
from getm_tui.queue.sqlite import Job
from tests.helpers.app_util import (
    active_with_progress,
    cells,
    drive,
    notified,
    select,
    state_in_app,
    table,
    table_ids,
    text_of,
    until,
)
from tests.helpers.runner_util import start

# -- a: the add dialog ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_opens_the_add_dialog_typing_a_url_and_enter_adds_it(env):
    data = os.urandom(300_000)
    url = env.server.add("/typed.bin", data)
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        # Escape cancels: nothing is added.
        await pilot.press("a")
        dialog = await until(pilot, lambda: isinstance(app.screen, AddDialog) and app.screen, "the dialog")
        await pilot.press(*"http://x")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        assert env.jobs() == []

        await pilot.press("a")
        dialog = await until(pilot, lambda: isinstance(app.screen, AddDialog) and app.screen, "the dialog")
        assert app.focused is dialog.query_one("#add-urls", TextArea)  # the URL field has the focus
        await pilot.press(*"http://x", "ctrl+j", "h")  # ctrl+j: a new line, for a second URL
        assert dialog.query_one("#add-urls", TextArea).text == "http://x\nh"
        dialog.query_one("#add-urls", TextArea).clear()
        await pilot.press(*url)
        await pilot.press("enter")  # Enter adds
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        [job] = await until(pilot, env.jobs, "the job in the queue")
        assert (job.url, job.directory, job.concurrency) == (url, str(env.out), env.settings.concurrency)
        await until(pilot, lambda: state_in_app(app, job.id) == "done", "the job done in the app")
        assert (env.out / "typed.bin").read_bytes() == data
        assert notified(app, "added 1 job(s)")

    drive(app, scenario)


@pytest.mark.slow
def test_add_dialog_validation_shows_errors_in_the_dialog(env, tmp_path):
    url = env.server.add("/v.bin", os.urandom(1000))
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("a")
        dialog = await until(pilot, lambda: isinstance(app.screen, AddDialog) and app.screen, "the dialog")
        urls = dialog.query_one("#add-urls", TextArea)
        fields = {k: dialog.query_one(f"#add-{k}", Input) for k in ("dir", "name", "conns", "checksum")}
        error = dialog.query_one("#add-error", Static)

        async def attempt(submit: str, text: str, expect: str, **values: str) -> None:
            urls.text = text
            defaults = {"dir": str(env.out), "name": "", "conns": "2", "checksum": ""}
            for key, value in {**defaults, **values}.items():
                fields[key].value = value
            error.update("")
            if submit == "enter-in-urls":
                urls.focus()
                await pilot.press("enter")
            elif submit == "enter-in-input":
                fields["name"].focus()
                await pilot.press("enter")
            else:
                await pilot.press("ctrl+s")
            await until(pilot, lambda: text_of(error), f"an error for {expect!r}", 5)
            assert text_of(error).startswith("✗ ") and expect in text_of(error), text_of(error)
            assert app.screen is dialog  # still open, nothing added
            assert urls.text == text

        await attempt("enter-in-urls", "", "enter at least one URL")
        await attempt("enter-in-urls", "   \n# only a comment\n", "enter at least one URL")
        await attempt("enter-in-urls", "example.org/file.bin", "no scheme")
        await attempt("enter-in-input", "gopher://example.org/f", "unsupported URL scheme 'gopher'")
        await attempt("ctrl+s", f"{url}\nhttp://", "(no host)")
        await attempt("ctrl+s", f"{url}\nhttp://a b", "line 2")
        await attempt("ctrl+s", url, "directory does not exist", dir=str(tmp_path / "missing"))
        await attempt("ctrl+s", f"{url}\n{url}", "a name can be given for one URL only", name="x.bin")
        await attempt("ctrl+s", url, "plain file name", name="sub/x.bin")
        await attempt("ctrl+s", url, "connections must be between 1 and 64", conns="0")
        await attempt("ctrl+s", url, "connections must be between 1 and 64", conns="65")
        await attempt("ctrl+s", url, "not ALGORITHM:HEX", checksum="deadbeef")
        await attempt("ctrl+s", url, "unknown checksum algorithm", checksum="sha999:00")
        await attempt("ctrl+s", url, "must be 64 hex digits", checksum="sha256:abcd")
        await attempt("ctrl+s", url, "not hexadecimal", checksum="md5:xyz")
        await attempt(
            "ctrl+s", f"{url}\n{url}", "a checksum can be given for one URL only", checksum="md5:" + "0" * 32
        )
        # Typing letters in the connections field does nothing: it takes whole numbers only.
        fields["conns"].value = ""
        fields["conns"].focus()
        await pilot.press("x", "1", "y", "2")
        assert fields["conns"].value == "12"
        assert env.jobs() == []

        # Put right, the same dialog adds the job (Enter in a field submits too).
        urls.text = url
        fields["name"].value = "named.bin"
        fields["checksum"].value = "md5:" + hashlib.md5(env.server.resource("/v.bin").data).hexdigest()
        fields["name"].focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        [job] = await until(pilot, env.jobs, "the job")
        assert (job.name, job.concurrency, job.checksums) == ("named.bin", 12, [fields["checksum"].value])
        await until(pilot, lambda: (env.job(job.id) or job).state == "done", "the job done")
        assert env.job(job.id).verdict == "verified"  # type: ignore[union-attr]
        assert (env.out / "named.bin").exists()

    drive(app, scenario)


@pytest.mark.slow
def test_a_paste_of_three_lines_adds_three_jobs(env):
    blobs = {f"p{i}.bin": os.urandom(50_000 + i) for i in range(3)}
    urls = [env.server.add(f"/{name}", data) for name, data in blobs.items()]
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("a")
        dialog = await until(pilot, lambda: isinstance(app.screen, AddDialog) and app.screen, "the dialog")
        app.post_message(events.Paste("\n".join(urls) + "\n"))  # as a terminal delivers a paste
        area = dialog.query_one("#add-urls", TextArea)
        await until(pilot, lambda: area.text.count("\n") == 3, "the pasted text")
        await pilot.click("#add-ok")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        jobs = await until(pilot, lambda: len(env.jobs()) == 3 and env.jobs(), "three jobs")
        assert [j.url for j in jobs] == urls
        await until(pilot, lambda: all(state_in_app(app, j.id) == "done" for j in jobs), "all three done")
        for name, data in blobs.items():
            assert (env.out / name).read_bytes() == data

    drive(app, scenario)


# -- space, r, delete -----------------------------------------------------------------------------


@pytest.mark.slow
def test_space_pauses_and_resumes_the_selected_job(env):
    [job_id] = env.add(env.slow("pause.bin"))
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, job_id)
        await until(pilot, lambda: (env.job(job_id) or Job).bytes_done > 0, "progress recorded")  # type: ignore[arg-type]
        await select(pilot, job_id)
        await pilot.press("space")
        await until(pilot, lambda: env.job(job_id).state == "paused", "paused in the queue")  # type: ignore[union-attr]
        await until(pilot, lambda: state_in_app(app, job_id) == "paused", "paused in the app")
        await until(pilot, lambda: job_id not in app.live, "the job gone from the live snapshot")
        kept = env.job(job_id).bytes_done  # type: ignore[union-attr]
        assert kept > 0
        assert cells(app, job_id)[1] == "paused"
        await pilot.press("space")
        await until(pilot, lambda: state_in_app(app, job_id) == "active", "running again")
        await until(
            pilot, lambda: job_id in app.live and app.live[job_id].done >= kept, "resumed from progress"
        )

    drive(app, scenario)


@pytest.mark.slow
def test_r_retries_the_selected_failed_job(env):
    late = env.server.base_url + "/late.bin"
    [failed, ok] = env.add(late, env.small("ok.bin"))
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: state_in_app(app, failed) == "failed", "the 404 to fail the job")
        await until(pilot, lambda: state_in_app(app, ok) == "done", "the other job done")
        await select(pilot, ok)
        await pilot.press("r")  # only failed jobs are retried
        await until(pilot, lambda: notified(app, "only failed jobs are retried"), "the notice")
        assert env.job(ok).state == "done"  # type: ignore[union-attr]
        data = os.urandom(200_000)
        env.server.add("/late.bin", data)  # the file appears on the server
        await select(pilot, failed)
        await pilot.press("r")
        await until(pilot, lambda: state_in_app(app, failed) == "done", "the retried job done")
        assert (env.out / "late.bin").read_bytes() == data
        job = env.job(failed)
        assert job is not None and job.error is None and job.attempts == 1

    drive(app, scenario)


@pytest.mark.slow
def test_delete_asks_first_and_offers_to_delete_the_file(env):
    keep, gone = env.add(env.small("keep.bin"), env.small("gone.bin"))
    [running] = env.add(env.slow("running.bin"))
    app = env.app()

    async def confirm(pilot: Pilot, job_id: int) -> ConfirmRemove:
        await select(pilot, job_id)
        await pilot.press("delete")
        return await until(
            pilot, lambda: isinstance(app.screen, ConfirmRemove) and app.screen, "the question"
        )

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: state_in_app(app, keep) == state_in_app(app, gone) == "done", "two done")
        await active_with_progress(pilot, env, running)

        # Escape (or Cancel) keeps everything.
        dialog = await confirm(pilot, keep)
        assert "keep.bin" in text_of(dialog.query_one("#confirm-title", Static))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the question to close")
        await confirm(pilot, keep)
        await pilot.click("#confirm-cancel")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the question to close")
        assert env.job(keep) is not None

        # "Remove": the job goes, its file stays.
        await confirm(pilot, keep)
        await pilot.click("#confirm-keep")
        await until(pilot, lambda: keep not in app.rows and env.job(keep) is None, "the job removed")
        assert (env.out / "keep.bin").exists()

        # "Remove and delete file": both go.
        await confirm(pilot, gone)
        await pilot.click("#confirm-delete")
        await until(pilot, lambda: gone not in app.rows and env.job(gone) is None, "the job removed")
        assert not (env.out / "gone.bin").exists()

        # A running job has no file yet: no such button; removing it stops it and leaves nothing.
        part = next(env.out.glob("running.bin*"))
        dialog = await confirm(pilot, running)
        assert not dialog.query("#confirm-delete")
        await pilot.click("#confirm-keep")
        await until(pilot, lambda: env.job(running) is None and running not in app.live, "the job removed")
        await until(pilot, lambda: not part.exists(), "the partial file removed")
        assert sorted(p.name for p in env.out.iterdir()) == ["keep.bin"]

    drive(app, scenario)


# -- + and -, [ and ] -----------------------------------------------------------------------------


@pytest.mark.slow
def test_plus_and_minus_change_the_connections_of_a_running_job(env):
    [job_id] = env.add(env.slow("conns.bin"), concurrency=2)
    app = env.app()

    async def next_snapshot(pilot: Pilot) -> None:
        """Each snapshot from the supervisor replaces `app.live` with a new dict."""
        marker = app.live
        await until(pilot, lambda: app.live is not marker, "a snapshot")

    async def step(pilot: Pilot, key: str, want: int) -> None:
        await pilot.press(key)
        await until(pilot, lambda: env.job(job_id).concurrency == want, f"concurrency {want} in the queue")  # type: ignore[union-attr]
        # The supervisor changed the row and the running job's control together: a snapshot taken
        # after that (one already on its way may be older) says so.
        await next_snapshot(pilot)
        await next_snapshot(pilot)
        assert app.live[job_id].concurrency == want

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, job_id)
        assert app.live[job_id].concurrency == 2
        await select(pilot, job_id)
        await step(pilot, "plus", 3)
        # The engine opens the third connection while the job runs.
        await until(pilot, lambda: app.live[job_id].connections == 3, "three connections")
        # The table shows live values within a redraw interval (they are throttled under load).
        await until(pilot, lambda: cells(app, job_id)[6] == "3/3", "3/3 in the Conns column")
        await step(pilot, "minus", 2)
        await step(pilot, "minus", 1)
        await until(pilot, lambda: app.live[job_id].connections == 1, "one connection")
        await pilot.press("minus")  # never below one
        await next_snapshot(pilot)
        await next_snapshot(pilot)
        assert env.job(job_id).concurrency == 1 and app.live[job_id].concurrency == 1  # type: ignore[union-attr]

    drive(app, scenario)


@pytest.mark.slow
def test_plus_on_a_queued_job_sets_its_connections_for_later(env):
    env.settings.max_active = 1
    [running, waiting] = env.add(env.slow("r.bin"), env.slow("w.bin"), concurrency=None)
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, running)
        await select(pilot, waiting)
        assert state_in_app(app, waiting) == "queued"
        await pilot.press("plus")  # from the default (settings.concurrency = 2)
        await until(pilot, lambda: env.job(waiting).concurrency == 3, "concurrency 3")  # type: ignore[union-attr]
        await pilot.press("minus", "minus", "minus")
        await until(pilot, lambda: env.job(waiting).concurrency == 1, "concurrency 1")  # type: ignore[union-attr]

    drive(app, scenario)


@pytest.mark.slow
def test_brackets_change_priority_and_the_next_job_to_run(env):
    env.settings.max_active = 1
    first, second, third = env.add(env.slow("1.bin"), env.slow("2.bin"), env.slow("3.bin"))
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, first)
        await select(pilot, second)
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: env.job(second).priority == -1, "priority -1")  # type: ignore[union-attr]
        await until(pilot, lambda: app.rows[second].job.priority == -1, "the app to see it")
        await select(pilot, third)
        await pilot.press("right_square_bracket", "right_square_bracket")  # quick presses add up
        await until(pilot, lambda: env.job(third).priority == 2, "priority 2")  # type: ignore[union-attr]
        await until(pilot, lambda: app.rows[third].job.priority == 2, "the app to see it")
        # Pausing the running job frees its slot: the highest priority runs next, not the oldest.
        await select(pilot, first)
        await pilot.press("space")
        await until(pilot, lambda: state_in_app(app, third) == "active", "the third job to start")
        assert state_in_app(app, second) == "queued"

    drive(app, scenario)


# -- enter, /, s ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_enter_shows_the_details_of_the_selected_job(env):
    [job_id] = env.add(env.slow("detail.bin"), concurrency=2)
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, job_id)
        await until(pilot, lambda: app.rows[job_id].job.info, "the probe recorded")
        await select(pilot, job_id)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen, "details")
        assert screen.job_id == job_id
        head = screen.query_one("#details-head", Static)
        await until(pilot, lambda: "detail.bin" in text_of(head) and "active" in text_of(head), "the head")
        assert env.server.base_url in text_of(head) and "connections 2/2" in text_of(head)
        seg_map = screen.query_one("#details-map", Static)
        await until(pilot, lambda: "▓" in text_of(seg_map), "parts in flight on the segment map")
        assert "parts" in text_of(seg_map)
        conns = screen.query_one("#details-conns", Static)
        await until(pilot, lambda: "#1 " in text_of(conns), "per-connection rates")
        headers = screen.query_one("#details-headers", Static)
        assert "Content-Length: 67108864" in text_of(headers)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "back to the queue")
        # Enter again, and q goes back too (it does not quit from the details screen).
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen), "details")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "back to the queue")
        assert app.mode == "started" and app.return_code is None

    drive(app, scenario)


@pytest.mark.slow
def test_slash_filters_by_name(env):
    ids = env.add(*(env.small(n) for n in ("alpha.bin", "beta.bin", "gamma.bin")))
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: all(state_in_app(app, i) == "done" for i in ids), "all done")
        box = app.main.query_one("#filter", Input)
        assert not box.display
        await pilot.press("slash")
        assert box.display and app.focused is box
        await pilot.press(*"ETA")  # case-insensitive
        await until(pilot, lambda: table_ids(app) == [ids[1]], "only beta")
        assert "filter: 'ETA'" in text_of(app.main.query_one("#summary", Static))
        await pilot.press("enter")  # back to the table, the filter stays
        assert app.focused is table(app) and table_ids(app) == [ids[1]]
        await pilot.press("slash", "backspace", "backspace", "backspace", "m")
        await until(pilot, lambda: table_ids(app) == [ids[2]], "only gamma")
        await pilot.press("escape")  # clears and hides the filter
        await until(pilot, lambda: table_ids(app) == ids, "every job")
        assert not box.display and app.focused is table(app) and app.filter_text == ""

    drive(app, scenario)


@pytest.mark.slow
def test_s_cycles_the_sort_order(env):
    names = ("c.bin", "a.bin", "b.bin")
    sizes = {"c.bin": 3000, "a.bin": 1000, "b.bin": 2000}
    ids = env.add(*(env.small(n, sizes[n]) for n in names))
    app = env.app()
    by_name = dict(zip(names, ids, strict=True))

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: all(state_in_app(app, i) == "done" for i in ids), "all done")
        summary = app.main.query_one("#summary", Static)
        assert app.sort == "added" and table_ids(app) == ids
        await pilot.press("s")
        assert app.sort == "name" and "sort: name" in text_of(summary)
        assert table_ids(app) == [by_name["a.bin"], by_name["b.bin"], by_name["c.bin"]]
        await pilot.press("s", "s")
        assert app.sort == "size"
        assert table_ids(app) == [by_name["c.bin"], by_name["b.bin"], by_name["a.bin"]]
        for _ in range(len(SORTS) - 3):
            await pilot.press("s")
        assert app.sort == "added" and table_ids(app) == ids  # round again

    drive(app, scenario)


# -- q --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_q_quits_and_the_supervisor_stops_keeping_progress(env):
    [job_id] = env.add(env.slow("quit.bin"))
    app = env.app()
    pid: list[int] = []

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, job_id)
        await until(pilot, lambda: (env.job(job_id) or Job).bytes_done > 0, "progress recorded")  # type: ignore[arg-type]
        assert app.link is not None and app.link._proc is not None
        pid.append(app.link._proc.pid)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "the app to exit", 10)

    started = time.monotonic()
    drive(app, scenario)
    assert time.monotonic() - started < 60
    assert app.link is not None and app.link.mode == "disconnected"
    with pytest.raises(ProcessLookupError):  # gone (and reaped)
        os.kill(pid[0], 0)
    job = env.job(job_id)
    assert job is not None and job.state == "queued" and job.bytes_done > 0
    assert not os.path.exists(os.path.join(env.data_dir, "supervisor.sock"))


# -- the command palette --------------------------------------------------------------------------


async def run_command(pilot: Pilot, title: str) -> None:
    """ctrl+p, the command's title, Enter. The title arrives as a terminal delivers a paste (typing it
    key by key costs a second or two of searching per command)."""
    app = pilot.app
    await pilot.press("ctrl+p")
    palette = await until(pilot, lambda: isinstance(app.screen, CommandPalette) and app.screen, "the palette")
    app.post_message(events.Paste(title))
    commands = palette.query_one(CommandList)

    def top() -> str | None:
        if not commands.option_count or commands.highlighted is None:
            return None
        return str(commands.get_option_at_index(commands.highlighted).hit.text)  # type: ignore[attr-defined]

    await until(pilot, lambda: top() == title, f"{title!r} at the top of the palette")
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, CommandPalette), "the palette to close")
    await pilot.pause()


@pytest.mark.slow
def test_every_action_runs_from_the_command_palette(env):
    [running] = env.add(env.slow("palette.bin"))
    [done] = env.add(env.small("small.bin"))
    [failed] = env.add(env.server.base_url + "/absent.bin")
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, running)
        await until(pilot, lambda: state_in_app(app, done) == "done", "the small job done")
        await until(pilot, lambda: state_in_app(app, failed) == "failed", "the missing file failed")

        await run_command(pilot, "Add downloads")
        assert isinstance(app.screen, AddDialog)
        await pilot.press("escape")

        await select(pilot, running)
        await run_command(pilot, "More connections")
        await until(pilot, lambda: env.job(running).concurrency == 3, "3 connections")  # type: ignore[union-attr]
        await until(pilot, lambda: app.live[running].concurrency == 3, "3 in the snapshot")
        await run_command(pilot, "Fewer connections")
        await until(pilot, lambda: app.live[running].concurrency == 2, "2 in the snapshot")
        await run_command(pilot, "Raise priority")
        await until(pilot, lambda: app.rows[running].job.priority == 1, "priority 1")
        await run_command(pilot, "Lower priority")
        await until(pilot, lambda: app.rows[running].job.priority == 0, "priority 0")
        await run_command(pilot, "Details")
        assert isinstance(app.screen, DetailsScreen) and app.screen.job_id == running
        await pilot.press("escape")
        await run_command(pilot, "Pause or resume")
        await until(pilot, lambda: state_in_app(app, running) == "paused", "paused")
        await run_command(pilot, "Pause or resume")
        await until(pilot, lambda: state_in_app(app, running) == "active", "running again")

        await select(pilot, failed)
        await run_command(pilot, "Retry")
        await until(pilot, lambda: env.job(failed).attempts == 2, "a second attempt")  # type: ignore[union-attr]

        await select(pilot, done)
        await run_command(pilot, "Remove")
        assert isinstance(app.screen, ConfirmRemove)
        await pilot.click("#confirm-keep")
        await until(pilot, lambda: env.job(done) is None, "the job removed")

        await run_command(pilot, "Sort")
        assert app.sort == "name"
        await run_command(pilot, "Filter")
        box = app.main.query_one("#filter", Input)
        assert box.display and app.focused is box
        await pilot.press(*"palette")
        await until(pilot, lambda: table_ids(app) == [running], "the filter applied")

    drive(app, scenario)


# -- attaching to a headless runner ---------------------------------------------------------------


@pytest.mark.slow
def test_the_app_attaches_to_a_running_headless_runner_and_leaves_it_running(env):
    [job_id] = env.add(env.slow("runner.bin"))
    runner = start(env.data_dir, "run", "--json", env={"GETM_TUI_PART_SIZE": "1M"})
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: [lines.append(json.loads(x)) for x in runner.stdout],  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        assert app.mode == "attached"
        assert app.link is not None and app.link._proc is None  # it started no supervisor
        await active_with_progress(pilot, env, job_id)  # the runner's job, live in the app
        first = app.live[job_id].done
        await until(pilot, lambda: app.live[job_id].done > first, "more snapshots")
        assert "[attached]" in text_of(app.main.query_one("#summary", Static))
        # Commands reach the runner's supervisor.
        await select(pilot, job_id)
        await pilot.press("plus")
        await until(pilot, lambda: app.live[job_id].concurrency == 3, "3 connections in the snapshot")
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "the app to exit", 10)

    try:
        started = time.monotonic()
        while not any(e.get("event") == "start" for e in list(lines)):
            assert runner.poll() is None, runner.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() - started < 30, "the runner did not start"
            time.sleep(0.05)
        drive(app, scenario)
        # The runner goes on: its job keeps running and progressing.
        assert runner.poll() is None
        progress = [e for e in lines if e.get("event") == "progress"]
        deadline = time.monotonic() + 10
        while len([e for e in lines if e.get("event") == "progress"]) <= len(progress) + 1:
            assert time.monotonic() < deadline, "no progress after the app left"
            time.sleep(0.05)
        assert runner.poll() is None and env.job(job_id).state == "active"  # type: ignore[union-attr]
    finally:
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(timeout=15)
    assert code == 0, runner.stderr.read()  # type: ignore[union-attr]
    job = env.job(job_id)
    assert job is not None and job.state == "queued" and job.bytes_done > 0


# -- a queue that cannot be used ------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_queue_is_backed_up_and_the_app_goes_on(env):
    os.makedirs(env.data_dir, mode=0o700)
    garbage = b"this is not a database" * 500
    Path(env.data_dir, "queue.sqlite3").write_bytes(garbage)
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        # The supervisor the app started backs the file up and starts an empty queue; the app says so.
        recovered = "no job in it could be read: starting an empty queue"
        await until(pilot, lambda: notified(app, recovered), "the warning")
        assert app.mode in ("started", "attached")
        # The poller waited for the new file and reads it: a job added now shows up and runs.
        [job_id] = env.add(env.small("after.bin"))
        await until(pilot, lambda: job_id in app.rows, "the new job on screen")
        await until(pilot, lambda: app.rows[job_id].job.state == "done", "the job done", 30)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code == 0, "the app to exit", 10)

    drive(app, scenario)
    backups = [n for n in os.listdir(env.data_dir) if ".corrupt-" in n and not n.endswith(("-wal", "-shm"))]
    assert len(backups) == 1 and Path(env.data_dir, backups[0]).read_bytes() == garbage
