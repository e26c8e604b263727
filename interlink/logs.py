"""Logging set-up: standard ``logging`` with console or JSON lines output, and secret redaction."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Values that must never reach a log line, whatever code formatted them.
_SECRET_PATTERNS = (
    re.compile(r"\b(ilk|ilc|whsec)_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(authorization:\s*)(bearer|basic|session)\s+\S+"),
    re.compile(r"(?i)\b(password|passwd|secret|token|api_key|apikey)=([^\s&]+)"),
)


def redact(text: str) -> str:
    """Replace tokens, authorization headers and ``key=value`` secrets in ``text`` with ``***``."""
    text = _SECRET_PATTERNS[0].sub(lambda match: f"{match.group(1)}_***", text)
    text = _SECRET_PATTERNS[1].sub(lambda match: f"{match.group(1)}{match.group(2)} ***", text)
    return _SECRET_PATTERNS[2].sub(lambda match: f"{match.group(1)}=***", text)


class RedactingFormatter(logging.Formatter):
    def __init__(self, *, json_lines: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        if self.json_lines:
            payload = {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                payload["exception"] = self.formatException(record.exc_info)
            return redact(json.dumps(payload))
        return redact(super().format(record))


def configure_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(json_lines=json_lines))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, query strings included.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
