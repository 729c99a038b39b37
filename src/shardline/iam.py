"""The least-privilege IAM policy of one pipeline, and docs/iam.md, from one source.

:func:`pipeline_policy` answers "what may this worker call, on what": the source stream,
the lease table, the snapshot tables when a sink copies the table first, the failure
destination, and each sink's own statements (:meth:`~shardline.sinks.base.Sink.iam_statements`).
Everything here is a pure function of its arguments: no AWS call, no environment read.

ARNs are filled from the region, the account and the partition when they are known, and
otherwise carry CloudFormation's pseudo-parameter tokens, ``${AWS::Region}``,
``${AWS::AccountId}`` and ``${AWS::Partition}``: CloudFormation's ``Fn::Sub`` replaces
them as they are, the Terraform module in ``deploy/terraform/ecs-service`` replaces them
from the provider. Left unfilled, IAM reads one as a policy variable that no request
carries, so the statement matches nothing: a forgotten placeholder fails closed. A value
written in an ARN the user gave (a stream ARN, a queue ARN) is used as written.

:func:`markdown` renders docs/iam.md from the same functions
(``shardline iam-policy --markdown > docs/iam.md``; a test fails when the file differs).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "PARTITION_PLACEHOLDER",
    "REGION_PLACEHOLDER",
    "IamSink",
    "Pipeline",
    "destination_statements",
    "lease_table_statement",
    "markdown",
    "partition_of",
    "pipeline_policy",
    "render",
    "sink_source_statements",
    "sink_statements",
    "snapshot_statements",
    "source_statements",
]

REGION_PLACEHOLDER = "${AWS::Region}"
ACCOUNT_PLACEHOLDER = "${AWS::AccountId}"
PARTITION_PLACEHOLDER = "${AWS::Partition}"

#: The lease table: created on first start, scanned, read and written conditionally.
LEASE_TABLE_ACTIONS = (
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "dynamodb:Scan",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
STREAM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords")
#: Snapshot scan of the source table (parallel Scan segments) before the stream.
SNAPSHOT_SOURCE_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:Scan")

_STREAM_ARN = re.compile(
    r"^arn:(aws[a-z-]*):dynamodb:([a-z0-9-]+):(\d{12}):table/([A-Za-z0-9_.-]+)/stream/(.+)$"
)
#: Region prefixes outside the commercial partition (botocore's endpoints.json agrees;
#: tests/unit/test_iam.py checks it against botocore).
_PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("eusc-", "aws-eusc"),
)


class IamSink(Protocol):
    """What the policy asks of a sink (:class:`shardline.sinks.base.Sink` has both)."""

    snapshot: bool

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Pipeline:
    """What the policy of one pipeline depends on (the pipeline file's or ``run``'s flags).

    Exactly one of ``table`` and ``stream_arn``. ``region`` and ``account`` may be
    ``None`` (unknown offline): placeholders are written instead.
    """

    application: str
    table: str | None = None
    stream_arn: str | None = None
    lease_table: str | None = None
    region: str | None = None
    account: str | None = None
    on_failure: str | None = None
    sinks: Sequence[IamSink] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        from shardline.errors import ConfigError

        if (self.table is None) == (self.stream_arn is None):
            raise ConfigError("give exactly one of a table and a stream ARN")
        if self.stream_arn is not None and _STREAM_ARN.match(self.stream_arn) is None:
            raise ConfigError(
                f"not a DynamoDB stream ARN: {self.stream_arn!r} "
                "(expected arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL)"
            )
        if self.account is not None and not re.fullmatch(r"\d{12}", self.account):
            raise ConfigError(f"account id {self.account!r} is not 12 digits")

    @property
    def lease_table_name(self) -> str:
        return self.lease_table or self.application

    @property
    def source_table(self) -> str:
        """The source table's name (from the stream ARN when only that was given)."""
        if self.table is not None:
            return self.table
        match = _STREAM_ARN.match(self.stream_arn or "")
        assert match is not None  # checked in __post_init__
        return match.group(4)

    @property
    def snapshot(self) -> bool:
        return any(sink.snapshot for sink in self.sinks)

    def where(self) -> tuple[str, str, str]:
        """(partition, region, account): the stream ARN's when given, else the settings'."""
        match = _STREAM_ARN.match(self.stream_arn or "")
        if match is not None:
            return match.group(1), match.group(2), match.group(3)
        region = self.region or REGION_PLACEHOLDER
        account = self.account or ACCOUNT_PLACEHOLDER
        return partition_of(self.region), region, account


