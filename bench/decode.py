"""Page decode benchmark: one GetRecords page, bytes in, decoded ``NewImage`` dicts out.

Pure CPU, no network. Every variant gets the same response body and parses it from
scratch on every run.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import botocore.parsers
import botocore.session
import orjson
from boto3.dynamodb.types import Binary, TypeDeserializer

from shardline.records import StreamRecord
from shardline.streams.wire import decode_records_answer

__all__ = ["VARIANTS", "check_same_decoding", "run_decode", "summarize"]

Decoder = Callable[[bytes], object]

_HEADERS = {
    "content-type": "application/x-amz-json-1.0",
    "x-amzn-requestid": "BENCH0000000000000000000000000000000000000000000000",
}


def _baseline_parts() -> tuple[Callable[[bytes], dict[str, Any]], TypeDeserializer]:
    """botocore's JSON parser bound to the GetRecords output shape, and boto3's deserializer."""
    model = botocore.session.get_session().get_service_model("dynamodbstreams")
    shape = model.operation_model("GetRecords").output_shape
    parser = botocore.parsers.create_parser("json")

    def parse(body: bytes) -> dict[str, Any]:
        response = {"body": body, "headers": dict(_HEADERS), "status_code": 200}
        parsed: dict[str, Any] = parser.parse(response, shape)
        return parsed

    return parse, TypeDeserializer()


_parse, _deserializer = _baseline_parts()
_deserialize = _deserializer.deserialize


def botocore_parse(body: bytes) -> object:
    """botocore's model-driven parser only (no attribute decoding)."""
    return _parse(body)


def baseline(body: bytes) -> list[dict[str, Any] | None]:
    """What a boto3 consumer does: botocore's parser, then TypeDeserializer on NewImage."""
    images: list[dict[str, Any] | None] = []
    for record in _parse(body)["Records"]:
        image = record["dynamodb"].get("NewImage")
        images.append(
            None if image is None else {name: _deserialize(av) for name, av in image.items()}
        )
    return images


def orjson_only(body: bytes) -> object:
    """``orjson.loads`` of the body, nothing else."""
    return orjson.loads(body)


def shardline_wrap(body: bytes) -> list[StreamRecord]:
    """shardline (a): the GetRecords answer parsed as the consumer does it (msgspec
    envelope, item maps left as JSON), one StreamRecord per record; nothing decoded."""
    return [StreamRecord(wire, "shardId-x") for wire in decode_records_answer(body)[0]]


def shardline_new_image(body: bytes) -> list[dict[str, Any] | None]:
    """shardline (b): as (a), then ``.new_image`` of every record (parse + ``decode_item``)."""
    return [StreamRecord(wire, "shardId-x").new_image for wire in decode_records_answer(body)[0]]


VARIANTS: dict[str, tuple[str, Decoder]] = {
    "botocore_parse": ("botocore parser only", botocore_parse),
    "baseline": ("baseline: botocore parser + TypeDeserializer", baseline),
    "orjson_loads": ("orjson.loads only", orjson_only),
    "shardline_a": ("shardline (a): envelope + StreamRecord", shardline_wrap),
    "shardline_b": ("shardline (b): (a) + .new_image", shardline_new_image),
}


def run_decode(
    body: bytes, runs: int, warmup: int = 2, *, collector: bool = True
) -> dict[str, list[float]]:
    """Seconds per page for every variant: ``warmup`` untimed runs, then ``runs`` samples.

    Each variant runs as one block, like a consumer decoding page after page: interleaving
    them would bill one variant for the memory the previous one handed back to the OS.
    A full collection runs before every sample. The cyclic collector stays enabled during
    a sample, as in a real consumer, unless ``collector`` is False. The decoded page is
    freed after the clock stops: the figure is the decoding, not the deallocation.
    """
    samples: dict[str, list[float]] = {key: [] for key in VARIANTS}
    for key, (_, decode) in VARIANTS.items():
        for index in range(warmup + runs):
            gc.collect()
            if not collector:
                gc.disable()
            try:
                start = time.perf_counter()
                result = decode(body)
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            del result
            if index >= warmup:
                samples[key].append(elapsed)
    return samples


def summarize(seconds: list[float], records: int) -> dict[str, Any]:
    """Median, min and max in ms per page, and records/s at the median."""
    median = statistics.median(seconds)
    return {
        "median_ms": median * 1e3,
        "min_ms": min(seconds) * 1e3,
        "max_ms": max(seconds) * 1e3,
        "records_per_s": records / median,
        "samples_ms": [round(s * 1e3, 3) for s in seconds],
    }


def check_same_decoding(body: bytes) -> bool:
    """Whether the baseline and shardline (b) decode every NewImage to equal values.

    boto3 wraps binary values in :class:`Binary`; they are compared as ``bytes``.
    """
    return _normalize(baseline(body)) == _normalize(shardline_new_image(body))


def _normalize(value: Any) -> object:
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, set | frozenset):
        return frozenset(_normalize(v) for v in value)
    return value
