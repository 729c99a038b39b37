"""DynamoDB JSON to plain JSON (``sinks/values.py``) against orjson's loads + dumps floor.

Images from ``bench/pages.py`` (the pages the other benchmarks replay), converted in
rounds; prints microseconds per image for ``plain_item_json`` and for ``orjson.loads``
followed by ``orjson.dumps`` of the same bytes (what any conversion costs at least).

    .venv/bin/python bench/plain_json.py [--images 500] [--rounds 20]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pages

from shardline.sinks.values import plain_item_json


def per_image(convert: Callable[[bytes], object], images: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for image in images:
            convert(image)
        best = min(best, (time.perf_counter() - started) / len(images))
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(1)
    images = [orjson.dumps(pages.make_item(rng, i)) for i in range(args.images)]
    size = sum(map(len, images)) / len(images)
    convert = per_image(plain_item_json, images, args.rounds)
    floor = per_image(lambda raw: orjson.dumps(orjson.loads(raw)), images, args.rounds)
    print(f"{args.images} images of {size:.0f} B on average, best of {args.rounds} rounds")
    print(f"plain_item_json      {convert:7.1f} us/image")
    print(f"orjson loads + dumps {floor:7.1f} us/image (the floor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
