"""Prometheus metrics of the cluster log (publishing) and of the stream writers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("cluster_messages_published_total", "Messages the stream acknowledged")
PUBLISH_RETRIES = Counter(
    "cluster_publish_retries_total", "Publishes sent again (no ack in time, no leader, lost link)"
)
REFUSED = Counter(
    "cluster_appends_refused_total",
    "Appends not made durable, so their devices were not acknowledged, by reason",
    ["reason"],  # stream_full, pending_full, deadline, closed
)
PUBLISH_SECONDS = Histogram(
    "cluster_publish_seconds",
    "From a message's sealing to the stream's ack (retries included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INFLIGHT = Gauge("cluster_publish_inflight", "Messages published and awaiting their ack")
PENDING_BYTES = Gauge("cluster_pending_bytes", "Bytes appended and not yet acked by the stream")
WRITER_MESSAGES = Counter(
    "cluster_writer_messages_total", "Stream messages written to InfluxDB and acked"
)
WRITER_REDELIVERED = Counter(
    "cluster_writer_redelivered_total", "Messages a writer got again (a writer died, or late)"
)
COMMANDS = Counter(
    "cluster_commands_total",
    "Device commands an ingestion process got, by kind and outcome",
    ["kind", "outcome"],  # sent, not_connected (this process holds no connection of the MN)
)
COMMAND_REQUESTS = Counter(
    "cluster_command_requests_total",
    "Device commands a rule worker asked for, by kind and outcome",
    ["kind", "outcome"],  # delivered, nobody, unreachable, refused, failed, replayed
)
