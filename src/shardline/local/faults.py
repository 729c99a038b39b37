"""Fault rules for the local stack: which requests fail, how, and how often.

A :class:`FaultRule` names a kind of fault, the operations and table it applies to,
a probability (``rate``) and an optional number of firings (``count``, for bursts).
:class:`Faults` holds the rules of one stack; the HTTP layer and the Streams API ask
it, per request, whether a rule fires. Rules can be added and removed while the stack
serves, from Python (``stack.faults``), from ``shardline local --fault SPEC`` or over
the control endpoint (``POST /_shardline/faults``).

Kinds:

``throttle``
    HTTP 400 ``LimitExceededException`` (Streams operations) or
    ``ProvisionedThroughputExceededException`` (DynamoDB operations); never applied.
``error``
    HTTP 500 ``InternalServerError``.
``drop``
    the connection is closed without an answer.
``race``
    a conditional write (one with ``ConditionExpression`` or ``Expected``) answers
    ``ConditionalCheckFailedException``, as if another writer had won.
``empty``
    GetRecords answers an empty page (with a next iterator at the same position),
    as DynamoDB Streams may do before data.

``applied=True`` (``error``, ``drop``, ``race``): the request is carried out first and
only its answer is replaced, as when a response is lost after the write happened.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

FAULT_KINDS = ("throttle", "error", "drop", "race", "empty")
HTTP_KINDS = frozenset({"throttle", "error", "drop", "race"})
STREAMS_OPERATIONS = frozenset({"DescribeStream", "ListStreams", "GetShardIterator", "GetRecords"})
WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
OPERATION_GROUPS: Mapping[str, frozenset[str]] = {
    "streams": STREAMS_OPERATIONS,
    "writes": WRITE_OPERATIONS,
}


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault: ``kind`` on ``operations`` (empty: all) of ``table`` (None: any).

    Each matching request fires the rule with probability ``rate``; after ``count``
    firings (None: no limit) the rule is spent and removed.
    """

    kind: str
    operations: frozenset[str] = field(default_factory=frozenset)
    rate: float = 1.0
    count: int | None = None
    table: str | None = None
    applied: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"fault count must be at least 1, got {self.count}")
        if self.applied and self.kind in ("throttle", "empty"):
            raise ValueError(f"a {self.kind} fault cannot be applied")
        object.__setattr__(self, "operations", expand_operations(self.operations))

    def matches(self, operation: str, tables: Iterable[str], *, conditional: bool) -> bool:
        """Whether this rule applies to a request (before its ``rate`` is drawn)."""
        if self.operations and operation not in self.operations:
            return False
        if self.table is not None and self.table not in tables:
            return False
        if self.kind == "empty":
            return operation == "GetRecords"
        return conditional or self.kind != "race"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the control endpoint's wire format)."""
        return {
            "kind": self.kind,
            "operations": sorted(self.operations),
            "rate": self.rate,
            "count": self.count,
            "table": self.table,
            "applied": self.applied,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from :meth:`to_dict`'s form; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError("a fault needs a kind")
        values = dict(data)
        ops = values.get("operations") or ()
        values["operations"] = frozenset([ops] if isinstance(ops, str) else ops)
        return cls(**values)

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """Parse ``KIND[:key=value]...``, e.g. ``throttle:ops=GetRecords,DescribeStream:rate=0.1``.

        Keys: ``ops`` (operation names or the groups ``streams`` and ``writes``,
        comma-separated), ``rate``, ``count``, ``table``, ``applied`` (0 or 1).
        """
        kind, *options = spec.split(":")
        values: dict[str, Any] = {"kind": kind.strip()}
        for option in options:
            name, sep, value = option.partition("=")
            if not sep:
                raise ValueError(f"fault option {option!r} must look like key=value")
            values.update(_option(name.strip(), value.strip()))
        return cls.from_dict(values)


def _option(name: str, value: str) -> dict[str, Any]:
    if name in ("ops", "operations"):
        return {"operations": frozenset(v for v in value.split(",") if v)}
    if name == "rate":
        return {"rate": float(value)}
    if name == "count":
        return {"count": int(value)}
    if name == "table":
        return {"table": value}
    if name == "applied":
        return {"applied": value.lower() in ("1", "true", "yes")}
    raise ValueError(f"unknown fault option {name!r}")


def expand_operations(operations: Iterable[str]) -> frozenset[str]:
    """Operation names, with the groups ``streams`` and ``writes`` expanded."""
    expanded: set[str] = set()
    for name in operations:
        expanded |= OPERATION_GROUPS.get(name, frozenset({name}))
    return frozenset(expanded)


class Faults:
    """The fault rules of one local stack; safe to use from any thread."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        self._rules: dict[int, FaultRule] = {}
        self._left: dict[int, int] = {}
        self._next_id = 1
        self.fired: Counter[str] = Counter()
        """Firings per kind since the stack started (``clear`` keeps them)."""

    def add(self, rule: FaultRule | str) -> int:
        """Add a rule (or a ``KIND:key=value`` spec); return its id for :meth:`remove`."""
        if isinstance(rule, str):
            rule = FaultRule.parse(rule)
        with self._lock:
            rule_id = self._next_id
            self._next_id += 1
            self._rules[rule_id] = rule
            if rule.count is not None:
                self._left[rule_id] = rule.count
            return rule_id

    def throttle(self, *operations: str, rate: float = 1.0, count: int | None = None,
                 table: str | None = None) -> int:  # fmt: skip
        """Throttle these operations (all when none are named)."""
        return self.add(FaultRule("throttle", frozenset(operations), rate, count, table))

    def server_error(self, *operations: str, rate: float = 1.0, count: int | None = None,
                     table: str | None = None, applied: bool = False) -> int:  # fmt: skip
        """Answer HTTP 500 to these operations."""
        return self.add(FaultRule("error", frozenset(operations), rate, count, table, applied))

    def drop_connection(self, *operations: str, rate: float = 1.0, count: int | None = None,
                        table: str | None = None, applied: bool = False) -> int:  # fmt: skip
        """Close the connection without answering these operations."""
        return self.add(FaultRule("drop", frozenset(operations), rate, count, table, applied))

    def conditional_race(self, *operations: str, rate: float = 1.0, count: int | None = None,
                         table: str | None = None, applied: bool = False) -> int:  # fmt: skip
        """Fail conditional writes with ConditionalCheckFailedException."""
        return self.add(FaultRule("race", frozenset(operations), rate, count, table, applied))

    def empty_pages(self, *, rate: float = 1.0, count: int | None = None,
                    table: str | None = None) -> int:  # fmt: skip
        """Answer GetRecords with empty pages (data stays for the next call)."""
        return self.add(FaultRule("empty", frozenset({"GetRecords"}), rate, count, table))

    def remove(self, rule_id: int) -> None:
        """Remove one rule (no error when it is already gone)."""
        with self._lock:
            self._rules.pop(rule_id, None)
            self._left.pop(rule_id, None)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self._left.clear()

    def rules(self) -> dict[int, FaultRule]:
        """The active rules by id."""
        with self._lock:
            return dict(self._rules)

    def pick(
        self,
        operation: str,
        tables: Iterable[str] = (),
        *,
        conditional: bool = False,
        kinds: Iterable[str] = FAULT_KINDS,
    ) -> FaultRule | None:
        """The first rule of ``kinds`` that fires for this request, if any."""
        wanted, names = set(kinds), set(tables)
        with self._lock:
            for rule_id, rule in list(self._rules.items()):
                if rule.kind not in wanted:
                    continue
                if not rule.matches(operation, names, conditional=conditional):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                self._spend(rule_id)
                self.fired[rule.kind] += 1
                return rule
        return None

    def _spend(self, rule_id: int) -> None:
        if rule_id not in self._left:
            return
        self._left[rule_id] -= 1
        if self._left[rule_id] <= 0:
            del self._left[rule_id]
            del self._rules[rule_id]
