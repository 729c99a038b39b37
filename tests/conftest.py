"""Shared fixtures: one embedded local stack per test session, over real HTTP; TLS files."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardline.local.settings import LOCAL
from tests.tls_certs import make_tls

pytest_plugins = ["tests.postgres.conftest_plugin"]

for _name, _value in LOCAL.env().items():  # dummy credentials and the stack's region
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[object]:
    from shardline.local import LocalStack

    with LocalStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A TLS server context for 127.0.0.1 and the PEM file of the CA that signed it."""
    return make_tls(tmp_path_factory.mktemp("tls"))
