"""The demo's archive: both workers also write every change to Parquet files in the demo's
temporary directory (JSON Lines when pyarrow is missing), and the live view shows the
files written, the changes archived and a DuckDB query over them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

__all__ = ["ArchiveWatch", "archive_url"]

#: The current state of a few keys: the last change of each, deleted keys left out.
STATE_QUERY = (
    "SELECT keys->>'$.order_id.S' AS order_id, new_image->>'$.status.S' AS status, "
    "new_image->>'$.version.N' AS version FROM changes "
    "QUALIFY row_number() OVER (PARTITION BY keys ORDER BY lpad(sequence_number, 40, '0') DESC) = 1"
    " AND event_name <> 'REMOVE' ORDER BY order_id LIMIT 5"
)


def archive_url(tmp: str | Path) -> str:
    """The sink URL the demo's workers get: Parquet, a file at least every 5 seconds."""
    fmt = "parquet" if importlib.util.find_spec("pyarrow") else "jsonl"
    return f"file://{Path(tmp) / 'archive'}?format={fmt}&roll_seconds=5"


class ArchiveWatch:
    """Counts the archive's files and changes (files never change once written)."""

    def __init__(self, tmp: str | Path) -> None:
        self.url = archive_url(tmp)
        self.root = Path(tmp) / "archive"
        self._rows: dict[Path, int] = {}
        self._state: list[tuple[Any, ...]] = []
        self._note = ""

    def refresh(self, query: bool) -> None:
        """Count new files; with ``query``, run the DuckDB query again (blocking: call it
        on a thread)."""
        pattern = "*.parquet" if "parquet" in self.url else "*.jsonl.gz"
        for path in self.root.rglob(pattern):
            if path not in self._rows:
                self._rows[path] = _rows_in(path)
        if query and self._rows:
            self._state, self._note = _query(self.url)

    def view(self) -> Table:
        """The archive panel of the live view."""
        files, changes = len(self._rows), sum(self._rows.values())
        kind = "Parquet" if "parquet" in self.url else "JSON Lines"
        table = Table(
            title=f"archive ({kind}): {files} files, {changes} changes",
            title_justify="left",
            min_width=64,
        )
        for column in ("order_id", "status", "version"):
            table.add_column(column)
        for row in self._state:
            table.add_row(*(str(v) for v in row))
        if self._note:
            table.caption = self._note
        elif self._state:
            table.caption = Text(f"DuckDB over {self.root}: the state of 5 keys")
        return table


def _rows_in(path: Path) -> int:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        import gzip

        return len(gzip.decompress(path.read_bytes()).splitlines())
    except Exception:
        return 0


def _query(url: str) -> tuple[list[tuple[Any, ...]], str]:
    if importlib.util.find_spec("duckdb") is None:
        return [], "install shardline[query] to see a DuckDB query here"
    from shardline.sinks.archive import ArchiveSink
    from shardline.sinks.query import run_query
    from shardline.sinks.registry import sink_from_url

    sink = sink_from_url(url)
    assert isinstance(sink, ArchiveSink)
    try:
        _, rows = run_query(sink, STATE_QUERY)
    except Exception as exc:
        return [], f"query: {exc}"
    return rows, ""
