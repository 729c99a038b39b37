"""MultiLangDaemon properties -> shardline settings. Pure: entries in, settings out.

Every key the MultiLangDaemon documents is either mapped onto
:class:`~shardline.ConsumerConfig` / :class:`~shardline.AwsSettings` /
:class:`ChildSettings`, or accepted and ignored with a note (it means nothing for
DynamoDB Streams or for shardline). Unknown keys get a warning note. A bad value raises
:class:`~shardline.errors.ConfigError` naming the file, line and key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from shardline.aws.settings import AwsSettings
from shardline.config import ConsumerConfig
from shardline.errors import ConfigError
from shardline.multilang.properties import Property
from shardline.streams.client import validate_stream_arn

__all__ = ["ChildSettings", "DaemonSettings", "Note", "build_settings", "consumer_kwargs"]

MAX_RECORDS_CAP = 1000
DEFAULT_SHUTDOWN_GRACE = 5.0
#: Extra time the worker gives the whole shutdown beyond the child's grace, so the
#: ``leaseLost`` that follows ``shutdownRequested`` and the child's exit fit in.
SHUTDOWN_MARGIN = 2.0


@dataclass(frozen=True)
class ChildSettings:
    """How each per-shard child process is run and supervised."""

    command: tuple[str, ...]
    timeout: float | None = None
    """``timeoutInSeconds``: most seconds one call may take (None: no limit)."""
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    """``shutdownGraceMillis``: most seconds a child may take to answer shutdownRequested."""
    exit_timeout: float = 5.0
    """After stdin is closed, seconds to wait for the child to exit before killing it."""
    env: dict[str, str] | None = None
    """Environment for the child (None: the daemon's own)."""


@dataclass(frozen=True)
class Note:
    """A line to log at start-up about the properties file."""

    level: int
    message: str


@dataclass(frozen=True)
class DaemonSettings:
    """Everything a properties file says."""

    consumer: ConsumerConfig
    child: ChildSettings
    notes: tuple[Note, ...] = ()


def consumer_kwargs(config: ConsumerConfig) -> dict[str, Any]:
    """The keyword arguments that rebuild ``config`` through ``shardline.Consumer``."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


@dataclass
class _Draft:
    source: str
    consumer: dict[str, Any] = field(default_factory=dict)
    aws: dict[str, Any] = field(default_factory=dict)
    child: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    stream_arn: str | None = None
    stream_name: str | None = None

    def fail(self, entry: Property, why: str) -> ConfigError:
        return ConfigError(f"{self.source}:{entry.line}: {entry.key} = {entry.value!r}: {why}")

    def note(self, level: int, message: str) -> None:
        self.notes.append(Note(level, message))


Handler = Callable[[_Draft, Property], None]


def build_settings(entries: Iterable[Property], source: str = "properties") -> DaemonSettings:
    """Map properties onto settings; raise ConfigError for a missing or bad value."""
    draft = _Draft(source)
    for entry in _last_of_each(entries):
        handler = _HANDLERS.get(entry.key.lower())
        if handler is not None:
            handler(draft, entry)
        elif is_ignored(entry.key):
            why = _IGNORED.get(entry.key.lower(), "KCL 3 tables are not used")
            draft.note(logging.INFO, f"{entry.key}: ignored ({why})")
        else:
            draft.note(logging.WARNING, f"{source}:{entry.line}: unknown key {entry.key!r}")
    return _finish(draft)


def _last_of_each(entries: Iterable[Property]) -> list[Property]:
    latest: dict[str, Property] = {}
    for entry in entries:
        latest.pop(entry.key.lower(), None)
        latest[entry.key.lower()] = entry
    return list(latest.values())


def _finish(draft: _Draft) -> DaemonSettings:
    if "command" not in draft.child:
        raise ConfigError(f"{draft.source}: executableName is required (the processor command)")
    if "application" not in draft.consumer:
        raise ConfigError(f"{draft.source}: applicationName is required (it names the lease table)")
    _choose_stream(draft)
    draft.consumer.setdefault("starting_position", "LATEST")
    grace = draft.child.get("shutdown_grace", DEFAULT_SHUTDOWN_GRACE)
    draft.consumer["shutdown_grace"] = grace + SHUTDOWN_MARGIN
    consumer = ConsumerConfig(aws=AwsSettings(**draft.aws), **draft.consumer)
    return DaemonSettings(consumer, ChildSettings(**draft.child), tuple(draft.notes))


def _choose_stream(draft: _Draft) -> None:
    if draft.stream_arn is not None:
        if draft.stream_name is not None:
            draft.note(logging.INFO, "streamArn and streamName both set: streamArn wins")
        draft.consumer["stream_arn"] = draft.stream_arn
    elif draft.stream_name is not None:
        if draft.stream_name.startswith("arn:"):
            draft.consumer["stream_arn"] = draft.stream_name
        else:
            draft.consumer["table"] = draft.stream_name
    else:
        raise ConfigError(
            f"{draft.source}: set streamArn (the DynamoDB stream ARN) or streamName "
            "(a stream ARN or a table name)"
        )


# --- handlers --------------------------------------------------------------------------


def _text(target: str, attribute: str) -> Handler:
    def handle(draft: _Draft, entry: Property) -> None:
        if not entry.value:
            raise draft.fail(entry, "must not be empty")
        getattr(draft, target)[attribute] = entry.value

    return handle


def _integer(draft: _Draft, entry: Property, minimum: int) -> int:
    try:
        value = int(entry.value)
    except ValueError:
        raise draft.fail(entry, "not an integer") from None
    if value < minimum:
        raise draft.fail(entry, f"must be at least {minimum}")
    return value


def _count(attribute: str, minimum: int) -> Handler:
    def handle(draft: _Draft, entry: Property) -> None:
        draft.consumer[attribute] = _integer(draft, entry, minimum)

    return handle


def _millis(target: str, attribute: str, minimum_ms: int) -> Handler:
    def handle(draft: _Draft, entry: Property) -> None:
        getattr(draft, target)[attribute] = _integer(draft, entry, minimum_ms) / 1000

    return handle


def _flag(attribute: str) -> Handler:
    def handle(draft: _Draft, entry: Property) -> None:
        value = entry.value.lower()
        if value not in ("true", "false"):
            raise draft.fail(entry, "must be true or false")
        draft.consumer[attribute] = value == "true"

    return handle


def _endpoint(attribute: str) -> Handler:
    def handle(draft: _Draft, entry: Property) -> None:
        if not entry.value or " " in entry.value:
            raise draft.fail(entry, "not an endpoint URL")
        url = entry.value if "://" in entry.value else f"https://{entry.value}"
        draft.aws[attribute] = url

    return handle


def _executable(draft: _Draft, entry: Property) -> None:
    command = tuple(part for part in entry.value.split(" ") if part)
    if not command:
        raise draft.fail(entry, "must name the processor command")
    draft.child["command"] = command


def _stream_arn(draft: _Draft, entry: Property) -> None:
    try:
        validate_stream_arn(entry.value)
    except ConfigError as exc:
        raise draft.fail(entry, str(exc)) from None
    draft.stream_arn = entry.value


def _stream_name(draft: _Draft, entry: Property) -> None:
    if not entry.value:
        raise draft.fail(entry, "must not be empty")
    if entry.value.startswith("arn:"):
        _stream_arn(draft, entry)
        draft.stream_name, draft.stream_arn = draft.stream_arn, None
    else:
        draft.stream_name = entry.value


def _initial_position(draft: _Draft, entry: Property) -> None:
    value = entry.value.upper()
    if value == "AT_TIMESTAMP":
        raise draft.fail(entry, "DynamoDB Streams has no AT_TIMESTAMP; use TRIM_HORIZON or LATEST")
    if value not in ("TRIM_HORIZON", "LATEST"):
        raise draft.fail(entry, "must be TRIM_HORIZON or LATEST")
    draft.consumer["starting_position"] = value


def _max_records(draft: _Draft, entry: Property) -> None:
    value = _integer(draft, entry, 1)
    if value > MAX_RECORDS_CAP:
        draft.note(logging.INFO, f"maxRecords = {value}: capped at {MAX_RECORDS_CAP}")
        value = MAX_RECORDS_CAP
    draft.consumer["max_records"] = value


def _timeout(draft: _Draft, entry: Property) -> None:
    draft.child["timeout"] = float(_integer(draft, entry, 1))


_DEFAULT_PROVIDERS = frozenset({"defaultcredentialsprovider", "defaultawscredentialsproviderchain"})
_PROFILE_PROVIDERS = frozenset({"profilecredentialsprovider"})


def _credentials(draft: _Draft, entry: Property) -> None:
    """``DefaultCredentialsProvider`` -> botocore's chain; ``ProfileCredentialsProvider|p``."""
    profile: str | None = None
    for provider in entry.value.split(","):
        name, _, argument = provider.strip().partition("|")
        simple = name.rsplit(".", 1)[-1].strip().lower()
        if simple in _PROFILE_PROVIDERS:
            profile = argument.strip() or profile
        elif simple not in _DEFAULT_PROVIDERS:
            raise draft.fail(
                entry,
                "unsupported credentials provider; use DefaultCredentialsProvider (the "
                "standard chain: environment, profile, container and instance roles) or "
                "ProfileCredentialsProvider|<profile>",
            )
    dynamodb_only = entry.key.lower() == "awscredentialsproviderdynamodb"
    if dynamodb_only and profile != draft.aws.get("profile", profile):
        raise draft.fail(entry, "shardline uses one set of credentials for stream and table")
    if profile is not None:
        draft.aws["profile"] = profile


_HANDLERS: dict[str, Handler] = {
    "executablename": _executable,
    "applicationname": _text("consumer", "application"),
    "streamarn": _stream_arn,
    "streamname": _stream_name,
    "initialpositioninstream": _initial_position,
    "initialpositioninstreamextended": _initial_position,
    "regionname": _text("aws", "region"),
    "workerid": _text("consumer", "worker_id"),
    "tablename": _text("consumer", "lease_table"),
    "failovertimemillis": _millis("consumer", "failover_time", 1000),
    "idletimebetweenreadsinmillis": _millis("consumer", "idle_time", 0),
    "shardsyncintervalmillis": _millis("consumer", "shard_sync_interval", 1000),
    "parentshardpollintervalmillis": _millis("consumer", "parent_poll_interval", 50),
    "shutdowngracemillis": _millis("child", "shutdown_grace", 0),
    "maxrecords": _max_records,
    "maxleasesforworker": _count("max_leases", 1),
    "maxleasestostealatonetime": _count("max_leases_to_steal", 0),
    "cleanupleasesuponshardcompletion": _flag("cleanup_leases"),
    "callprocessrecordsevenforemptyrecordlist": _flag("call_process_records_even_for_empty_list"),
    "timeoutinseconds": _timeout,
    "kinesisendpoint": _endpoint("streams_endpoint_url"),
    "dynamodbendpoint": _endpoint("dynamodb_endpoint_url"),
    "awscredentialsprovider": _credentials,
    "awscredentialsproviderdynamodb": _credentials,
}

_METRICS = "shardline exposes Prometheus metrics instead of CloudWatch"
_NO_MEANING = "no meaning for DynamoDB Streams"
_AUTOMATIC = "shardline does this itself"
_IGNORED: dict[str, str] = {
    "processinglanguage": "user agent only",
    "maxactivethreads": "one asyncio task and one child process per lease",
    "awscredentialsprovidercloudwatch": _METRICS,
    "metricsbuffertimemillis": _METRICS,
    "metricsmaxqueuesize": _METRICS,
    "metricslevel": _METRICS,
    "metricsenableddimensions": _METRICS,
    "retrievalmode": "DynamoDB Streams is always polled",
    "consumerarn": _NO_MEANING,
    "consumername": _NO_MEANING,
    "timestampatinitialpositioninstream": _NO_MEANING,
    "maxgetrecordsthreadpool": _NO_MEANING,
    "retrygetrecordsinseconds": _AUTOMATIC,
    "millisbehindlatestthresholdforreducedtps": _NO_MEANING,
    "validatesequencenumberbeforecheckpointing": "checkpoints are always validated",
    "taskbackofftimemillis": "failed batches back off 0.5 s doubling to 30 s",
    "logwarningfortaskaftermillis": _AUTOMATIC,
    "ignoreunexpectedchildshards": _AUTOMATIC,
    "billingmode": "the lease table is created PAY_PER_REQUEST",
    "initialleasetablereadcapacity": "the lease table is created PAY_PER_REQUEST",
    "initialleasetablewritecapacity": "the lease table is created PAY_PER_REQUEST",
    "maxleaserenewalthreads": "leases are renewed on the event loop",
    "listshardsbackofftimeinmillis": _AUTOMATIC,
    "maxlistshardsretryattempts": _AUTOMATIC,
    "skipshardsyncatstartupifleasesexist": _AUTOMATIC,
    "skipshardsyncatworkerinitializationifleasesexist": _AUTOMATIC,
    "shardsyncstrategytype": _AUTOMATIC,
    "shardprioritization": "parents always come before children",
    "schedulerinitializationbackofftimemillis": _AUTOMATIC,
    "leasesrecoveryauditorexecutionfrequencymillis": _AUTOMATIC,
    "leasesrecoveryauditorinconsistencyconfidencethreshold": _AUTOMATIC,
    "clientversionconfig": "shardline speaks the KCL 2.x lease protocol",
    "leaseassignmentintervalmillis": "KCL 3 leader-based assignment is not used",
    "enablepriorityleaseassignment": "KCL 3 leader-based assignment is not used",
    "leasetabledeletionprotectionenabled": _NO_MEANING,
    "leasetablepitrenabled": _NO_MEANING,
    "leasetablescantotalsegments": _NO_MEANING,
    "gracefulleasehandofftimeoutmillis": "shutdown hands leases off at once",
    "isgracefulleasehandoffenabled": "shutdown hands leases off at once",
    "migrateallentitiestoleasetable": _NO_MEANING,
    "tablemigrationcompletebaketimeseconds": _NO_MEANING,
    **{
        name.lower(): "KCL 3 worker metrics are not used"
        for name in (
            "inMemoryWorkerMetricsCaptureFrequencyMillis",
            "workerMetricsReporterFreqInMillis",
            "noOfPersistedMetricsPerWorkerMetrics",
            "disableWorkerMetrics",
            "maxThroughputPerHostKBps",
            "dampeningPercentage",
            "reBalanceThresholdPercentage",
            "allowThroughputOvershoot",
            "varianceBalancingFrequency",
            "workerMetricsEMAAlpha",
            "staleWorkerMetricsEntryCleanupDuration",
        )
    },
}
_IGNORED_PREFIXES = ("coordinatorstate", "workermetrics")


def is_ignored(key: str) -> bool:
    """Whether ``key`` is a MultiLangDaemon key that means nothing here."""
    lowered = key.lower()
    return lowered in _IGNORED or lowered.startswith(_IGNORED_PREFIXES)
