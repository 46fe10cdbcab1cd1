"""Structured (JSON lines) logging with the request ID of the request being served."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from core.context import request_id

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if rid := request_id.get():
            entry["request_id"] = rid
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would duplicate our request log.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("strawberry.ws").addFilter(_not_an_origin_refusal)


def _not_an_origin_refusal(record: logging.LogRecord) -> bool:
    """Strawberry logs every WebSocket handshake it refuses for its origin, advising a setting
    we do not use; `api.cors.RefusalLog` logs those refusals already, with the reason, and at
    a rate a caller forging origins cannot raise."""
    return not str(record.msg).startswith("Rejected WebSocket connection from origin")
