"""The least-privilege IAM policy of one pipeline, and docs/iam.md, from one source.

- :mod:`shardline.iam.policy`: :class:`Pipeline` and :func:`pipeline_policy`, pure
  functions of their arguments (no AWS call, no environment read); ARNs carry
  CloudFormation's ``${AWS::Region}``, ``${AWS::AccountId}`` and ``${AWS::Partition}``
  where the region, account or partition is unknown.
- :mod:`shardline.iam.docs`: :func:`markdown` renders docs/iam.md from the same functions
  (``shardline iam-policy --markdown > docs/iam.md``; a test fails when the file differs).
- :mod:`shardline.iam.command`: ``shardline iam-policy`` (:func:`register`,
  :func:`run_command`, :func:`pipeline_from_args`).
"""

from __future__ import annotations

from shardline.iam.command import pipeline_from_args, register, run_command
from shardline.iam.docs import markdown
from shardline.iam.policy import (
    ACCOUNT_PLACEHOLDER,
    LEASE_TABLE_ACTIONS,
    PARTITION_PLACEHOLDER,
    REGION_PLACEHOLDER,
    SNAPSHOT_SOURCE_ACTIONS,
    STREAM_ACTIONS,
    IamSink,
    Pipeline,
    destination_statements,
    lease_table_statement,
    partition_of,
    pipeline_policy,
    render,
    sink_source_statements,
    sink_statements,
    snapshot_statements,
    source_statements,
)

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
    "markdown",
    "partition_of",
    "pipeline_from_args",
    "pipeline_policy",
    "register",
    "render",
    "run_command",
    "sink_source_statements",
    "sink_statements",
    "snapshot_statements",
    "source_statements",
]
