"""Naming a PostgreSQL queue: --queue (before or after the verb), GETM_TUI_QUEUE, or the config's `queue`;
libpq's own keyword strings and PG* variables; and what a user sees when the database cannot be reached or
the password is wrong: one line, exit 2, never the password. Real processes against the session's server."""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlsplit

import pytest

from tests.helpers.postgres import PASSWORD, SUPERUSER, PostgresServer
from tests.helpers.runner_util import cli


@pytest.fixture
def dirs(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    return {"data": str(tmp_path / "data"), "dl": str(downloads), "tmp": tmp_path}


def _env(dirs: dict, **more: str) -> dict[str, str]:
    return {"GETM_TUI_DOWNLOAD_DIR": dirs["dl"], **more}


def _ok(out) -> str:
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def _one_line(out) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("getm-tui"), out.stderr
    return lines[0]


@pytest.mark.slow
def test_every_way_of_naming_the_queue_reaches_it(dirs, postgres_url, tmp_path):
    env = _env(dirs)
    [a] = map(
        int,
        _ok(cli(dirs["data"], "add", "--queue", postgres_url, "https://example.org/a.bin", env=env)).split(),
    )
    [b] = map(
        int,
        _ok(cli(dirs["data"], "--queue", postgres_url, "add", "https://example.org/b.bin", env=env)).split(),
    )
    listed = json.loads(_ok(cli(dirs["data"], "ls", "--json", env={**env, "GETM_TUI_QUEUE": postgres_url})))
    assert [j["id"] for j in listed] == [a, b]
    config = tmp_path / "config.toml"
    config.write_text(f'queue = "{postgres_url}"\n')
    shown = json.loads(_ok(cli(dirs["data"], "--config", str(config), "show", str(b), "--json", env=env)))
    assert shown["url"] == "https://example.org/b.bin"
    _ok(cli(dirs["data"], "pause", str(a), "--queue", postgres_url, env=env))
    _ok(cli(dirs["data"], "rm", str(b), "--queue", postgres_url, env=env))
    listed = json.loads(_ok(cli(dirs["data"], "ls", "--json", "--queue", postgres_url, env=env)))
    assert [(j["id"], j["state"]) for j in listed] == [(a, "paused")]
    # The data dir's own queue was never made: every verb went to the database.
    assert not os.path.exists(os.path.join(dirs["data"], "queue.sqlite3"))
    # The empty string on the command line is the data dir's queue again.
    assert json.loads(_ok(cli(dirs["data"], "ls", "--json", "--queue", "", env=env))) == []


@pytest.mark.slow
def test_libpq_keyword_strings_and_pg_variables_pass_through(dirs, postgres_url):
    url = urlsplit(postgres_url)
    keywords = f"host={url.hostname} port={url.port} dbname={url.path[1:]}"
    env = _env(dirs, PGUSER=SUPERUSER, PGPASSWORD=PASSWORD)
    _ok(cli(dirs["data"], "add", "--queue", keywords, "https://example.org/k.bin", env=env))
    pgpass = dirs["tmp"] / "pgpass"
    pgpass.write_text(f"{url.hostname}:{url.port}:*:{SUPERUSER}:{PASSWORD}\n")
    pgpass.chmod(0o600)
    env = _env(dirs, PGPASSFILE=str(pgpass))
    bare = f"postgresql://{SUPERUSER}@{url.hostname}:{url.port}{url.path}"
    listed = json.loads(_ok(cli(dirs["data"], "ls", "--json", "--queue", bare, env=env)))
    assert [j["url"] for j in listed] == ["https://example.org/k.bin"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "verb", [["ls"], ["add", "https://example.org/x.bin"], ["run", "--once"], ["show", "1"]]
)
@pytest.mark.slow
def test_an_unreachable_database_is_one_line_and_exit_2(dirs, verb):
    url = f"postgresql://getm:{PASSWORD}@127.0.0.1:{_closed_port()}/jobs"
    out = cli(dirs["data"], *verb, "--queue", url, env=_env(dirs, PGCONNECT_TIMEOUT="2"))
    line = _one_line(out)
    assert "cannot reach the queue database postgresql://getm:***@127.0.0.1" in line
    assert PASSWORD not in out.stderr + out.stdout


@pytest.mark.slow
def test_a_wrong_password_is_one_line_and_never_shown(dirs, postgres_server: PostgresServer):
    url = postgres_server.url("postgres").replace(PASSWORD, "wrong-pw-771")
    for verb in (["ls"], ["run", "--once"]):
        out = cli(dirs["data"], *verb, "--queue", url, env=_env(dirs))
        line = _one_line(out)
        assert "password authentication failed" in line
        assert "wrong-pw-771" not in out.stderr + out.stdout


def test_a_queue_that_is_not_a_database_is_a_config_error(dirs, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('queue = "/srv/queue"\n')
    line = _one_line(cli(dirs["data"], "--config", str(config), "ls", env=_env(dirs)))
    assert "queue: expected a PostgreSQL URL" in line


@pytest.mark.slow
def test_the_password_never_reaches_the_output_of_a_run(dirs, postgres_url, fault_server):
    url = fault_server.add("/fleet/one.bin", os.urandom(200_000))
    env = _env(dirs, GETM_TUI_QUEUE=postgres_url)
    _ok(cli(dirs["data"], "add", url, env=env))
    outputs = []
    for args in (["run", "--once", "--json", "-vv"], ["run", "--once", "-vv"], ["ls"], ["show", "1"]):
        out = cli(dirs["data"], *args, env=env)
        _ok(out)
        outputs.append(out.stdout + out.stderr)
    assert '"event": "start"' in outputs[0]
    assert all(PASSWORD not in text for text in outputs)
    assert (dirs["tmp"] / "downloads" / "one.bin").stat().st_size == 200_000
