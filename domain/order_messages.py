"""The six automated order messages: their triggers, their texts, and how a text is filled in.

The texts live in a TOML file (``ORDER_MESSAGES_FILE``, by default
``templates/order_messages.toml``) so the business can edit them without code. ``load`` checks
the whole file up front: a trigger without a text, a placeholder the trigger cannot fill, or a
malformed ``{brace}`` is a ``TemplateError`` naming the trigger and the placeholder, raised when
the worker starts rather than a broken message on a customer's phone.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

CONTACT_CREATED = "contact_created"
ORDER_CREATED = "order_created"
ORDER_PAID = "order_paid"
ORDER_DELIVERY = "order_delivery"
ORDER_FOLLOWUP_DELIVERY = "order_followup_delivery"
ORDER_RECEIVED = "order_received"

# The names the interface uses for each trigger.
TITLES = {
    CONTACT_CREATED: "Contact Created",
    ORDER_CREATED: "Contact Order Created",
    ORDER_FOLLOWUP_DELIVERY: "Contact Order Follow-up Delivery",
    ORDER_PAID: "Contact Order Paid",
    ORDER_DELIVERY: "Contact Order Delivery",
    ORDER_RECEIVED: "Contact Order Received",
}

# Which placeholders each trigger can always fill. A text may use only these.
_CONTACT = {"name", "business"}
# tracker_url: the order's public tracker page (pipeline/tracker.py); "-" without SECRET_KEY and
# PUBLIC_URL, as a link a customer cannot open is no link.
_ORDER = _CONTACT | {"order_id", "total", "tracker_url"}
PLACEHOLDERS: dict[str, frozenset[str]] = {
    CONTACT_CREATED: frozenset(_CONTACT),
    ORDER_CREATED: frozenset(_ORDER),
    ORDER_PAID: frozenset(_ORDER),
    ORDER_DELIVERY: frozenset(_ORDER | {"courier", "tracking_number"}),
    ORDER_FOLLOWUP_DELIVERY: frozenset(_ORDER | {"estimated_delivery_date"}),
    ORDER_RECEIVED: frozenset(_ORDER),
}

# Values that the order system may leave out, and what the customer reads instead.
FALLBACKS = {"name": "Kak", "courier": "kurir", "total": "-"}

_MONTHS = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni",
    "Juli", "Agustus", "September", "Oktober", "November", "Desember",
)  # fmt: skip


class TemplateError(ValueError):
    """The messages file cannot be used; the message names the trigger and the problem."""


@dataclass(frozen=True)
class MessageTemplate:
    trigger: str
    text: str
    placeholders: frozenset[str]
    template_name: str | None = None
    template_language: str | None = None
    template_parameters: tuple[str, ...] = ()

    def render(self, values: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """The text, and the Cloud API template call (or None), filled from ``values``."""
        filled = {name: _display(name, values.get(name)) for name in self.placeholders}
        text = self.text.format_map(filled)
        if self.template_name is None:
            return text, None
        return text, {
            "name": self.template_name,
            "language": self.template_language,
            "parameters": [filled[name] for name in self.template_parameters],
        }


def load(path: Path) -> dict[str, MessageTemplate]:
    """Read and check the messages file; every trigger must be there."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read the messages file: {exc}") from exc
    unknown = set(document) - set(PLACEHOLDERS)
    if unknown:
        raise TemplateError(f"{path}: unknown trigger(s) {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
    return {
        trigger: parse_message(f"{path}: [{trigger}]", trigger, document.get(trigger), allowed)
        for trigger, allowed in PLACEHOLDERS.items()
    }


@cache
def templates_from(path: Path) -> dict[str, MessageTemplate]:
    return load(path)


def parse_message(where: str, trigger: str, table: Any, allowed: frozenset[str]) -> MessageTemplate:
    """One message table (``text`` and an optional Cloud API ``template``), checked against the
    placeholders its trigger can fill; ``where`` names it in errors."""
    if not isinstance(table, dict) or not isinstance(table.get("text"), str) or not table["text"].strip():
        raise TemplateError(f"{where}: a non-empty 'text' is required")
    _check_placeholders(where, table["text"], allowed)
    template = table.get("template")
    if template is None:
        return MessageTemplate(trigger, table["text"], allowed)
    if not isinstance(template, dict) or not template.get("name") or not template.get("language"):
        raise TemplateError(f"{where}: 'template' needs a 'name' and a 'language'")
    parameters = template.get("parameters", [])
    if not isinstance(parameters, list):
        raise TemplateError(f"{where}: template 'parameters' must be a list of placeholder names")
    for name in parameters:
        if name not in allowed:
            raise TemplateError(
                f"{where}: template parameter {name!r} is not a placeholder this trigger can fill "
                f"(it can fill: {', '.join(sorted(allowed))})"
            )
    return MessageTemplate(
        trigger, table["text"], allowed, str(template["name"]), str(template["language"]), tuple(parameters)
    )


def _check_placeholders(where: str, text: str, allowed: frozenset[str]) -> None:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        raise TemplateError(
            f"{where}: malformed text ({exc}); write a literal brace as {{{{ or }}}}"
        ) from exc
    for field in fields:
        if field not in allowed:
            raise TemplateError(
                f"{where}: placeholder {{{field}}} has no value for this trigger "
                f"(it can fill: {', '.join(sorted(allowed))})"
            )


def _display(name: str, value: Any) -> str:
    if value is None or value == "":
        return FALLBACKS.get(name, "-")
    if isinstance(value, date):
        return format_date(value)
    return str(value)


def format_date(value: date) -> str:
    """A date as the customer reads it: ``26 November 2026``."""
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def format_total(amount: Decimal, currency: str | None) -> str:
    """Rupiah the Indonesian way (``Rp150.000``); other currencies as ``USD 12.50``."""
    if currency in (None, "IDR"):
        whole = f"{amount.quantize(Decimal(1)):,}".replace(",", ".")
        return f"Rp{whole}"
    return f"{currency} {amount:,.2f}"
