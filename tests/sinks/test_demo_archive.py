"""The demo's archive panel: files and changes counted, the DuckDB state of a few keys."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from shardline.demo_archive import ArchiveWatch
from shardline.records import StreamRecord
from tests.sinks.archive_support import change, started, write


def order(seq: int, key: int, status: str) -> StreamRecord:
    keys = {"order_id": {"S": f"order-{key:03d}"}}
    new = {**keys, "status": {"S": status}, "version": {"N": str(seq)}}
    return change(seq, new=new, keys=keys)


def test_the_panel_counts_files_and_shows_the_state(tmp_path: Path) -> None:
    watch = ArchiveWatch(tmp_path)
    sink = started(watch.url)
    write(sink, [order(1, 0, "placed"), order(2, 1, "placed")])
    write(sink, [order(3, 0, "paid")])
    watch.refresh(query=True)
    console = Console(width=120, record=True)
    console.print(watch.view())
    shown = " ".join(console.export_text().split())
    assert "2 files, 3 changes" in shown
    assert "order-000 │ paid" in shown and "order-001 │ placed" in shown
