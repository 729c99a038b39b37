"""Terminal views (rich tables) for `shardline status` and `shardline demo`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from shardline.redact import SECRETS
from shardline.status import ShardStatus


def short_shard(shard_id: str | None) -> str:
    """shardId-00000001700000000000-abcdef12 -> ...abcdef12 (ids share long prefixes)."""
    if not shard_id:
        return "-"
    return "…" + shard_id.rsplit("-", 1)[-1]


def short_sequence(value: str) -> str:
    return value if len(value) <= 12 else "…" + value[-8:]


def status_table(stream_arn: str, rows: Sequence[ShardStatus]) -> Table:
    """One row per lease: shard, parent, open, owner, checkpoint, records behind.

    Every cell is masked (:data:`~shardline.redact.SECRETS`): owners and checkpoints are
    whatever workers wrote into the lease table.
    """
    title = SECRETS.redact(f"{stream_arn}  ({len(rows)} leases)")
    table = Table(title=title, title_justify="left")
    for column in ("shard", "parent", "open", "owner", "checkpoint", "behind", "oldest waiting"):
        table.add_column(column)
    for row in rows:
        table.add_row(*map(SECRETS.redact, status_cells(row)))
    return table


def status_cells(row: ShardStatus) -> tuple[str, ...]:
    """The cells of one `shardline status` row, as text."""
    return (
        row.shard,
        short_shard(row.parent),
        {True: "open", False: "closed", None: "gone"}[row.open],
        row.owner or "-",
        short_sequence(row.checkpoint),
        row.behind,
        "-" if row.oldest_waiting_seconds is None else f"{row.oldest_waiting_seconds:.1f}s",
    )
