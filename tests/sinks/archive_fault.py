"""Run `shardline` with a crash injected into the archive's local store (tests only).

``ARCHIVE_CRASH=after-publish:N`` ends the process (``os._exit``, as a SIGKILL would)
right after the N-th file is renamed into place and its directory fsynced, before the
batch is checkpointed. ``before-rename:N`` leaves half of the N-th file under its
temporary name and ends the process before the rename (a crash during the upload).
"""

from __future__ import annotations

import os
from typing import Any


def install(spec: str) -> None:
    from shardline.sinks import archive_store
    from shardline.sinks.archive_layout import temporary_name

    point, _, count = spec.partition(":")
    target = int(count)
    original = archive_store.LocalStore._publish
    published = [0]

    def publish(self: Any, path: str, data: bytes, proceed: Any = None) -> None:
        published[0] += 1
        if published[0] == target and point == "before-rename":
            final = self.root / path
            self._make_dirs(final.parent)
            half = final.parent / temporary_name(final.name, "crashed")
            archive_store._write_synced(half, data[: len(data) // 2])
            os._exit(9)
        original(self, path, data, proceed)
        if published[0] == target and point == "after-publish":
            os._exit(9)

    archive_store.LocalStore._publish = publish  # type: ignore[method-assign]


def main() -> None:
    spec = os.environ.get("ARCHIVE_CRASH")
    if spec:
        install(spec)
    from shardline.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
