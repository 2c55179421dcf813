"""Confirmation before removing a job, offering to delete its file too."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmRemove(ModalScreen[str | None]):
    """Dismisses with "keep" (remove the job, keep the file), "delete" (and the file) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, name: str, has_file: bool) -> None:
        super().__init__()
        self.job_name = name
        self.has_file = has_file

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(f"Remove {self.job_name} from the queue?", id="confirm-title")
            with Horizontal(id="confirm-buttons"):
                yield Button("Remove", variant="warning", id="confirm-keep")
                if self.has_file:
                    yield Button("Remove and delete file", variant="error", id="confirm-delete")
                yield Button("Cancel", id="confirm-cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss({"confirm-keep": "keep", "confirm-delete": "delete"}.get(event.button.id or ""))

    def action_cancel(self) -> None:
        self.dismiss(None)
