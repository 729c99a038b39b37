"""DynamoDB-typed JSON to the plain JSON a target stores, without losing anything.

``{"price": {"N": "12.50"}, "tags": {"SS": ["b", "a"]}}`` becomes
``{"price": 12.50, "tags": ["a", "b"]}``:

====== =======================================================================
``S``    a JSON string
``N``    a JSON number with every digit kept (``12.50`` stays ``12.50``; never a float)
``B``    the base64 string as sent
``BOOL`` ``true`` / ``false``; ``NULL``: ``null``
``M``    an object; ``L``: an array
``SS``   a sorted array of strings; ``NS``: sorted by value; ``BS``: sorted by the bytes
====== =======================================================================

A user transform returns Python values; :func:`dumps_document` writes those with the same
rules (``Decimal`` as a number with its digits, ``bytes`` as base64, sets sorted).
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from typing import Any

import msgspec
import orjson

__all__ = [
    "dumps_document",
    "json_number",
    "plain_item",
    "plain_item_json",
    "plain_value",
    "typed_value",
]

_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_Fragment = orjson.Fragment


def json_number(text: str) -> str:
    """``text`` (a DynamoDB number) as JSON number text, with the same value and digits."""
    if _JSON_NUMBER.match(text):
        return text
    try:
        value = Decimal(text)
    except ArithmeticError as exc:
        raise ValueError(f"not a DynamoDB number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a DynamoDB number: {text!r}")
    formatted = format(value, "f") if -30 < value.adjusted() < 30 else format(value, "E")
    return formatted.replace("E", "e")


def plain_value(av: dict[str, Any]) -> Any:
    """One typed attribute value as a plain value (numbers as :class:`orjson.Fragment`)."""
    if len(av) == 1:  # the hot path of every image: one loop turn, tags by frequency
        for tag, value in av.items():
            if tag == "S":
                return value
            if tag == "N":
                plain = value.isascii() and value.isdigit() and value[0] != "0"
                return _Fragment(value if plain or value == "0" else json_number(value))
            if tag == "M":
                return {name: plain_value(inner) for name, inner in value.items()}
            if tag == "L":
                return [plain_value(inner) for inner in value]
            if tag == "BOOL" or tag == "B":
                return value
            if tag == "NULL":
                return None
            return _plain_set(tag, value)
    raise ValueError(f"a DynamoDB attribute value has exactly one type tag, got {list(av)}")


def _plain_set(tag: str, value: Any) -> Any:
    if tag == "SS":
        return sorted(value)
    if tag == "NS":
        return [_Fragment(json_number(n)) for n in sorted(value, key=Decimal)]
    if tag == "BS":
        return sorted(value, key=base64.b64decode)
    raise ValueError(f"unknown DynamoDB type tag {tag!r}")


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A typed item map (``{"id": {"S": "a"}}``) as a plain dict ready for :func:`orjson.dumps`."""
    return {name: plain_value(av) for name, av in item.items()}


def plain_item_json(raw: bytes | msgspec.Raw | dict[str, Any]) -> bytes:
    """A typed item map, as JSON text or parsed, as plain JSON bytes."""
    item = raw if isinstance(raw, dict) else orjson.loads(bytes(raw))
    return orjson.dumps(plain_item(item))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} cannot be written as JSON")
        return _Fragment(json_number(str(value)))
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def dumps_document(document: dict[str, Any]) -> bytes:
    """A transform's document (Python values) as plain JSON bytes; raises :class:`TypeError`."""
    try:
        return orjson.dumps(document, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    # orjson holds integers of 64 bits only; write bigger ones with every digit
    return orjson.dumps(_big_ints(document), default=_default, option=orjson.OPT_NON_STR_KEYS)


def _big_ints(value: Any) -> Any:
    """``value`` with integers orjson cannot hold as number fragments (containers copied)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _Fragment(str(value)) if not -(2**63) <= value < 2**64 else value
    if isinstance(value, dict):
        return {k: _big_ints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints(v) for v in value]
    if isinstance(value, set | frozenset):
        return [_big_ints(v) for v in sorted(value)]
    return value


def typed_value(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (what boto3's serializer does)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal | float):
        return {"N": _typed_number(value)}
    if isinstance(value, bytes | bytearray):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {"M": {str(k): typed_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [typed_value(v) for v in value]}
    if isinstance(value, set | frozenset):
        return _typed_set(value)
    raise TypeError(f"{type(value).__name__} cannot be stored in DynamoDB")


def _typed_number(value: int | Decimal | float) -> str:
    """A number's DynamoDB text; NaN and infinities are a :class:`TypeError`."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = Decimal(repr(value))
    if not value.is_finite():
        raise TypeError(f"{value} cannot be stored in DynamoDB")
    return str(value)


def _typed_set(values: set[Any] | frozenset[Any]) -> dict[str, Any]:
    if all(isinstance(v, str) for v in values):
        return {"SS": sorted(values)}
    if all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values):
        return {"NS": [_typed_number(v) for v in sorted(values)]}
    if all(isinstance(v, bytes) for v in values):
        return {"BS": [base64.b64encode(v).decode("ascii") for v in sorted(values)]}
    raise TypeError("a set must hold only strings, only numbers or only bytes")
