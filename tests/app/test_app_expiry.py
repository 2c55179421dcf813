"""Signed URLs in the app: the details screen gives a URL's deadline (never its query) and warns, and `u`
gives a job a new URL through the supervisor, which then runs it to the end (the real app, its supervisor
and the loopback fault server, which refuses the old URL as S3 refuses one past its deadline)."""

from __future__ import annotations

import time

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from getm_tui.app.screens.details import DetailsScreen
from getm_tui.app.screens.main import MainScreen
from getm_tui.app.screens.new_url import NewUrlDialog
from tests.helpers.app_util import Env, active_with_progress, drive, select, state_in_app, text_of, until


def amz(signed: float, lifetime: int, signature: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed))
    return f"?X-Amz-Date={stamp}&X-Amz-Expires={lifetime}&X-Amz-Signature={signature}"


@pytest.mark.slow
def test_an_expired_job_gets_a_new_url_in_the_app_and_completes(env: Env):
    data = bytes(range(256)) * 4096
    url = env.server.add("/renew.bin", data, deny_after_requests=0)
    [job_id] = env.add(url + amz(time.time() - 7200, 3600, "OLDSECRET"))
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: state_in_app(app, job_id) == "failed", "the job failed")
        await select(pilot, job_id)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen, "details")
        # The head is filled once the screen has the job: wait for it rather than read it empty.
        head = await until(pilot, lambda: text_of(screen.query_one("#details-head", Static)), "the head")
        assert "UTC (expired: give the job a new URL)" in head and "signed URL expired (at " in head
        assert "SECRET" not in head and "X-Amz" not in head
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "back to the queue")

        await pilot.press("u")
        dialog = await until(pilot, lambda: isinstance(app.screen, NewUrlDialog) and app.screen, "the dialog")
        field = dialog.query_one("#new-url-input", Input)
        assert field.password  # a signed URL is a credential: not shown as typed
        assert text_of(dialog.query_one("#new-url-old", Static)).endswith("/renew.bin?***")
        field.value = "gopher://elsewhere/renew.bin"
        await pilot.press("enter")
        error = dialog.query_one("#new-url-error", Static)
        await until(pilot, lambda: "unsupported URL scheme" in text_of(error), "the URL refused")
        assert isinstance(app.screen, NewUrlDialog)
        env.server.resource(url).configure(deny_after_requests=None)  # the new URL is accepted
        field.value = url + amz(time.time(), 3600, "NEWSECRET")
        await pilot.press("enter")
        await until(pilot, lambda: state_in_app(app, job_id) == "done", "the job done under its new URL")

    drive(app, scenario)
    assert (env.out / "renew.bin").read_bytes() == data
    job = env.job(job_id)
    assert job is not None and "NEWSECRET" in job.url


@pytest.mark.slow
def test_details_warn_when_the_download_will_not_finish_before_its_url_expires(env: Env):
    # 64 MiB at 1 MiB/s over one connection: about a minute, for a URL good for 40 seconds more.
    url = env.slow("late.bin") + amz(time.time() - 3560, 3600, "SECRET")
    [job_id] = env.add(url, concurrency=1)
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await active_with_progress(pilot, env, job_id)
        await select(pilot, job_id)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen, "details")
        head = screen.query_one("#details-head", Static)
        await until(
            pilot, lambda: "will not finish before it at the current speed" in text_of(head), "warning"
        )
        assert "SECRET" not in text_of(head)

    drive(app, scenario)
