"""Giving a contact a label and taking one away, as a person in the team does it (the inbox's
contact panel calls these functions; scripts call the routes).

``POST /api/contacts/{id}/labels/{name}`` adds, ``DELETE`` removes. Both go by state, so a
retried request changes nothing the second time and needs no ``Idempotency-Key``: adding a label
the contact has, or removing one they do not have, answers 200 with ``changed: false`` and
writes nothing. A change is recorded in the label history as a WAHA label event is (staff = the
caller's login, cause ``api``), audited, and mirrored to the contact's WAHA chat when their
conversation is on a WAHA channel (``pipeline/label_edits.py``, ``workers/labels.py``). A
contact outside the caller's teams answers 404, as every contact route does.
"""

from __future__ import annotations

import unicodedata

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel

from api.auth import Caller, Principal
from api.permissions import contact_in_reach
from models.contacts import current_contact
from models.db import session_scope
from models.labels import active_labels
from pipeline import audit, label_edits

router = APIRouter(prefix="/api", tags=["labels"])


class LabelEditOut(BaseModel):
    contact_id: int
    label: str  # the label's name as stored
    changed: bool  # false: nothing to do (already there, or not there)
    detail: str  # what happened, in words
    labels: list[str]  # the contact's labels now
    mirrored_to_waha: bool  # a task will set the chat's labels in WAHA


def label_name(name: str) -> str:
    """The name as given, trimmed; 422 naming the problem for an empty, over-long or odd one."""
    wanted = name.strip()
    if not wanted:
        raise HTTPException(422, "name: a label needs a name")
    if len(wanted) > label_edits.NAME_MAX:
        raise HTTPException(
            422, f"name: {len(wanted)} characters; a label name has at most {label_edits.NAME_MAX}"
        )
    if any(unicodedata.category(ch).startswith("C") for ch in wanted):
        raise HTTPException(422, "name: control characters are not allowed in a label name")
    return wanted


@router.post("/contacts/{contact_id}/labels/{name}", response_model=LabelEditOut, status_code=201)
def add_label(contact_id: int, name: str, caller: Caller, response: Response) -> LabelEditOut:
    """Give the contact this label (an existing one of that name in any letter case, else a new
    one). 201 when added; 200 with ``changed: false`` when they have it already."""
    result = _edit(contact_id, name, caller, add=True)
    if not result.changed:
        response.status_code = 200
    return result


@router.delete("/contacts/{contact_id}/labels/{name}", response_model=LabelEditOut)
def remove_label(contact_id: int, name: str, caller: Caller) -> LabelEditOut:
    """Take this label away from the contact; ``changed: false`` when they did not have it."""
    return _edit(contact_id, name, caller, add=False)


def _edit(contact_id: int, name: str, caller: Principal, *, add: bool) -> LabelEditOut:
    wanted = label_name(name)
    with session_scope() as session:
        contact_in_reach(session, caller, contact_id)
        contact = current_contact(session, contact_id)
        if contact is None:
            raise HTTPException(404, f"no contact {contact_id}")
        edit = label_edits.add if add else label_edits.remove
        change = edit(session, contact.id, wanted, caller.login)
        if change.changed:
            audit.record(
                session,
                caller.login,
                "contact.label_added" if add else "contact.label_removed",
                f"contact:{contact.id}",
                {"label": change.label, "mirrored_to_waha": change.mirrored},
            )
            detail = f"{'added' if add else 'removed'} {change.label!r}"
        elif add:
            detail = f"contact {contact.id} has the label {change.label!r} already; nothing changed"
        else:
            detail = f"contact {contact.id} has no label {change.label!r}; nothing changed"
        session.flush()
        return LabelEditOut(
            contact_id=contact.id,
            label=change.label,
            changed=change.changed,
            detail=detail,
            labels=active_labels(session, [contact.id]).get(contact.id, []),
            mirrored_to_waha=change.mirrored,
        )
