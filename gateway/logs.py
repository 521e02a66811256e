"""Logging set-up: one stream on stderr for structlog's events and the standard library's
records (uvicorn, asyncio, aiohttp, paho, influxdb_client, warnings), key=value on a terminal,
JSON lines otherwise (or as configured)."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

HANDLER_NAME = "gateway"


class _StderrHandler(logging.Handler):
    """Writes each record as one line to the `sys.stderr` of the moment (so a replaced stderr,
    such as a test's capture, gets it), flushed like structlog's PrintLogger."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Send structlog and stdlib logging, and `warnings`, through one root handler at `level`:
    JSON lines for `fmt="json"` (or "auto" off a terminal), readable lines otherwise.

    Calling it again replaces the handler it installed before; other root handlers stay.
    """
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    threshold: int = getattr(logging, level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    handler = _StderrHandler()
    handler.name = HANDLER_NAME
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # records of other libraries: the same keys, plus the logger's name
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(threshold)
    # off then on: a `warnings.catch_warnings` block that has ended since the last call (as
    # around each test) put its own showwarning back, and capturing again would do nothing
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
