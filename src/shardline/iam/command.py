"""``shardline iam-policy``: its flags, the :class:`~shardline.iam.policy.Pipeline` they
describe, and printing the policy (or docs/iam.md).

The one AWS call is ``sts:GetCallerIdentity`` with ``--resolve-account``; botocore, the
pipeline file and the sinks are imported only when a flag needs them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from shardline.iam.docs import markdown
from shardline.iam.policy import IamSink, Pipeline, pipeline_policy, render

__all__ = ["pipeline_from_args", "register", "run_command"]


def register(commands: Any) -> None:
    """Add ``shardline iam-policy`` to the CLI's subcommands."""
    cmd = commands.add_parser(
        "iam-policy", help="print the least-privilege IAM policy of a pipeline"
    )
    stream = cmd.add_mutually_exclusive_group()
    stream.add_argument("--table", help="the DynamoDB table whose stream is read")
    stream.add_argument("--stream-arn", help="the DynamoDB stream ARN that is read")
    cmd.add_argument("--application", help="application name; names the lease table")
    cmd.add_argument("--lease-table", help="lease table name (default: the application)")
    cmd.add_argument("--region", help="AWS region (default: the file's, AWS_REGION, a placeholder)")
    cmd.add_argument("--on-failure", help="failure destination (ARN, queue URL, s3://, file://)")
    cmd.add_argument(
        "--sink", action="append", default=[], metavar="URL", help="a sink URL (repeatable)"
    )
    cmd.add_argument("--account-id", help="12-digit account for the ARNs")
    cmd.add_argument(
        "--resolve-account",
        action="store_true",
        help="ask STS (GetCallerIdentity) for the current credentials' account",
    )
    cmd.add_argument("--profile", help="AWS profile for --resolve-account")
    cmd.add_argument(
        "--snapshot", action="store_true", help="as run --snapshot: the sinks copy the table first"
    )
    cmd.add_argument("--config", help="pipeline file (TOML); flags override it")
    cmd.add_argument("--markdown", action="store_true", help="print docs/iam.md instead")
    cmd.set_defaults(action=run_command)


def run_command(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """``shardline iam-policy``: print the policy (or docs/iam.md) to stdout."""
    import os
    import sys

    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    pipeline = pipeline_from_args(args, os.environ if environ is None else environ)
    sys.stdout.write(render(pipeline_policy(pipeline)))
    return 0


def pipeline_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Pipeline:
    """The :class:`Pipeline` of ``iam-policy``'s flags (and ``--config`` when present)."""
    from shardline.errors import ConfigError

    table, stream_arn = args.table, args.stream_arn
    application, lease_table = args.application, args.lease_table
    region, on_failure = args.region, args.on_failure
    sinks: list[IamSink] = list(_sinks_from_urls(args.sink))
    if args.config is not None:
        loaded = _load_pipeline(args.config, environ)
        source = loaded.source
        if table is None and stream_arn is None:
            table, stream_arn = source.table, source.stream_arn
        application = application or source.application
        lease_table = lease_table or source.lease_table
        region = region or source.region
        if on_failure is None and loaded.delivery is not None:
            on_failure = loaded.delivery.on_failure
        sinks = [*loaded.build_sinks(_KeepMissing(environ)), *sinks]
    if table is None and stream_arn is None:
        raise ConfigError("iam-policy needs --config, --table or --stream-arn")
    if not application:
        raise ConfigError("iam-policy needs --application (or a pipeline file with one)")
    region = region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    if args.snapshot:
        sinks.append(_SnapshotFlag())
    account = args.account_id
    if account is None and args.resolve_account:
        account = _caller_account(region, args.profile)
    return Pipeline(
        application=application,
        table=table,
        stream_arn=stream_arn,
        lease_table=lease_table,
        region=region,
        account=account,
        on_failure=on_failure,
        sinks=tuple(sinks),
    )


class _KeepMissing(Mapping[str, str]):
    """The environment, with a variable that is not set kept as ``${NAME}``: a policy does
    not depend on the secrets a pipeline file names, and an unset name stays visible."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str:
        return self._environ.get(name, "${" + name + "}")

    def __iter__(self) -> Any:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


class _SnapshotFlag:
    """``--snapshot``: the sinks copy the table first (its statements come with them)."""

    snapshot = True

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        return []


def _load_pipeline(path: str, environ: Mapping[str, str]) -> Any:
    from shardline.pipeline import load_pipeline  # type: ignore[import-not-found,unused-ignore]

    return load_pipeline(path, _KeepMissing(environ))


def _sinks_from_urls(urls: Sequence[str]) -> list[IamSink]:
    if not urls:
        return []
    from shardline.errors import ConfigError

    try:
        from shardline.sinks.registry import sink_from_url
    except ImportError as exc:
        raise ConfigError(f"--sink needs the sinks, which are not available: {exc}") from exc
    return [sink_from_url(url) for url in urls]


def _caller_account(region: str | None, profile: str | None) -> str:
    """The account of the current credentials, from ``sts:GetCallerIdentity``."""
    import botocore.exceptions
    import botocore.session

    from shardline.errors import CredentialsError

    try:
        session = botocore.session.Session(profile=profile)
        sts = session.create_client("sts", region_name=region or "us-east-1")
        return str(sts.get_caller_identity()["Account"])
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsError(f"--resolve-account: {exc}") from exc
    except botocore.exceptions.ClientError as exc:
        raise CredentialsError(f"--resolve-account: {exc}") from exc
