"""Prometheus metrics of the gateway (one process-wide registry; labels are bounded sets)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_RECEIVED = Counter(
    "frames_received_total", "Frames or messages received, by adapter", ["adapter"]
)
FRAMES_REJECTED = Counter(
    "frames_rejected_total",
    "Frames or messages not stored, by adapter and reason",
    ["adapter", "reason"],
)
UNREGISTERED_STORED = Counter(
    "unregistered_device_messages_total",
    "Messages from meters or gates missing from the registry, stored anyway",
    ["kind"],
)
CRC_VARIANT = Counter(
    "hj212_crc_variant_total", "Accepted HJ 212 frames by CRC variant", ["variant"]
)
REPLIES_SENT = Counter("hj212_replies_sent_total", "Replies sent to devices, by CN", ["cn"])
CONNECTIONS_OPEN = Gauge("hj212_connections_open", "Open HJ 212 device connections")
CONNECTIONS_CLOSED = Counter(
    "hj212_connections_closed_total", "Closed HJ 212 connections, by reason", ["reason"]
)
PROXY_HEADERS = Counter(
    "hj212_proxy_headers_total", "PROXY protocol headers taken, by version", ["version"]
)
PROXY_REJECTED = Counter(
    "hj212_proxy_rejected_total",
    "HJ 212 connections closed over their PROXY protocol header, by reason",
    ["reason"],
)
CODES_UNRECOGNISED = Counter(
    "hj212_codes_unrecognised_total",
    "Values under factor codes kept out of the tag space (stored in emission_unrecognised)",
)
PLAINTEXT_UPLOADS = Counter(
    "hj212_plaintext_uploads_total",
    "Data uploads taken in clear from devices with an SM4 key (allow_plaintext)",
)
SPLIT_UPLOADS_INCOMPLETE = Counter(
    "hj212_split_uploads_incomplete_total",
    "Split uploads judged without all their parts (window ran out or evicted)",
)
JUNK_BYTES = Counter("hj212_junk_bytes_total", "Bytes skipped between frames")
POINTS_ACCEPTED = Counter(
    "points_accepted_total", "Points made durable in the spool", ["measurement"]
)
POINTS_WRITTEN = Counter("points_written_total", "Points written to InfluxDB")
BATCHES_WRITTEN = Counter("influx_batches_written_total", "Batches written to InfluxDB")
WRITE_RETRIES = Counter(
    "influx_write_retries_total", "InfluxDB write attempts that will be retried", ["reason"]
)
POISON_LINES = Counter(
    "influx_poison_lines_total", "Lines InfluxDB refused, set aside in the poison file"
)
POISON_DROPPED = Counter(
    "influx_poison_lines_dropped_total",
    "Lines InfluxDB refused that the full poison file could not keep",
)
ACK_LATENCY = Histogram(
    "ack_latency_seconds",
    "Frame received to acknowledgement sent",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0),
)
SPOOL_COMMIT_SECONDS = Histogram(
    "spool_commit_seconds",
    "Duration of one spool write + fsync (a group commit)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
SPOOL_RECORDS = Counter("spool_records_total", "Records committed to the spool")
SPOOL_DEPTH_BYTES = Gauge("spool_depth_bytes", "Spooled bytes not yet written to InfluxDB")
SPOOL_FULL_TOTAL = Counter(
    "spool_full_total", "Times the spool filled up and acknowledgements stopped"
)
ANOMALY_EVENTS = Counter(
    "anomaly_events_total", "Anomalies opened, updated, closed", ["type", "event"]
)
GATE_RECORDS_QUESTIONED = Counter(
    "gate_records_questioned_total",
    "Gate passages that say little of the vehicle: no plate read, or a plate entering twice "
    "within a day without leaving in between",
    ["reason"],
)
REFUSED_SOURCES_DROPPED = Counter(
    "refused_sources_dropped_total",
    "Frames with unregistered MNs from addresses beyond the bound of open unregistered_device "
    "anomalies, counted in the address:* overflow anomaly instead",
)
ERRORS_TOTAL = Counter("errors_total", "Internal errors by stage", ["stage"])

# notifications (gateway/notify): per configured channel
NOTIFY_DELIVERED = Counter(
    "notify_delivered_total", "Notices delivered (a 2xx answer; robots: errcode 0)", ["channel"]
)
NOTIFY_FAILED = Counter(
    "notify_failed_attempts_total", "Failed delivery attempts (retried, or given up)", ["channel"]
)
NOTIFY_GIVEN_UP = Counter(
    "notify_given_up_total", "Notices given up after failing past give_up_after_h", ["channel"]
)
NOTIFY_DROPPED = Counter(
    "notify_dropped_total", "Notices not queued because the channel's outbox was full", ["channel"]
)
NOTIFY_PENDING = Gauge("notify_pending", "Notices waiting for delivery", ["channel"])


_children: dict[tuple[int, str], Counter] = {}


def _child(metric: Counter, value: str) -> Counter:
    """A labelled child of a one-label counter, cached because it is used per frame."""
    key = (id(metric), value)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(value)
    return child


def points_accepted(measurement: str) -> Counter:
    return _child(POINTS_ACCEPTED, measurement)


def replies_sent(cn: str) -> Counter:
    return _child(REPLIES_SENT, cn)


def crc_variant(variant: str) -> Counter:
    return _child(CRC_VARIANT, variant)


def _version() -> str:
    """The installed distribution's version, or "unknown" when run from an uninstalled tree."""
    from importlib import metadata

    try:
        return metadata.version("pollution-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO = Gauge("gateway_build_info", "The running gateway's version (always 1)", ["version"])
BUILD_INFO.labels(_version()).set(1)
