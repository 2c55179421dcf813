"""A job host's job threads: reused from job to job, never more than max_active, named after the job
they run (log records are attributed to jobs by that name), and started only as jobs wait for them: one
thread works through a fast server's jobs, more overlap a slow server's waits."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from getm_tui.runner import jobhost
from getm_tui.runner.hostthreads import JobThreads
from getm_tui.runner.jobhost import LiveControl, _HostJob, host_count
from tests.helpers.faultserver import FaultServer
from tests.helpers.runner_util import cli

pytestmark = pytest.mark.timeout(30)


def test_jobs_take_turns_on_at_most_limit_threads_named_after_them():
    release = threading.Event()
    lock = threading.Lock()
    names: dict[int, str] = {}
    active: list[int] = []
    three_active = threading.Condition(lock)

    def target(r: _HostJob, job: SimpleNamespace) -> None:
        with lock:
            names[job.id] = threading.current_thread().name
            active.append(job.id)
            three_active.notify_all()
        release.wait()
        with lock:
            active.remove(job.id)

    threads = JobThreads(target, limit=3, patience=0.0)  # a thread for each job as it comes
    runs = [_HostJob(i, LiveControl(1)) for i in range(8)]
    for r in runs[:3]:
        threads.run(r, SimpleNamespace(id=r.job_id))
    with three_active:
        assert three_active.wait_for(lambda: len(active) == 3, timeout=10)
    # All three are busy and the limit is reached: these wait for one of them.
    for r in runs[3:]:
        threads.run(r, SimpleNamespace(id=r.job_id))
    assert len(threads._threads) == 3
    release.set()
    for r in runs:
        assert r.ended.wait(10)
    assert names == {i: f"job-{i}" for i in range(8)}
    assert len(threads._threads) == 3  # reused, not one per job
    threads.close()
    for t in threads._threads:
        t.join(10)
        assert not t.is_alive() and t.name == "job-idle"


def test_an_idle_thread_takes_the_next_job_instead_of_a_new_thread():
    threads = JobThreads(lambda r, job: None, limit=4)
    for i in range(20):
        r = _HostJob(i, LiveControl(1))
        threads.run(r, SimpleNamespace(id=i))
        assert r.ended.wait(10)  # one job at a time: one thread serves them all
    assert len(threads._threads) == 1
    threads.close()


class _Blocking:
    """Jobs that run until released, and which of them run now."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.changed = threading.Condition()
        self.active: list[int] = []

    def __call__(self, r: _HostJob, job: SimpleNamespace) -> None:
        with self.changed:
            self.active.append(job.id)
            self.changed.notify_all()
        self.release.wait()

    def wait_active(self, n: int, threads: JobThreads[_HostJob] | None = None, timeout: float = 10) -> bool:
        """Wait until `n` jobs run; with `threads`, acting as the host's loop does (`grow` when due)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.active) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                due = threads.grow() if threads is not None else None
                self.changed.wait(left if due is None else min(left, max(due, 0.001)))
        return True

    def finish(self, threads: JobThreads[_HostJob], runs: list[_HostJob]) -> int:
        """Release the jobs, wait for every one to end, let the threads go; how many there were."""
        self.release.set()
        for r in runs:
            assert r.ended.wait(10)
        threads.close()
        return len(threads._threads)


def _run(threads: JobThreads[_HostJob], n: int) -> list[_HostJob]:
    runs = [_HostJob(i, LiveControl(1)) for i in range(n)]
    for r in runs:
        threads.run(r, SimpleNamespace(id=r.job_id))
    return runs


def test_a_job_waits_for_the_busy_thread_until_it_has_waited_patience():
    jobs = _Blocking()
    threads = JobThreads(jobs, limit=3, patience=3600.0)
    runs = _run(threads, 3)
    assert jobs.wait_active(1)
    due = threads.grow()
    assert due is not None and 0 < due <= 3600.0  # the next look, when the first waiting job is due
    assert jobs.active == [0] and len(threads._threads) == 1
    assert jobs.finish(threads, runs) == 1  # the one thread took the others in turn


def test_jobs_that_waited_get_threads_of_their_own_up_to_the_limit():
    jobs = _Blocking()
    threads = JobThreads(jobs, limit=3, patience=0.05)
    runs = _run(threads, 5)
    assert jobs.wait_active(3, threads)
    assert sorted(jobs.active) == [0, 1, 2] and len(threads._threads) == 3
    assert threads.grow() is None  # at the limit: the next to finish takes the rest
    assert jobs.finish(threads, runs) == 3


def test_at_a_stop_no_job_waits_for_a_busy_thread():
    jobs = _Blocking()
    threads = JobThreads(jobs, limit=4, patience=3600.0)
    runs = _run(threads, 3)
    assert jobs.wait_active(1)
    threads.hurry()  # the host's stop: every job is cancelled and must say so within the grace
    assert jobs.wait_active(3)
    assert jobs.finish(threads, runs) == 3


@pytest.mark.slow
def test_a_slow_servers_small_files_are_fetched_many_at_once(fault_server: FaultServer, tmp_path):
    """Each response waits half a second before its body: the hosts, which start with one thread, start
    more as their jobs wait, so the server sees the runner's max_active requests at once."""
    urls = [fault_server.add(f"/slow/f{i}.bin", bytes([i]) * 5000, first_byte_delay=0.5) for i in range(16)]
    env = {"GETM_TUI_MAX_ACTIVE": "8"}
    data_dir = str(tmp_path / "data")
    added = cli(data_dir, "add", "-d", str(tmp_path), *urls, env=env)
    assert added.returncode == 0, added.stderr
    done = cli(data_dir, "run", "--once", env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("f*.bin")) == sorted(u.rsplit("/", 1)[1] for u in urls)
    assert fault_server.peak_busy >= 6


@pytest.mark.parametrize(
    ("cores", "max_active", "hosts"),
    [
        ({0}, 16, 2),
        ({0, 1}, 16, 2),
        ({0, 1, 2}, 16, 3),
        (set(range(64)), 16, 8),
        (set(range(64)), 4, 4),
        ({0, 1, 2}, 1, 1),
    ],
)
def test_one_host_per_core_it_may_use(monkeypatch, cores, max_active, hosts) -> None:
    """As many job hosts as cores in the process's affinity mask (a container's cpuset, taskset), not
    the machine's: at least two, at most eight, and never more than jobs may run at once."""
    monkeypatch.setattr(jobhost.os, "sched_getaffinity", lambda pid: cores)
    monkeypatch.setattr(jobhost.os, "cpu_count", lambda: 64)
    assert host_count(max_active) == hosts
