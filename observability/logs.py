"""JSON logs on stdout, with phone numbers masked wherever they appear, and link signatures hidden.

Log records carry context as ``extra={...}`` fields; the formatter renders them as JSON keys.
Masking runs on the final line, so a number in a message, an argument or an exception is
caught alike. Before that, the bound parameters SQLAlchemy puts in a database error's text
(``[parameters: ...]``: message text, names, numbers) are dropped, so a failed INSERT of a
message never writes its text to the logs.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from domain.phones import mask

# A phone number or wa_id: 9 to 15 digits in a row (``6281212345678``, ``+6281212345678``), or
# groups of 3-4 digits split by spaces or dashes (``0812-1234-5678``, ``+62 812 1234 5678``).
# Dates and times (``2026-11-23 09:41``) have 2-digit groups and are left alone.
_PHONE = re.compile(r"(?<![\w.])\+?(?:\d{9,15}|\d{2,4}(?:[ -]\d{3,4}){2,3})(?!\d)")
# A URL in a log line (uvicorn's access log: ``GET /api/contacts?phone=%2B6281212345678``) has
# its "+" and spaces percent-encoded, which would hide the number from _PHONE: decoded first.
_ESCAPED = re.compile(r"%(?:2[Bb]|20|2[Dd])")
_UNESCAPED = {"2b": "+", "20": " ", "2d": "-"}
# A signed link's signature (``/f/<key>?expires=…&signature=…``, WAHA fetching our file) works
# as a bearer credential until it expires: never written to a log.
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+")
# SQLAlchemy's StatementError text has the statement's parameters on a line of their own.
_SQL_PARAMETERS = re.compile(r"^\[parameters: .*$", re.MULTILINE)


def _without_sql_parameters(value: Any) -> Any:
    if isinstance(value, str):
        return _SQL_PARAMETERS.sub("[parameters: hidden]", value) if "[parameters: " in value else value
    if isinstance(value, dict):
        return {key: _without_sql_parameters(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_sql_parameters(item) for item in value]
    return value


class MaskingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if "%" in line:
            line = _ESCAPED.sub(lambda m: _UNESCAPED[m.group(0)[1:].lower()], line)
        if "signature=" in line:
            line = _SIGNATURE.sub(r"\1hidden", line)
        return _PHONE.sub(lambda m: mask(m.group(0)), line)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return _without_sql_parameters(super().process_log_record(log_data))


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
