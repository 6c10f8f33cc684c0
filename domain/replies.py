"""Who answered a customer, and which automated messages belong to a conversation.

Outbox rows carry a ``trigger``: the order messages' triggers (domain.order_messages), the
automation messages' (domain.automation_content) and the replies named here. These sets say how
each trigger counts in the journey metrics and which ones a human take-over or a pause silences.
"""

from __future__ import annotations

from domain.automation_content import ADAPTIVE_FOLLOWUP, OUT_OF_HOURS, SURVEY

# Who answers a message.
HUMAN, AUTOMATION, AI, NOBODY = "human", "automation", "ai", "none"
RESPONDERS = (HUMAN, AUTOMATION, AI, NOBODY)

FAQ_ANSWER, AI_ANSWER, HUMAN_REPLY = "faq_answer", "ai_answer", "human_reply"

# Replies that answer what the customer asked, by who gave them (first-response metrics).
RESPONDER_OF = {FAQ_ANSWER: AUTOMATION, AI_ANSWER: AI, HUMAN_REPLY: HUMAN}

# Automation that talks inside a conversation: a human who takes it over silences these.
CONVERSATIONAL = frozenset({FAQ_ANSWER, AI_ANSWER, OUT_OF_HOURS, ADAPTIVE_FOLLOWUP, SURVEY})

# Messages after which the customer's silence may earn an adaptive follow-up, if they asked.
MAY_AWAIT_ANSWER = frozenset({FAQ_ANSWER, AI_ANSWER, HUMAN_REPLY, ADAPTIVE_FOLLOWUP})
