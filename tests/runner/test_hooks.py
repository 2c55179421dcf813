"""Hooks (on_done, on_fail) run by a real runner: their environment, and ones that fail and hang."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.helpers.runner_util import add, cli, start, wait_for


def events(data_dir: str, job_id: int) -> list[str]:
    shown = cli(data_dir, "show", str(job_id), "--json")
    assert shown.returncode == 0, shown.stderr
    return [e["message"] for e in json.loads(shown.stdout)["events"]]


def alive(pid: int) -> bool:
    """Running, or stopped: not gone and not a zombie nobody has reaped yet (PID 1 of a container may not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_hooks_get_the_job_in_their_environment(fault_server, tmp_path):
    data_dir, out, seen = str(tmp_path / "q"), tmp_path / "out", tmp_path / "seen"
    out.mkdir()
    seen.mkdir()
    data = os.urandom(100_000)
    signed = fault_server.add("/ok.bin", data) + "?X-Amz-Signature=s3cr3t&X-Amz-Credential=me"
    missing = fault_server.url("/missing.bin")
    done_id, fail_id = add(data_dir, signed, missing, "-d", str(out))
    hook = 'env | grep -v ^GETM_TUI_ | grep ^GETM_ | sort > "$SEEN/$GETM_STATE-$GETM_JOB_ID"'
    env = {"GETM_TUI_ON_DONE": hook, "GETM_TUI_ON_FAIL": hook, "SEEN": str(seen)}
    res = cli(data_dir, "run", "--once", env=env)
    assert res.returncode == 1, res.stderr  # the missing file failed; the hooks did not change that
    done = dict(line.split("=", 1) for line in (seen / f"done-{done_id}").read_text().splitlines())
    assert done == {
        "GETM_JOB_ID": str(done_id),
        "GETM_STATE": "done",
        "GETM_URL": fault_server.url("/ok.bin") + "?***",
        "GETM_PATH": str(out / "ok.bin"),
        "GETM_SIZE": str(len(data)),
        "GETM_VERDICT": "unverified",
        "GETM_ERROR": "",
    }
    failed = (seen / f"failed-{fail_id}").read_text()
    assert "GETM_STATE=failed" in failed and "GETM_ERROR=HTTP 404" in failed
    assert "s3cr3t" not in failed + (seen / f"done-{done_id}").read_text()
    assert any(e.startswith("hook on_done for job") and " ran in " in e for e in events(data_dir, done_id))


@pytest.mark.slow
def test_a_failing_or_hanging_hook_is_logged_and_never_fatal(fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    ok_a = fault_server.add("/a.bin", os.urandom(10_000))
    ok_b = fault_server.add("/b.bin", os.urandom(10_000))
    missing = fault_server.url("/gone.bin")
    ids = add(data_dir, ok_a, ok_b, missing, "-d", str(out))
    env = {
        # on_done hangs (a child that outlives the shell too), on_fail fails.
        "GETM_TUI_ON_DONE": f'sleep 300 & echo $! > "{tmp_path}/hook-$GETM_JOB_ID.pid"; wait',
        "GETM_TUI_ON_FAIL": "echo 'cannot page anyone' >&2; exit 3",
        "GETM_TUI_HOOK_TIMEOUT": "2",
    }
    res = cli(data_dir, "run", "--once", "-v", env=env, timeout=120)
    assert res.returncode == 1, res.stderr
    for job_id in ids[:2]:
        assert any(
            f"hook on_done for job {job_id} ran past its 2 s limit: killed" in e
            for e in events(data_dir, job_id)
        )
    assert f"hook on_fail for job {ids[2]} failed with exit code 3: cannot page anyone" in events(
        data_dir, ids[2]
    )
    assert sorted(os.listdir(out)) == ["a.bin", "b.bin"]
    assert "hook on_fail" in res.stderr  # said to the front end as it happened
    for job_id in ids[:2]:  # the hooks' whole process groups were killed
        assert not alive(int((tmp_path / f"hook-{job_id}.pid").read_text()))


@pytest.mark.slow
def test_a_hook_that_cannot_start_is_logged(fault_server, tmp_path):
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    (job_id,) = add(data_dir, fault_server.add("/c.bin", b"c" * 1000), "-d", str(out))
    env = {"GETM_TUI_ON_DONE": "/no/such/hook", "PATH": os.environ["PATH"]}
    res = cli(data_dir, "run", "--once", env=env)
    assert res.returncode == 0, res.stderr
    assert any("hook on_done for job" in e and "exit code 127" in e for e in events(data_dir, job_id))
    assert (out / "c.bin").exists()


@pytest.mark.slow
def test_a_runner_told_to_stop_kills_its_hooks(fault_server, tmp_path):
    """A hook far from its time limit does not keep a stopping runner: it is killed, and said so."""
    data_dir, out = str(tmp_path / "q"), tmp_path / "out"
    out.mkdir()
    pidfile = tmp_path / "hook.pid"
    add(data_dir, fault_server.add("/d.bin", b"d" * 1000), "-d", str(out))
    env = {"GETM_TUI_ON_DONE": f'sleep 300 & echo $! > "{pidfile}"; wait', "GETM_TUI_HOOK_TIMEOUT": "600"}
    runner = start(data_dir, "run", env=env)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    finally:
        runner.send_signal(signal.SIGINT)
        _out, err = runner.communicate(timeout=60)  # far less than the hook's 600 s
    assert runner.returncode == 0, err
    assert "stopping: 1 hook(s) killed, 0 not run" in err
    assert not alive(int(pidfile.read_text()))
