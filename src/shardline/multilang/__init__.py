"""MultiLang daemon: run KCL MultiLang record processors (amazon-kclpy, Node aws-kcl).

``shardline multilang --properties app.properties`` reads a MultiLangDaemon properties
file and runs one child process per held shard lease, speaking the KCL 2.x/3.x
protocol over its stdin and stdout. See ``docs/multilang.md``.

Modules: :mod:`.properties` (Java properties syntax), :mod:`.settings` (keys ->
settings) and :mod:`.protocol` (the message codec) are pure; :mod:`.child` (one child
process), :mod:`.processor` (the per-shard processor) and :mod:`.daemon` do the I/O.
Names are imported lazily so that ``shardline --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardline._lazy import lazy_getattr

_EXPORTS = {
    "ChildFailedError": "shardline.multilang.child",
    "ChildRegistry": "shardline.multilang.processor",
    "ChildSettings": "shardline.multilang.settings",
    "DaemonSettings": "shardline.multilang.settings",
    "MultiLangProcessor": "shardline.multilang.processor",
    "build_settings": "shardline.multilang.settings",
    "processor_class": "shardline.multilang.processor",
}

__all__ = [
    "ChildFailedError",
    "ChildRegistry",
    "ChildSettings",
    "DaemonSettings",
    "MultiLangProcessor",
    "build_settings",
    "processor_class",
]

if TYPE_CHECKING:
    from shardline.multilang.child import ChildFailedError
    from shardline.multilang.processor import (
        ChildRegistry,
        MultiLangProcessor,
        processor_class,
    )
    from shardline.multilang.settings import ChildSettings, DaemonSettings, build_settings


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
