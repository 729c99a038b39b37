"""moto's DynamoDB tables, looked up in its process-wide backends."""

from __future__ import annotations

from typing import Any

from shardline.local.graph import GraphError


class StreamNotFoundError(GraphError):
    """The stream, or its table, does not exist (any more)."""

    code = "ResourceNotFoundException"


def find_table(account_id: str, region: str, table_name: str) -> Any:
    """moto's table, or :class:`StreamNotFoundError`."""
    from moto.dynamodb.models import dynamodb_backends

    try:
        table = dynamodb_backends[account_id][region].tables.get(table_name)
    except (KeyError, ValueError):
        table = None
    if table is None:
        raise StreamNotFoundError(f"Requested resource not found: Table: {table_name} not found")
    return table


def tables_in(account_id: str, region: str) -> list[Any]:
    """Every moto table of one account and region, in creation order."""
    from moto.dynamodb.models import dynamodb_backends

    return list(dynamodb_backends[account_id][region].tables.values())
