"""The order tracker: a signed link per order (domain/tracker_tokens.py), and its page's views.

No sign-in: the unguessable token is the credential. Without SECRET_KEY there are no links (the
API shows ``tracker_url: null``, the page answers 404). Each opening of the page counts, in one
UPDATE (no read-then-write), with the time of the latest.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from domain.tracker_tokens import make_token, read_token, tracker_key
from models import Order
from models.base import utcnow
from settings import settings


def url_of(order_id: int) -> str | None:
    """The tracker link of an order row (absolute with PUBLIC_URL), or None without SECRET_KEY."""
    if not settings.secret_key:
        return None
    path = f"/t/{make_token(tracker_key(settings.secret_key), order_id)}"
    return f"{settings.public_url.rstrip('/')}{path}" if settings.public_url else path


def public_url_of(order_id: int) -> str | None:
    """The link a customer can open from a message: absolute (PUBLIC_URL), else None."""
    url = url_of(order_id)
    return url if url is not None and settings.public_url else None


def order_of(session: Session, token: str) -> Order | None:
    if not settings.secret_key:
        return None
    order_id = read_token(tracker_key(settings.secret_key), token)
    return session.get(Order, order_id) if order_id is not None else None


def viewed(session: Session, order_id: int) -> None:
    session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(tracker_views=Order.tracker_views + 1, tracker_viewed_at=utcnow())
    )
