"""The test PostgreSQL server: reachable, isolated per test, password-checked, not root."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import psycopg
import pytest

from tests.postgres.server import DATABASE, PostgresServer

pytestmark = pytest.mark.integration


def _uids(pid: int) -> set[int]:
    """Real, effective, saved and filesystem uids of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError(f"no Uid line for process {pid}")


def test_server_answers_select_version(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute("select version(), current_user, current_database()").fetchone()
    assert row is not None
    version, user, database = row
    assert version.startswith("PostgreSQL ")
    assert (user, database) == ("shardline", DATABASE)


def test_pg_dsn_is_an_empty_database_of_its_own(postgres: PostgresServer, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        database = conn.execute("select current_database()").fetchone()
        tables = conn.execute(
            "select count(*) from pg_tables where schemaname not in ('pg_catalog', "
            "'information_schema')"
        ).fetchone()
        conn.execute("create table only_here (id int primary key)")
    assert database is not None and database[0] != DATABASE
    assert tables == (0,)
    with psycopg.connect(postgres.dsn) as conn:
        elsewhere = conn.execute("select to_regclass('only_here')").fetchone()
    assert elsewhere == (None,)


def test_wrong_password_is_refused(postgres: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.dsn, password="not-the-secret")


def test_server_does_not_run_as_root(postgres: PostgresServer) -> None:
    expected = pwd.getpwnam(postgres.os_user).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert expected != 0
    with psycopg.connect(postgres.admin_dsn) as conn:
        row = conn.execute("select pg_backend_pid(), current_setting('data_directory')").fetchone()
        assert row is not None
        backend_pid, data_directory = row
        assert _uids(backend_pid) == {expected}  # read while the backend is alive
    assert _uids(postgres.pid) == {expected}
    assert Path(data_directory).stat().st_uid == expected


def test_committed_rows_survive_a_crash_restart() -> None:
    with PostgresServer() as server:
        with psycopg.connect(server.dsn) as conn:
            conn.execute("create table kept (id int)")
            conn.execute("insert into kept values (1), (2)")
        server.restart(mode="immediate")
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (2,)


def test_stop_removes_the_cluster() -> None:
    server = PostgresServer().start()
    directory, port, pid = server.directory, server.port, server.pid
    server.stop()
    assert not directory.exists()
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, port), timeout=5).close()


def test_the_server_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    """A test run killed outright leaves no PostgreSQL behind (parent-death signal)."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from tests.postgres.server import PostgresServer\n"
        "server = PostgresServer()\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE
    ) as parent:  # closes its stdout pipe
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        os.kill(server_pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"postgres {server_pid} outlived its SIGKILLed parent")
