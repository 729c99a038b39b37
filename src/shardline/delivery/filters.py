"""Lambda's event filter patterns, as pure functions.

A pattern is a JSON object whose leaves are arrays of matchers. A record matches a
pattern when every key of the pattern matches (AND); a leaf matches when any of its
matchers matches (OR); a record passes a :class:`FilterSet` when any pattern matches
(OR across filters, as Lambda's ``FilterCriteria.Filters``). With no pattern at all,
every record passes.

Matchers: a literal string, number, boolean or ``null`` (equals; ``""`` matches an empty
string), ``{"prefix": s}``, ``{"suffix": s}``, ``{"equals-ignore-case": s}``,
``{"anything-but": value | [values] | {"prefix": s}}``, ``{"numeric": [op, n, ...]}``
and ``{"exists": bool}``. Where the record holds an array, the leaf matches when any
element does. DynamoDB ``N`` values are strings on the wire: ``numeric`` compares them
as numbers, and equality compares them as strings (as Lambda does).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from shardline.errors import ConfigError

_MISSING: Any = object()
_NUMERIC_OPS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MAX_PATTERNS = 10

Matcher = Callable[[Any], bool]


# --- normalizing what the user gave ---------------------------------------------------


def normalize_filter_criteria(criteria: Any) -> tuple[str, ...]:
    """Canonical JSON of every pattern, validated; raises :class:`ConfigError`."""
    if criteria is None:
        return ()
    patterns = [_load_pattern(p) for p in _pattern_list(criteria)]
    if len(patterns) > _MAX_PATTERNS:
        raise ConfigError(f"filter_criteria has {len(patterns)} patterns; at most 10")
    for pattern in patterns:
        compile_pattern(pattern)
    return tuple(json.dumps(p, sort_keys=True, separators=(",", ":")) for p in patterns)


def _pattern_list(criteria: Any) -> list[Any]:
    if isinstance(criteria, Mapping) and "Filters" in criteria:
        filters = criteria["Filters"]
        if not isinstance(filters, list) or not all(
            isinstance(f, Mapping) and "Pattern" in f for f in filters
        ):
            raise ConfigError('filter_criteria "Filters" must be a list of {"Pattern": "..."}')
        return [f["Pattern"] for f in filters]
    if isinstance(criteria, str | Mapping):
        return [criteria]
    if isinstance(criteria, Sequence):
        return list(criteria)
    raise ConfigError(f"filter_criteria must be a pattern or a list of patterns, got {criteria!r}")


def _load_pattern(pattern: Any) -> dict[str, Any]:
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"filter pattern is not valid JSON: {exc}") from exc
    if not isinstance(pattern, dict) or not pattern:
        raise ConfigError(f"a filter pattern must be a non-empty JSON object, got {pattern!r}")
    return pattern


# --- compiling ------------------------------------------------------------------------


def compile_pattern(pattern: Mapping[str, Any], path: str = "") -> Matcher:
    """A predicate over a (sub)document; raises :class:`ConfigError` for a bad pattern."""
    fields: list[tuple[str, Matcher]] = []
    for key, sub in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(sub, Mapping):
            if not sub:
                raise ConfigError(f"filter pattern {where}: an empty object matches nothing")
            fields.append((key, compile_pattern(sub, where)))
        elif isinstance(sub, list):
            fields.append((key, _compile_leaf(sub, where)))
        else:
            raise ConfigError(
                f"filter pattern {where}: values must be arrays of matchers, got {sub!r}"
            )

    def match(document: Any) -> bool:
        for key, matcher in fields:
            value = document.get(key, _MISSING) if isinstance(document, Mapping) else _MISSING
            if not matcher(value):
                return False
        return True

    return match


def _compile_leaf(matchers: list[Any], where: str) -> Matcher:
    if not matchers:
        raise ConfigError(f"filter pattern {where}: an empty array matches nothing")
    compiled = [_compile_matcher(m, where) for m in matchers]
    missing_ok = any(m == {"exists": False} for m in matchers)

    def match(value: Any) -> bool:
        if value is _MISSING:
            return missing_ok
        values = value if isinstance(value, list) else [value]
        return any(c(v) for c in compiled for v in values)

    return match


def _compile_matcher(spec: Any, where: str) -> Matcher:
    if spec is None or isinstance(spec, str | bool | int | float):
        return _equals(spec)
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(f"filter pattern {where}: unsupported matcher {spec!r}")
    ((name, argument),) = spec.items()
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ConfigError(
            f"filter pattern {where}: unknown operator {name!r} "
            f"(known: {', '.join(sorted(_BUILDERS))})"
        )
    return builder(argument, where)


def _equals(expected: Any) -> Matcher:
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return lambda v: type(v) is type(expected) and v == expected
    number = Decimal(str(expected))
    return lambda v: _as_json_number(v) == number


def _as_json_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(value))


def _as_number(value: Any) -> Decimal | None:
    """A JSON number, or a string holding one (DynamoDB's ``N``)."""
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return _as_json_number(value)


def _string_op(name: str, test: Callable[[str, str], bool]) -> Callable[[Any, str], Matcher]:
    def build(argument: Any, where: str) -> Matcher:
        if not isinstance(argument, str):
            raise ConfigError(f"filter pattern {where}: {name} needs a string, got {argument!r}")
        return lambda v: isinstance(v, str) and test(v, argument)

    return build


def _exists(argument: Any, where: str) -> Matcher:
    if not isinstance(argument, bool):
        raise ConfigError(f"filter pattern {where}: exists needs true or false")
    # Presence is decided in _compile_leaf; a present value matches exists:true only.
    return lambda v: argument


def _anything_but(argument: Any, where: str) -> Matcher:
    if isinstance(argument, Mapping):
        inner = _compile_matcher(argument, where)
        return lambda v: not inner(v)
    values = argument if isinstance(argument, list) else [argument]
    if not values:
        raise ConfigError(f"filter pattern {where}: anything-but needs at least one value")
    excluded = [_compile_matcher(v, where) for v in values]
    return lambda v: not any(e(v) for e in excluded)


def _numeric(argument: Any, where: str) -> Matcher:
    if not isinstance(argument, list) or not argument or len(argument) % 2:
        raise ConfigError(f"filter pattern {where}: numeric needs [op, number, ...]")
    tests: list[tuple[Callable[[Decimal, Decimal], bool], Decimal]] = []
    for op, bound in zip(argument[::2], argument[1::2], strict=True):
        number = _as_json_number(bound)
        if op not in _NUMERIC_OPS or number is None:
            raise ConfigError(f"filter pattern {where}: bad numeric comparison {op!r} {bound!r}")
        tests.append((_NUMERIC_OPS[op], number))

    def match(value: Any) -> bool:
        number = _as_number(value)
        return number is not None and all(test(number, bound) for test, bound in tests)

    return match


_BUILDERS: dict[str, Callable[[Any, str], Matcher]] = {
    "prefix": _string_op("prefix", str.startswith),
    "suffix": _string_op("suffix", str.endswith),
    "equals-ignore-case": _string_op("equals-ignore-case", lambda v, a: v.lower() == a.lower()),
    "anything-but": _anything_but,
    "numeric": _numeric,
    "exists": _exists,
}


class FilterSet:
    """Compiled filter criteria: ``matches(document)`` is true when any pattern matches."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self._matchers = [compile_pattern(json.loads(p)) for p in patterns]

    def __bool__(self) -> bool:
        return bool(self._matchers)

    def matches(self, document: Mapping[str, Any]) -> bool:
        """Whether the record (in Lambda's event form) passes; always true with no patterns."""
        return not self._matchers or any(m(document) for m in self._matchers)
