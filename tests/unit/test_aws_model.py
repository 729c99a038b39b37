"""Every request StreamsClient builds validates against botocore's service model, and every
error code we map exists in the DynamoDB / DynamoDB Streams models (or is a documented
common error). This is the check real AWS would otherwise make.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import botocore.session
import orjson
import pytest
from botocore.credentials import Credentials
from botocore.validate import validate_parameters

from shardline.aws.client import AwsJsonClient
from shardline.aws.endpoints import ResolvedEndpoint
from shardline.aws.errors import MAPPED_ERROR_CODES, error_from_response
from shardline.aws.settings import AwsSettings
from shardline.errors import AwsError, ConfigError, ThrottledError
from shardline.streams.client import StreamsClient, resolve_stream_arn, validate_stream_arn
from shardline.streams.wire import encode_record

T = TypeVar("T")

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/things/stream/2024-01-01T00:00:00.000"
SHARD = "shardId-00000001536019433326-8d6e0a4b"
CHILD = "shardId-00000001536019433327-aaaaaaaa"
SEQ = "100000000000000000000000001"
RECORD = {
    "eventID": "1",
    "eventName": "INSERT",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "SequenceNumber": SEQ,
        "ApproximateCreationDateTime": 1700000000,
        "Keys": {"id": {"S": "a"}},
        "NewImage": {"id": {"S": "a"}, "n": {"N": "1.50"}},
        "SizeBytes": 20,
        "StreamViewType": "NEW_IMAGE",
    },
}

# Documented errors that every AWS JSON service can return but the models do not list:
# DynamoDB Developer Guide, "Error handling with DynamoDB" (400: AccessDeniedException,
# IncompleteSignatureException, MissingAuthenticationTokenException, ThrottlingException,
# UnrecognizedClientException, ValidationException; 5xx: ServiceUnavailable), the AWS
# common errors reference (InternalFailure, ExpiredTokenException, InvalidSignatureException,
# Throttling) and the AWS JSON protocol (SerializationException).
DOCUMENTED_COMMON_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "ExpiredTokenException",
        "IncompleteSignatureException",
        "InternalFailure",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "SerializationException",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "UnrecognizedClientException",
        "ValidationException",
    }
)


def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


class RecordingClient(AwsJsonClient):
    """Records each request and answers from a script.

    A fake, because only the request *shape* is under test here: no service is needed,
    and the local stack ignores pagination (it never returns LastEvaluated* cursors).
    """

    def __init__(self, service: str, answers: Mapping[str, list[dict[str, Any]]]) -> None:
        super().__init__(
            service,
            ResolvedEndpoint(url="http://127.0.0.1:1/", region="us-east-1"),
            Credentials("AKID", "SECRET"),
            AwsSettings(),
        )
        self.answers = {op: list(pages) for op, pages in answers.items()}
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def call_parsed(
        self,
        operation: str,
        params: Mapping[str, Any],
        parse: Callable[[bytes], T],
        *,
        deadline: float | None = None,
    ) -> T:
        self.sent.append((operation, dict(params)))
        pages = self.answers.get(operation) or [{}]
        return parse(orjson.dumps(pages.pop(0) if len(pages) > 1 else pages[0]))


def assert_valid(client: RecordingClient) -> None:
    model = _model(client.service)
    assert client.sent
    for operation, params in client.sent:
        validate_parameters(params, model.operation_model(operation).input_shape)


def _shard(shard_id: str, parent: str | None = None) -> dict[str, Any]:
    shard: dict[str, Any] = {
        "ShardId": shard_id,
        "SequenceNumberRange": {"StartingSequenceNumber": SEQ},
    }
    if parent:
        shard["ParentShardId"] = parent
    return shard


def _description(shards: list[dict[str, Any]], last: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "StreamArn": ARN,
        "StreamStatus": "ENABLED",
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "TableName": "things",
        "Shards": shards,
    }
    if last:
        body["LastEvaluatedShardId"] = last
    return {"StreamDescription": body}


async def test_list_streams_pages_validate() -> None:
    first = {"Streams": [{"StreamArn": ARN}], "LastEvaluatedStreamArn": ARN}
    second = {"Streams": [{"StreamArn": ARN.replace("2024", "2025")}]}
    client = RecordingClient("dynamodbstreams", {"ListStreams": [first, second]})
    streams = await StreamsClient(client).list_streams("things")
    assert len(streams) == 2
    assert client.sent[1][1] == {"TableName": "things", "ExclusiveStartStreamArn": ARN}
    assert_valid(client)


async def test_describe_stream_pages_validate() -> None:
    pages = [_description([_shard(SHARD)], last=SHARD), _description([_shard(CHILD, SHARD)])]
    client = RecordingClient("dynamodbstreams", {"DescribeStream": pages})
    description = await StreamsClient(client).describe_stream(ARN, page_size=1)
    assert [s.shard_id for s in description.shards] == [SHARD, CHILD]
    assert description.shards[1].parent_shard_id == SHARD
    assert client.sent[1][1]["ExclusiveStartShardId"] == SHARD
    assert_valid(client)


async def test_child_shards_request_validates() -> None:
    client = RecordingClient(
        "dynamodbstreams", {"DescribeStream": [_description([_shard(CHILD, SHARD)])]}
    )
    children = await StreamsClient(client).child_shards(ARN, SHARD)
    assert [c.shard_id for c in children] == [CHILD]
    assert client.sent[0][1]["ShardFilter"] == {"Type": "CHILD_SHARDS", "ShardId": SHARD}
    assert_valid(client)


@pytest.mark.parametrize(
    ("kind", "sequence", "timestamp"),
    [
        ("TRIM_HORIZON", None, None),
        ("LATEST", None, None),
        ("AT_SEQUENCE_NUMBER", SEQ, None),
        ("AFTER_SEQUENCE_NUMBER", SEQ, None),
        ("AT_TIMESTAMP", None, datetime(2024, 1, 2, tzinfo=UTC)),
    ],
)
async def test_get_shard_iterator_requests_validate(
    kind: str, sequence: str | None, timestamp: datetime | None
) -> None:
    client = RecordingClient("dynamodbstreams", {"GetShardIterator": [{"ShardIterator": "it"}]})
    iterator = await StreamsClient(client).get_shard_iterator(
        ARN, SHARD, kind, sequence, timestamp=timestamp
    )
    assert iterator == "it"
    assert_valid(client)


async def test_get_records_request_validates() -> None:
    client = RecordingClient(
        "dynamodbstreams",
        {"GetRecords": [{"Records": [RECORD], "NextShardIterator": "n"}]},
    )
    page = await StreamsClient(client).get_records("it", limit=1000)
    assert page.next_iterator == "n"
    assert [orjson.loads(encode_record(record)) for record in page.records] == [RECORD]
    assert_valid(client)


async def test_closed_shard_end_has_no_next_iterator() -> None:
    client = RecordingClient("dynamodbstreams", {"GetRecords": [{"Records": []}]})
    page = await StreamsClient(client).get_records("it", limit=1)
    assert page.next_iterator is None


async def test_describe_table_request_validates() -> None:
    answer = {"Table": {"LatestStreamArn": ARN, "StreamSpecification": {"StreamEnabled": True}}}
    client = RecordingClient("dynamodb", {"DescribeTable": [answer]})
    assert await resolve_stream_arn(client, "things") == ARN
    assert_valid(client)


async def test_table_without_stream_is_a_config_error() -> None:
    client = RecordingClient("dynamodb", {"DescribeTable": [{"Table": {"TableName": "t"}}]})
    with pytest.raises(ConfigError, match="has no stream enabled"):
        await resolve_stream_arn(client, "things")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.get_records("it", limit=0), "1 to 1000"),
        (lambda c: c.get_records("it", limit=1001), "1 to 1000"),
        (lambda c: c.get_records("", limit=10), "shard iterator"),
        (lambda c: c.describe_stream(ARN, page_size=101), "1 to 100"),
        (lambda c: c.get_shard_iterator(ARN, SHARD, "OLDEST"), "unknown shard iterator"),
        (lambda c: c.get_shard_iterator(ARN, SHARD, "AT_SEQUENCE_NUMBER"), "sequence number"),
        (lambda c: c.get_shard_iterator(ARN, SHARD, "AFTER_SEQUENCE_NUMBER", "12"), "21 to 40"),
        (lambda c: c.get_shard_iterator(ARN, SHARD, "LATEST", SEQ), "takes no sequence"),
        (lambda c: c.get_shard_iterator(ARN, SHARD, "AT_TIMESTAMP"), "timezone-aware"),
        (lambda c: c.get_shard_iterator(ARN, "shard-1", "LATEST"), "not a shard id"),
        (lambda c: c.describe_stream("arn:aws:dynamodb:us-east-1:1:table/t"), "stream ARN"),
    ],
)
async def test_bad_arguments_fail_locally(call: Any, message: str) -> None:
    client = RecordingClient("dynamodbstreams", {})
    with pytest.raises(ConfigError, match=message):
        await call(StreamsClient(client))
    assert client.sent == []


@pytest.mark.parametrize(
    "arn",
    [
        ARN,
        "arn:aws-cn:dynamodb:cn-north-1:123456789012:table/t.x-1/stream/2024-01-01T00:00:00.000",
        "arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/T_1/stream/label",
    ],
)
def test_valid_stream_arns(arn: str) -> None:
    validate_stream_arn(arn)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:dynamodb:us-east-1:123456789012:table/things",
        "arn:aws:kinesis:us-east-1:123456789012:stream/things",
        "arn:aws:dynamodb:us-east-1:1234:table/things/stream/x",
        "things",
        "",
    ],
)
def test_invalid_stream_arns(arn: str) -> None:
    with pytest.raises(ConfigError, match="not a DynamoDB stream ARN"):
        validate_stream_arn(arn)


def test_streams_client_needs_the_streams_service() -> None:
    with pytest.raises(ConfigError):
        StreamsClient(RecordingClient("dynamodb", {}))


# --- error codes --------------------------------------------------------------------


def _modelled_errors() -> set[str]:
    return {e.name for s in ("dynamodb", "dynamodbstreams") for e in _model(s).error_shapes}


@pytest.mark.parametrize("code", sorted(MAPPED_ERROR_CODES))
def test_every_mapped_code_is_real(code: str) -> None:
    assert code in _modelled_errors() | DOCUMENTED_COMMON_ERRORS


@pytest.mark.parametrize("code", sorted(e.name for e in _model("dynamodbstreams").error_shapes))
def test_every_streams_error_has_a_specific_class(code: str) -> None:
    error = error_from_response(400, b'{"__type": "%s"}' % code.encode(), "GetRecords")
    assert type(error) is not AwsError
    assert code in MAPPED_ERROR_CODES


def test_our_throttling_codes_are_botocores() -> None:
    """We retry as throttling only what botocore's standard retry mode calls throttling."""
    from botocore.retries.standard import ThrottledRetryableChecker

    botocore_codes = set(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
    for code in MAPPED_ERROR_CODES:
        error = error_from_response(400, b'{"__type": "%s"}' % code.encode(), "X")
        if isinstance(error, ThrottledError):
            assert code in botocore_codes, code
