"""Phone numbers to E.164 with ``phonenumbers``.

Two rules from the field (see docs/formats.md "Phone numbers"):
- a WhatsApp id (``wa_id``, ``…@c.us``) is international digits without "+": parse it as
  "+" + digits with no region, never with DEFAULT_REGION (``16505551234`` is not Indonesian);
- a number a person typed (order system, forms) is parsed with DEFAULT_REGION, after turning a
  leading international ``00`` into ``+`` (libphonenumber's Indonesian metadata does not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

_WA_ID = re.compile(r"^\+?(\d{6,20})(?:@(?:c\.us|s\.whatsapp\.net))?$")


@dataclass(frozen=True)
class Phone:
    """The outcome of normalising one number: E.164 when valid, else the reason it is not."""

    raw: str
    e164: str | None
    invalid_reason: str | None = None

    @property
    def is_valid(self) -> bool:
        return self.e164 is not None

    @property
    def digits(self) -> str:
        """The raw number's digits: the key that keeps an invalid number's contact stable."""
        return re.sub(r"\D", "", self.raw)


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def _unparseable(raw: str, exc: phonenumbers.NumberParseException) -> Phone:
    return Phone(raw, None, _PARSE_ERRORS.get(exc.error_type, "not a phone number"))


def _checked(raw: str, parsed: phonenumbers.PhoneNumber) -> Phone:
    if not phonenumbers.is_valid_number(parsed):
        return Phone(raw, None, "not a valid phone number for its country")
    return Phone(raw, phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def from_wa_id(wa_id: str) -> Phone:
    """Normalise a WhatsApp id (``6281212345678`` or ``6281212345678@c.us``)."""
    match = _WA_ID.match(wa_id.strip())
    if not match:
        return Phone(wa_id, None, "not a WhatsApp phone id (expected international digits)")
    try:
        return _checked(wa_id, phonenumbers.parse("+" + match.group(1), None))
    except phonenumbers.NumberParseException as exc:
        return _unparseable(wa_id, exc)


def from_user_input(raw: str, region: str) -> Phone:
    """Normalise a number as a person wrote it (``0812-1234-5678``, ``+62 812…``, ``62812…``)."""
    text = raw.strip()
    if not text:
        return Phone(raw, None, "empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        return _checked(raw, phonenumbers.parse(text, region))
    except phonenumbers.NumberParseException as exc:
        return _unparseable(raw, exc)


def mask(e164_or_raw: str) -> str:
    """``+6281212345678`` -> ``+62*******5678``: enough to tell numbers apart in logs."""
    digits = e164_or_raw
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
