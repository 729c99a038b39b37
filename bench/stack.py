"""The embedded local stack in its own process, driven over stdin (for the benchmarks).

Prints ``READY <port>``, then answers one JSON line per JSON command line:

* ``{"cmd": "split", "table": T}``: split the oldest open shard; the children's ids.
* ``{"cmd": "route", "table": T, "keys": [...]}``: the open shard each string partition
  key would be written to now.

End of input stops the stack.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from shardline.local import LocalStack


def answer(stack: LocalStack, command: dict[str, Any]) -> object:
    graph = stack.graph(command["table"])
    if command["cmd"] == "split":
        return graph.split()
    if command["cmd"] == "route":
        return [graph.route(orjson.dumps({"S": key})) for key in command["keys"]]
    raise ValueError(f"unknown command {command['cmd']!r}")


def main() -> None:
    with LocalStack(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as stack:
        print(f"READY {stack.port}", flush=True)
        for line in sys.stdin:
            if line.strip():
                result = answer(stack, orjson.loads(line))
                sys.stdout.write(orjson.dumps(result).decode() + "\n")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
