"""Deterministic DynamoDB Streams data for the benchmarks.

Items are built directly in DynamoDB JSON (the wire form: ``B`` is base64 text, numbers
are strings) and use every attribute type: S, N, B, BOOL, NULL, M (nested), L, SS, NS,
BS. Everything comes from one seeded :class:`random.Random`, so the same seed gives the
same bytes on every machine.
"""

from __future__ import annotations

import base64
import random
import string
from typing import Any

import orjson

__all__ = [
    "dynamodb_item_size",
    "get_records_body",
    "make_item",
    "make_record",
    "to_boto3",
]

_WORDS = (
    *("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"),
    *("juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"),
    *("sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu"),
)
_CITIES = ("Lisbon", "Oslo", "Osaka", "Lima", "Nairobi", "Perth", "Quito", "Tallinn")
_EVENTS = ("login", "logout", "purchase", "refund", "upgrade", "password-reset")
_BASE_TIME = 1_700_000_000
_SEQUENCE_BASE = 10**20  # 21 digits, like the service's sequence numbers


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _b64(rng: random.Random, size: int) -> str:
    return base64.b64encode(rng.randbytes(size)).decode("ascii")


def _number(rng: random.Random) -> str:
    return f"{rng.uniform(-1e6, 1e6):.4f}"


def make_item(rng: random.Random, index: int, version: int = 1) -> dict[str, Any]:
    """One item of about 1 KB (DynamoDB item size), in DynamoDB JSON."""
    history = [
        {
            "M": {
                "at": {"N": str(_BASE_TIME + rng.randrange(10**7))},
                "event": {"S": rng.choice(_EVENTS)},
                "ok": {"BOOL": rng.random() < 0.9},
                "amount": {"N": _number(rng)},
            }
        }
        for _ in range(4)
    ]
    return {
        "pk": {"S": f"customer#{index:08d}"},
        "sk": {"N": str(version)},
        "name": {"S": f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}"},
        "email": {"S": f"{''.join(rng.choices(string.ascii_lowercase, k=10))}@example.com"},
        "bio": {"S": _text(rng, 48)},
        "age": {"N": str(rng.randrange(18, 99))},
        "balance": {"N": f"{rng.randrange(10**8) / 100:.2f}"},
        "score": {"N": repr(rng.random())},
        "avatar": {"B": _b64(rng, 96)},
        "active": {"BOOL": rng.random() < 0.5},
        "deleted_at": {"NULL": True},
        "address": {
            "M": {
                "street": {"S": f"{rng.randrange(1, 999)} {_text(rng, 2).title()} Street"},
                "city": {"S": rng.choice(_CITIES)},
                "zip": {"S": f"{rng.randrange(10**5):05d}"},
                "geo": {
                    "M": {
                        "lat": {"N": f"{rng.uniform(-90, 90):.6f}"},
                        "lon": {"N": f"{rng.uniform(-180, 180):.6f}"},
                    }
                },
            }
        },
        "tags": {"SS": sorted(set(rng.sample(_WORDS, 5)))},
        "ratings": {"NS": sorted({str(rng.randrange(1, 10**4)) for _ in range(5)})},
        "keys": {"BS": sorted({_b64(rng, 16) for _ in range(3)})},
        "history": {"L": history},
        "prefs": {
            "M": {
                "theme": {"S": rng.choice(("dark", "light", "system"))},
                "langs": {"L": [{"S": "en"}, {"S": rng.choice(("pt", "no", "ja", "es"))}]},
                "notify": {"BOOL": rng.random() < 0.5},
                "limits": {"M": {"daily": {"N": "500"}, "monthly": {"N": "10000"}}},
            }
        },
        "version": {"N": str(version)},
    }


def make_record(rng: random.Random, index: int) -> dict[str, Any]:
    """One MODIFY record with both images, as GetRecords returns it."""
    old = make_item(rng, index, version=1)
    new = make_item(rng, index, version=2)
    keys = {"pk": new["pk"], "sk": new["sk"]}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": float(_BASE_TIME + index),
        "Keys": keys,
        "NewImage": new,
        "OldImage": old,
        "SequenceNumber": str(_SEQUENCE_BASE + index * 100),
        "SizeBytes": dynamodb_item_size(keys) + dynamodb_item_size(new) + dynamodb_item_size(old),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    return {
        "eventID": rng.randbytes(16).hex(),
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    }


def get_records_body(seed: int, records: int) -> bytes:
    """A GetRecords response body with ``records`` MODIFY records."""
    rng = random.Random(seed)
    page = {
        "Records": [make_record(rng, index) for index in range(records)],
        "NextShardIterator": "arn:aws:dynamodb:us-east-1:123456789012:table/bench/stream/x|1|AAAA",
    }
    return orjson.dumps(page)


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """An approximation of DynamoDB's item size: attribute names plus value sizes."""
    return sum(len(name.encode()) + _value_size(av) for name, av in item.items())


def _value_size(av: dict[str, Any]) -> int:
    ((tag, value),) = av.items()
    if tag == "S":
        return len(value.encode())
    if tag == "N":
        return len(value.lstrip("-").replace(".", "")) // 2 + 2
    if tag == "B":
        return len(base64.b64decode(value))
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in value.items())
    if tag == "L":
        return 3 + sum(1 + _value_size(v) for v in value)
    if tag == "SS":
        return sum(len(v.encode()) for v in value)
    if tag == "NS":
        return sum(_value_size({"N": v}) for v in value)
    if tag == "BS":
        return sum(len(base64.b64decode(v)) for v in value)
    raise ValueError(f"unknown attribute type {tag!r}")


def to_boto3(item: dict[str, Any]) -> dict[str, Any]:
    """The same item in boto3's low-level client form (binary values as ``bytes``)."""
    return {name: _av_to_boto3(av) for name, av in item.items()}


def _av_to_boto3(av: dict[str, Any]) -> dict[str, Any]:
    ((tag, value),) = av.items()
    if tag == "B":
        return {"B": base64.b64decode(value)}
    if tag == "BS":
        return {"BS": [base64.b64decode(v) for v in value]}
    if tag == "M":
        return {"M": to_boto3(value)}
    if tag == "L":
        return {"L": [_av_to_boto3(v) for v in value]}
    return {tag: value}
