"""The least-privilege IAM policy of one pipeline.

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
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "LEASE_TABLE_ACTIONS",
    "PARTITION_PLACEHOLDER",
    "REGION_PLACEHOLDER",
    "SNAPSHOT_SOURCE_ACTIONS",
    "STREAM_ACTIONS",
    "IamSink",
    "Pipeline",
    "destination_statements",
    "lease_table_statement",
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
