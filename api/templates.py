"""The WhatsApp Business Account's message templates, as synced from Meta, with their status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import require_admin
from models import MessageTemplate
from models.db import session_scope
from queueing.publish import sync_templates
from settings import settings

router = APIRouter(prefix="/api", tags=["templates"], dependencies=[Depends(require_admin)])


class TemplateOut(BaseModel):
    name: str
    language: str
    category: str | None
    status: str  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, DELETED, ...
    reason: str | None  # why it was rejected or paused, as Meta says
    components: list[dict[str, Any]]
    channel: str | None  # the WABA's number; one WABA today
    status_at: datetime
    synced_at: datetime | None


@router.get("/templates", response_model=list[TemplateOut])
def list_templates() -> list[TemplateOut]:
    with session_scope() as session:
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
                channel=settings.whatsapp_phone_number_id,
                status_at=row.status_at,
                synced_at=row.synced_at,
            )
            for row in rows
        ]


@router.post("/templates/sync", status_code=202)
def sync_now() -> dict[str, str]:
    if not settings.whatsapp_waba_id:
        raise HTTPException(409, "WHATSAPP_WABA_ID is not set: there is no template list to read")
    sync_templates()
    return {"status": "queued"}
