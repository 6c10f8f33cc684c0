"""Channels: one WhatsApp number through one gateway (a Cloud API phone number, or a WAHA
session), with the team whose agents answer it.

Secrets (the Cloud API's access token and app secret, WAHA's API key and HMAC key) are kept only
encrypted (``models.secret_box``) in the ``*_secret`` columns; nothing reads them but the code
that verifies a webhook or sends a message.

The single-number settings (``WHATSAPP_*``, ``WAHA_*``) are not stored here: they are the
*settings channel* (``SETTINGS_CHANNEL``), built from the settings each time, whose rows carry
``channel_id = NULL``. It is the default channel unless a stored channel is marked default.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId

CLOUD, WAHA = "cloud", "waha"
KINDS = (CLOUD, WAHA)
# The name the settings channel goes by in the API and in conversations; no stored channel may
# take it.
SETTINGS_CHANNEL = "settings"
# The secrets of each kind: the API field and its encrypted column.
SECRETS = {
    CLOUD: {"access_token": "access_token_secret", "app_secret": "app_secret_secret"},
    WAHA: {"api_key": "api_key_secret", "hmac_key": "hmac_key_secret"},
}


_changes = [0]


def note_change() -> None:
    """A channel was added or changed in this process: its cached views are stale."""
    _changes[0] += 1


def changes() -> int:
    return _changes[0]


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # cloud | waha
    display_phone: Mapped[str | None] = mapped_column(String(32))
    # The team whose agents answer this number; NULL: DEFAULT_TEAM.
    team: Mapped[str | None] = mapped_column(String(64))
    is_default: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The agent who answers on this number's phone: staff replies typed there are theirs.
    phone_agent: Mapped[str | None] = mapped_column(String(64))
    # Cloud API
    phone_number_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    waba_id: Mapped[str | None] = mapped_column(String(64))
    access_token_secret: Mapped[str | None] = mapped_column(Text)
    app_secret_secret: Mapped[str | None] = mapped_column(Text)
    # WAHA
    waha_url: Mapped[str | None] = mapped_column(String(1000))
    session: Mapped[str | None] = mapped_column(String(128), unique=True)
    api_key_secret: Mapped[str | None] = mapped_column(Text)
    hmac_key_secret: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # Exactly one default: at most one stored row has it (none: the settings channel is).
        Index(
            "uq_channels_one_default",
            "is_default",
            unique=True,
            postgresql_where=sql("is_default"),
            sqlite_where=sql("is_default"),
        ),
    )
