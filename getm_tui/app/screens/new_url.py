"""Giving a job a new URL, as when its signed URL expired: the old one shown without its secrets, and the
new one typed masked (a signed URL's query is its credential), validated here before it goes anywhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from getm_tui.engine.errors import UsageError
from getm_tui.engine.expiry import deadline_note
from getm_tui.engine.urls import redact, validate


class NewUrlDialog(ModalScreen[str | None]):
    """Dismisses with the new URL (validated), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, name: str, url: str) -> None:
        super().__init__()
        self.job_name = name
        self.old_url = url

    def compose(self) -> ComposeResult:
        note = deadline_note(self.old_url, None, None)
        with Vertical(id="new-url-dialog"):
            yield Label(f"New URL for {self.job_name}", id="new-url-title")
            yield Static(f"now  {redact(self.old_url)}", id="new-url-old", markup=False)
            if note is not None:
                yield Static(f"expires  {note[0]}", id="new-url-expiry", markup=False)
            yield Static(
                "It resumes from the parts fetched when the new URL names the same object "
                "(same size and ETag or Last-Modified), else starts over.",
                id="new-url-hint",
            )
            yield Input(placeholder="https://... (hidden as typed)", password=True, id="new-url-input")
            yield Static("", id="new-url-error")
            with Horizontal(id="new-url-buttons"):
                yield Button("Use it", variant="primary", id="new-url-ok")
                yield Button("Cancel", id="new-url-cancel")

    def on_mount(self) -> None:
        self.query_one("#new-url-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new-url-ok":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_submit(self) -> None:
        try:
            url = validate(self.query_one("#new-url-input", Input).value)
        except UsageError as e:
            self.query_one("#new-url-error", Static).update(str(e))
            return
        self.dismiss(url)

    def action_cancel(self) -> None:
        self.dismiss(None)
