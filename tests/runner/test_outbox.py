"""A job host's outbox: news waits for the next urgent message and goes with it in one write, in order;
alone, it goes within its delay; nothing is lost or reordered when threads post and send at once."""

from __future__ import annotations

import threading
from typing import Any

from getm_tui.runner import hostmsg as H
from getm_tui.runner.outbox import Outbox

WAIT = 10.0  # seconds a condition may take on a loaded machine before the test fails


class Pipe:
    """Stands for the connection: records each write, and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.writes: list[Any] = []
        self.cond = threading.Condition()

    def write(self, msg: Any) -> None:
        with self.cond:
            self.writes.append(msg)
            self.cond.notify_all()

    def wait_for(self, n: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.writes) >= n, WAIT)

    def messages(self) -> list[Any]:
        out: list[Any] = []
        for w in self.writes:
            out.extend(w.messages if isinstance(w, H.Several) else [w])
        return out


def test_news_goes_with_the_next_urgent_message_in_one_write_in_order() -> None:
    pipe = Pipe()
    box = Outbox(pipe.write, later=WAIT)  # never late within the test: only the send writes
    try:
        probe = H.Probe(7, "/d/f.bin", 10, {})
        log = H.Log(7, 20, "line")
        end = H.End(7, "cancelled", None)
        box.post(probe)
        box.post(log)
        assert pipe.writes == []
        box.send(end)
        assert pipe.writes == [H.Several([probe, log, end])]
        box.send(H.End(8, "cancelled", None))
        assert pipe.writes[1] == H.End(8, "cancelled", None)  # nothing waited: a bare message
    finally:
        box.close()


def test_news_alone_is_written_within_its_delay() -> None:
    pipe = Pipe()
    box = Outbox(pipe.write, later=0.01)
    try:
        box.post(H.Log(None, 20, "first"))
        assert pipe.wait_for(1)
        assert pipe.writes == [H.Log(None, 20, "first")]
        box.post(H.Log(None, 20, "second"))  # after a flush: the thread is woken again
        assert pipe.wait_for(2)
        assert pipe.messages() == [H.Log(None, 20, "first"), H.Log(None, 20, "second")]
    finally:
        box.close()


def test_close_writes_what_waits() -> None:
    pipe = Pipe()
    box = Outbox(pipe.write, later=WAIT)
    box.post(H.Log(None, 30, "last words"))
    box.close()
    assert pipe.messages() == [H.Log(None, 30, "last words")]


def test_a_gone_supervisor_stops_the_late_writer_without_an_error() -> None:
    def broken(_msg: Any) -> None:
        raise OSError("broken pipe")

    box = Outbox(broken, later=0.01)
    box.post(H.Log(None, 20, "x"))
    box.close()  # joins the writer thread: it ended on the error instead of raising it


def test_threads_posting_and_sending_lose_and_reorder_nothing() -> None:
    pipe = Pipe()
    box = Outbox(pipe.write, later=0.001)
    per_thread = 300

    def job(n: int) -> None:
        for i in range(per_thread):
            box.post(H.Report(n, i))  # type: ignore[arg-type]
            if i % 7 == 0:
                box.send(H.End(n, "cancelled", None, reason=str(i)))

    threads = [threading.Thread(target=job, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    box.close()
    got = pipe.messages()
    for n in range(4):
        mine = [m for m in got if m.job_id == n]
        expected: list[Any] = []
        for i in range(per_thread):
            expected.append(H.Report(n, i))  # type: ignore[arg-type]
            if i % 7 == 0:
                expected.append(H.End(n, "cancelled", None, reason=str(i)))
        assert mine == expected
