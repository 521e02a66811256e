"""The archive's Prometheus metrics (in the default registry, beside the gateway's own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter("archive_records_total", "Frame records written to the archive and fsynced")
BYTES = Counter("archive_bytes_total", "Bytes written to the archive's day files")
DROPPED = Counter(
    "archive_dropped_total",
    "Frame records not archived: refused frames past half the queue, other frames with the "
    "queue full, records of a write that failed",
    ["reason"],
)
DAYS_DELETED = Counter(
    "archive_days_deleted_total", "Day files deleted, by reason (size cap, retention)", ["reason"]
)
SIZE_BYTES = Gauge("archive_size_bytes", "Bytes of the day files on disk")
QUEUE_BYTES = Gauge("archive_queue_bytes", "Bytes of frames waiting for the archive writer")
LAG_SECONDS = Gauge(
    "archive_writer_lag_seconds",
    "Age of the oldest record of the latest write when it was fsynced (the writer's lag)",
)
COMMIT_SECONDS = Histogram(
    "archive_commit_seconds",
    "One group write and fsync of the archive",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
