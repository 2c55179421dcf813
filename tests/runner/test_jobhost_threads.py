"""A job host's job threads: reused from job to job, never more than max_active, named after the job
they run (log records are attributed to jobs by that name)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from getm_tui.runner import jobhost
from getm_tui.runner.hostthreads import JobThreads
from getm_tui.runner.jobhost import LiveControl, _HostJob, host_count

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

    threads = JobThreads(target, limit=3)
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
