"""Bucket prefixes through the app's add dialog, with a real supervisor: moto's S3 and gcp-storage-emulator.

A prefix is listed in a worker thread and its objects queued (queue/tree.py, as `getm-tui add` does); the
dialog's anonymous toggle is recorded on every job it makes. Waits poll the app or the queue.
"""

from __future__ import annotations

import os

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, TextArea

from getm_tui.app.screens.add import AddDialog
from getm_tui.app.screens.main import MainScreen
from tests.helpers.app_util import Env, drive, notified, state_in_app, until
from tests.helpers.gcsserver import GCSServer
from tests.helpers.s3server import S3Server


async def _add_through_dialog(pilot: Pilot, url: str, anonymous: bool = False) -> None:
    app = pilot.app
    await pilot.press("a")
    dialog = await until(pilot, lambda: isinstance(app.screen, AddDialog) and app.screen, "the dialog")
    dialog.query_one("#add-urls", TextArea).insert(url)
    if anonymous:
        await pilot.click("#add-anonymous")
        assert dialog.query_one("#add-anonymous", Checkbox).value
    await pilot.click("#add-ok")
    await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")


@pytest.mark.slow
def test_an_s3_prefix_in_the_dialog_queues_its_objects_and_again_skips_them(
    env: Env, s3_server: S3Server
) -> None:
    objects = {
        "data/a.bin": os.urandom(70_000),
        "data/sub/b.bin": os.urandom(90_000),
        "data/c.txt": b"c" * 10,
    }
    for key, data in objects.items():
        s3_server.put_object(key, data)
    s3_server.put_object("elsewhere.bin", b"not under the prefix")
    prefix = f"s3://{s3_server.bucket}/data/"
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await _add_through_dialog(pilot, prefix)
        jobs = await until(pilot, lambda: len(env.jobs()) == 3 and env.jobs(), "three jobs")
        assert sorted(j.url for j in jobs) == sorted(f"s3://{s3_server.bucket}/{k}" for k in objects)
        assert all(not j.info.get("anonymous") for j in jobs)
        await until(pilot, lambda: notified(app, f"{prefix}: queued 3, skipped 0"), "what came of it")
        await until(pilot, lambda: all(state_in_app(app, j.id) == "done" for j in jobs), "all done")
        for key, data in objects.items():
            assert (env.out / key.removeprefix("data/")).read_bytes() == data
        # The same prefix again: everything is present with the same size and checksum.
        await _add_through_dialog(pilot, prefix)
        await until(pilot, lambda: notified(app, f"{prefix}: queued 0, skipped 3"), "the skips")
        assert len(env.jobs()) == 3

    drive(app, scenario)


@pytest.mark.slow
def test_the_anonymous_toggle_reaches_a_gcs_prefix_jobs(env: Env, gcs_server: GCSServer) -> None:
    objects = {"set/x.bin": os.urandom(50_000), "set/deep/y.bin": os.urandom(60_000)}
    for name, data in objects.items():
        gcs_server.put_object(name, data)
    prefix = f"gs://{gcs_server.bucket}/set/"
    app = env.app()

    async def scenario(pilot: Pilot) -> None:
        await _add_through_dialog(pilot, prefix, anonymous=True)
        jobs = await until(pilot, lambda: len(env.jobs()) == 2 and env.jobs(), "two jobs")
        assert all(j.info.get("anonymous") is True for j in jobs)
        await until(pilot, lambda: notified(app, f"{prefix}: queued 2"), "what came of it")
        await until(pilot, lambda: all(state_in_app(app, j.id) == "done" for j in jobs), "both done")
        for name, data in objects.items():
            assert (env.out / name.removeprefix("set/")).read_bytes() == data

    drive(app, scenario)


@pytest.mark.slow
def test_a_failed_listing_is_told_and_a_prefix_takes_no_name(env: Env, s3_server: S3Server) -> None:
    app = env.app()
    missing = "s3://getm-no-such-bucket-here/p/"

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("a")
        dialog = await until(pilot, lambda: isinstance(app.screen, AddDialog) and app.screen, "the dialog")
        dialog.query_one("#add-urls", TextArea).insert(f"s3://{s3_server.bucket}/p/")
        dialog.query_one("#add-name").value = "x.bin"  # type: ignore[attr-defined]
        await pilot.click("#add-ok")
        await until(
            pilot, lambda: "prefix takes no name" in str(dialog.query_one("#add-error").render()), "error"
        )
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        await _add_through_dialog(pilot, missing)
        await until(pilot, lambda: notified(app, f"listing {missing} stopped"), "the failed listing")
        assert env.jobs() == []

    drive(app, scenario)
