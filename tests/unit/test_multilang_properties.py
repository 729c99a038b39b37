"""Java .properties syntax and the mapping of MultiLangDaemon keys onto settings."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardline.errors import ConfigError
from shardline.multilang.properties import decode_file_bytes, parse_properties
from shardline.multilang.settings import SHUTDOWN_MARGIN, build_settings

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000"


def parsed(text: str) -> dict[str, str]:
    return {p.key: p.value for p in parse_properties(text)}


def test_separators_comments_and_blanks() -> None:
    text = "# comment\n! also\n\n  a = 1\nb: 2\nc 3\nd=\ne\n f =  spaced value  \n"
    assert parsed(text) == {"a": "1", "b": "2", "c": "3", "d": "", "e": "", "f": "spaced value  "}


def test_continuations_and_escapes() -> None:
    text = (
        "cmd = python3 \\\n    app.py \\\n    --flag\n"
        "k\\:ey\\ x = a\\tb\\u0041\\\\\nwin = 1\r\nz = 2\r"
    )
    assert parsed(text) == {
        "cmd": "python3 app.py --flag",
        "k:ey x": "a\tbA\\",
        "win": "1",
        "z": "2",
    }


def test_even_backslashes_do_not_continue() -> None:
    assert parsed("a = x\\\\\nb = y") == {"a": "x\\", "b": "y"}


def test_line_numbers_and_bad_unicode_escape() -> None:
    entries = parse_properties("\n\na = 1\\\n  2\nb = 3\n")
    assert [(e.key, e.value, e.line) for e in entries] == [("a", "12", 3), ("b", "3", 5)]
    with pytest.raises(ConfigError, match=r"app.properties:1: malformed \\uxxxx"):
        parse_properties("a = \\u12G4", "app.properties")


def test_file_bytes_utf8_or_latin1() -> None:
    assert decode_file_bytes("k = é".encode()) == "k = é"
    assert decode_file_bytes("k = é".encode("latin-1")) == "k = é"


@given(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,10}", fullmatch=True), st.text()))
def test_escaped_values_round_trip(values: dict[str, str]) -> None:
    def escape(value: str) -> str:
        out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        out = out.replace("\f", "\\f").replace("\t", "\\t")
        return ("\\" + out) if out[:1] in (" ", "\t", "\f", "=", ":") else out

    text = "".join(f"{k} = {escape(v)}\n" for k, v in values.items())
    assert parsed(text) == values


# --- settings ---------------------------------------------------------------------------


def settings_from(text: str):  # type: ignore[no-untyped-def]
    return build_settings(parse_properties(text, "app.properties"), "app.properties")


BASE = "executableName = python3  app.py  --x\napplicationName = orders-sync\n"


def test_every_mapped_key() -> None:
    settings = settings_from(
        BASE + f"streamArn = {ARN}\n"
        "initialPositionInStream = trim_horizon\nregionName = eu-west-1\nworkerId = w1\n"
        "failoverTimeMillis = 20000\nidleTimeBetweenReadsInMillis = 250\nmaxRecords = 500\n"
        "maxLeasesForWorker = 7\nmaxLeasesToStealAtOneTime = 2\n"
        "shardSyncIntervalMillis = 30000\nparentShardPollIntervalMillis = 2000\n"
        "cleanupLeasesUponShardCompletion = FALSE\n"
        "callProcessRecordsEvenForEmptyRecordList = true\nshutdownGraceMillis = 4000\n"
        "timeoutInSeconds = 30\ntableName = leases\n"
        "kinesisEndpoint = streams.example.com\ndynamoDBEndpoint = http://127.0.0.1:4566\n"
        "AwsCredentialsProvider = ProfileCredentialsProvider|prod\n"
    )
    c = settings.consumer
    assert settings.child.command == ("python3", "app.py", "--x")
    assert (c.application, c.stream_arn, c.table, c.lease_table) == (
        "orders-sync",
        ARN,
        None,
        "leases",
    )
    assert (c.starting_position, c.worker_id) == ("TRIM_HORIZON", "w1")
    assert (c.failover_time, c.idle_time, c.max_records) == (20.0, 0.25, 500)
    assert (c.max_leases, c.max_leases_to_steal) == (7, 2)
    assert (c.shard_sync_interval, c.parent_poll_interval) == (30.0, 2.0)
    assert (c.cleanup_leases, c.call_process_records_even_for_empty_list) == (False, True)
    assert settings.child.shutdown_grace == 4.0
    assert c.shutdown_grace == 4.0 + SHUTDOWN_MARGIN
    assert settings.child.timeout == 30.0
    assert c.aws.region == "eu-west-1"
    assert c.aws.profile == "prod"
    assert c.aws.streams_endpoint_url == "https://streams.example.com"
    assert c.aws.dynamodb_endpoint_url == "http://127.0.0.1:4566"
    assert settings.notes == ()


def test_defaults_follow_kcl() -> None:
    settings = settings_from(BASE + "streamName = Orders\n")
    assert settings.consumer.table == "Orders"
    assert settings.consumer.starting_position == "LATEST"
    assert settings.child.timeout is None
    assert settings.consumer.aws.profile is None


def test_stream_name_may_be_an_arn_and_stream_arn_wins() -> None:
    assert settings_from(BASE + f"streamName = {ARN}\n").consumer.stream_arn == ARN
    both = settings_from(BASE + f"streamName = Other\nstreamArn = {ARN}\n")
    assert both.consumer.stream_arn == ARN and both.consumer.table is None


def test_max_records_is_capped_with_a_note() -> None:
    settings = settings_from(BASE + "streamName = T1x\nmaxRecords = 10000\n")
    assert settings.consumer.max_records == 1000
    assert [n.message for n in settings.notes] == ["maxRecords = 10000: capped at 1000"]


def test_ignored_and_unknown_keys_are_noted() -> None:
    settings = settings_from(
        BASE + "streamName = T1x\nprocessingLanguage = python/3.11\nmetricsLevel = NONE\n"
        "coordinatorStateTableName = x\nAwsCredentialsProviderCloudWatch = X\nfooBar = 1\n"
    )
    infos = [n.message for n in settings.notes if n.level == logging.INFO]
    warnings = [n.message for n in settings.notes if n.level == logging.WARNING]
    assert len(infos) == 4 and all("ignored" in m for m in infos)
    assert warnings == ["app.properties:8: unknown key 'fooBar'"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("failoverTimeMillis = soon", r"app.properties:4: failoverTimeMillis = 'soon': not an int"),
        ("failoverTimeMillis = 10", "must be at least 1000"),
        ("maxRecords = 0", "must be at least 1"),
        ("cleanupLeasesUponShardCompletion = yes", "must be true or false"),
        ("initialPositionInStream = AT_TIMESTAMP", "no AT_TIMESTAMP"),
        ("initialPositionInStream = EARLIEST", "TRIM_HORIZON or LATEST"),
        ("streamArn = arn:aws:kinesis:us-east-1:1:stream/x", "not a DynamoDB stream ARN"),
        ("AwsCredentialsProvider = StsAssumeRoleCredentialsProvider", "unsupported credentials"),
        ("timeoutInSeconds = 0", "must be at least 1"),
        ("kinesisEndpoint = a b", "not an endpoint URL"),
    ],
)
def test_bad_values_name_the_line_and_key(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(BASE + "streamName = Orders\n" + extra + "\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("applicationName = a-b-c\nstreamName = T1x\n", "executableName is required"),
        ("executableName = x\nstreamName = T1x\n", "applicationName is required"),
        ("executableName = x\napplicationName = a-b-c\n", "set streamArn"),
        ("executableName =   \napplicationName = a-b-c\nstreamName = T1x\n", "must name"),
    ],
)
def test_required_keys(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(text)


@pytest.mark.parametrize(
    "provider",
    [
        "DefaultCredentialsProvider",
        "DefaultAWSCredentialsProviderChain",
        "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
        "com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
        "ProfileCredentialsProvider",
    ],
)
def test_standard_chain_providers(provider: str) -> None:
    settings = settings_from(BASE + f"streamName = T1x\nawscredentialsprovider = {provider}\n")
    assert settings.consumer.aws.profile is None


def test_last_value_of_a_repeated_key_wins() -> None:
    assert settings_from(BASE + "streamName = T1x\nstreamName = T2x\n").consumer.table == "T2x"
