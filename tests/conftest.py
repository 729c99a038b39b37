"""Shared fixtures: one embedded local stack per test session, over real HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_REGION", "us-east-1")


@pytest.fixture(scope="session")
def local_stack() -> Iterator[object]:
    from shardline.local import LocalStack

    with LocalStack() as stack:
        yield stack
