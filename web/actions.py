"""What a person does on the conversation page. Each action calls the API's own route function
(``api/control.py``, ``api/notes.py``, ``api/media.py``, ``api/contact_labels.py``), so
permissions, validation and the audit trail are the API's; this module only reads the form,
adds the checks that need what the page showed (the text it drew the form with), and answers
with the page and a clear message.

A form is answered with the whole conversation page: htmx takes ``#conversation`` out of it,
a browser without JavaScript shows it as it is.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile  # what request.form() gives (FastAPI's is a subclass)

from api import contact_labels as labels_api
from api import control as control_api
from api import media as media_api
from api import notes as notes_api
from api.auth import Caller, Principal
from api.permissions import conversation_in_reach
from domain import service_window
from domain.replies import HUMAN_REPLY
from models import Conversation, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from web import conversation as conversation_view
from web.i18n import LANGUAGES
from web.render import gettext, page
from web.session import LANGUAGE_COOKIE, language_of, set_language

router = APIRouter(prefix="/inbox", include_in_schema=False)

TEXT_LIMIT = 4096  # WhatsApp's limit for a text message's body
ATTACHMENT_KINDS = {"image": "image", "video": "video", "audio": "audio"}  # else: a document


@dataclass
class Flash:
    kind: str  # ok | error
    text: str


def _reply_body(data: dict[str, Any]) -> Any:
    """The reply endpoint's own body model (whatever it accepts today: text, or rich bodies once
    they are added), so a refusal here is the API's refusal."""
    hint = typing.get_type_hints(control_api.reply)["body"]
    return TypeAdapter(hint).validate_python(data)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _act(
    request: Request,
    caller: Principal,
    conversation_id: int,
    action: Callable[[str], str],
    draft: str = "",
) -> Response:
    """Run the action off the event loop; the page again, with what happened or why not."""
    language = language_of(request, caller)
    status = 200
    try:
        flash = Flash("ok", await run_in_threadpool(action, language))
        draft = ""
    except Refused as exc:
        flash, status = Flash("error", exc.text), exc.status
    except ValidationError as exc:
        flash, status = Flash("error", gettext(language, "Refused: %(why)s", why=_validation_text(exc))), 422
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        flash = Flash("error", gettext(language, "Refused: %(why)s", why=str(exc.detail)))
        status = exc.status_code
    view = await run_in_threadpool(conversation_view.load, caller, conversation_id)
    return page(
        "conversation.html",
        language,
        status,
        user=caller,
        view=view,
        flash=flash,
        draft=draft,
        languages=LANGUAGES,
    )


class Refused(Exception):
    def __init__(self, text: str, status: int = 409) -> None:
        super().__init__(text)
        self.text, self.status = text, status


@router.post("/conversations/{conversation_id}/reply", response_class=HTMLResponse)
async def reply(request: Request, conversation_id: int, caller: Caller) -> Response:
    form = await _form(request)
    text = form.get("text", "").strip()
    key = form.get("idempotency_key") or uuid.uuid4().hex

    def send(language: str) -> str:
        if not text:
            raise Refused(gettext(language, "Write a message first."), 422)
        if len(text) > TEXT_LIMIT:
            raise Refused(
                gettext(
                    language,
                    "The message is %(n)s characters long; WhatsApp takes at most %(limit)s.",
                    n=len(text),
                    limit=TEXT_LIMIT,
                ),
                422,
            )
        _check_nothing_changed(caller, conversation_id, form, key, language, needs_window=True)
        result = control_api.reply(
            conversation_id, body=_reply_body({"text": text}), caller=caller, idempotency_key=key
        )
        if result.outbound_id is None:
            return gettext(language, "This message was sent already; it is not sent twice.")
        return gettext(language, "Sent.")

    return await _act(request, caller, conversation_id, send, draft=text)


