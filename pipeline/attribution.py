"""Where a conversation came from, and which campaign each order is credited to.

A customer message can carry a campaign (``note_inbound``): the ad referral Meta sends with the
first message after a Click-to-WhatsApp ad; the code of a tracked link, which the link's prefilled
WhatsApp text carries (``ref:CODE``, see ``with_code``); or, failing both, it answers a broadcast
that reached the contact within BROADCAST_ATTRIBUTION_HOURS. Each is one ``Touch`` per
conversation and campaign (a unique insert). The conversation keeps its first campaign; one with
none is organic.

An order is attributed once, at its first event (``attribute_order``): to the contact's latest
conversation that started at most OUTCOME_ORDER_WINDOW_DAYS before it, and to the contact's first
touch ever and last touch before it. The campaign figures credit an order to its last touch.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import Broadcast, Contact, Conversation, Message, Order, OutboundMessage
from models.base import utcnow
from models.campaigns import AD, BROADCAST, LINK, LinkClick, Touch, TrackedLink
from models.db import dialect_insert
from models.outbox import SENT
from settings import settings

# How a tracked link's code travels in the WhatsApp text it prefills.
CODE_PATTERN = re.compile(r"\bref:([A-Za-z0-9_-]{3,32})\b")
WHATSAPP_HOSTS = frozenset({"wa.me", "api.whatsapp.com", "whatsapp.com", "www.whatsapp.com"})
# A click older than this is not the one that led to the message.
CLICK_MATCH_DAYS = 7


def with_code(url: str, code: str) -> str:
    """The URL a link redirects to: a WhatsApp chat link gets ``ref:CODE`` at the end of its
    prefilled text, so the message the customer sends names the link; other URLs are kept as
    given (their clicks are counted, but no conversation can be tied to them)."""
    parts = urlsplit(url)
    if parts.hostname not in WHATSAPP_HOSTS:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    texts = [value for key, value in query if key == "text"]
    prefilled = f"{texts[0]} ref:{code}".strip() if texts else f"ref:{code}"
    rest = [(key, value) for key, value in query if key != "text"]
    return urlunsplit(parts._replace(query=urlencode([*rest, ("text", prefilled)], quote_via=quote)))


def note_inbound(
    session: Session, contact: Contact, conversation: Conversation, message: Message
) -> Touch | None:
    """The campaign this customer message carries, if any, recorded as a touch."""
    link = _link_of(session, message)
    touch = _ad_touch(message) or (_link_touch(link) if link else None)
    touch = touch or _broadcast_touch(session, contact, conversation, message.occurred_at)
    if touch is None:
        return None
    touch.contact_id, touch.conversation_id, touch.occurred_at = (
        contact.id,
        conversation.id,
        message.occurred_at,
    )
    values = {c.key: getattr(touch, c.key) for c in Touch.__table__.columns if c.key != "id"}
    values["created_at"] = utcnow()
    inserted = session.scalar(
        dialect_insert(session.get_bind().dialect.name)(Touch)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["conversation_id", "campaign"])
        .returning(Touch.id)
    )
    if conversation.campaign is None:
        conversation.campaign = touch.campaign
    if touch.kind == LINK and link is not None:
        _claim_click(session, link.id, conversation.id, message.occurred_at)
    return session.get(Touch, inserted) if inserted is not None else None


def attribute_order(session: Session, order: Order, at: datetime) -> None:
    """Tie a new order to its conversation and its touches (once: ``attributed_at``)."""
    if order.attributed_at is not None:
        return
    order.attributed_at = utcnow()
    window = timedelta(days=settings.outcome_order_window_days)
    conversation_id = session.scalar(
        select(Conversation.id)
        .where(
            Conversation.contact_id == order.contact_id,
            Conversation.last_inbound_at.is_not(None),  # one the customer wrote in, not only ours
            Conversation.started_at <= at,
            Conversation.started_at >= at - window,
        )
        .order_by(Conversation.started_at.desc())
        .limit(1)
    )
    order.conversation_id = conversation_id
    touches = select(Touch.campaign).where(Touch.contact_id == order.contact_id)
    order.first_campaign = session.scalar(touches.order_by(Touch.occurred_at, Touch.id).limit(1))
    order.last_campaign = session.scalar(
        touches.where(Touch.occurred_at <= at).order_by(Touch.occurred_at.desc(), Touch.id.desc()).limit(1)
    )


def ad_touch_of(session: Session, conversation_id: int) -> Touch | None:
    """The conversation's ad touch with a click id (what the Conversions API needs), if any."""
    return session.scalars(
        select(Touch)
        .where(Touch.conversation_id == conversation_id, Touch.kind == AD, Touch.ctwa_clid.is_not(None))
        .order_by(Touch.occurred_at)
        .limit(1)
    ).first()


