"""Rules: telemetry in, anomalies with evidence out. Deterministic on event time."""
