"""The process's log lines: plain text (the default) or one JSON object per line
(`LOG_FORMAT=json`), each carrying the id of the request whose work it is.

The id lives in a context variable: set by the HTTP middleware for a request's own work, it
travels into the background answer the request spawned because the spawner starts every task
in a copy of the spawner's context (bot/spawner.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("deskmate_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

# An id a caller (load balancer, proxy, the platform) sent us is kept when it looks like an id:
# short and of characters that cannot break a log line or a header.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")

# What every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
}


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_from(header: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    if header and _SANE_ID.fullmatch(header):
        return header
    return new_request_id()


@contextlib.contextmanager
def request_scope(request_id: str) -> Iterator[None]:
    """Log lines written inside, and tasks started inside, carry `request_id`."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record a handler writes (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """The plain line, with `[request <id>]` at its end inside a request's work."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} [request {request_id}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, the record's
    `extra` fields, and the traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        entry |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def handler(log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing `log_format` lines, with request ids, to `stream` (stderr)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.addFilter(RequestIdFilter())
    writer.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return writer


def configure(level: str, log_format: str = "text") -> None:
    """Send every logger's records to stderr in `log_format`, at `level` and above."""
    logging.basicConfig(level=level, handlers=[handler(log_format)], force=True)