def first_touch(session: Session, contact_id: int) -> Touch | None:
    return session.scalars(
        select(Touch).where(Touch.contact_id == contact_id).order_by(Touch.occurred_at, Touch.id).limit(1)
    ).first()


def touches_of(session: Session, contact_id: int) -> list[Touch]:
    """Every touch of the contact, oldest first."""
    return list(
        session.scalars(
            select(Touch).where(Touch.contact_id == contact_id).order_by(Touch.occurred_at, Touch.id)
        )
    )


def _ad_touch(message: Message) -> Touch | None:
    referral: dict[str, Any] | None = message.referral
    if not referral:
        return None
    source_id = str(referral.get("source_id") or "?")[:200]
    headline = str(referral.get("headline") or "").strip()
    return Touch(
        kind=AD,
        campaign=f"ad:{source_id}",
        name=(headline or f"ad {source_id}")[:255],
        utm_source=f"WhatsApp {referral.get('source_type') or 'ad'}"[:128],
        utm_medium="WhatsApp",
        ctwa_clid=str(referral["ctwa_clid"])[:255] if referral.get("ctwa_clid") else None,
    )


def _link_of(session: Session, message: Message) -> TrackedLink | None:
    """The tracked link whose code the message carries (one typed by hand counts too)."""
    found = CODE_PATTERN.search(message.text or "")
    if found is None:
        return None
    return session.scalars(select(TrackedLink).where(TrackedLink.code == found[1])).first()


def _link_touch(link: TrackedLink) -> Touch:
    return Touch(
        kind=LINK,
        campaign=f"link:{link.utm_campaign}"[:255],
        name=link.utm_campaign,
        utm_source=link.utm_source,
        utm_medium=link.utm_medium,
        ctwa_clid=None,
    )


def _claim_click(session: Session, link_id: int, conversation_id: int, at: datetime) -> None:
    """The latest unclaimed click of the link before the message is the one that led to it."""
    click_id = session.scalar(
        select(LinkClick.id)
        .where(
            LinkClick.link_id == link_id,
            LinkClick.conversation_id.is_(None),
            LinkClick.clicked_at <= at + timedelta(minutes=5),  # the phone's clock may run behind
            LinkClick.clicked_at >= at - timedelta(days=CLICK_MATCH_DAYS),
        )
        .order_by(LinkClick.clicked_at.desc())
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if click_id is not None:
        session.execute(
            update(LinkClick).where(LinkClick.id == click_id).values(conversation_id=conversation_id)
        )


def _broadcast_touch(
    session: Session, contact: Contact, conversation: Conversation, at: datetime
) -> Touch | None:
    if conversation.campaign is not None:
        return None
    since = at - timedelta(hours=settings.broadcast_attribution_hours)
    row = session.execute(
        select(Broadcast.id, Broadcast.label)
        .join(OutboundMessage, OutboundMessage.broadcast_id == Broadcast.id)
        .where(
            OutboundMessage.contact_id == contact.id,
            OutboundMessage.state == SENT,
            OutboundMessage.sent_at >= since,
            # A customer's timestamp is in whole seconds, ours is not: a minute of slack.
            OutboundMessage.sent_at <= at + timedelta(minutes=1),
        )
        .order_by(OutboundMessage.sent_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Touch(
        kind=BROADCAST,
        campaign=f"broadcast:{row.id}",
        name=f"broadcast {row.id}: {row.label}"[:255],
        utm_source="WhatsApp broadcast",
        utm_medium="WhatsApp",
        ctwa_clid=None,
    )