@router.post("/conversations/{conversation_id}/template", response_class=HTMLResponse)
async def send_template(request: Request, conversation_id: int, caller: Caller) -> Response:
    form = await _form(request)
    name, _, language_code = form.get("template", "").partition("|")
    params = [v for k, v in sorted(form.items()) if k.startswith("param_") and v.strip()]
    key = form.get("idempotency_key") or uuid.uuid4().hex

    def send(language: str) -> str:
        if not name:
            raise Refused(gettext(language, "Choose a template first."), 422)
        _check_nothing_changed(caller, conversation_id, form, key, language, needs_window=False)
        template: dict[str, Any] = {"name": name, "language": {"code": language_code}}
        if params:
            template["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
            ]
        body = _reply_body({"type": "template", "template": template})
        result = control_api.reply(conversation_id, body=body, caller=caller, idempotency_key=key)
        if result.outbound_id is None:
            return gettext(language, "This message was sent already; it is not sent twice.")
        return gettext(language, "Sent.")

    return await _act(request, caller, conversation_id, send)


@router.post("/conversations/{conversation_id}/attachment", response_class=HTMLResponse)
async def send_attachment(request: Request, conversation_id: int, caller: Caller) -> Response:
    """Upload through POST /api/media's function, then send it as an image, video, audio or
    document message through the reply endpoint (which refuses it until it takes rich bodies)."""
    form = await request.form()
    upload = form.get("file")
    caption = str(form.get("caption") or "").strip()
    key = str(form.get("idempotency_key") or uuid.uuid4().hex)
    language = language_of(request, caller)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _act(
            request, caller, conversation_id, _refuse(gettext(language, "Choose a file first."))
        )
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)  # no upload for a stranger's chat
    try:
        stored = await media_api.upload_media(upload)
    except HTTPException as exc:
        return await _act(
            request,
            caller,
            conversation_id,
            _refuse(gettext(language, "Refused: %(why)s", why=str(exc.detail)), exc.status_code),
        )
    kind = ATTACHMENT_KINDS.get(stored.mime_type.split("/")[0], "document")

    def send(language: str) -> str:
        _check_nothing_changed(caller, conversation_id, dict(form.items()), key, language, needs_window=True)
        media: dict[str, Any] = {"id": stored.id}
        if caption:
            media["caption"] = caption
        if kind == "document":
            media["filename"] = upload.filename
        body = _reply_body({"type": kind, kind: media})
        result = control_api.reply(conversation_id, body=body, caller=caller, idempotency_key=key)
        if result.outbound_id is None:
            return gettext(language, "This message was sent already; it is not sent twice.")
        return gettext(language, "Sent.")

    return await _act(request, caller, conversation_id, send)


def _refuse(text: str, status: int = 422) -> Callable[[str], str]:
    def refuse(language: str) -> str:
        raise Refused(text, status)

    return refuse


def _check_nothing_changed(
    caller: Principal,
    conversation_id: int,
    form: dict[str, Any],
    key: str,
    language: str,
    *,
    needs_window: bool,
) -> None:
    """What the person saw is still so: the window is open (for free text), nobody else took
    the conversation over, and no other reply went out since the page was drawn."""
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise HTTPException(404, f"no conversation {conversation_id}")
        if needs_window and not service_window.is_open(conversation.last_inbound_at, utcnow()):
            raise Refused(
                gettext(
                    language,
                    "The 24-hour window is closed: the customer has not written for a day. "
                    "Only an approved template can be sent now.",
                )
            )
        owner_seen = form.get("owner_seen") or None
        if conversation.owner_agent not in (owner_seen, caller.login, None):
            raise Refused(
                gettext(
                    language,
                    "%(agent)s took this conversation over a moment ago: nothing was sent.",
                    agent=conversation.owner_agent,
                )
            )
        seen = int(form.get("outbox_seen") or 0)
        own = f"human:{conversation_id}:{key}"
        other = session.scalar(
            select(OutboundMessage.id)
            .where(
                OutboundMessage.contact_id == conversation.contact_id,
                OutboundMessage.trigger == HUMAN_REPLY,
                OutboundMessage.id > seen,
                OutboundMessage.dedupe_key != own,
            )
            .limit(1)
        )
        if other is not None:
            raise Refused(
                gettext(
                    language, "Someone else replied a moment ago: read their reply, then send yours again."
                )
            )


