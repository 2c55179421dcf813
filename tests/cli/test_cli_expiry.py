"""A signed URL that expires while its job runs, and `retry ID --url NEW_URL`, through the real commands:
`add`, `run --once` (the supervisor and a job host), `show` and `retry`, against the loopback fault server,
which refuses a URL's later requests the way S3 refuses a presigned URL past its deadline."""

from __future__ import annotations

import json
import random
import time

import pytest

from getm_tui.queue.sqlite import Queue
from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import add, cli

MiB = 1024 * 1024
DATA = random.Random(41).randbytes(5 * MiB + 77)


def amz_query(signed: float, lifetime: int, signature: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed))
    return f"?X-Amz-Date={stamp}&X-Amz-Expires={lifetime}&X-Amz-Signature={signature}"


@pytest.mark.slow
def test_an_expired_job_resumes_under_a_new_url_of_the_same_object(fault_server: FaultServer, tmp_path):
    data_dir, downloads = str(tmp_path / "data"), tmp_path / "downloads"
    downloads.mkdir()
    url = fault_server.add("/big.bin", DATA, deny_after_requests=3)
    res = fault_server.resource(url)
    [job_id] = add(data_dir, "-d", str(downloads), "-c", "3", url + amz_query(time.time(), 3600, "OLDSECRET"))
    env = {"GETM_TUI_PART_SIZE": str(MiB)}
    ran = cli(data_dir, "run", "--once", env=env)
    assert ran.returncode != 0
    shown = cli(data_dir, "show", str(job_id))
    assert shown.returncode == 0, shown.stderr
    assert "error:       signed URL expired (at " in shown.stdout
    assert f"kept for a new URL of it (getm-tui retry {job_id} --url NEW_URL)" in shown.stdout
    assert "url expires: " in shown.stdout and " UTC (in " in shown.stdout
    with Queue(data_dir) as q:
        failed = q.get(job_id)
        assert failed.state == "failed" and failed.bytes_done >= MiB
        kept = failed.bytes_done

    refused = cli(data_dir, "retry", str(job_id), "--url", "gopher://nowhere/x")
    assert refused.returncode == 2 and "unsupported URL scheme" in refused.stderr
    res.configure(deny_after_requests=None)
    asked_before = len(res.requests)
    new = url + amz_query(time.time(), 7200, "NEWSECRET")
    retried = cli(data_dir, "retry", str(job_id), "--url", new)
    assert retried.returncode == 0 and retried.stderr == ""
    assert cli(data_dir, "run", "--once", env=env).returncode == 0
    assert (downloads / "big.bin").read_bytes() == DATA
    _probe, *rest = res.requests[asked_before:]
    assert sum(r.body_length for r in rest) <= len(DATA) - kept  # resumed, not fetched again
    with Queue(data_dir) as q:
        assert q.get(job_id).url == new
        messages = [e.message for e in q.events(job_id)]
    assert any(
        m.startswith("new url: failed -> queued: http://127.0.0.1:") and m.endswith("?***") for m in messages
    )
    everything = ran.stdout + ran.stderr + shown.stdout + shown.stderr + "".join(messages)
    assert "SECRET" not in everything


@pytest.mark.slow
def test_a_new_url_of_another_object_starts_over_and_says_so(fault_server: FaultServer, tmp_path):
    data_dir, downloads = str(tmp_path / "data"), tmp_path / "downloads"
    downloads.mkdir()
    url = fault_server.add("/obj.bin", DATA, deny_after_requests=3)
    [job_id] = add(data_dir, "-d", str(downloads), "-c", "3", url + "?Expires=1&Signature=OLD")
    env = {"GETM_TUI_PART_SIZE": str(MiB)}
    assert cli(data_dir, "run", "--once", env=env).returncode != 0
    other = bytes(reversed(DATA))
    other_url = fault_server.add("/elsewhere/obj.bin", other)
    assert (
        cli(data_dir, "retry", str(job_id), "--url", other_url + "?Expires=9999999999&Signature=N").returncode
        == 0
    )
    assert cli(data_dir, "run", "--once", env=env).returncode == 0
    assert (downloads / "obj.bin").read_bytes() == other
    with Queue(data_dir) as q:
        events = q.events(job_id)
    assert any(e.kind == "warning" and "starting over" in e.message for e in events)


@pytest.mark.slow
def test_retry_url_takes_one_job_and_an_unknown_one_is_refused(tmp_path):
    data_dir = str(tmp_path / "data")
    a, b = add(data_dir, "-d", str(tmp_path), "http://127.0.0.1:9/a", "http://127.0.0.1:9/b")
    two = cli(data_dir, "retry", str(a), str(b), "--url", "http://127.0.0.1:9/c")
    assert two.returncode == 2 and "name one ID" in two.stderr
    missing = cli(data_dir, "retry", str(b + 1), "--url", "http://127.0.0.1:9/c")
    assert missing.returncode == 2 and str(b + 1) in missing.stderr
    queued = cli(data_dir, "retry", str(a), "--url", "http://127.0.0.1:9/c")
    assert queued.returncode == 0
    shown = cli(data_dir, "show", str(a))
    assert "url expires" not in shown.stdout and "http://127.0.0.1:9/c" in shown.stdout
    assert (
        cli(
            data_dir, "retry", str(b), "--url", "http://127.0.0.1:9/d?Expires=2000000000&Signature=S"
        ).returncode
        == 0
    )
    as_json = cli(data_dir, "show", "--json", str(b))
    assert json.loads(as_json.stdout)["url_expires"] == 2000000000.0
    assert "Signature" not in as_json.stdout
