"""Anomalies: the stream enforcement reads (model, store, publication)."""
