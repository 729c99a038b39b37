"""The PostgreSQL sink's connection pool (psycopg_pool), set up for guarded merges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shardline.extras import require
from shardline.sinks.base import SinkError

if TYPE_CHECKING:
    from shardline.sinks.postgres import PostgresSink

__all__ = ["open_pool"]

_CONNECT_TIMEOUT = 10.0


async def open_pool(sink: PostgresSink, size: int, stage: str) -> Any:
    """An open pool of ``size`` connections; a connection that fails is one clear error."""
    require("psycopg", "postgres", feature="the postgresql sink")
    require("psycopg_pool", "postgres", feature="the postgresql sink")
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    from shardline.sinks.postgres import sink_error

    kwargs: dict[str, Any] = {"autocommit": True, "application_name": "shardline"}
    if sink.password is not None:
        kwargs["password"] = sink.password

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"SET lock_timeout = '{sink.lock_timeout}'")
        await conn.execute(f"SET statement_timeout = '{sink.statement_timeout}'")
        if sink.layout is not None:
            await conn.execute(sink.layout.create_stage(stage))

    try:  # one direct connection first: the pool would hide why it cannot connect
        probe = await psycopg.AsyncConnection.connect(
            sink.dsn, connect_timeout=int(_CONNECT_TIMEOUT), **kwargs
        )
        await probe.close()
    except Exception as exc:
        raise sink_error(sink.name, exc, "cannot connect") from exc
    pool = AsyncConnectionPool(
        sink.dsn,
        min_size=1,
        max_size=size,
        kwargs=kwargs,
        configure=configure,
        open=False,
        timeout=60.0,
        name=f"shardline {sink.name}",
    )
    try:
        await pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
    except Exception as exc:
        await pool.close()
        raise SinkError(sink.name, f"cannot open connections: {exc}", retriable=True) from exc
    return pool
