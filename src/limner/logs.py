"""Logging: text for people, or one JSON object per line (``LIMNER_LOG_FORMAT=json``) for log
pipelines, with the HTTP request id and the job ids of the work in hand on every line.

The ids travel in context variables: the API's middleware sets ``request_id`` per HTTP
request (from ``X-Request-Id`` or a new one), the submit path sets ``job_id``, and a worker
binds the job ids of the batch it runs. python-json-logger does the formatting.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("limner_request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("limner_job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Copy the context's ids onto each record (None when outside a request or job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job_id = job_id.get()
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
