"""The InfluxDB writer (sink) and reader for the `[influx]` section, by its `version`:
1.x over `/write` and InfluxQL, 2.x through influxdb-client (Flux), 3.x writes like 2.x and
reads InfluxQL through its v1-compatible endpoint. Secrets come from the environment variables
the section names."""

from __future__ import annotations

from gateway.config import InfluxSection
from gateway.influx.reader import QUERY_TIMEOUT_S, FluxReader, InfluxQLReader, SeriesReader
from gateway.influx.sink import Sink
from gateway.influx.v1 import InfluxV1Sink
from gateway.influx.v2 import InfluxV2Sink


def make_sink(influx: InfluxSection) -> Sink:
    """The sink the forwarder writes to."""
    if influx.version == 1:
        return InfluxV1Sink(
            influx.url,
            influx.database,
            retention_policy=influx.retention_policy,
            username=influx.username,
            password=influx.secret(influx.password_env),
            gzip_level=influx.gzip_level,
            timeout_s=influx.timeout_s,
            create_database=influx.create_database,
        )
    return InfluxV2Sink(
        influx.url,
        org=influx.org or "",
        bucket=influx.bucket,
        token=influx.secret(influx.token_env) or "",
        gzip=influx.gzip_level > 0,
        timeout_s=influx.timeout_s,
    )


def make_reader(influx: InfluxSection) -> SeriesReader:
    """The reader charts read stored values with (timeout at most `QUERY_TIMEOUT_S`)."""
    timeout_s = min(influx.timeout_s, QUERY_TIMEOUT_S)
    if influx.version == 1:
        return InfluxQLReader(
            influx.url,
            influx.database,
            retention_policy=influx.retention_policy,
            username=influx.username,
            password=influx.secret(influx.password_env),
            timeout_s=timeout_s,
        )
    token = influx.secret(influx.token_env) or ""
    if influx.version == 2:
        return FluxReader(
            influx.url, org=influx.org or "", bucket=influx.bucket, token=token, timeout_s=timeout_s
        )
    return InfluxQLReader(
        influx.url, influx.bucket, token=token, bind_parameters=False, timeout_s=timeout_s
    )
