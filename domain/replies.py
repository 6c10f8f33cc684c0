"""Who answered a customer, and which automated messages belong to a conversation.

Outbox rows carry a ``trigger``: the order messages' triggers (domain.order_messages), the
automation messages' (domain.automation_content) and the replies named here. These sets say how
each trigger counts in the journey metrics, which ones a human take-over or a pause silences,
which ones an opt-out stops, which go in bulk and which must reach the customer in order.
"""

from __future__ import annotations

from domain.automation_content import ADAPTIVE_FOLLOWUP, OUT_OF_HOURS, SURVEY
from domain.order_messages import (
    CONTACT_CREATED,
    ORDER_CREATED,
    ORDER_DELIVERY,
    ORDER_FOLLOWUP_DELIVERY,
    ORDER_PAID,
    ORDER_RECEIVED,
)

# Who answers a message.
HUMAN, AUTOMATION, AI, NOBODY = "human", "automation", "ai", "none"
RESPONDERS = (HUMAN, AUTOMATION, AI, NOBODY)

FAQ_ANSWER, AI_ANSWER, HUMAN_REPLY = "faq_answer", "ai_answer", "human_reply"
BROADCAST = "broadcast"

# Replies that answer what the customer asked, by who gave them (first-response metrics).
RESPONDER_OF = {FAQ_ANSWER: AUTOMATION, AI_ANSWER: AI, HUMAN_REPLY: HUMAN}

# Automation that talks inside a conversation: a human who takes it over silences these.
CONVERSATIONAL = frozenset({FAQ_ANSWER, AI_ANSWER, OUT_OF_HOURS, ADAPTIVE_FOLLOWUP, SURVEY})

# Messages after which the customer's silence may earn an adaptive follow-up, if they asked.
MAY_AWAIT_ANSWER = frozenset({FAQ_ANSWER, AI_ANSWER, HUMAN_REPLY, ADAPTIVE_FOLLOWUP})

# Promotional messages: a customer who opted out (STOP/BERHENTI) gets none of them, checked again
# when each is sent, not only when it was queued. The adaptive follow-up is a nudge to buy.
MARKETING = frozenset({BROADCAST, ADAPTIVE_FOLLOWUP})

# Sent in bulk, on a queue of their own (queueing/names.py), so that a broadcast to thousands
# never stands between a customer and a reply or an order message.
BULK = frozenset({BROADCAST})

# The order system's messages to one customer: they reach the customer in the order they were
# queued (pipeline/outbox.py, "One after the other").
ORDER_SEQUENCE = frozenset(
    {CONTACT_CREATED, ORDER_CREATED, ORDER_PAID, ORDER_DELIVERY, ORDER_FOLLOWUP_DELIVERY, ORDER_RECEIVED}
)
