"""Tumbling windows (pure): which window a record belongs to, and when one closes.

As Lambda, windows are aligned to the epoch: ``[k*size, (k+1)*size)`` in seconds of the
records' ``ApproximateCreationDateTime``. State is carried from one invocation to the
next within a window and starts empty in the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Window:
    """One tumbling window: ``start <= t < end`` (epoch seconds)."""

    start: float
    end: float

    def contains(self, when: float) -> bool:
        """Whether a record created at ``when`` falls in this window."""
        return self.start <= when < self.end

    def iso(self) -> tuple[str, str]:
        """Start and end as Lambda writes them (``2020-07-30T17:00:00Z``)."""
        return _iso(self.start), _iso(self.end)


@dataclass
class WindowState:
    """The open window of one shard and the handler's state in it."""

    window: Window
    state: dict[str, Any] = field(default_factory=dict)

    def over(self, now: float, next_created: float | None) -> bool:
        """Over by the clock, or because the next record waiting is of a later window."""
        end = self.window.end
        return now >= end or (next_created is not None and next_created >= end)

    def keep(self, response: Any) -> None:
        """Carry the ``state`` a handler returned to the window's next invocation."""
        if isinstance(response, dict) and "state" in response:
            state = response["state"]
            self.state = dict(state) if isinstance(state, dict) else {}


def window_of(when: float, size: int) -> Window:
    """The window of size ``size`` seconds containing time ``when``."""
    start = (int(when) // size) * size
    return Window(float(start), float(start + size))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
