"""A throwaway PostgreSQL cluster for tests, started by the tests themselves.

`PostgresServer` runs `initdb` in a temporary directory and starts `postgres` on
127.0.0.1 on a free port, with its unix socket in that directory. PostgreSQL refuses to
run as root, so as root (CI) the cluster belongs to and runs as the unprivileged OS user
`shardline-pg` (created by tests/postgres/install.sh), through `runuser` or `setpriv`; as
a normal user it runs as that user.

Authentication: the superuser `postgres` connects with trust over the unix socket only
(`admin_dsn`; the directory is 0700, so only its owner and root reach it); over TCP every
role needs its password, so `dsn` (role `shardline`, password `secret`, database
`shardline`) can be refused for a wrong password. fsync stays on, so a cluster stopped
with `restart(mode="immediate")` recovers what was committed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

import psycopg
from psycopg import sql

from shardline.children import die_with_parent

OS_USER = "shardline-pg"
ROLE = "shardline"
PASSWORD = "secret"
DATABASE = "shardline"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
INSTALL_HINT = "run `bash tests/postgres/install.sh` (as root) first"
DEBIAN_BIN_DIRS = Path("/usr/lib/postgresql")

StopMode = Literal["smart", "fast", "immediate"]
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BIND_FAILURE = "could not bind"


class PostgresError(RuntimeError):
    """The test cluster could not be set up, started or stopped."""


class PostgresNotInstalled(PostgresError):
    """The PostgreSQL server binaries, or the OS user to run them, are missing."""


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path
    postgres: Path


def find_binaries() -> Binaries:
    """The newest version under /usr/lib/postgresql/*/bin (Debian's layout), else PATH."""
    for bin_dir in sorted(DEBIAN_BIN_DIRS.glob("*/bin"), key=_version_key, reverse=True):
        found = [bin_dir / name for name in ("initdb", "pg_ctl", "postgres")]
        if all(os.access(path, os.X_OK) for path in found):
            return Binaries(*found)
    on_path = [shutil.which(name) for name in ("initdb", "pg_ctl", "postgres")]
    if all(on_path):
        return Binaries(*(Path(str(path)) for path in on_path))
    raise PostgresNotInstalled(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        f"{DEBIAN_BIN_DIRS}/*/bin or on PATH: {INSTALL_HINT}"
    )


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def unique_database_name(hint: str) -> str:
    """A valid, unused-looking database name derived from `hint` (e.g. a test's name)."""
    stem = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")[:40] or "db"
    return f"t_{stem}_{os.urandom(4).hex()}"


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; `start()` then `stop()`, or `with`."""

    def __init__(
        self,
        *,
        os_user: str = OS_USER,
        base_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._binaries = find_binaries()
        self._as_root = os.geteuid() == 0
        self._account = _account(os_user if self._as_root else None)
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._start_timeout = start_timeout
        self._dir: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError("the server is not started")
        return self._port

    @property
    def directory(self) -> Path:
        """The temporary directory: the data directory `data/`, the socket, `server.log`."""
        if self._dir is None:
            raise PostgresError("the server is not started")
        return self._dir

    @property
    def os_user(self) -> str:
        return self._account.pw_name

    @property
    def dsn(self) -> str:
        """Role `shardline`, password `secret`, over TCP, database `shardline`."""
        return self.dsn_for(DATABASE)

    @property
    def admin_dsn(self) -> str:
        """Superuser `postgres` with trust, over the unix socket, database `postgres`."""
        socket_dir = quote(str(self.directory), safe="")
        return f"postgresql://{SUPERUSER}@/postgres?host={socket_dir}&port={self.port}"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{ROLE}:{PASSWORD}@{HOST}:{self.port}/{database}"

    @property
    def pid(self) -> int:
        """The postmaster's process id (from postmaster.pid)."""
        pid_file = self.directory / "data" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError) as exc:
            raise PostgresError(f"the server is not running ({pid_file})") from exc

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """initdb, start, wait until it accepts connections, create role and database."""
        if self._dir is not None:
            raise PostgresError("the server is already started")
        self._dir = self._make_directory()
        try:
            self._initdb()
            self._launch_on_free_port()
            self._create_role_and_database()
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (pg_ctl stop -m fast) and remove its directory."""
        if self._dir is None:
            return
        try:
            self._shutdown("fast")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._port = None

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop (`immediate` is a crash: recovery replays the WAL) and start on the same port."""
        self._shutdown(mode)
        self._launch()
        self._wait_until_ready()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database `name` owned by role `shardline`; returns its dsn."""
        query = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(_checked_name(name)), sql.Identifier(ROLE)
        )
        self._admin_execute(query)
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, disconnecting whoever is still connected to it."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(_checked_name(name))
        )
        self._admin_execute(query)

    def _admin_execute(self, query: sql.Composed) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(query)

    # -- steps -----------------------------------------------------------------------

    def _make_directory(self) -> Path:
        directory = Path(tempfile.mkdtemp(prefix="shardline-pg-", dir=self._base_dir))
        if self._as_root:
            os.chown(directory, self._account.pw_uid, self._account.pw_gid)
            unreachable = _first_unreachable_parent(directory, self._account)
            if unreachable is not None:
                shutil.rmtree(directory, ignore_errors=True)
                raise PostgresError(
                    f"{self.os_user} cannot reach {directory} ({unreachable} is closed to it): "
                    "choose another base_dir or TMPDIR, such as /tmp"
                )
        return directory

    def _initdb(self) -> None:
        data = self.directory / "data"
        self._run(
            [
                str(self._binaries.initdb),
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                # Only skips flushing the new cluster's files to disk once, at creation;
                # the server itself runs with fsync on.
                "--no-sync",
            ],
            what="initdb",
        )
        hba = data / "pg_hba.conf"
        hba.write_text(
            "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
            "local   all       all                 trust\n"
            f"host    all       all   {HOST}/32  scram-sha-256\n"
        )
        if self._as_root:
            os.chown(hba, self._account.pw_uid, self._account.pw_gid)

    def _launch_on_free_port(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self._port = free_port()
            self._launch()
            try:
                self._wait_until_ready()
                return
            except PostgresError:
                # Another process may have taken the port between free_port() and bind().
                if attempt + 1 == attempts or _BIND_FAILURE not in self._log_tail():
                    raise

    def _launch(self) -> None:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "on",
            "password_encryption": "scram-sha-256",
        }
        argv = [str(self._binaries.postgres), "-D", str(self.directory / "data")]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log_path = self.directory / "server.log"
        command, preexec = self._dying_with_us(argv)
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        if self._as_root:
            os.chown(log_path, self._account.pw_uid, self._account.pw_gid)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PostgresError(
                    f"postgres exited with status {self._process.returncode} while starting; "
                    f"end of the server log:\n{self._log_tail()}"
                )
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.02)
        raise PostgresError(
            f"postgres did not accept connections within {self._start_timeout:.0f} s "
            f"(last error: {last_error}); end of the server log:\n"
            f"{self._log_tail()}"
        )

    def _create_role_and_database(self) -> None:
        self._admin_execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        self.create_database(DATABASE)

    def _shutdown(self, mode: StopMode) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        data = self.directory / "data"
        stop = [str(self._binaries.pg_ctl), "stop", "-D", str(data), "-m", mode, "-w", "-t", "60"]
        if not (data / "postmaster.pid").exists():  # still starting: nothing for pg_ctl yet
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            return
        try:
            self._run(stop, what=f"pg_ctl stop -m {mode}")
        except PostgresError:
            os.killpg(process.pid, signal.SIGKILL)  # the wrapper and postgres, together
            raise
        finally:
            process.wait(timeout=60)

    # -- helpers ---------------------------------------------------------------------

    def _dying_with_us(self, argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
        """The server's command, killed by the kernel when this process dies (SIGKILL too).

        As root, ``setpriv --pdeathsig`` sets the parent-death signal after switching to the
        cluster's user (a credential change clears one set before). Without ``setpriv`` the
        server outlives a killed test run (``stop()`` still ends it on any normal exit).
        """
        if not self._as_root:
            return argv, die_with_parent()
        setpriv = _which("setpriv")
        if setpriv is None:
            return self._as_user(argv), None
        user = self._account
        switch = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
        return [setpriv, *switch, "--pdeathsig=KILL", "--", *argv], None

    def _as_user(self, argv: list[str]) -> list[str]:
        """`argv` run as the cluster's OS user: itself when we are not root."""
        if not self._as_root:
            return argv
        user = self._account
        runuser = _which("runuser")
        if runuser is not None:
            return [runuser, "-u", user.pw_name, "--", *argv]
        setpriv = _which("setpriv")
        if setpriv is not None:
            return [
                setpriv,
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
                *argv,
            ]
        raise PostgresError("running PostgreSQL as a non-root user needs runuser or setpriv")

    def _run(self, argv: list[str], *, what: str) -> None:
        result = subprocess.run(
            self._as_user(argv),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresError(f"{what} failed with status {result.returncode}:\n{output}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.directory / "server.log").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def _account(os_user: str | None) -> pwd.struct_passwd:
    if os_user is None:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(os_user)
    except KeyError as exc:
        raise PostgresNotInstalled(
            f"the OS user {os_user!r} that runs the test cluster does not exist: {INSTALL_HINT}"
        ) from exc


def _checked_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
    return name


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _first_unreachable_parent(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first directory above `path` that `account` may not traverse, if any."""
    for parent in path.parents:
        info = parent.stat()
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return parent
    return None
