"""What automation says: its own messages and the FAQ and marketing answers it may give.

Both live in one TOML file (``AUTOMATION_FILE``, by default ``templates/automation.toml``):

- ``[messages.<trigger>]`` tables, like the order messages: a ``text`` and an optional Cloud API
  ``template`` for a closed 24-hour window. They are read from the file, checked when a worker
  starts.
- ``[[faq]]`` entries: imported into the database (``python -m cli faq import``), where the API
  edits them too; the database is what routing matches against.

Every check raises ``ContentError`` naming the entry and the problem.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from domain.order_messages import MessageTemplate, TemplateError, parse_message

OUT_OF_HOURS = "out_of_hours"
ADAPTIVE_FOLLOWUP = "adaptive_followup"
SURVEY = "survey"
PLACEHOLDERS = frozenset({"name", "business"})
TRIGGERS = (OUT_OF_HOURS, ADAPTIVE_FOLLOWUP, SURVEY)

KINDS = ("faq", "marketing")
MEDIA_TYPES = ("image", "document", "link")
_MAX_QUESTION, _MAX_ANSWER = 500, 4096  # WhatsApp's text body limit is 4096 characters


class ContentError(TemplateError):
    """The automation file or an FAQ entry cannot be used; the message says which and why."""


@dataclass(frozen=True)
class FaqSpec:
    key: str
    questions: tuple[str, ...]
    answer: str
    kind: str = "faq"
    media_url: str | None = None
    media_type: str | None = None
    active: bool = True


def faq_spec(key: str, data: dict[str, Any]) -> FaqSpec:
    """Validate one FAQ entry, from the file or the API."""
    where = f"faq entry {key!r}"
    if not key or len(key) > 100 or not key.replace("_", "").replace("-", "").isalnum():
        raise ContentError(f"{where}: the key must be 1-100 letters, digits, '-' or '_'")
    questions = data.get("questions")
    if (
        not isinstance(questions, list)
        or not questions
        or not all(isinstance(q, str) and q.strip() and len(q) <= _MAX_QUESTION for q in questions)
    ):
        raise ContentError(f"{where}: 'questions' must be a non-empty list of non-empty texts")
    answer = data.get("answer")
    if not isinstance(answer, str) or not answer.strip() or len(answer) > _MAX_ANSWER:
        raise ContentError(f"{where}: 'answer' must be a non-empty text of at most {_MAX_ANSWER} characters")
    kind = data.get("kind", "faq")
    if kind not in KINDS:
        raise ContentError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
    media_url, media_type = data.get("media_url"), data.get("media_type")
    if media_url is not None:
        parsed = urlparse(str(media_url))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ContentError(f"{where}: 'media_url' must be an http(s) URL")
        if media_type not in MEDIA_TYPES:
            raise ContentError(f"{where}: 'media_type' must be one of {', '.join(MEDIA_TYPES)}")
        if len(answer.strip()) + 2 + len(str(media_url)) > _MAX_ANSWER:
            raise ContentError(f"{where}: 'answer' and 'media_url' together exceed {_MAX_ANSWER} characters")
    elif media_type is not None:
        raise ContentError(f"{where}: 'media_type' given without 'media_url'")
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise ContentError(f"{where}: 'active' must be true or false")
    return FaqSpec(
        key=key,
        questions=tuple(q.strip() for q in questions),
        answer=answer.strip(),
        kind=kind,
        media_url=media_url,
        media_type=media_type,
        active=active,
    )


def _document(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ContentError(f"{path}: cannot read the automation file: {exc}") from exc


def load_messages(path: Path) -> dict[str, MessageTemplate]:
    """The automation messages; every trigger must be there."""
    messages = _document(path).get("messages")
    if not isinstance(messages, dict):
        raise ContentError(f"{path}: a [messages.<trigger>] table is required for {', '.join(TRIGGERS)}")
    unknown = set(messages) - set(TRIGGERS)
    if unknown:
        raise ContentError(f"{path}: unknown message(s) {sorted(unknown)}; known: {list(TRIGGERS)}")
    return {
        trigger: parse_message(f"{path}: [messages.{trigger}]", trigger, messages.get(trigger), PLACEHOLDERS)
        for trigger in TRIGGERS
    }


@cache
def messages_from(path: Path) -> dict[str, MessageTemplate]:
    return load_messages(path)


RATING_ID = "rating:"  # the id of a survey list row: "rating:1" .. "rating:5"
STAR = "\u2b50"


@dataclass(frozen=True)
class SurveyList:
    """The satisfaction survey as an interactive list (Cloud API numbers): the question, the
    button that opens the list, and one row per rating, 1 to 5, shown with that many stars."""

    text: str
    button: str
    ratings: tuple[str, ...]

    def body(self, values: dict[str, Any]) -> dict[str, Any]:
        rows = [
            {"id": f"{RATING_ID}{n}", "title": f"{STAR * n} {label}"[:24]}
            for n, label in enumerate(self.ratings, start=1)
        ]
        return {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": self.text.format_map({k: values.get(k) or "" for k in PLACEHOLDERS})},
                "action": {"button": self.button, "sections": [{"title": self.button, "rows": rows}]},
            },
        }


@cache
def survey_list_from(path: Path) -> SurveyList | None:
    """``[survey_list]`` of the file, or None: then the survey is the plain text everywhere."""
    table = _document(path).get("survey_list")
    if table is None:
        return None
    where = f"{path}: [survey_list]"
    if not isinstance(table, dict) or not all(isinstance(table.get(k), str) for k in ("text", "button")):
        raise ContentError(f"{where}: 'text' and 'button' are required texts")
    ratings = table.get("ratings")
    named = isinstance(ratings, list) and all(r and isinstance(r, str) for r in ratings)
    if not named or len(ratings) != 5:
        raise ContentError(f"{where}: 'ratings' must be five names, from 1 (worst) to 5 (best)")
    return SurveyList(table["text"], table["button"], tuple(ratings))


def rating_of_list_reply(payload: dict[str, Any]) -> int | None:
    """The rating a customer chose in the survey list, from their ``list_reply``."""
    reply = (payload.get("interactive") or {}).get("list_reply") or {}
    chosen = str(reply.get("id") or "")
    if chosen.startswith(RATING_ID) and chosen[len(RATING_ID) :] in {"1", "2", "3", "4", "5"}:
        return int(chosen[len(RATING_ID) :])
    return None


def load_faq(path: Path) -> list[FaqSpec]:
    entries = _document(path).get("faq", [])
    if not isinstance(entries, list):
        raise ContentError(f"{path}: 'faq' must be an array of tables ([[faq]])")
    specs, seen = [], set()
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ContentError(f"{path}: faq entry #{number} needs a 'key'")
        if entry["key"] in seen:
            raise ContentError(f"{path}: faq key {entry['key']!r} appears twice")
        seen.add(entry["key"])
        specs.append(faq_spec(entry["key"], {k: v for k, v in entry.items() if k != "key"}))
    return specs
