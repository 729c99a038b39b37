"""Counters and gauges of one worker, in Prometheus form.

Each worker owns a :class:`Metrics` with its own registry, so several workers in one
process (tests, embedded use) never collide. Event counters are named after Lambda's
event-source-mapping counts where one exists (polled, filtered out, invoked, failed,
dropped, delivered to the failure destination).

Label values never carry a secret: sinks are labelled by their URL with the password and
secret query values masked (``SinkOptions.name``), and :meth:`Metrics.exposition`, what
``/metrics`` serves, masks every known secret of the process
(:data:`shardline.redact.SECRETS`) in the whole text as a last line of defence.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shardline.redact import SECRETS

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric shardline exposes; pass one to a worker, scrape ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # --- records (Lambda's names) ---
        self.records_polled = Counter(
            "shardline_records_polled", "Records read from the stream", registry=r
        )
        self.records_filtered_out = Counter(
            "shardline_records_filtered_out", "Records dropped by filter criteria", registry=r
        )
        self.invocations = Counter(
            "shardline_invocations", "Processor calls with a batch", registry=r
        )
        self.processor_timeouts = Counter(
            "shardline_processor_timeouts",
            "Times a processor call overran its timeout (it is waited for, not abandoned)",
            registry=r,
        )
        self.invocation_failures = Counter(
            "shardline_invocation_failures", "Processor calls that raised", registry=r
        )
        self.records_dropped = Counter(
            "shardline_records_dropped",
            "Records given up on after retries or age limits (sent to the failure destination)",
            registry=r,
        )
        self.destination_deliveries = Counter(
            "shardline_failure_destination_deliveries",
            "Failed batches delivered to the on-failure destination",
            registry=r,
        )
        self.records_possibly_lost = Counter(
            "shardline_trimmed_data_events",
            "Times records were trimmed (or a shard expired) before they were read",
            registry=r,
        )
        # --- reads ---
        self.get_records_calls = Counter(
            "shardline_get_records_calls", "GetRecords calls", registry=r
        )
        self.get_records_latency = Histogram(
            "shardline_get_records_latency_seconds",
            "GetRecords latency (including retries)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.aws_throttles = Counter(
            "shardline_aws_throttles", "Throttled AWS calls (each retry counts)", ["operation"],
            registry=r,
        )  # fmt: skip
        self.iterator_age = Gauge(
            "shardline_iterator_age_milliseconds",
            "Age of the last record read, per shard (Lambda's IteratorAge)",
            ["shard"],
            registry=r,
        )
        # --- leases ---
        self.leases_held = Gauge("shardline_leases_held", "Leases held now", registry=r)
        self.lease_takes = Counter("shardline_lease_takes", "Leases taken", ["how"], registry=r)
        self.lease_losses = Counter("shardline_lease_losses", "Leases lost", registry=r)
        self.lease_releases = Counter(
            "shardline_lease_releases", "Leases released on purpose", registry=r
        )
        self.lease_renewal_failures = Counter(
            "shardline_lease_renewal_failures", "Renewals that failed with an error", registry=r
        )
        self.checkpoints = Counter("shardline_checkpoints", "Checkpoints written", registry=r)
        self.checkpoint_failures = Counter(
            "shardline_checkpoint_failures", "Checkpoint writes that failed", ["error"],
            registry=r,
        )  # fmt: skip
        # --- sinks (label: the sink's URL, secrets masked) ---
        self.sink_records_written = Counter(
            "shardline_sink_records_written", "Changes made durable by a sink", ["sink"],
            registry=r,
        )  # fmt: skip
        self.sink_write_failures = Counter(
            "shardline_sink_write_failures", "Sink writes that failed (any error)", ["sink"],
            registry=r,
        )  # fmt: skip
        self.sink_pushbacks = Counter(
            "shardline_sink_pushbacks",
            "Batches a busy target pushed back (retried without counting an attempt)",
            registry=r,
        )
        self.sink_write_seconds = Histogram(
            "shardline_sink_write_seconds", "Time to make one batch durable in a sink", ["sink"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.snapshot_items_copied = Counter(
            "shardline_snapshot_items_copied", "Items copied by the snapshot scan", registry=r
        )
        self.snapshot_segments_done = Counter(
            "shardline_snapshot_segments_done", "Snapshot segments finished here", registry=r
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus text format, every known secret masked."""
        text = generate_latest(self.registry).decode("utf-8")
        return SECRETS.redact(text).encode("utf-8")

    def forget_shard(self, shard_id: str) -> None:
        """Drop per-shard series once a shard is no longer consumed here."""
        try:
            self.iterator_age.remove(shard_id)
        except KeyError:
            pass
