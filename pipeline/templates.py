"""Keeping the message templates as Meta holds them: a full sync, and each status webhook.

A sync replaces what we know of a WABA's templates (one that vanished from the list is
``DELETED``); a status or category webhook changes one template, unless what we hold is newer
(webhooks may arrive late or out of order). The sender asks ``usable`` before it sends a
template, so that a paused or rejected template blocks the message visibly instead of failing at
Meta.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Channel, MessageTemplate
from models.base import utcnow
from models.channels import CLOUD, SETTINGS_CHANNEL
from models.db import locked_row
from models.secret_box import SecretKeyMissing, SecretUnreadable, decrypt
from models.templates import UNUSABLE
from settings import settings

DELETED = "DELETED"


@dataclass(frozen=True)
class Account:
    """A WhatsApp Business Account to read templates from, and the channel it sends through."""

    waba_id: str
    access_token: str
    channel: str


def accounts(session: Session) -> list[Account]:
    """Every WABA we can read: the settings number's, and each enabled Cloud API channel's (whose
    token can be read), once each."""
    found: dict[str, Account] = {}
    if settings.whatsapp_waba_id and settings.whatsapp_access_token:
        found[settings.whatsapp_waba_id] = Account(
            settings.whatsapp_waba_id, settings.whatsapp_access_token, SETTINGS_CHANNEL
        )
    stored = session.scalars(
        select(Channel).where(Channel.kind == CLOUD, Channel.enabled, Channel.waba_id.is_not(None))
    )
    for channel in stored:
        try:
            token = decrypt(channel.access_token_secret)
        except (SecretKeyMissing, SecretUnreadable):
            continue  # said at start-up and by the sender; nothing to read with
        if token and channel.waba_id not in found:
            found[channel.waba_id] = Account(channel.waba_id, token, channel.name)
    return list(found.values())


def replace_from_sync(session: Session, waba_id: str, templates: list[dict[str, Any]]) -> int:
    """Store the WABA's template list; returns how many templates it holds."""
    now = utcnow()
    seen: set[tuple[str, str]] = set()
    for item in templates:
        name, language = str(item.get("name") or ""), str(item.get("language") or "")
        if not name or not language:
            continue
        seen.add((name, language))
        row = _row(session, waba_id, name, language, now)
        row.remote_id = str(item["id"])[:64] if item.get("id") is not None else row.remote_id
        row.category = str(item.get("category") or "")[:32] or None
        row.status = str(item.get("status") or "PENDING")[:32]
        reason = item.get("rejected_reason")
        row.reason = str(reason)[:1000] if reason and reason != "NONE" else None
        row.components = item.get("components") if isinstance(item.get("components"), list) else []
        row.status_at, row.synced_at, row.updated_at = now, now, now
    for row in session.scalars(select(MessageTemplate).where(MessageTemplate.waba_id == waba_id)):
        if (row.name, row.language) not in seen and row.status != DELETED:
            row.status, row.status_at, row.updated_at = DELETED, now, now
    return len(seen)


def record_status_update(session: Session, stored: dict[str, Any]) -> None:
    """``message_template_status_update``: APPROVED, REJECTED (with its reason), PAUSED, ..."""
    value, at = stored["value"], _at(stored)
    row = _row(session, str(stored["waba_id"]), *_name_language(value), at)
    if row.status_at > at:
        return  # we already hold a newer status
    row.status = str(value.get("event") or row.status)[:32]
    row.remote_id = (
        str(value.get("message_template_id"))[:64] if value.get("message_template_id") else row.remote_id
    )
    info = value.get("rejection_info") if isinstance(value.get("rejection_info"), dict) else {}
    reason = info.get("reason") or value.get("reason")
    row.reason = str(reason)[:1000] if reason and reason != "NONE" else None
    if value.get("message_template_category"):
        row.category = str(value["message_template_category"])[:32]
    row.status_at, row.updated_at = at, utcnow()


def record_category_update(session: Session, stored: dict[str, Any]) -> None:
    """``template_category_update``: Meta moved the template to another category."""
    value = stored["value"]
    row = _row(session, str(stored["waba_id"]), *_name_language(value), _at(stored))
    if value.get("new_category"):
        row.category = str(value["new_category"])[:32]
        row.updated_at = utcnow()


def usable(session: Session, name: str, language: str) -> tuple[bool, str | None]:
    """Whether a send may use the template, and why not. A template we have never heard of is
    usable: the install may not sync templates at all, and Meta says no if it must."""
    row = session.scalars(
        select(MessageTemplate)
        .where(MessageTemplate.name == name, MessageTemplate.language == language)
        .order_by(MessageTemplate.status_at.desc())
        .limit(1)
    ).first()
    if row is None or row.status not in UNUSABLE:
        return True, None
    return False, f"template {name} ({language}) is {row.status}" + (f": {row.reason}" if row.reason else "")


def _row(session: Session, waba_id: str, name: str, language: str, at: datetime) -> MessageTemplate:
    key = {"waba_id": waba_id[:64], "name": name[:512], "language": language[:15]}
    return locked_row(
        session,
        MessageTemplate,
        key,
        {"status": "PENDING", "components": [], "status_at": _epoch(0), "updated_at": at},
    )


def _name_language(value: dict[str, Any]) -> tuple[str, str]:
    return str(value.get("message_template_name") or ""), str(value.get("message_template_language") or "")


def _at(stored: dict[str, Any]) -> datetime:
    return _epoch(int(stored.get("time") or 0)) if stored.get("time") else utcnow()


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
