"""What automation knows: FAQ and marketing entries (agents are accounts: api/accounts.py).

FAQ entries are also kept in the automation file (``python -m cli faq import`` loads it); both
ways write the same table, and routing matches against the table. Changes are audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Caller
from api.control import audit
from domain.automation_content import ContentError, FaqSpec, faq_spec
from models import FaqEntry
from models.base import utcnow
from models.db import locked_row, session_scope

router = APIRouter(prefix="/api", tags=["automation content"])


class FaqIn(BaseModel):
    questions: list[str] = Field(description="question variants, Indonesian and English")
    answer: str
    kind: Literal["faq", "marketing"] = "faq"
    media_url: str | None = Field(default=None, max_length=1000)
    media_type: Literal["image", "document", "link"] | None = None
    active: bool = True


class FaqOut(FaqIn):
    key: str
    updated_by: str | None
    updated_at: datetime


@router.get("/faq", response_model=list[FaqOut])
def list_faq() -> list[FaqOut]:
    with session_scope() as session:
        return [
            FaqOut.model_validate(entry, from_attributes=True)
            for entry in session.scalars(select(FaqEntry).order_by(FaqEntry.key))
        ]


@router.put("/faq/{key}", response_model=FaqOut)
def put_faq(key: str, body: FaqIn, caller: Caller) -> FaqOut:
    """Create or replace an entry; the next matching message gets the new answer."""
    try:
        spec = faq_spec(key, body.model_dump())
    except ContentError as exc:
        raise HTTPException(422, str(exc)) from exc
    with session_scope() as session:
        entry = upsert_faq(session, spec, caller.login)
        audit(session, caller.login, "faq.saved", f"faq:{key}", body.model_dump())
        return FaqOut.model_validate(entry, from_attributes=True)


@router.delete("/faq/{key}", status_code=204)
def delete_faq(key: str, caller: Caller) -> Response:
    with session_scope() as session:
        entry = session.scalar(select(FaqEntry).where(FaqEntry.key == key).with_for_update())
        if entry is None:
            raise HTTPException(404, f"no FAQ entry {key!r}")
        session.delete(entry)
        audit(session, caller.login, "faq.deleted", f"faq:{key}")
    return Response(status_code=204)


def upsert_faq(session: Session, spec: FaqSpec, actor: str) -> FaqEntry:
    """Write one entry (the API and the file import share this)."""
    entry = locked_row(session, FaqEntry, {"key": spec.key}, {"questions": [], "answer": ""})
    entry.kind, entry.questions, entry.answer = spec.kind, list(spec.questions), spec.answer
    entry.media_url, entry.media_type, entry.active = spec.media_url, spec.media_type, spec.active
    entry.updated_by, entry.updated_at = actor, utcnow()
    session.flush()
    return entry
