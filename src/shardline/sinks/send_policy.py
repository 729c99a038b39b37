"""When to retry a notification, and how long to wait: pure decisions for the sinks.

HTTP answers are classified by :class:`RetryPolicy`: 2xx delivered; the statuses in
``retry_on`` (default: 408, 429 and every 5xx) retried with capped exponential backoff and
full jitter, or after ``Retry-After`` when the answer says so; every other status is a
permanent failure that goes through the delivery path's failure handling (retry limit,
bisect, ``on_failure``). Network errors and timeouts are always retried.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal

__all__ = [
    "DEFAULT_RETRY_ON",
    "Outcome",
    "RetryPolicy",
    "backoff",
    "parse_retry_after",
    "parse_retry_on",
]

Outcome = Literal["delivered", "retry", "failed"]
DEFAULT_RETRY_ON: Final = "408,429,5xx"


def parse_retry_on(text: str | Iterable[str]) -> frozenset[int]:
    """``"408,429,5xx"`` (codes, or ``4xx``/``5xx`` for a whole class) as a set of codes."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    codes: set[int] = set()
    for part in (str(p).strip().lower() for p in parts):
        if not part:
            continue
        if len(part) == 3 and part.endswith("xx") and part[0] in "45":
            first = int(part[0]) * 100
            codes.update(range(first, first + 100))
        elif part.isdigit() and 400 <= int(part) <= 599:
            codes.add(int(part))
        else:
            raise ValueError(f"{part!r} is not an HTTP error status (400-599) nor 4xx/5xx")
    return frozenset(codes)


@dataclass(frozen=True)
class RetryPolicy:
    """Which answers are retried, and the backoff between tries."""

    retry_on: frozenset[int] = parse_retry_on(DEFAULT_RETRY_ON)
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 300.0

    def classify(self, status: int) -> Outcome:
        """What an HTTP status means for the message."""
        if 200 <= status < 300:
            return "delivered"
        if status in self.retry_on:
            return "retry"
        return "failed"

    def delay(
        self, attempt: int, retry_after: float | None, rng: Callable[[], float] = random.random
    ) -> float:
        """Seconds before try ``attempt + 1``: ``Retry-After`` (capped) if given, else backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return backoff(attempt, self.base_delay, self.max_delay, rng)


def backoff(
    attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))], at least base/2."""
    ceiling = min(cap, base * float(1 << min(max(attempt - 1, 0), 30)))
    return max(base / 2, ceiling * float(rng()))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
