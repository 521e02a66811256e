"""The forward targets' Prometheus metrics (label `target`: the target's name)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

BACKLOG_BYTES = Gauge(
    "forward_backlog_bytes", "Bytes of the archive the target has not passed yet", ["target"]
)
BACKLOG_RECORDS = Gauge(
    "forward_backlog_records",
    "Archive records the target has not passed yet (estimated from bytes and record size)",
    ["target"],
)
LAG_SECONDS = Gauge(
    "forward_lag_seconds",
    "Age (receipt time) of the oldest frame read and not yet delivered; 0 when caught up",
    ["target"],
)
CONNECTED = Gauge("forward_connected", "1 while the target's connection is up", ["target"])
SENT = Counter("forward_sent_total", "Frames sent to the target (resends included)", ["target"])
ACKED = Counter("forward_acked_total", "Frames the target acknowledged (9014)", ["target"])
RETRIED = Counter(
    "forward_retried_total",
    "Frames sent again (no 9014 in time, a refusal, the connection lost)",
    ["target"],
)
REFUSED = Counter(
    "forward_refused_total",
    "Frames the target refused (9011 QnRtn other than 1, by reason) or closed the connection "
    "on, again",
    ["target", "reason"],
)
LOST = Counter(
    "forward_lost_total",
    "Archive day files deleted (retention, size cap) before the target read them",
    ["target", "reason"],
)
HISTORY = Counter(
    "forward_history_frames_total",
    "Frames sent answering the target's history requests",
    ["target"],
)
