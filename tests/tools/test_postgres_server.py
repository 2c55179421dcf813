"""The PostgreSQL the fleet tests run against: started unprivileged, reachable with a password over TCP,
and able to go away and come back with its data."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers.postgres import PostgresServer


@pytest.mark.slow
def test_a_server_runs_unprivileged_and_keeps_its_data_across_a_restart(postgres_server: PostgresServer):
    url = postgres_server.create_database("restart_check")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (7)")
        owner = conn.execute("SELECT usesuper FROM pg_user WHERE usename = current_user").fetchone()
    assert owner == (True,)
    assert postgres_server.process is not None
    with open(f"/proc/{postgres_server.process.pid}/status") as f:
        uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
    assert uid != 0
    postgres_server.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    postgres_server.start()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]


def test_a_wrong_password_is_refused(postgres_server: PostgresServer):
    url = postgres_server.url().replace(":s3cret-pw@", ":wrong@")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url, connect_timeout=5)


def test_each_test_gets_a_database_of_its_own(postgres_url: str):
    with psycopg.connect(postgres_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert name is not None and name[0].startswith("test_") and tables == (0,)
