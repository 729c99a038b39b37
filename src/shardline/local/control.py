"""The local stack's control channel: a small JSON API under ``/_shardline/``, and a client.

It lets another process (a chaos driver, a shell with ``curl``) drive a stack started
with ``shardline local``:

- ``GET faults``: ``{"rules": [...], "fired": {kind: count}}``
- ``POST faults`` with a rule (``FaultRule.to_dict``) or ``{"spec": "KIND:k=v"}``:
  ``{"id": N}``
- ``DELETE faults``: remove every rule; ``DELETE faults/N``: remove rule N
- ``GET settings``; ``POST settings`` with some of :data:`SETTINGS`: the settings
- ``POST rollover`` / ``POST split`` with ``{"table", "shard_id"?, "parent_open_for"?}``:
  ``{"children": [...]}``
- ``POST close-pending`` with ``{"table"}``: ``{"closed": [...]}``
- ``GET shards?table=T`` (or ``POST shards`` with ``{"table"}``): ``{"shards": [...]}``
- ``POST expire`` with ``{"table", "key"}`` (a TTL delete): ``{"deleted": bool}``
- ``POST stream`` with ``{"table", "enabled", "view_type"?}``: ``{"stream_arn": A}``

Errors answer HTTP 400 (404 for an unknown path) with ``{"error": "..."}``.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from shardline.local.faults import FaultRule
from shardline.local.graph import GraphError

if TYPE_CHECKING:
    from shardline.local.server import LocalStack

SETTINGS = (
    "iterator_ttl",
    "retention",
    "max_page_bytes",
    "eager_shard_end",
    "children_first",
    "describe_page_size",
    "parent_open_for",
)
"""Settings that the control channel reads and changes while the stack runs."""


class ControlError(Exception):
    """A control request that cannot be carried out (HTTP 400)."""


class ControlApi:
    """Server side: answers control requests against one :class:`LocalStack`."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
            ("GET", "faults"): self._list_faults,
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "settings"): self._settings,
            ("POST", "settings"): self._change_settings,
            ("POST", "rollover"): self._rollover,
            ("POST", "split"): self._split,
            ("POST", "close-pending"): self._close_pending,
            ("GET", "shards"): self._shards,
            ("POST", "shards"): self._shards,
            ("POST", "expire"): self._expire,
            ("POST", "stream"): self._stream,
        }

    def __call__(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Answer one request: ``path`` is relative to ``/_shardline/``."""
        route, _, query = path.partition("?")
        name, _, rest = route.strip("/").partition("/")
        if (method, name) == ("DELETE", "faults") and rest:
            return self._reply(lambda params: self._remove_fault(rest), {})
        handler = self._routes.get((method, name))
        if handler is None:
            return 404, orjson.dumps({"error": f"no control operation {method} {route}"})
        try:
            params = _body_params(body)
        except ControlError as exc:
            return 400, orjson.dumps({"error": str(exc)})
        params.update(urllib.parse.parse_qsl(query))
        return self._reply(handler, params)

    @staticmethod
    def _reply(
        handler: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any]
    ) -> tuple[int, bytes]:
        try:
            return 200, orjson.dumps(handler(params))
        except (ControlError, GraphError, LookupError, ValueError, TypeError) as exc:
            return 400, orjson.dumps({"error": str(exc)})

    # --- faults ----------------------------------------------------------------------

    def _list_faults(self, params: dict[str, Any]) -> dict[str, Any]:
        rules = [{"id": i, **rule.to_dict()} for i, rule in self.stack.faults.rules().items()]
        return {"rules": rules, "fired": dict(self.stack.faults.fired)}

    def _add_fault(self, params: dict[str, Any]) -> dict[str, Any]:
        spec = params.get("spec")
        rule = FaultRule.parse(spec) if isinstance(spec, str) else FaultRule.from_dict(params)
        return {"id": self.stack.faults.add(rule)}

    def _clear_faults(self, params: dict[str, Any]) -> dict[str, Any]:
        self.stack.faults.clear()
        return {}

    def _remove_fault(self, rule_id: str) -> dict[str, Any]:
        if not rule_id.isdigit():
            raise ControlError(f"fault id must be a number, got {rule_id!r}")
        self.stack.faults.remove(int(rule_id))
        return {}

    # --- settings --------------------------------------------------------------------

    def _settings(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.stack.settings()

    def _change_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.stack.configure(**params)

    # --- shards and streams ----------------------------------------------------------

    def _rollover(self, params: dict[str, Any]) -> dict[str, Any]:
        children = self.stack.rollover(
            _table(params),
            shard_id=params.get("shard_id"),
            parent_open_for=params.get("parent_open_for"),
        )
        return {"children": children}

    def _split(self, params: dict[str, Any]) -> dict[str, Any]:
        children = self.stack.split(
            _table(params), params.get("shard_id"), parent_open_for=params.get("parent_open_for")
        )
        return {"children": children}

    def _close_pending(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"closed": self.stack.graph(_table(params)).close_pending()}

    def _shards(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"shards": self.stack.shards(_table(params))}

    def _expire(self, params: dict[str, Any]) -> dict[str, Any]:
        key = params.get("key")
        if not isinstance(key, dict):
            raise ControlError("expire needs a key object")
        return {"deleted": self.stack.expire(_table(params), key)}

    def _stream(self, params: dict[str, Any]) -> dict[str, Any]:
        table = _table(params)
        if params.get("enabled", True):
            return {"stream_arn": self.stack.enable_stream(table, params.get("view_type"))}
        self.stack.disable_stream(table)
        return {"stream_arn": self.stack.stream_arn(table)}


def _body_params(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"the body is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ControlError("the body must be a JSON object")
    return params


def _table(params: Mapping[str, Any]) -> str:
    table = params.get("table")
    if not isinstance(table, str) or not table:
        raise ControlError("a table name is required")
    return table


class LocalControl:
    """Client of a local stack's control channel (``shardline local`` in another process).

    >>> control = LocalControl("http://127.0.0.1:4566")
    >>> rule = control.add_fault("throttle:ops=GetRecords:rate=0.2")
    >>> control.rollover("Orders")
    """

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.base = endpoint_url.rstrip("/") + "/_shardline/"
        self.timeout = timeout

    def add_fault(self, rule: FaultRule | str) -> int:
        """Add a fault rule (or ``KIND:key=value`` spec); return its id."""
        body = {"spec": rule} if isinstance(rule, str) else rule.to_dict()
        return int(self._call("POST", "faults", body)["id"])

    def remove_fault(self, rule_id: int) -> None:
        """Remove one fault rule."""
        self._call("DELETE", f"faults/{rule_id}")

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "faults")

    def faults(self) -> dict[str, Any]:
        """``{"rules": [...], "fired": {kind: count}}``."""
        return dict(self._call("GET", "faults"))

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Change some settings (see :data:`SETTINGS`); return all of them."""
        return dict(self._call("POST" if changes else "GET", "settings", changes or None))

    def rollover(
        self, table: str, shard_id: str | None = None, *, parent_open_for: float | None = None
    ) -> list[str]:
        """Roll the table's open shards (or one) over; return the children."""
        body = {"table": table, "shard_id": shard_id, "parent_open_for": parent_open_for}
        return list(self._call("POST", "rollover", body)["children"])

    def split(
        self, table: str, shard_id: str | None = None, *, parent_open_for: float | None = None
    ) -> list[str]:
        """Split one open shard; return the two children."""
        body = {"table": table, "shard_id": shard_id, "parent_open_for": parent_open_for}
        return list(self._call("POST", "split", body)["children"])

    def shards(self, table: str) -> list[dict[str, Any]]:
        """Every shard of the table's stream, wire-shaped."""
        return list(self._call("POST", "shards", {"table": table})["shards"])

    def expire(self, table: str, key: Mapping[str, Any]) -> bool:
        """Delete an item as TTL does; False when it does not exist."""
        return bool(self._call("POST", "expire", {"table": table, "key": dict(key)})["deleted"])

    def disable_stream(self, table: str) -> None:
        """Disable the table's stream (its shards close)."""
        self._call("POST", "stream", {"table": table, "enabled": False})

    def enable_stream(self, table: str, view_type: str | None = None) -> str:
        """Enable the table's stream again; return the NEW stream ARN."""
        body = {"table": table, "enabled": True, "view_type": view_type}
        return str(self._call("POST", "stream", body)["stream_arn"])

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return orjson.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = orjson.loads(exc.read() or b"{}").get("error", exc.reason)
            raise ControlError(f"{method} {path}: {detail}") from exc
