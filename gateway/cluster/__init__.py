"""Cluster mode: the replicated JetStream log between ingestion and the InfluxDB writers."""
