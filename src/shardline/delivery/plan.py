"""Pure decisions after an invocation: what is done, what is retried, what is given up.

Lambda's rules, applied to one batch of one lane:

* A partial batch response (``report_batch_item_failures``) marks everything before the
  lowest reported record done; the rest is retried (a failed invocation).
* Otherwise a failure fails the whole batch. With ``bisect_batch_on_function_error``
  a batch of two or more records is split in two halves, retried one after the other;
  splitting does not count toward ``maximum_retry_attempts``.
* A batch that failed more than ``maximum_retry_attempts`` times (-1: never) is given
  up: its records go to the failure destination.
* Before every invocation, records older than ``maximum_record_age_in_seconds`` at the
  front of the batch are given up on without being invoked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
MAXIMUM_RECORD_AGE_EXCEEDED = "MaximumRecordAgeExceeded"


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """Records to invoke, how many invocations of them failed, and how many were made."""

    records: list[T]
    failures: int = 0
    invocations: int = 0


@dataclass(frozen=True)
class FailurePlan(Generic[T]):
    """What to do after a failed invocation."""

    done: list[T] = field(default_factory=list)
    next: list[Attempt[T]] = field(default_factory=list)
    give_up: list[T] = field(default_factory=list)
    failures: int = 0
    invocations: int = 0
    backoff: bool = False


def first_failure(response: Any, sequence_numbers: Sequence[str]) -> int | None:
    """Index of the lowest failed record in a partial batch response, or ``None`` (success).

    As Lambda: no response, an empty or null ``batchItemFailures`` is a success; an
    empty, null or unknown ``itemIdentifier``, or a malformed entry, fails the whole
    batch (index 0).
    """
    if not isinstance(response, Mapping):
        return None
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    if not isinstance(failures, list):
        return 0
    positions = {seq: i for i, seq in enumerate(sequence_numbers)}
    lowest = len(sequence_numbers)
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return 0
        lowest = min(lowest, positions[identifier])
    return lowest


def plan_failure(
    attempt: Attempt[T],
    failed_from: int,
    *,
    bisect: bool,
    maximum_retry_attempts: int,
) -> FailurePlan[T]:
    """Decide after ``attempt`` failed from record ``failed_from`` on (0: the whole batch).

    ``attempt.invocations`` must already count the call that failed; it is carried over
    to what follows (for the failure document's ``approximateInvokeCount``).
    """
    calls = attempt.invocations
    done = attempt.records[:failed_from]
    rest = attempt.records[failed_from:]
    if failed_from == 0 and bisect and len(rest) > 1:
        first, second = _halves(rest)
        return FailurePlan(
            next=[
                Attempt(first, attempt.failures, calls),
                Attempt(second, attempt.failures, calls),
            ],
            failures=attempt.failures,
            invocations=calls,
        )
    failures = attempt.failures + 1
    if maximum_retry_attempts != -1 and failures > maximum_retry_attempts:
        return FailurePlan(done=done, give_up=rest, failures=failures, invocations=calls)
    return FailurePlan(
        done=done,
        next=[Attempt(rest, failures, calls)],
        failures=failures,
        invocations=calls,
        backoff=True,
    )


def _halves(records: list[T]) -> tuple[list[T], list[T]]:
    middle = (len(records) + 1) // 2
    return records[:middle], records[middle:]


def expired_prefix(created: Iterable[float], now: float, maximum_age: int) -> int:
    """How many leading records are older than ``maximum_age`` seconds (-1: none)."""
    if maximum_age == -1:
        return 0
    count = 0
    for when in created:
        if now - when <= maximum_age:
            break
        count += 1
    return count
