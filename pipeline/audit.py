"""The audit trail: who did what, written in the caller's transaction. ``actor`` is always the
authenticated account's login (``admin`` for ADMIN_TOKEN, ``system`` for automation), never a
name a client supplied."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import AuditEntry

SYSTEM = "system"


def record(
    session: Session, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
) -> None:
    session.add(AuditEntry(actor=actor, action=action, subject=subject, details=details or {}))
