"""Mirroring a contact's labels to their WAHA chat, after a person changed them through the API
(``pipeline/label_edits.py``).

``mirror_labels(contact_id)`` reads what we hold now and sets the chat's whole set of labels with
``PUT /api/{session}/labels/chats/{chatId}``, so a replayed, retried or late task converges on the
current state instead of replaying one change. A label made in the inbox is first looked up by
name in WAHA's list and created there if missing (``POST /api/{session}/labels``); WAHA's id is
then adopted by our row. Looking up before creating makes a retry after a lost answer safe.

One task per contact at a time (an advisory lock held for the task), so two quick edits cannot
reach WAHA in the wrong order. Transient and unconfirmed gateway errors are retried with capped
exponential backoff (the PUT is idempotent); a permanent refusal is logged and left: the next
edit of that contact sets the whole set again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from domain import backoff
from integrations.whatsapp import PermanentError, TransientError, Unconfirmed, WahaGateway, gateway_for
from models import Channel, ContactIdentity
from models.contacts import current_contact
from models.db import lock_key, session_scope
from pipeline import channels, identity, label_edits
from queueing import names
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)

MAX_RETRIES = 8


@event_task(names.MIRROR_LABELS, bind=True)
def mirror_labels(self: Any, contact_id: int) -> str:
    with session_scope() as held:
        lock_key(held, f"labels:mirror:{contact_id}")  # held until this task is done
        try:
            return _mirror(contact_id)
        except (TransientError, Unconfirmed) as exc:
            retries = self.request.retries or 0
            if retries >= MAX_RETRIES:
                log.warning("label mirror gave up", extra={"contact_id": contact_id, "error": str(exc)})
                return "gave up"
            delay = backoff.equal_jitter(
                retries,
                settings.outbound_retry_base_seconds,
                settings.outbound_retry_max_seconds,
                getattr(exc, "retry_after", None),
            )
            raise self.retry(countdown=delay, max_retries=MAX_RETRIES) from exc
        except PermanentError as exc:
            log.warning("WAHA refused the labels", extra={"contact_id": contact_id, "error": str(exc)})
            return "refused"


def _mirror(contact_id: int) -> str:
    with session_scope() as session:
        contact = current_contact(session, contact_id)
        if contact is None:
            return "no contact"
        target = label_edits.target_of(session, contact.id)
        if not target.waha:
            return "not a WAHA chat"  # Cloud API: no label API, the labels stay ours
        chat = _chat_id(session, contact.id, contact.phone_e164)
        wanted = label_edits.wanted_labels(session, contact.id, target)
        channel = session.get(Channel, target.channel_id) if target.channel_id is not None else None
        try:
            gateway = channels.gateway_of(channel) if channel is not None else gateway_for(settings)
        except ValueError as exc:  # the channel lacks its URL or key: nothing to call
            log.warning("no WAHA client for the labels", extra={"contact_id": contact.id, "error": str(exc)})
            return "no gateway"
        contact_id = contact.id
    if chat is None:
        return "no chat id"
    if not isinstance(gateway, WahaGateway):
        return "not a WAHA gateway"
    try:
        ids = _waha_ids(gateway, wanted)
        gateway.set_chat_labels(chat, ids)
    finally:
        gateway.close()
    log.info("labels mirrored to WAHA", extra={"contact_id": contact_id, "labels": len(ids)})
    return "mirrored"


def _waha_ids(gateway: WahaGateway, wanted: list[label_edits.Wanted]) -> list[str]:
    """WAHA's id of every wanted label, creating (and adopting) those WAHA does not have."""
    ids = [w.external_id for w in wanted if w.external_id is not None]
    missing = [w for w in wanted if w.external_id is None]
    if not missing:
        return ids
    by_name = {label.name.strip().lower(): label.id for label in gateway.labels()}
    for want in missing:
        external_id = by_name.get(want.name.strip().lower())
        if external_id is None:
            external_id = gateway.create_label(want.name).id
            by_name[want.name.strip().lower()] = external_id
        with session_scope() as session:
            label_edits.adopt(session, want.label_id, external_id)
        ids.append(external_id)
    return ids


def _chat_id(session: Any, contact_id: int, phone_e164: str | None) -> str | None:
    """The contact's WAHA chat: ``<digits>@c.us`` for a phone, else ``<lid>@lid``."""
    if phone_e164:
        return f"{phone_e164.lstrip('+')}@c.us"
    lid = session.scalar(
        select(ContactIdentity.value).where(
            ContactIdentity.contact_id == contact_id, ContactIdentity.kind == identity.LID
        )
    )
    return f"{lid}@lid" if lid else None
