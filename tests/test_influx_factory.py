"""The one factory for InfluxDB's writer and reader, per `[influx] version`."""

from __future__ import annotations

import pytest

from gateway.config import InfluxSection
from gateway.influx.factory import make_reader, make_sink
from gateway.influx.reader import QUERY_TIMEOUT_S, FluxReader, InfluxQLReader
from gateway.influx.v1 import InfluxV1Sink
from gateway.influx.v2 import InfluxV2Sink

# the 1.x writer and reader build aiohttp.BasicAuth, which aiohttp 3.x marks deprecated
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_INFLUX_PASSWORD", "pw")
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "tok")


def v1() -> InfluxSection:
    return InfluxSection(
        url="http://influx:8086/",
        database="db1",
        retention_policy="rp1",
        username="gw",
        password_env="TEST_INFLUX_PASSWORD",
        gzip_level=0,
        timeout_s=5,
        create_database=False,
    )


def v2(version: int = 2) -> InfluxSection:
    return InfluxSection.model_validate(
        {
            "version": version,
            "url": "http://influx:8181",
            "org": "bureau",
            "bucket": "b1",
            "token_env": "TEST_INFLUX_TOKEN",
            "timeout_s": 60,
        }
    )


def test_1x_sink_writes_to_the_database_with_basic_auth() -> None:
    sink = make_sink(v1())
    assert isinstance(sink, InfluxV1Sink)
    assert sink.url == "http://influx:8086"
    assert sink.params == {"db": "db1", "precision": "ns", "rp": "rp1"}
    assert sink.auth is not None and (sink.auth.login, sink.auth.password) == ("gw", "pw")
    assert sink.gzip_level == 0 and sink.timeout.total == 5 and not sink.create_database


@pytest.mark.parametrize("version", [2, 3])
def test_2x_and_3x_sinks_write_to_the_bucket_with_the_token(version: int) -> None:
    sink = make_sink(v2(version))
    assert isinstance(sink, InfluxV2Sink)
    assert (sink.org, sink.bucket, sink.token) == ("bureau", "b1", "tok")
    assert sink.gzip and sink.timeout_ms == 60_000


def test_1x_reader_binds_parameters_within_the_query_timeout() -> None:
    found = make_reader(v1())
    assert isinstance(found, InfluxQLReader)
    assert (found.database, found.retention_policy, found.bind_parameters) == ("db1", "rp1", True)
    assert found.auth is not None and found.auth.password == "pw"
    assert found.headers == {} and found.timeout_s == 5


def test_2x_reader_is_flux() -> None:
    found = make_reader(v2())
    assert isinstance(found, FluxReader)
    assert (found.org, found.bucket, found.token) == ("bureau", "b1", "tok")
    assert found.timeout_s == QUERY_TIMEOUT_S


def test_3x_reader_is_influxql_on_the_bucket_with_inlined_values() -> None:
    found = make_reader(v2(3))
    assert isinstance(found, InfluxQLReader)
    assert (found.database, found.bind_parameters, found.auth) == ("b1", False, None)
    assert found.headers == {"Authorization": "Token tok"}
