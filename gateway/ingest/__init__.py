"""The durable ingest path: points in, fsynced in the spool, forwarded to InfluxDB in order.

What the adapters use of it (its face): `Pipeline`, `PowerConverter` / `PowerSample`, and the
spool's `SpoolFull` / `SpoolClosed`.
"""

from .pipeline import Pipeline
from .power import PowerConverter, PowerSample
from .spool import SpoolClosed, SpoolFull

__all__ = ["Pipeline", "PowerConverter", "PowerSample", "SpoolClosed", "SpoolFull"]