@router.post("/conversations/{conversation_id}/assignee", response_class=HTMLResponse)
async def assign(request: Request, conversation_id: int, caller: Caller) -> Response:
    form = await _form(request)
    agent = form.get("agent", "").strip() or None

    def run(language: str) -> str:
        control_api.take_over(conversation_id, control_api.AssigneeIn(agent=agent), caller)
        if agent is None:
            return gettext(language, "Handed back to automation.")
        return gettext(language, "Assigned to %(agent)s.", agent=agent)

    return await _act(request, caller, conversation_id, run)


@router.post("/conversations/{conversation_id}/automation", response_class=HTMLResponse)
async def automation(request: Request, conversation_id: int, caller: Caller) -> Response:
    form = await _form(request)
    paused = form.get("paused") == "true"

    def run(language: str) -> str:
        with session_scope() as session:
            conversation_in_reach(session, caller, conversation_id)
            found = session.get(Conversation, conversation_id)
            if found is None:
                raise HTTPException(404, f"no conversation {conversation_id}")
            contact_id = found.contact_id
        control_api.set_automation(contact_id, control_api.AutomationIn(paused=paused), caller)
        if paused:
            return gettext(language, "Automation paused for this contact.")
        return gettext(language, "Automation resumed.")

    return await _act(request, caller, conversation_id, run)


@router.post("/conversations/{conversation_id}/close", response_class=HTMLResponse)
async def close(request: Request, conversation_id: int, caller: Caller) -> Response:
    def run(language: str) -> str:
        control_api.close_conversation(conversation_id, caller)
        return gettext(language, "Conversation closed.")

    return await _act(request, caller, conversation_id, run)


@router.post("/conversations/{conversation_id}/reopen", response_class=HTMLResponse)
async def reopen(request: Request, conversation_id: int, caller: Caller) -> Response:
    def run(language: str) -> str:
        control_api.reopen_conversation(conversation_id, caller)
        return gettext(language, "Conversation reopened.")

    return await _act(request, caller, conversation_id, run)


@router.post("/conversations/{conversation_id}/notes", response_class=HTMLResponse)
async def add_note(request: Request, conversation_id: int, caller: Caller) -> Response:
    form = await _form(request)
    text = form.get("text", "")

    def run(language: str) -> str:
        notes_api.add_note(conversation_id, notes_api.NoteIn(text=text), caller)
        return gettext(language, "Note saved (the customer does not see it).")

    return await _act(request, caller, conversation_id, run)


def _contact_of(caller: Principal, conversation_id: int) -> int:
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        found = session.get(Conversation, conversation_id)
        if found is None:
            raise HTTPException(404, f"no conversation {conversation_id}")
        return found.contact_id


@router.post("/conversations/{conversation_id}/labels", response_class=HTMLResponse)
async def add_label(request: Request, conversation_id: int, caller: Caller) -> Response:
    """Give the contact a label: POST /api/contacts/{id}/labels/{name}'s function."""
    form = await _form(request)
    name = form.get("name", "")

    def run(language: str) -> str:
        result = labels_api.add_label(_contact_of(caller, conversation_id), name, caller, Response())
        if not result.changed:
            return gettext(language, "The contact has the label %(label)s already.", label=result.label)
        return gettext(language, "Label %(label)s added.", label=result.label)

    return await _act(request, caller, conversation_id, run)


@router.post("/conversations/{conversation_id}/labels/remove", response_class=HTMLResponse)
async def remove_label(request: Request, conversation_id: int, caller: Caller) -> Response:
    """Take a label away: DELETE /api/contacts/{id}/labels/{name}'s function."""
    form = await _form(request)
    name = form.get("name", "")

    def run(language: str) -> str:
        result = labels_api.remove_label(_contact_of(caller, conversation_id), name, caller)
        if not result.changed:
            return gettext(language, "The contact has no label %(label)s.", label=result.label)
        return gettext(language, "Label %(label)s removed.", label=result.label)

    return await _act(request, caller, conversation_id, run)


@router.post("/language")
async def language(request: Request, caller: Caller) -> Response:
    form = await _form(request)
    chosen = form.get("language", "")
    if chosen not in LANGUAGES:
        raise HTTPException(422, f"language: one of {', '.join(LANGUAGES)}")
    await run_in_threadpool(set_language, caller, chosen)
    back = form.get("back", "/inbox")
    response = RedirectResponse(back if back.startswith("/inbox") else "/inbox", status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 86400, samesite="lax", path="/inbox")
    return response
