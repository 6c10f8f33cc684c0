"""The /inbox queue's order and paging on PostgreSQL: waiting hot, warm, the rest, then the
conversations nobody waits on, newest first in each; every open conversation exactly once across
the pages; the Closed tab lists the closed ones."""

from __future__ import annotations

import re
from datetime import timedelta

from models import Contact, Conversation
from models.base import utcnow
from models.db import session_scope

ROW = re.compile(r'data-conversation="(\d+)"')
MORE = re.compile(r'class="more" href="([^"]+)"')


def add(lead_class: str | None, waiting: bool, minutes_ago: int, closed: bool = False) -> int:
    at = utcnow() - timedelta(minutes=minutes_ago)
    with session_scope() as session:
        contact = Contact(name=f"Pelanggan {minutes_ago}", lead_class=lead_class)
        session.add(contact)
        session.flush()
        conversation = Conversation(
            contact_id=contact.id,
            started_at=at,
            last_message_at=at,
            awaiting_reply_since=at if waiting else None,
            closed_at=at if closed else None,
        )
        session.add(conversation)
        session.flush()
        return conversation.id


def listed(client, headers, path: str) -> list[int]:
    """Conversation ids in the order the queue shows them, following "older" to the last page."""
    ids: list[int] = []
    while path:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text[:300]
        ids += [int(i) for i in ROW.findall(answer.text)]
        more = MORE.search(answer.text)
        path = more.group(1).replace("&amp;", "&") if more else ""
    return ids


def test_the_queue_lists_waiting_hot_first_and_pages_through_every_conversation_once(
    client, admin_headers, database
):
    # Minutes ago interleave across the bands, so that order by band is not order by time.
    expected: dict[str, list[int]] = {"hot": [], "warm": [], "other": [], "not waiting": []}
    for n in range(120):
        band = ("hot", "warm", "other", "not waiting")[n % 4]
        lead_class = {"hot": "hot", "warm": "warm", "other": ("cold", None)[n % 8 // 4]}.get(band)
        if band == "not waiting":
            lead_class = "hot"  # hot but answered: after every waiting conversation
        expected[band].append(add(lead_class, waiting=band != "not waiting", minutes_ago=n))
    closed = [add("hot", waiting=False, minutes_ago=200 + n, closed=True) for n in range(3)]

    ids = listed(client, admin_headers, "/inbox/queue?tab=all")

    assert len(ids) == len(set(ids)) == 120  # three pages of 50, nothing twice, nothing missed
    assert ids == expected["hot"] + expected["warm"] + expected["other"] + expected["not waiting"]
    assert listed(client, admin_headers, "/inbox/queue?tab=closed") == closed
