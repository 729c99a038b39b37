"""shardline.iam: the policy of a pipeline, docs/iam.md, and `shardline iam-policy`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from shardline import iam
from shardline.cli import main
from shardline.errors import ConfigError
from shardline.iam import (
    ACCOUNT_PLACEHOLDER,
    PARTITION_PLACEHOLDER,
    REGION_PLACEHOLDER,
    Pipeline,
    pipeline_policy,
)

ROOT = Path(__file__).resolve().parents[2]
STREAM = "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders/stream/2026-01-01T00:00:00.000"


class StubSink:
    """A sink as the contract in shardline.sinks.base describes it (the sinks are built
    elsewhere; this checks that their statements reach the policy as they are)."""

    def __init__(self, statements: list[dict[str, Any]] | None = None, *, snapshot: bool = False):
        self.snapshot = snapshot
        self.statements = statements or []
        self.asked: list[tuple[str, str]] = []

    def iam_statements(self, region: str, account: str) -> list[dict[str, Any]]:
        self.asked.append((region, account))
        return [
            {**s, "Resource": s["Resource"].format(region=region, account=account)}
            for s in self.statements
        ]


def by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_table_pipeline_with_placeholders() -> None:
    policy = pipeline_policy(Pipeline(application="orders-sync", table="Orders"))
    assert policy["Version"] == "2012-10-17"
    table = f"arn:{PARTITION_PLACEHOLDER}:dynamodb:{REGION_PLACEHOLDER}:{ACCOUNT_PLACEHOLDER}:table"
    assert by_sid(policy) == {
        "ReadTheStream": {
            "Sid": "ReadTheStream",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetShardIterator",
                "dynamodb:GetRecords",
            ],
            "Resource": f"{table}/Orders/stream/*",
        },
        "FindTheTablesLatestStream": {
            "Sid": "FindTheTablesLatestStream",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable"],
            "Resource": f"{table}/Orders",
        },
        "ListTheTablesOlderStreams": {
            "Sid": "ListTheTablesOlderStreams",
            "Effect": "Allow",
            "Action": ["dynamodb:ListStreams"],
            "Resource": "*",
        },
        "TheLeaseTable": {
            "Sid": "TheLeaseTable",
            "Effect": "Allow",
            "Action": list(iam.LEASE_TABLE_ACTIONS),
            "Resource": f"{table}/orders-sync",
        },
    }


def test_region_and_account_fill_the_arns_and_the_partition_follows_the_region() -> None:
    policy = pipeline_policy(
        Pipeline(
            application="a",
            table="T",
            lease_table="leases",
            region="cn-northwest-1",
            account="111122223333",
        )
    )
    statements = by_sid(policy)
    assert statements["TheLeaseTable"]["Resource"] == (
        "arn:aws-cn:dynamodb:cn-northwest-1:111122223333:table/leases"
    )
    assert "${" not in json.dumps(policy)


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-central-2", "cn-north-1", "us-gov-west-1", "us-iso-east-1",
               "us-isob-east-1", "ap-southeast-5", "il-central-1"],
)  # fmt: skip
def test_partition_matches_botocore(region: str) -> None:
    expected = botocore.session.get_session().get_partition_for_region(region)
    assert iam.partition_of(region) == expected


def test_stream_arn_grants_only_that_stream_and_takes_its_region_and_account() -> None:
    policy = pipeline_policy(Pipeline(application="a", stream_arn=STREAM, region="us-east-1"))
    statements = by_sid(policy)
    assert set(statements) == {"ReadTheStream", "TheLeaseTable"}
    assert statements["ReadTheStream"]["Resource"] == STREAM
    assert statements["TheLeaseTable"]["Resource"] == (
        "arn:aws:dynamodb:eu-west-1:111122223333:table/a"
    )


def test_snapshot_sink_adds_the_scan_and_the_segment_table() -> None:
    plain = pipeline_policy(Pipeline(application="app", table="T", sinks=(StubSink(),)))
    assert "dynamodb:Scan" not in json.dumps(by_sid(plain).get("ReadTheStream"))
    assert not any("snapshot" in s["Sid"].lower() for s in plain["Statement"])
    policy = pipeline_policy(
        Pipeline(
            application="app",
            table="T",
            lease_table="L",
            region="us-east-1",
            account="111122223333",
            sinks=(StubSink(), StubSink(snapshot=True)),
        )
    )
    statements = by_sid(policy)
    assert statements["SnapshotScanOfTheSourceTable"] == {
        "Sid": "SnapshotScanOfTheSourceTable",
        "Effect": "Allow",
        "Action": ["dynamodb:DescribeTable", "dynamodb:Scan"],
        "Resource": "arn:aws:dynamodb:us-east-1:111122223333:table/T",
    }
    assert statements["TheSnapshotSegmentTable"]["Resource"].endswith(":table/L-snapshot")
    assert statements["TheSnapshotSegmentTable"]["Action"] == list(iam.LEASE_TABLE_ACTIONS)


def test_snapshot_with_a_stream_arn_scans_the_table_named_in_it() -> None:
    policy = pipeline_policy(
        Pipeline(application="app", stream_arn=STREAM, sinks=(StubSink(snapshot=True),))
    )
    assert by_sid(policy)["SnapshotScanOfTheSourceTable"]["Resource"] == (
        "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders"
    )


@pytest.mark.parametrize(
    ("uri", "actions", "resource"),
    [
        ("arn:aws:sqs:eu-west-1:444455556666:dlq", ["sqs:GetQueueUrl", "sqs:SendMessage"],
         "arn:aws:sqs:eu-west-1:444455556666:dlq"),
        ("https://sqs.eu-west-1.amazonaws.com/444455556666/dlq.fifo", ["sqs:SendMessage"],
         "arn:aws:sqs:eu-west-1:444455556666:dlq.fifo"),
        ("arn:aws:sns:us-east-1:444455556666:topic", ["sns:Publish"],
         "arn:aws:sns:us-east-1:444455556666:topic"),
        ("arn:aws:s3:::bucket", ["s3:PutObject"], "arn:aws:s3:::bucket/*"),
        ("s3://bucket/some/prefix", ["s3:PutObject"], "arn:aws:s3:::bucket/some/prefix/*"),
    ],
)  # fmt: skip
def test_failure_destinations(uri: str, actions: list[str], resource: str) -> None:
    policy = pipeline_policy(
        Pipeline(application="a", table="T", region="us-east-1", on_failure=uri)
    )
    (statement,) = [s for s in policy["Statement"] if s["Sid"].startswith("FailureDestination")]
    assert statement["Action"] == actions
    assert statement["Resource"] == resource


def test_file_destination_needs_nothing_and_a_bad_one_is_refused() -> None:
    plain = pipeline_policy(Pipeline(application="a", table="T"))
    assert (
        pipeline_policy(Pipeline(application="a", table="T", on_failure="file:///var/failed"))
        == plain
    )
    with pytest.raises(ConfigError, match="unknown on_failure"):
        pipeline_policy(Pipeline(application="a", table="T", on_failure="ftp://x"))


def test_sink_statements_get_region_and_account_and_repeated_sids_are_numbered() -> None:
    statement = {
        "Sid": "SinkQueue",
        "Effect": "Allow",
        "Action": ["sqs:SendMessage"],
        "Resource": "arn:aws:sqs:{region}:{account}:q",
    }
    other = {**statement, "Resource": "arn:aws:sqs:{region}:{account}:r"}
    first, second = StubSink([statement]), StubSink([statement, other])
    policy = pipeline_policy(
        Pipeline(application="a", table="T", region="us-west-2", sinks=(first, second))
    )
    assert first.asked == [("us-west-2", ACCOUNT_PLACEHOLDER)]
    sinks = [s for s in policy["Statement"] if s["Sid"].startswith("SinkQueue")]
    # the same statement twice is granted once; a different one with the same Sid is kept
    assert [(s["Sid"], s["Resource"]) for s in sinks] == [
        ("SinkQueue", f"arn:aws:sqs:us-west-2:{ACCOUNT_PLACEHOLDER}:q"),
        ("SinkQueue2", f"arn:aws:sqs:us-west-2:{ACCOUNT_PLACEHOLDER}:r"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"application": "a"},
        {"application": "a", "table": "T", "stream_arn": STREAM},
        {"application": "a", "stream_arn": "arn:aws:dynamodb:eu-west-1:1:table/T"},
        {"application": "a", "table": "T", "account": "12345"},
    ],
)
def test_refused_pipelines(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Pipeline(**kwargs)


def _called_operations() -> set[str]:
    """AWS operations named in shardline's worker code (not the local stack, the demo, the
    sinks or the failure destinations, whose statements are built separately)."""
    session = botocore.session.get_session()
    operations = set()
    for service in ("dynamodb", "dynamodbstreams"):
        operations |= set(session.get_service_model(service).operation_names)
    source = ROOT / "src" / "shardline"
    skipped = {"local", "sinks"}
    found = set()
    for path in source.rglob("*.py"):
        relative = path.relative_to(source)
        if relative.parts[0] in skipped or relative.name in {"demo.py", "demo_app.py"}:
            continue
        for literal in re.findall(r'"([A-Z][A-Za-z]+)"', path.read_text()):
            if literal in operations:
                found.add(literal)
    return found


def test_the_policy_grants_exactly_what_the_worker_code_calls() -> None:
    called = {f"dynamodb:{name}" for name in _called_operations()}
    policy = pipeline_policy(Pipeline(application="a", table="T"))
    granted = {action for s in policy["Statement"] for action in s["Action"]}
    assert called == granted


def test_docs_iam_md_is_generated_from_this_module() -> None:
    on_disk = (ROOT / "docs" / "iam.md").read_text()
    assert on_disk == iam.markdown(), (
        "docs/iam.md is out of date: run `shardline iam-policy --markdown > docs/iam.md`"
    )


def test_every_json_block_in_the_docs_is_valid_json() -> None:
    blocks = re.findall(r"```json\n(.*?)```", iam.markdown(), flags=re.S)
    assert len(blocks) >= 8
    for block in blocks:
        json.loads(block)


# --- the command ---------------------------------------------------------------------------


def test_command_prints_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["iam-policy", "--stream-arn", STREAM, "--application", "app", "--lease-table", "L",
         "--on-failure", "arn:aws:sns:eu-west-1:111122223333:t", "--account-id", "111122223333"]
    )  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == pipeline_policy(
        Pipeline(
            application="app",
            stream_arn=STREAM,
            lease_table="L",
            account="111122223333",
            on_failure="arn:aws:sns:eu-west-1:111122223333:t",
        )
    )


def test_command_region_falls_back_to_aws_region(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert main(["iam-policy", "--table", "T", "--application", "a"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert by_sid(printed)["TheLeaseTable"]["Resource"] == (
        f"arn:aws:dynamodb:ap-south-1:{ACCOUNT_PLACEHOLDER}:table/a"
    )


def test_command_asks_sts_only_with_resolve_account(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str | None, str | None]] = []

    def caller_account(region: str | None, profile: str | None) -> str:
        asked.append((region, profile))
        return "777788889999"

    monkeypatch.setattr("shardline.iam.command._caller_account", caller_account)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    args = ["iam-policy", "--table", "T", "--application", "a", "--region", "us-east-1"]
    assert main(args) == 0
    assert asked == []
    assert ACCOUNT_PLACEHOLDER in capsys.readouterr().out
    assert main([*args, "--resolve-account", "--profile", "p"]) == 0
    assert asked == [("us-east-1", "p")]
    assert ":777788889999:table/a" in capsys.readouterr().out


def test_command_markdown_and_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", "--markdown"]) == 0
    assert capsys.readouterr().out == iam.markdown()
    assert main(["iam-policy", "--table", "T"]) == 2
    assert "--application" in capsys.readouterr().err
    assert main(["iam-policy", "--table", "T", "--application", "a", "--account-id", "x"]) == 2
    assert "12 digits" in capsys.readouterr().err


def test_sinks_with_a_stream_arn_may_describe_the_source_table() -> None:
    """Sinks read the key schema (DescribeTable) at start; with --table it is granted anyway."""
    with_table = pipeline_policy(Pipeline(application="a", table="T", sinks=(StubSink(),)))
    assert "SinksReadTheSourceKeySchema" not in by_sid(with_table)
    without = pipeline_policy(Pipeline(application="a", stream_arn=STREAM))
    assert "SinksReadTheSourceKeySchema" not in by_sid(without)
    policy = pipeline_policy(Pipeline(application="a", stream_arn=STREAM, sinks=(StubSink(),)))
    assert by_sid(policy)["SinksReadTheSourceKeySchema"]["Resource"] == (
        "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders"
    )


def test_config_file_flags_override_and_secrets_need_not_be_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("shardline.pipeline")
    monkeypatch.delenv("REPLICA_PASSWORD", raising=False)
    path = tmp_path / "pipeline.toml"
    path.write_text(
        '[source]\ntable = "Orders"\napplication = "orders-pg"\nregion = "eu-west-1"\n'
        '[delivery]\non_failure = "arn:aws:sqs:eu-west-1:111122223333:dlq"\n'
        "maximum_retry_attempts = 3\n"
        '[[sinks]]\nurl = "postgresql://u:${REPLICA_PASSWORD}@db/app?table=orders"\n'
        "snapshot = true\n"
    )
    assert main(["iam-policy", "--config", str(path), "--account-id", "111122223333"]) == 0
    statements = by_sid(json.loads(capsys.readouterr().out))
    assert statements["TheLeaseTable"]["Resource"] == (
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-pg"
    )
    assert statements["TheSnapshotSegmentTable"]["Resource"].endswith(":table/orders-pg-snapshot")
    assert statements["FailureDestinationSqs"]["Resource"].endswith(":dlq")
    args = ["iam-policy", "--config", str(path), "--lease-table", "L", "--region", "us-west-2"]
    assert main(args) == 0
    statements = by_sid(json.loads(capsys.readouterr().out))
    assert statements["TheLeaseTable"]["Resource"] == (
        f"arn:aws:dynamodb:us-west-2:{ACCOUNT_PLACEHOLDER}:table/L"
    )
