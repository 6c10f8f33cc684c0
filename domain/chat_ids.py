"""WhatsApp chat ids as gateways write them (docs/formats.md "WAHA"), and which are people.

Labels and inbound messages count only for personal chats: ``6281…@c.us`` (and the same user
as ``…@s.whatsapp.net``, possibly with a ``:device`` suffix) is a phone number; ``…@lid`` is a
hidden linked id, opaque, never to be read as a phone. Groups, broadcast lists, the status feed
and newsletters are not a contact; their events are ignored (and counted), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

PHONE, LID = "phone", "lid"
GROUP, BROADCAST, STATUS, NEWSLETTER, UNKNOWN = "group", "broadcast", "status", "newsletter", "unknown"


@dataclass(frozen=True)
class ChatId:
    kind: str  # phone | lid | group | broadcast | status | newsletter | unknown
    value: str  # the user part: phone digits for ``phone``, the opaque id for ``lid``

    @property
    def is_person(self) -> bool:
        return self.kind in (PHONE, LID)


def parse(chat_id: str) -> ChatId:
    user, _, server = chat_id.strip().lower().rpartition("@")
    if not user:
        return ChatId(UNKNOWN, chat_id)
    if server in ("c.us", "s.whatsapp.net"):
        digits = user.split(":", 1)[0]  # "6281100000000:73" is a device of that user
        return ChatId(PHONE, digits) if digits.isdigit() else ChatId(UNKNOWN, chat_id)
    if server == "lid":
        return ChatId(LID, user.split(":", 1)[0])
    if server == "g.us":
        return ChatId(GROUP, user)
    if server == "broadcast":
        return ChatId(STATUS if user == "status" else BROADCAST, user)
    if server == "newsletter":
        return ChatId(NEWSLETTER, user)
    return ChatId(UNKNOWN, chat_id)
