"""The app's command palette (ctrl+p): every action of the main screen, by name, with its key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from textual.app import SystemCommand

if TYPE_CHECKING:
    from getm_tui.app.app import GetmApp


def palette(app: GetmApp) -> Iterator[SystemCommand]:
    for title, help_text, action in (
        ("Add downloads", "Open the add dialog (a)", app.action_add),
        ("Pause or resume", "The selected job (space)", app.action_toggle_pause),
        ("Retry", "The selected failed job (r)", app.action_retry),
        (
            "New URL",
            "Replace the selected job's URL, as when a signed one expired (u)",
            app.action_new_url,
        ),
        ("Remove", "The selected job, optionally with its file (delete)", app.action_remove),
        ("More connections", "For the selected job, while it runs (+)", app.action_more_connections),
        ("Fewer connections", "For the selected job, while it runs (-)", app.action_fewer_connections),
        ("Raise priority", "The selected job runs sooner (])", app.action_raise_priority),
        ("Lower priority", "The selected job runs later ([)", app.action_lower_priority),
        ("Details", "Segments, connections, headers, history (enter)", app.action_details),
        ("Filter", "Show only jobs whose name matches (/)", app.main.action_filter),
        ("Sort", "Cycle the sort order (s)", app.action_cycle_sort),
    ):
        yield SystemCommand(title, help_text, action)
