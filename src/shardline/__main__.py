"""``python -m shardline``: the same as the ``shardline`` command."""

from shardline.cli import main

raise SystemExit(main())
