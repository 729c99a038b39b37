"""Fixtures for tests that need a real PostgreSQL server (registered in tests/conftest.py).

- `postgres`: one `PostgresServer` per test session, started on first use.
- `pg_dsn`: a fresh, empty database owned by role `shardline`, for one test; its libpq URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres.server import PostgresServer, unique_database_name


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server: `.dsn`, `.admin_dsn`, `.create_database(name)`."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_dsn(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The libpq URL of a fresh empty database for this test, dropped after it."""
    name = unique_database_name(request.node.name)
    yield postgres.create_database(name)
    postgres.drop_database(name)