def partition_of(region: str | None) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ...); a placeholder when unknown."""
    if not region:
        return PARTITION_PLACEHOLDER
    for prefix, partition in _PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


def _table_arn(where: tuple[str, str, str], name: str) -> str:
    partition, region, account = where
    return f"arn:{partition}:dynamodb:{region}:{account}:table/{name}"


def _statement(sid: str, actions: Iterable[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resource}


# --- statements --------------------------------------------------------------------------


def source_statements(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Reading the stream, and (given a table name) finding its streams."""
    where = pipeline.where()
    if pipeline.stream_arn is not None:
        return [_statement("ReadTheStream", STREAM_ACTIONS, pipeline.stream_arn)]
    table_arn = _table_arn(where, pipeline.source_table)
    return [
        # Every stream of the table: the latest, and an older one still being drained
        # after the stream was disabled and enabled again.
        _statement("ReadTheStream", STREAM_ACTIONS, f"{table_arn}/stream/*"),
        # DescribeTable names the latest stream (and notices a new one).
        _statement("FindTheTablesLatestStream", ["dynamodb:DescribeTable"], table_arn),
        # ListStreams (at start, when leases exist) finds older streams of the table that
        # still have unfinished leases. IAM does not scope ListStreams to a resource.
        _statement("ListTheTablesOlderStreams", ["dynamodb:ListStreams"], "*"),
    ]


def lease_table_statement(pipeline: Pipeline) -> dict[str, Any]:
    """The lease table: created on demand, then scanned, read and written conditionally."""
    return _statement(
        "TheLeaseTable",
        LEASE_TABLE_ACTIONS,
        _table_arn(pipeline.where(), pipeline.lease_table_name),
    )


def snapshot_statements(pipeline: Pipeline) -> list[dict[str, Any]]:
    """When a sink has ``snapshot=true``: scan the source table, keep the segment table.

    The segment table, ``<lease table>-snapshot``, records each scan segment's progress
    and is managed like the lease table.
    """
    if not pipeline.snapshot:
        return []
    where = pipeline.where()
    return [
        _statement(
            "SnapshotScanOfTheSourceTable",
            SNAPSHOT_SOURCE_ACTIONS,
            _table_arn(where, pipeline.source_table),
        ),
        _statement(
            "TheSnapshotSegmentTable",
            LEASE_TABLE_ACTIONS,
            _table_arn(where, f"{pipeline.lease_table_name}-snapshot"),
        ),
    ]


