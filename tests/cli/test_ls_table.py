"""`ls` of a queue longer than its width sample: the table read from the queue's listing (what a table
shows of each job) and, for a fleet, from its jobs, with the same cells in columns that stay put; the JSON
forms writing their first job at once."""

from __future__ import annotations

import json

import pytest

from getm_tui.cli import show
from getm_tui.queue.sqlite import Queue

HOSTILE = "evil\x1b[31m" + "x" * 60 + ".bin"


@pytest.fixture
def long_queue(tmp_path, monkeypatch):
    """40 jobs in every state, with odd names and errors; widths from the first 10, written 7 at a time."""
    monkeypatch.setattr(show, "_WIDTH_SAMPLE", 10)
    monkeypatch.setattr(show, "_WRITE_EVERY", 7)
    with Queue(str(tmp_path / "data")) as q:
        ids = q.add_many(
            [
                {"url": f"https://h.example/d/f%C3%A9-{i}.bin?sig=s", "directory": str(tmp_path)}
                for i in range(38)
            ]
            + [
                {"url": "https://h.example/x", "directory": str(tmp_path), "name": HOSTILE, "priority": -7},
                {"url": "https://u:pw@h.example/", "directory": str(tmp_path), "priority": 12345},
            ]
        )
        q.update(ids[1], state="failed", error="  HTTP 404 Not Found\nsecond line", size=5 * 2**30)
        q.update(ids[2], state="done", size=2048, bytes_done=2048, verdict="verified", path="/d/kept-ünï.bin")
        q.update(ids[3], state="active", size=1000, bytes_done=250)
        q.update(ids[25], state="paused", bytes_done=3000)
        q.update(ids[30], state="failed", error="E" * 100)
        yield q


def _lines(capsys, q, fleet=False):
    show._table(q, None, fleet=fleet)
    return capsys.readouterr().out.splitlines()


def test_a_long_table_keeps_its_columns_and_shows_each_job(capsys, long_queue):
    lines = _lines(capsys, long_queue)
    assert len(lines) == 41
    header = lines[0]
    at = {h: header.index(h) for h in ("STATE", "NAME", "VERDICT", "ERROR")}
    for line in lines[1:]:
        assert line[at["STATE"] - 2 : at["STATE"]] == "  " and line[at["STATE"]] != " "
        assert line[at["NAME"] - 2 : at["NAME"]] == "  " and line[at["NAME"]] != " "
    assert [int(line.split()[0]) for line in lines[1:]] == list(range(1, 41))
    assert lines[1][at["NAME"] :].startswith("fé-0.bin ")
    failed, done, active = lines[2], lines[3], lines[4]
    assert failed[at["ERROR"] :] == "HTTP 404 Not Found" and "5.0 GiB" in failed
    assert done[at["NAME"] :].startswith("kept-ünï.bin") and "100%  verified" in done
    assert " 25%  -" in active
    assert "2.9 KiB" in lines[26] and lines[31].endswith("E" * 59 + "…")
    hostile = lines[39][at["NAME"] :]
    assert "\x1b" not in hostile and hostile.split()[0].endswith("…") and len(hostile.split()[0]) == 48
    assert "12345" in lines[40] and "pw" not in lines[40] and "sig" not in "".join(lines)


def test_a_fleet_table_has_the_same_cells_beside_speed_and_runner(capsys, long_queue):
    plain = _lines(capsys, long_queue)
    fleet = _lines(capsys, long_queue, fleet=True)
    assert fleet[0].split() == [
        "ID",
        "STATE",
        "PRI",
        "NAME",
        "SIZE",
        "DONE",
        "VERDICT",
        "SPEED",
        "RUNNER",
        "ERROR",
    ]
    error, speed, fleet_error = plain[0].index("ERROR"), fleet[0].index("SPEED"), fleet[0].index("ERROR")
    for a, b in zip(plain[1:], fleet[1:], strict=True):
        assert b[:error].rstrip() == a[:error].rstrip()
        assert b[speed:fleet_error].split() == ["-", "-"] and b[fleet_error:] == a[error:]


class _Recorder:
    """A stdout that records what was written before each flush."""

    def __init__(self) -> None:
        self.text, self.flushed = "", []

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        self.flushed.append(self.text)


@pytest.mark.parametrize("listing", [show._json, show._json_lines])
def test_json_listings_hand_out_their_first_job_at_once(long_queue, monkeypatch, listing):
    out = _Recorder()
    monkeypatch.setattr(show.sys, "stdout", out)
    listing(long_queue.iter_jobs())
    first = out.flushed[0]
    assert first.count('"id"') == 1 and '"id": 1,' in first
    whole = (
        json.loads(out.text)
        if listing is show._json
        else [json.loads(line) for line in out.text.splitlines()]
    )
    assert [job["id"] for job in whole] == list(range(1, 41))
    assert whole == [job.public() for job in long_queue.iter_jobs()]
