"""One log stream: structlog events and stdlib records (uvicorn, asyncio, libraries, warnings)
come out in the configured format, JSON lines only with log_format = "json"."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gateway import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.name == logs.HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def _emit_everything() -> None:
    structlog.get_logger("gateway").info("gateway started", hj212="127.0.0.1:9212")
    structlog.get_logger("adapters.hj212").warning("frame rejected", reason="bad_crc", n=2)
    try:
        raise ValueError("spool broke")
    except ValueError:
        structlog.get_logger("gateway.spool").exception("spool error", stage="commit")
    structlog.get_logger("gateway").debug("below the level")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    logging.getLogger("uvicorn.error").debug("below the level too")
    logging.getLogger("influxdb_client.client.write_api").warning(
        'The retriable error occurred during request. Reason: "%s".', "timeout"
    )
    logging.getLogger("mqtt").warning("paho: %s", "connection refused")
    loop = asyncio.new_event_loop()
    try:  # asyncio's own handler logs a callback's exception, with its traceback
        loop.call_exception_handler({"message": "callback failed", "exception": OSError(5, "x")})
    finally:
        loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library deprecates something", DeprecationWarning, stacklevel=1)


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line, not only ours
        assert isinstance(record, dict), line
        assert isinstance(record.get("event"), str) and isinstance(record.get("level"), str), line
        parsed.append(record)
    return parsed


def test_json_format_writes_only_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "info")
    _emit_everything()
    out, err = capsys.readouterr()
    assert out == ""
    records = _json_lines(err)
    by_event = {r["event"]: r for r in records}
    assert set(by_event["gateway started"]) == {"event", "level", "timestamp", "hj212"}
    assert by_event["frame rejected"]["level"] == "warning"
    assert by_event["frame rejected"]["n"] == 2
    assert "ValueError: spool broke" in by_event["spool error"]["exception"]
    started = by_event["Started server process [4242]"]
    assert (started["level"], started["logger"]) == ("info", "uvicorn.error")
    assert {r.get("logger") for r in records} >= {
        "uvicorn.error",
        "influxdb_client.client.write_api",
        "mqtt",
        "asyncio",
        "py.warnings",
    }
    failed = next(r for r in records if r["event"].startswith("callback failed"))
    assert failed["level"] == "error" and "OSError" in failed["exception"]
    warned = next(r for r in records if r.get("logger") == "py.warnings")
    assert warned["level"] == "warning" and "deprecates something" in warned["event"]
    assert not any("below the level" in r["event"] for r in records)
    assert all(r["timestamp"].endswith("Z") for r in records)


def test_console_format_stays_readable(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("console", "info")
    _emit_everything()
    err = capsys.readouterr().err
    assert "gateway started" in err and "hj212" in err and "127.0.0.1:9212" in err
    assert "Started server process [4242]" in err and "uvicorn.error" in err
    assert "Traceback" in err and "ValueError: spool broke" in err
    assert "below the level" not in err
    first = err.splitlines()[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)


def test_configuring_again_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("console", "debug")
    logs.configure("json", "warning")
    root = logging.getLogger()
    assert [h.name for h in root.handlers].count(logs.HANDLER_NAME) == 1
    logging.getLogger("aiohttp.client").warning("once")
    logging.getLogger("aiohttp.client").info("filtered")
    records = _json_lines(capsys.readouterr().err)
    assert [r["event"] for r in records] == ["once"]
