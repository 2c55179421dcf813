"""The Textual app: watch and steer the queue.

It starts a supervisor (or attaches to one a headless runner runs) and talks to it only through protocol
messages; on a fleet's queue (PostgreSQL) it starts none, and steers through the database (fleet.py).
Nothing here waits on the network or the disk: the queue is read by a thread (queue_reader.py),
supervisor messages arrive through another, and both post messages to the event loop.

The app holds only a window of the queue: the rows around the table's view, in the order and filter
chosen, read by the queue itself (JobQueue.window, with indexes), so its memory and its work per change
do not grow with the queue's length. A new order or filter is applied at once to the rows held (exact
when they are the whole queue), and the window read from the queue follows.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from textual.app import App
from textual.message import Message
from textual.screen import Screen

from getm_tui.app.adding import add_request
from getm_tui.app.commands import palette
from getm_tui.app.fleet import RunnersSeen, fleet_rate, runners_text, steer_through_database
from getm_tui.app.queue_reader import QueueReader, QueueWindow
from getm_tui.app.rows import SORTS, JobRow, row_changed, sort_key
from getm_tui.app.screens.add import AddDialog, AddRequest
from getm_tui.app.screens.confirm import ConfirmRemove
from getm_tui.app.screens.details import DetailsScreen
from getm_tui.app.screens.main import MainScreen
from getm_tui.app.screens.new_url import NewUrlDialog
from getm_tui.config import Settings
from getm_tui.queue.errors import QueueError
from getm_tui.queue.interface import open_queue
from getm_tui.queue.location import is_database
from getm_tui.queue.records import Job, RunnerInfo
from getm_tui.queue.states import NEW_URL, PAUSE, RESUME, RETRY, clamp_concurrency
from getm_tui.queue.views import View
from getm_tui.runner import protocol as P
from getm_tui.runner.link import SupervisorLink

WINDOW_VIEWS = 4  # a window holds this many views' worth of rows: one and a half above, the rest below
MIN_VIEW_ROWS = 50  # the view's rows assumed before the table has a size
REDRAW_EVERY = 0.5
NOTIFY_LEVEL = 30  # a supervisor's log lines from warnings up are shown as notifications
TLS_OFF = "TLS certificate verification is off for every job (--insecure)"


class FromSupervisor(Message):
    def __init__(self, payload: Any) -> None:
        super().__init__()
        self.payload = payload


class GetmApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "getm-tui"

    def __init__(self, data_dir: str, settings: Settings, connect: bool = True, poll: bool = True) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.settings = settings
        # The queue it reads and writes: a fleet's database when one is set, else the data dir's file.
        self.location = settings.queue or data_dir
        # A fleet's queue: the runners run it; this app watches and steers through the database.
        self.fleet = is_database(self.location)
        connect = connect and not self.fleet
        self.runners: list[RunnerInfo] = []
        self.rows: dict[int, JobRow] = {}  # the window's rows
        self.order: list[int] = []  # their ids, as shown
        self.offset = 0  # the index of the window's first row in the view
        self.total = 0  # the jobs the view holds
        self.live: dict[int, P.LiveJob] = {}
        self.counts: dict[str, int] = {}
        self.total_rate = 0.0
        self.sort = SORTS[0]
        self.filter_text = ""
        self.mode = "connecting" if connect else "fleet" if self.fleet else "offline"
        self.link: SupervisorLink | None = SupervisorLink(data_dir, settings) if connect else None
        self._poll = poll
        self._stop = threading.Event()
        # What the poller reads: the view, and the window's first row and length (set here, read there).
        self.reader = QueueReader(
            self,
            self.location,
            int(settings.queue_timeout * 1000),
            (View(), 0, WINDOW_VIEWS * MIN_VIEW_ROWS),
            fleet=self.fleet,
        )
        self._frozen = False
        self._asked: dict[int, dict[str, int]] = {}  # job id -> settings asked for, not yet in the queue
        # Live snapshots come ten times a second; with a supervisor, redraw for them at most this often.
        self._throttle = REDRAW_EVERY if connect else 0.0
        self._pending: set[int] = set()
        self._redraw_timer: Any = None
        self._last_live_redraw = 0.0
        if connect:
            # multiprocessing starts its resource tracker with our stderr's descriptor; once Textual has
            # replaced sys.stderr that fails, so start it now, before the app takes the terminal.
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    @property
    def main(self) -> MainScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def on_mount(self) -> None:
        if self._poll:
            self.run_worker(self.reader.run, thread=True, group="poll", exit_on_error=False)
        if self.link is not None:
            self.run_worker(self._connect, thread=True, group="link", exit_on_error=False)
        self.set_interval(1.0, self._sample_rate)

    def on_unmount(self) -> None:
        self._stop.set()
        self.reader.stop.set()  # the reader's thread ends with the app
        # However the app ends (q, an exception, a test's end), a supervisor it started must stop and the
        # thread blocked reading the link must end: asyncio.run waits for every worker thread.
        if self.link is not None and self.link.mode != "disconnected":
            self.link.close()

    # -- background threads -----------------------------------------------------------------------

    def _ask(self, first: int, rows: int) -> None:
        """Have the poller read the window around the view's first row `first` (`rows` in view)."""
        rows = max(rows, 1)
        offset = max(0, first - rows * 3 // 2)
        self.reader.ask(
            (View(self.sort, self.filter_text), offset, WINDOW_VIEWS * max(rows, MIN_VIEW_ROWS // 2))
        )

    def _connect(self) -> None:
        assert self.link is not None
        try:
            self.mode = self.link.open()
        except OSError as e:
            self.mode = "disconnected"
            self.call_from_thread(self.notify, f"cannot reach the supervisor: {e}", severity="error")
            return
        if self._stop.is_set():  # the app ended while the supervisor was starting
            self.link.close()
            return
        self.link.read_forever(self._deliver)

    def _deliver(self, msg: Any) -> None:
        """On the link's thread: post to the event loop only what it acts on. A supervisor draining small
        files tells each job's start and end, which the app reads from the queue; a post costs a wake-up."""
        quiet = isinstance(msg, P.LogLine) and msg.level < NOTIFY_LEVEL
        if not (quiet or isinstance(msg, (P.JobChanged, P.Finished))):
            self.post_message(FromSupervisor(msg))

    # -- incoming ---------------------------------------------------------------------------------

    def on_queue_window(self, message: QueueWindow) -> None:
        if message.view != View(self.sort, self.filter_text):
            return  # read for an order or a filter since left: the poller reads the one now shown
        if not message.jobs and message.offset > 0:  # the queue got shorter than where the view is
            self._ask(max(0, message.total - 1), self.reader.want[2] // WINDOW_VIEWS)
        rows: dict[int, JobRow] = {}
        changed = set()
        for job in message.jobs:
            self._keep_asked(job)
            row = self.rows.get(job.id)
            if row is None:
                row = JobRow(job, self.live.get(job.id))
                changed.add(job.id)
            elif row_changed(row.job, job):
                row.job = job
                changed.add(job.id)
            rows[job.id] = row
        self.rows = rows
        for gone in self._asked.keys() - rows.keys():
            del self._asked[gone]
        self.order = [job.id for job in message.jobs]
        self.offset, self.total = message.offset, message.total
        if message.counts is not None:
            self.counts = message.counts
        self._redraw(changed)
        if not self._frozen:
            # What is loaded now (the widgets) lives as long as the app: out of the collector's sight, a
            # full collection no longer walks it. Frozen objects are still freed when nothing refers
            # to them.
            self._frozen = True
            gc.freeze()

    def on_runners_seen(self, message: RunnersSeen) -> None:
        self.runners = message.runners
        self.total_rate = fleet_rate(message.runners)
        if self._drawable():
            self.main.show_runners(runners_text(message.runners, message.now))
        self._redraw(set())

    def on_from_supervisor(self, message: FromSupervisor) -> None:
        msg = message.payload
        if isinstance(msg, P.Snapshot):
            before = set(self.live)
            self.live = {j.id: j for j in msg.jobs}
            self.total_rate = msg.rate
            changed = before | set(self.live)
            for job_id in changed:
                row = self.rows.get(job_id)
                if row is not None:
                    row.live = self.live.get(job_id)
            self._throttled_redraw(changed & set(self.rows))
        elif isinstance(msg, P.Hello):
            self.mode = self.link.mode if self.link else "attached"
            self._tls_notice(msg)
            self._redraw(set())
        elif isinstance(msg, P.Busy):
            self.run_worker(self._reattach, thread=True, group="link", exit_on_error=False)
        elif isinstance(msg, P.Fatal):  # it cannot run the queue: say why (it goes away next)
            self.notify(msg.message, severity="error", timeout=30)
        elif isinstance(msg, P.LogLine):
            if msg.level >= NOTIFY_LEVEL:
                self.notify(msg.message, severity="error" if msg.level >= 40 else "warning", timeout=6)
        elif msg is None:
            if self.mode not in ("stopping",):
                self.mode = "disconnected"
                self.notify("the supervisor went away", severity="error")
            self._redraw(set())

    def _tls_notice(self, hello: P.Hello) -> None:
        """Say when TLS verification is off for the whole queue, and when our --insecure cannot apply
        (the queue is run by a supervisor started without it: its settings are its own)."""
        if not hello.verify_tls:
            self.notify(TLS_OFF, severity="warning", timeout=30)
        elif not self.settings.verify_tls:
            self.notify(
                f"--insecure has no effect: the queue is run by process {hello.pid}, which verifies "
                "TLS certificates (restart it with --insecure, or add jobs with add --insecure)",
                severity="warning",
                timeout=30,
            )

    def _reattach(self) -> None:
        assert self.link is not None
        try:
            self.mode = self.link.reattach()
        except OSError as e:
            self.call_from_thread(self.notify, f"cannot reach the supervisor: {e}", severity="error")
            return
        self.link.read_forever(self._deliver)

    def _sample_rate(self) -> None:
        if self._drawable():
            self.main.push_rate(self.total_rate)

    # -- drawing ----------------------------------------------------------------------------------

    def _drawable(self) -> bool:
        """The main screen can be drawn on: it is composed, and the app is not shutting down (the
        interval timer and queued messages still fire while Textual removes the screens)."""
        return self.is_running and bool(self.screen_stack) and self.main.is_mounted

    def _throttled_redraw(self, changed: set[int]) -> None:
        """Live progress: at most one redraw per REDRAW_EVERY, whatever the snapshot rate."""
        self._pending |= changed
        if self._redraw_timer is not None:
            return
        wait = self._last_live_redraw + self._throttle - time.monotonic()
        if wait <= 0:
            self._flush_live()
        else:
            self._redraw_timer = self.set_timer(wait, self._flush_live)

    def _flush_live(self) -> None:
        self._redraw_timer = None
        self._last_live_redraw = time.monotonic()
        changed, self._pending = self._pending, set()
        self._redraw(changed)

    def _redraw(self, changed: set[int] | None) -> None:
        if not self._drawable():
            return
        main = self.main
        main.refresh_rows(self.rows, (self.offset, self.order, self.total), changed)
        main.empty_text(self.filter_text)
        main.show_summary(self.counts, self.total_rate, self.mode, self.sort, self.filter_text)
        self.selection_changed()
        if isinstance(self.screen, DetailsScreen):
            self.screen.show(self.rows.get(self.screen.job_id))

    def selection_changed(self) -> None:
        if not self._drawable():
            return
        job_id = self.main.selected_id()
        self.main.show_selected(self.rows.get(job_id) if job_id is not None else None, self.total_rate)

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._new_view()

    def _new_view(self) -> None:
        """Show the rows held in the new order and filter now (exact when they are the whole queue), and
        have the window of the new view read from its start."""
        whole = self.offset == 0 and len(self.rows) == self.total
        needle = self.filter_text.lower()
        order = [i for i, r in self.rows.items() if not needle or needle in r.job.display_name.lower()]
        order.sort(key=lambda i: sort_key(self.rows[i], self.sort))
        self.order, self.offset = order, 0
        if whole or len(order) < len(self.rows):
            self.total = len(order)
        if not whole and self._drawable():
            self.main.forget_cursor()
        self._redraw(None)
        table_rows = self.main.view_rows() if self._drawable() else MIN_VIEW_ROWS
        self._ask(0, table_rows)

    def want_rows(self, first: int, rows: int) -> None:
        """The table's view reached rows it does not hold."""
        self._ask(first, rows)

    def _selected(self) -> JobRow | None:
        job_id = self.main.selected_id()
        return self.rows.get(job_id) if job_id is not None else None

    # -- commands ---------------------------------------------------------------------------------

    def _send(self, msg: Any) -> bool:
        if self.fleet:
            self.run_worker(
                lambda: steer_through_database(self, self.location, msg),
                thread=True,
                group="steer",
                exit_on_error=False,
            )
            return True
        if self.link is None or not self.link.send(msg):
            self.notify("not connected to the supervisor", severity="error")
            return False
        return True

    def action_add(self) -> None:
        def added(request: AddRequest | None) -> None:
            if request:
                self.run_worker(
                    lambda: add_request(self, request), thread=True, group="add", exit_on_error=False
                )

        self.push_screen(AddDialog(self.settings.download_dir, self.settings.concurrency), added)

    def action_toggle_pause(self) -> None:
        row = self._selected()
        if row is None:
            return
        if PAUSE.applies_to(row.job.state):
            self._send(P.Pause((row.job.id,)))
        elif RESUME.applies_to(row.job.state):
            self._send(P.Resume((row.job.id,)))
        else:
            self.notify(f"{row.job.display_name} is {row.job.state}: nothing to pause", timeout=3)

    def action_retry(self) -> None:
        row = self._selected()
        if row is None:
            return
        if RETRY.applies_to(row.job.state):
            self._send(P.Retry((row.job.id,)))
        else:
            self.notify(f"{row.job.display_name} is {row.job.state}: only failed jobs are retried", timeout=3)

    def action_new_url(self) -> None:
        """Give the selected job a new URL (its signed URL expired): the dialog validates it, the
        supervisor applies it (states.NEW_URL), and the job resumes from its parts if the object is the
        same."""
        row = self._selected()
        if row is None:
            return
        if not NEW_URL.applies_to(row.job.state):
            self.notify(f"{row.job.display_name} is {row.job.state}: pause it first", timeout=3)
            return
        job_id = row.job.id

        def answer(url: str | None) -> None:
            if url:
                self._send(P.SetURL(job_id, url))

        self.push_screen(NewUrlDialog(row.job.display_name, row.job.url), answer)

    def action_remove(self) -> None:
        row = self._selected()
        if row is None:
            return
        job_id = row.job.id

        def answer(choice: str | None) -> None:
            if choice:
                self._send(P.Remove((job_id,), delete_file=choice == "delete"))

        self.push_screen(ConfirmRemove(row.job.display_name, row.job.state == "done"), answer)

    def _concurrency(self, row: JobRow) -> int:
        # The row holds what was asked last (set below at once, so quick presses add up; the supervisor
        # writes the same value to the queue and to the running job).
        if row.job.concurrency:
            return row.job.concurrency
        if row.live is not None:
            return row.live.concurrency
        return self.settings.concurrency

    def _set_concurrency(self, row: JobRow, n: int) -> None:
        n = clamp_concurrency(n)
        if self._send(P.SetConcurrency(row.job.id, n)):
            self._asked_for(row, "concurrency", n)

    def _set_priority(self, row: JobRow, priority: int) -> None:
        if self._send(P.SetPriority(row.job.id, priority)):
            self._asked_for(row, "priority", priority)

    def _asked_for(self, row: JobRow, field: str, value: int) -> None:
        """Show what was asked at once, and keep showing it over rows read from the queue until the queue
        has it too: quick presses add up, whenever the supervisor's writes and the poller's reads land."""
        setattr(row.job, field, value)
        self._asked.setdefault(row.job.id, {})[field] = value

    def _keep_asked(self, job: Job) -> None:
        """A row as the queue has it, with what was asked and is not in the queue yet."""
        asked = self._asked.get(job.id)
        if not asked:
            return
        for field, value in list(asked.items()):
            if getattr(job, field) == value:
                del asked[field]
            else:
                setattr(job, field, value)
        if not asked:
            del self._asked[job.id]

    def action_more_connections(self) -> None:
        row = self._selected()
        if row is not None:
            self._set_concurrency(row, self._concurrency(row) + 1)

    def action_fewer_connections(self) -> None:
        row = self._selected()
        if row is not None:
            self._set_concurrency(row, self._concurrency(row) - 1)

    def action_raise_priority(self) -> None:
        row = self._selected()
        if row is not None:
            self._set_priority(row, row.job.priority + 1)

    def action_lower_priority(self) -> None:
        row = self._selected()
        if row is not None:
            self._set_priority(row, row.job.priority - 1)

    def action_details(self) -> None:
        row = self._selected()
        if row is None:
            return
        screen = DetailsScreen(row.job.id)
        self.push_screen(screen)
        screen.show(row)
        self.run_worker(lambda: self._load_events(screen), thread=True, group="details", exit_on_error=False)

    def _load_events(self, screen: DetailsScreen) -> None:
        try:
            with open_queue(self.location) as q:
                events = q.events(screen.job_id)
        except QueueError:
            return
        screen.events = events
        self.call_from_thread(self._show_details, screen)

    def _show_details(self, screen: DetailsScreen) -> None:
        if screen is self.screen:  # not popped while the events were read
            screen.show(self.rows.get(screen.job_id))

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._new_view()

    async def action_quit(self) -> None:
        self._stop.set()
        if self.link is None or self.link.mode == "disconnected":
            self.exit(0)
            return
        self.mode = "stopping"
        self.main.show_summary(self.counts, self.total_rate, "stopping", self.sort, self.filter_text)
        self.run_worker(self._close_link, thread=True, group="quit", exit_on_error=False)

    def _close_link(self) -> None:
        assert self.link is not None
        self.link.close()
        self.call_from_thread(self.exit, 0)

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        yield from super().get_system_commands(screen)
        yield from palette(self)