def sink_source_statements(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Sinks learn the source table's key schema from ``DescribeTable`` at start. Given a
    table, that is already granted; given a stream ARN (and no snapshot), it is added."""
    if not pipeline.sinks or pipeline.stream_arn is None or pipeline.snapshot:
        return []
    table_arn = _table_arn(pipeline.where(), pipeline.source_table)
    return [_statement("SinksReadTheSourceKeySchema", ["dynamodb:DescribeTable"], table_arn)]


def destination_statements(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The ``on_failure`` destination's (none for ``file://``).

    SQS given as an ARN also needs ``GetQueueUrl`` (the URL is looked up once). A queue or
    topic encrypted with a customer-managed KMS key also needs ``kms:GenerateDataKey`` and
    ``kms:Decrypt`` on that key, which cannot be known from the ARN: add it yourself.
    """
    if pipeline.on_failure is None:
        return []
    from shardline.delivery.destinations import parse_destination

    spec = parse_destination(pipeline.on_failure)
    partition, region, account = pipeline.where()
    if spec.kind == "file":
        return []
    if spec.kind == "s3":
        resource = f"arn:{partition}:s3:::{spec.target}/{spec.prefix}*"
        return [_statement("FailureDestinationS3", ["s3:PutObject"], resource)]
    if spec.kind == "sns":
        return [_statement("FailureDestinationSns", ["sns:Publish"], spec.target)]
    if spec.target.startswith("arn:"):
        return [
            _statement("FailureDestinationSqs", ["sqs:GetQueueUrl", "sqs:SendMessage"], spec.target)
        ]
    queue_region = spec.region or region
    queue_partition = partition_of(spec.region) if spec.region else partition
    arn = f"arn:{queue_partition}:sqs:{queue_region}:{spec.account or account}:{spec.name}"
    return [_statement("FailureDestinationSqs", ["sqs:SendMessage"], arn)]


def sink_statements(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Each sink's own statements, in the sinks' order, exact duplicates dropped."""
    _, region, account = pipeline.where()
    statements: list[dict[str, Any]] = []
    for sink in pipeline.sinks:
        for statement in sink.iam_statements(region, account):
            if statement not in statements:
                statements.append(dict(statement))
    return statements


def pipeline_policy(pipeline: Pipeline) -> dict[str, Any]:
    """The whole policy document of one pipeline."""
    statements = [
        *source_statements(pipeline),
        lease_table_statement(pipeline),
        *snapshot_statements(pipeline),
        *sink_source_statements(pipeline),
        *destination_statements(pipeline),
        *sink_statements(pipeline),
    ]
    return {"Version": "2012-10-17", "Statement": _unique_sids(statements)}


def _unique_sids(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sids must be unique in a policy: a repeated one gets a number (Sink2, Sink3...)."""
    seen: dict[str, int] = {}
    out = []
    for statement in statements:
        sid = statement.get("Sid")
        if isinstance(sid, str):
            seen[sid] = seen.get(sid, 0) + 1
            if seen[sid] > 1:
                statement = {**statement, "Sid": f"{sid}{seen[sid]}"}
        out.append(statement)
    return out


def render(policy: Mapping[str, Any]) -> str:
    """The policy as printed: indented JSON, keys in the order built, one trailing newline."""
    return json.dumps(policy, indent=2) + "\n"


# --- docs/iam.md ---------------------------------------------------------------------------


class _SnapshotExample:
    snapshot = True

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        return []


class _NoOp:
    snapshot = False

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        return []


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2) + "\n```\n"


def markdown() -> str:
    """docs/iam.md, generated from the functions above."""
    base = Pipeline(application="orders-sync", table="Orders")
    by_arn = Pipeline(
        application="orders-sync",
        stream_arn="arn:aws:dynamodb:eu-west-1:111122223333:table/Orders/stream/2026-01-01T00:00:00.000",
    )
    filled = Pipeline(
        application="orders-sync", table="Orders", region="eu-west-1", account="111122223333"
    )
    snap = Pipeline(application="orders-sync", table="Orders", sinks=(_SnapshotExample(),))
    destinations = [
        "arn:aws:sqs:eu-west-1:111122223333:orders-dlq",
        "https://sqs.eu-west-1.amazonaws.com/111122223333/orders-dlq",
        "arn:aws:sns:eu-west-1:111122223333:orders-failures",
        "s3://orders-failures/shardline/",
        "file:///var/lib/shardline/failed",
    ]
    parts = [
        "# IAM: the least-privilege policy\n",
        "<!-- Generated by `shardline iam-policy --markdown > docs/iam.md` from "
        "src/shardline/iam.py; tests/unit/test_iam.py fails when this file differs. "
        "Do not edit by hand. -->\n",
        "shardline calls exactly the actions below, on exactly these resources. Print the "
        "policy of your own pipeline rather than copying this page:\n",
        "```\n"
        "shardline iam-policy --config pipeline.toml --region eu-west-1 --account-id 111122223333\n"
        "shardline iam-policy --table Orders --application orders-sync \\\n"
        "    --on-failure arn:aws:sqs:eu-west-1:111122223333:orders-dlq --sink URL ...\n"
        "```\n",
        "`iam-policy` takes the pipeline file (`--config`) or the same stream flags as `run` "
        "(`--table`/`--stream-arn`, `--application`, `--lease-table`, `--region`, "
        "`--on-failure`, repeatable `--sink URL`), and writes the policy JSON to stdout. "
        "It calls no AWS API unless asked to:\n",
        "- **Region**: `--region`, else the pipeline file's, else `AWS_REGION` / "
        "`AWS_DEFAULT_REGION`, else the placeholder `${AWS::Region}`. A stream ARN's own "
        "region and account always win for the stream.\n"
        "- **Account**: `--account-id`, else with `--resolve-account` the account of the "
        "current credentials (`sts:GetCallerIdentity`, the one AWS call `iam-policy` can "
        "make), else the placeholder `${AWS::AccountId}`.\n"
        "- **Partition**: from the region (`aws`, `aws-cn`, `aws-us-gov`, ...), else "
        "`${AWS::Partition}`.\n",
        "The placeholders are CloudFormation's pseudo parameters: `Fn::Sub` fills them as they "
        "are, and the Terraform module `deploy/terraform/ecs-service` fills them from its "
        "provider (see [deploy.md](deploy.md)). Left unfilled, IAM reads one as a policy "
        "variable that no request carries, so that statement matches nothing: a forgotten "
        "placeholder fails closed (access denied), never open.\n",
        "## The stream and the lease table\n",
        "`shardline iam-policy --table Orders --application orders-sync`:\n",
        _json_block(pipeline_policy(base)),
        "- `ReadTheStream`: every stream of the table (`stream/*`), because when a table's "
        "stream is disabled and enabled again the worker drains the old stream to its end "
        "before it follows the new one.\n"
        "- `FindTheTablesLatestStream`: `DescribeTable` names the latest stream, once at "
        "start and at every shard sync (a new stream is noticed that way).\n"
        "- `ListTheTablesOlderStreams`: `ListStreams`, called at start when the lease table "
        "already has leases, finds older streams of the table with unfinished leases. IAM "
        'cannot scope `ListStreams` to a table (its resource is always `"*"`); it returns '
        "stream ARNs only, no data.\n"
        "- `TheLeaseTable`: the lease table is `--lease-table`, else `--application`. "
        "`dynamodb:CreateTable` is needed only the first time (the table is created on "
        "demand, with on-demand billing); create it yourself (hash key `leaseKey`, type S) "
        "and remove the action if you prefer.\n",
        "With `--region eu-west-1 --account-id 111122223333` the ARNs are filled in:\n",
        _json_block(source_statements(filled)[0]),
        "With `--stream-arn` instead of `--table`, only that stream is read, so only that "
        "stream is granted, and neither `DescribeTable` nor `ListStreams` is needed:\n",
        _json_block(source_statements(by_arn)),
        "## A sink with `snapshot=true`\n",
        "A sink that copies the table before the stream adds a parallel `Scan` of the source "
        "table, and the segment table `<lease table>-snapshot`, which holds each scan "
        "segment's progress and is managed like the lease table:\n",
        _json_block(snapshot_statements(snap)),
        "## The failure destination (`--on-failure`)\n",
    ]
    for uri in destinations:
        statements = destination_statements(
            Pipeline(application="orders-sync", table="Orders", on_failure=uri)
        )
        parts.append(f"`{uri}`:\n")
        parts.append(_json_block(statements) if statements else "nothing (a local directory).\n")
    parts += [
        "An SQS queue or SNS topic encrypted with a customer-managed KMS key also needs "
        "`kms:GenerateDataKey` and `kms:Decrypt` on that key (the key cannot be known from "
        "the queue's ARN); add that statement yourself.\n",
        "## Sinks\n",
        "Each sink adds the statements its target needs (a queue, a topic, a bus, a bucket "
        "prefix, a target table, a KMS key), from its own `iam_statements(region, account)`; "
        "a sink outside AWS (PostgreSQL, a webhook, local files) adds none. "
        "`shardline iam-policy --config pipeline.toml` (or `--sink URL`) includes them.\n",
        "Every sink reads the source table's key schema with `DescribeTable` when the worker "
        "starts. With `--table` that is already granted; with `--stream-arn` it is added:\n",
        _json_block(
            sink_source_statements(
                Pipeline(application="orders-sync", stream_arn=by_arn.stream_arn, sinks=(_NoOp(),))
            )
        ),
        "## Not called\n",
        "`run` and `status` call nothing else: no `Query`, no `BatchWriteItem`, no "
        "`ListTables`, no CloudWatch (metrics are served to Prometheus, not pushed). "
        "`shardline local` and `shardline demo` talk to the embedded local stack only.\n",
    ]
    return "\n".join(parts)


# --- the command -------------------------------------------------------------------------


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
