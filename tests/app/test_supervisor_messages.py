"""What the link's thread hands the app's event loop: only the supervisor's messages the app acts on. A
supervisor draining small files tells each job's start and end and logs a line for each; the app reads
those from the queue, and posting each would wake its loop for nothing."""

from __future__ import annotations

from pathlib import Path

from getm_tui.app.app import FromSupervisor, GetmApp
from getm_tui.config import Settings
from getm_tui.runner import protocol as P


def test_state_changes_and_info_lines_stay_on_the_link_thread(tmp_path: Path) -> None:
    app = GetmApp(str(tmp_path / "data"), Settings(download_dir=str(tmp_path)), connect=False, poll=False)
    posted: list[object] = []
    app.post_message = lambda message: posted.append(message) or True  # type: ignore[method-assign]
    snapshot = P.Snapshot(0.0, (), 0.0, 0)
    warning, error = P.LogLine(30, "job 2: the server is slow"), P.LogLine(40, "job 3: disk full")
    hello = P.Hello(1, str(tmp_path / "data"))
    for msg in (
        P.JobChanged(1, "active"),
        P.LogLine(20, "job 1: done"),
        P.JobChanged(1, "done", "unverified"),
        snapshot,
        warning,
        P.Finished(0, 1),
        error,
        hello,
        None,
    ):
        app._deliver(msg)
    assert all(isinstance(m, FromSupervisor) for m in posted)
    assert [m.payload for m in posted] == [snapshot, warning, error, hello, None]  # type: ignore[attr-defined]
