"""Who sent an outbound message, as the message lists show it (docs/interface.md "Messages").

Every message of ours leaves through the outbox with a ``trigger`` (domain.replies); the sender
type follows from it. ``phone`` is the one sender that never went through the outbox: staff who
typed a reply on the phone or in the WhatsApp Business app, learnt from the gateway's echo.
"""

from __future__ import annotations

from domain.automation_content import ADAPTIVE_FOLLOWUP, OUT_OF_HOURS, SURVEY
from domain.order_messages import ORDER_FOLLOWUP_DELIVERY
from domain.replies import AI_ANSWER, BROADCAST, FAQ_ANSWER, HUMAN_REPLY, ORDER_SEQUENCE

AGENT, AUTOMATION, AI, ORDER, FOLLOWUP = "agent", "automation", "ai", "order", "followup"
BROADCAST_SENDER, SURVEY_SENDER, PHONE = "broadcast", "survey", "phone"
SENDER_TYPES = (AGENT, AUTOMATION, AI, ORDER, FOLLOWUP, BROADCAST_SENDER, SURVEY_SENDER, PHONE)

_BY_TRIGGER = {
    HUMAN_REPLY: AGENT,
    FAQ_ANSWER: AUTOMATION,
    OUT_OF_HOURS: AUTOMATION,
    AI_ANSWER: AI,
    BROADCAST: BROADCAST_SENDER,
    SURVEY: SURVEY_SENDER,
    ADAPTIVE_FOLLOWUP: FOLLOWUP,
    # "Has it arrived?" after delivery is a follow-up, though it is one of the order's steps.
    ORDER_FOLLOWUP_DELIVERY: FOLLOWUP,
}


def sender_of_trigger(trigger: str) -> str:
    """The sender type of an outbox row's trigger; a trigger not named here is automation's."""
    if trigger in _BY_TRIGGER:
        return _BY_TRIGGER[trigger]
    return ORDER if trigger in ORDER_SEQUENCE else AUTOMATION
