"""Parsing AWS JSON answers with orjson, the cyclic garbage collector paused for big ones."""

from __future__ import annotations

import gc
from typing import Any, Final

import orjson

__all__ = ["GC_PAUSE_BYTES", "loads_object"]

#: Bodies at least this long are parsed with the cyclic garbage collector paused.
GC_PAUSE_BYTES: Final = 64 * 1024


def loads_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object; an empty body is an empty object. Raises ValueError otherwise."""
    if not body:
        return {}
    data = _loads_gc_paused(body) if len(body) >= GC_PAUSE_BYTES else orjson.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _loads_gc_paused(body: bytes) -> Any:
    """``orjson.loads`` with the cyclic GC paused (only if it was on; restored after).

    A full GetRecords page becomes ~300,000 container objects. With the collector on,
    every 700 of them trigger a young collection, and the older generations -- which hold
    the pages other shards are still processing -- get traversed again and again: in a
    worker with several full pages in flight, parsing one took ~6x as long as with the
    collector paused, and the worker's throughput doubled (see docs/performance.md).
    orjson holds the GIL for the whole call, so no other thread runs while the collector
    is paused; the new objects are tracked as usual and the next collection sees them.
    """
    if not gc.isenabled():
        return orjson.loads(body)
    gc.disable()
    try:
        return orjson.loads(body)
    finally:
        gc.enable()
