"""The add dialog: URLs (a paste of several lines adds them all), directory, name, connections, checksum,
and whether buckets are read anonymously.

Everything is validated here, with the problem shown in the dialog; nothing reaches the queue until all
of it is right. A bucket prefix (`s3://bucket/dir/`, `gs://bucket/`) is not a job: the dialog hands it
back to be listed, off the event loop, and its objects queued (app/adding.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from getm_tui.engine.errors import UsageError
from getm_tui.queue.records import JobSpec

HINT = "Enter adds · ctrl+j new line · Esc cancels"


class UrlArea(TextArea):
    """The URL field: Enter adds (as in every other field); a new line comes from a paste or ctrl+j."""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.screen.action_submit()  # type: ignore[attr-defined]
            return
        if event.key in ("ctrl+j", "shift+enter"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)


@dataclass
class AddRequest:
    """What the dialog asks for: the jobs of its plain URLs, and the bucket prefixes whose objects are to
    be queued under `directory` with what their jobs share (`shared`: concurrency, info)."""

    specs: list[JobSpec]
    directory: str
    prefixes: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)


class AddDialog(ModalScreen[AddRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Add", show=False)]

    def __init__(self, default_dir: str, default_concurrency: int) -> None:
        super().__init__()
        self.default_dir = default_dir
        self.default_concurrency = default_concurrency

    def compose(self) -> ComposeResult:
        with Vertical(id="add-dialog"):
            yield Label("Add downloads", id="add-title")
            yield Label("URL (one per line: a paste of several lines adds them all)")
            yield UrlArea(id="add-urls", soft_wrap=False, show_line_numbers=False)
            with Horizontal(classes="add-row"):
                with Vertical():
                    yield Label("Directory")
                    yield Input(self.default_dir, id="add-dir")
                with Vertical(classes="narrow"):
                    yield Label("Name (one URL)")
                    yield Input(placeholder="from the server", id="add-name")
            with Horizontal(classes="add-row"):
                with Vertical(classes="narrow"):
                    yield Label("Connections")
                    yield Input(str(self.default_concurrency), id="add-conns", type="integer")
                with Vertical():
                    yield Label("Checksum (one URL)")
                    yield Input(placeholder="sha256:... md5:... crc32c:...", id="add-checksum")
            yield Static("", id="add-error")
            with Horizontal(id="add-buttons"):
                yield Checkbox(
                    "Anonymous", id="add-anonymous", tooltip="read public buckets without credentials"
                )
                yield Button("Add", variant="primary", id="add-ok")
                yield Button("Cancel", id="add-cancel")

    def on_mount(self) -> None:
        self.query_one("#add-dialog").border_subtitle = HINT
        self.query_one("#add-urls", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add-ok":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        try:
            request = self.validate()
        except UsageError as e:
            self.query_one("#add-error", Static).update(f"✗ {e}")
            return
        self.dismiss(request)

    def validate(self) -> AddRequest:
        """What to add, or UsageError naming the first problem."""
        from getm_tui.engine.checksum import expected_from
        from getm_tui.engine.urls import validate
        from getm_tui.queue.tree import is_prefix

        text = self.query_one("#add-urls", TextArea).text
        urls = [
            line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
        ]
        if not urls:
            raise UsageError("enter at least one URL")
        checked = []
        for n, url in enumerate(urls, 1):
            try:
                checked.append(validate(url))
            except UsageError as e:
                raise UsageError(f"{e} (line {n})") from None
        directory = os.path.expanduser(self.query_one("#add-dir", Input).value.strip() or self.default_dir)
        if not os.path.isdir(directory):
            raise UsageError(f"directory does not exist: {directory}")
        name = self.query_one("#add-name", Input).value.strip() or None
        if name and len(checked) > 1:
            raise UsageError("a name can be given for one URL only")
        if name and (os.sep in name or name in (".", "..")):
            raise UsageError("the name must be a plain file name")
        conns_text = self.query_one("#add-conns", Input).value.strip()
        try:
            conns = int(conns_text) if conns_text else None
        except ValueError:
            raise UsageError(f"connections must be a whole number, not {conns_text!r}") from None
        if conns is not None and not 1 <= conns <= 64:
            raise UsageError("connections must be between 1 and 64")
        checksum_text = self.query_one("#add-checksum", Input).value.strip()
        checksums = []
        if checksum_text:
            if len(checked) > 1:
                raise UsageError("a checksum can be given for one URL only")
            checksums = [f"{e.algorithm}:{e.value}" for e in expected_from(checksum_text.split())]
        prefixes = [url for url in checked if is_prefix(url, False)]
        if prefixes and (name or checksums):
            raise UsageError(f"a prefix takes no name and no checksum: {prefixes[0]}")
        # Recorded per job, as `add --anonymous` does: the runner reads that job's bucket without credentials.
        info = {"anonymous": True} if self.query_one("#add-anonymous", Checkbox).value else None
        directory = os.path.abspath(directory)
        specs: list[JobSpec] = [
            {
                "url": url,
                "directory": directory,
                "name": name,
                "concurrency": conns,
                "checksums": checksums,
                "info": info,
            }
            for url in checked
            if url not in prefixes
        ]
        return AddRequest(specs, directory, prefixes, {"concurrency": conns, "info": info})
