"""``python -m cli faq import|export``: the FAQ file and the database, both ways.

Import writes every entry of the file (entries only in the database are left alone, so what was
added through the API survives); export prints the database's entries as a ``[[faq]]`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from api.automation import upsert_faq
from api.control import audit
from domain.automation_content import load_faq
from models import FaqEntry
from models.db import session_scope


def import_file(path: Path, actor: str = "faq-import") -> int:
    """Load the file's entries into the database; returns how many. Raises ContentError."""
    specs = load_faq(path)
    with session_scope() as session:
        for spec in specs:
            upsert_faq(session, spec, actor)
        audit(session, actor, "faq.imported", f"file:{path.name}", {"keys": [s.key for s in specs]})
    return len(specs)


def export() -> str:
    with session_scope() as session:
        entries = session.scalars(select(FaqEntry).order_by(FaqEntry.key)).all()
        blocks = []
        for entry in entries:
            lines = ["[[faq]]", f"key = {json.dumps(entry.key)}"]
            if entry.kind != "faq":
                lines.append(f"kind = {json.dumps(entry.kind)}")
            lines.append(f"questions = {json.dumps(entry.questions, ensure_ascii=False)}")
            lines.append(f"answer = {json.dumps(entry.answer, ensure_ascii=False)}")
            if entry.media_url:
                lines.append(f"media_url = {json.dumps(entry.media_url)}")
                lines.append(f"media_type = {json.dumps(entry.media_type)}")
            if not entry.active:
                lines.append("active = false")
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def seed_if_empty(path: Path) -> int:
    """On a first start, the shipped FAQ examples give automation something to answer with.
    Returns how many entries were imported: none when the database has any FAQ entry."""
    with session_scope() as session:
        empty = session.scalar(select(FaqEntry.id).limit(1)) is None
    return import_file(path) if empty else 0
