"""JSON logs on stdout, with phone numbers masked wherever they appear.

Log records carry context as ``extra={...}`` fields; the formatter renders them as JSON keys.
Masking runs on the final line, so a number in a message, an argument or an exception is
caught alike.
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from domain.phones import mask

# A phone number or wa_id: 9 to 15 digits in a row (``6281212345678``, ``+6281212345678``), or
# groups of 3-4 digits split by spaces or dashes (``0812-1234-5678``, ``+62 812 1234 5678``).
# Dates and times (``2026-11-23 09:41``) have 2-digit groups and are left alone.
_PHONE = re.compile(r"(?<![\w.])\+?(?:\d{9,15}|\d{2,4}(?:[ -]\d{3,4}){2,3})(?!\d)")


class MaskingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return _PHONE.sub(lambda m: mask(m.group(0)), super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Send every logger (ours, Celery's, uvicorn's) through one JSON handler."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        MaskingJsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own plain-text handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
