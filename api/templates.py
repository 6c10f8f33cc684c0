"""The WhatsApp Business Account's message templates, as synced from Meta, with their status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import select

from models import MessageTemplate
from models.db import session_scope
from pipeline import templates
from queueing.publish import sync_templates

router = APIRouter(prefix="/api", tags=["templates"])  # who may call: api/permissions.py


class TemplateOut(BaseModel):
    name: str
    language: str
    category: str | None
    status: str  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, DELETED, ...
    reason: str | None  # why it was rejected or paused, as Meta says
    components: list[dict[str, Any]]
    channel: str | None  # the channel whose WABA holds it
    status_at: datetime
    synced_at: datetime | None


@router.get("/templates", response_model=list[TemplateOut])
def list_templates() -> list[TemplateOut]:
    with session_scope() as session:
        channel_of = {account.waba_id: account.channel for account in templates.accounts(session)}
        rows = session.scalars(
            select(MessageTemplate).order_by(MessageTemplate.name, MessageTemplate.language)
        )
        return [
            TemplateOut(
                name=row.name,
                language=row.language,
                category=row.category,
                status=row.status,
                reason=row.reason,
                components=row.components,
                channel=channel_of.get(row.waba_id),
                status_at=row.status_at,
                synced_at=row.synced_at,
            )
            for row in rows
        ]


@router.post("/templates/sync", status_code=202)
def sync_now() -> dict[str, str]:
    with session_scope() as session:
        if not templates.accounts(session):
            raise HTTPException(
                409,
                "no WABA id (WHATSAPP_WABA_ID, or a Cloud API channel's waba_id): no template list to read",
            )
    sync_templates()
    return {"status": "queued"}
