"""``./run labels rebuild``: the labels page's daily roll-up counted again from the history.

Needed after ``TIMEZONE`` changes (the roll-up's days are local days) or after label changes
were loaded in bulk past the labels step. Label events wait while it runs, then go on.
"""

from __future__ import annotations

from sqlalchemy import func, select

from models import LabelChange, LabelFlowContact
from models.db import session_scope
from pipeline import label_flow
from settings import settings


def rebuild() -> str:
    with session_scope() as session:
        label_flow.rebuild(session)
        changes = session.scalar(select(func.count()).select_from(LabelChange))
        rows = session.scalar(select(func.count()).select_from(LabelFlowContact))
    return f"counted {changes} label changes again: {rows} roll-up rows, days in {settings.timezone}"
