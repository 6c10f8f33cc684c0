"""Routing reasons in the reader's language.

Routing (``pipeline/routing.py``, ``pipeline/assignment.py``, ``workers/ai_agent.py``) and the
lead scores (``domain/lead_score.py``, ``domain/lead_features.py``) store each reason as an
English sentence made from a fixed pattern, and the API returns those sentences as they are. The
pattern is the reason's stable code: each one is written here once as a catalogue message
(``%(name)s`` where the sentence has a value), a stored sentence is matched against them, and
the page shows the message of the reader's language with the values put back. A value that is
itself a reason (the "why" of "needs a reply: …", the parts of "lead is hot (…): a; b") is read
the same way; numbers (points, scores, confidences) are written as the reader's locale writes
them (0,75 in Indonesian, 0.75 in English), with as many decimals as stored; names, labels, FAQ
keys and the customer's own words are shown as they are. A sentence no pattern matches (an older
or a new wording) is shown as it was stored, never lost.
``tests/unit/test_reasons.py`` checks that what the producers write is matched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache

from babel.numbers import format_decimal


def _(message: str) -> str:
    """Marks a message for the catalogue (pybabel and tests/unit/test_inbox_catalogue.py read
    ``_``); it is translated when shown."""
    return message


CLASSES = {"hot": _("hot"), "warm": _("warm"), "cold": _("cold")}
RESPONDERS = {
    "human": _("a person"),
    "automation": _("automation"),
    "ai": _("the AI agent"),
    "none": _("nobody"),
}
# The lead scores' intents (domain/lead_score.INTENTS), as the learned score names them too.
INTENTS = (
    _("asks about price"),
    _("wants to buy"),
    _("talks about payment"),
    _("asks about shipping"),
    _("asks about stock"),
    _("asks for information"),
)
# What a value looks like where "anything" would make a pattern ambiguous.
_VALUES = {
    "points": r"[+-]\d+(?:\.\d+)?",
    "count": r"\d+",
    "score": r"\d+",
    "rating": r"\d+",
    "percent": r"\d+(?:\.\d+)?%",
    "confidence": r"\d+(?:\.\d+)?",
    "minimum": r"\d+(?:\.\d+)?",
    "intent": "|".join(re.escape(i) for i in INTENTS),
    "lead_class": "hot|warm|cold",
}
# Values that are reasons themselves (read again); "reasons" is a list joined by "; ".
_NESTED = {"reason", "why", "intent", "scored", "failure", "responder"}
# Values that are numbers, written in the reader's locale.
_NUMBERS = {"points", "count", "score", "rating", "percent", "confidence", "minimum"}

PATTERNS = (
    # A lead score's parts, with their points (fixed weights) or log-odds (the learned score).
    _("%(reason)s %(points)s"),
    _("lead is %(lead_class)s (%(scored)s): %(reasons)s"),
    _("score %(score)s"),
    _("fixed weights"),
    _("model %(count)s"),
    *INTENTS,
    _("%(intent)s (%(words)s)"),
    _("earlier in the conversation: %(intent)s"),
    _("%(count)s messages in this conversation"),
    _("usually answers within 5 minutes"),
    _("usually answers within an hour"),
    _("labelled %(labels)s"),
    _("has an open order"),
    _("returning customer"),
    _("no buying signal yet"),
    _("chance of an order %(percent)s"),
    _("wrote on channel %(channel)s"),
    _("came from campaign %(campaign)s"),
    _("3 or more customer messages"),
    _("6 or more customer messages"),
    _("3 or more back-and-forth turns"),
    _("6 or more back-and-forth turns"),
    _("ordered before"),
    _("ordered 3 or more times before"),
    _("wrote first at night (00-06)"),
    _("wrote first in the morning (06-12)"),
    _("wrote first in the afternoon (12-18)"),
    _("wrote first in the evening (18-24)"),
    # Does it need a reply, and who answers (pipeline/routing.py, domain/intent.py).
    _("an answer to the satisfaction survey: %(rating)s/5"),
    _("the customer opted out (STOP): no more broadcasts"),
    _("no reply needed: %(why)s"),
    _("needs a reply: %(why)s"),
    _("an image"),
    _("a video"),
    _("an audio message"),
    _("a document"),
    _("a location"),
    _("a contact card"),
    _("an order"),
    _("a button reply"),
    _("an unsupported message"),
    _("a reaction"),
    _("a sticker"),
    _("a deleted message"),
    _("a system notice"),
    _("an empty message"),
    _("thanks"),
    _("a goodbye"),
    _("an acknowledgement"),
    _("an automatic reply or spam"),
    _("a complaint"),
    _("a question about an order"),
    _("a question"),
    _("only emoji"),
    _("a message"),
    _("already answered: a reply went out after this message"),
    _("the message is over a day old: a person decides"),
    _("automation is paused for this contact"),
    _("%(agent)s took over this conversation"),
    _("the conversation is open again"),
    _("the conversation is closed"),
    _("no survey: automation is paused for this contact"),
    _("satisfaction survey sent"),
    _("outside business hours: out-of-hours reply sent"),
    _("outside business hours: the out-of-hours reply was already sent in this conversation"),
    _("automation answers: matches %(kind)s %(key)s (%(score)s%% like %(question)s)"),
    _("no FAQ entry matches: the AI agent answers"),
    _("a %(type)s without text: a human answers"),
    _("no FAQ entry matches and no AI agent is configured: a human answers"),
    # Which agent (pipeline/assignment.py).
    _("hot lead, for follow-up: %(reason)s"),
    _("stays with %(agent)s, who already looks after this contact"),
    _("%(agent)s is unavailable; %(reason)s"),
    _("no available agent in team %(team)s: waits in the queue"),
    _("assigned to %(agent)s, next in the %(team)s rotation"),
    # The AI agent (workers/ai_agent.py) and a person's override (api/control.py).
    _("the AI agent answered (confidence %(confidence)s)"),
    _("the AI agent did not answer: %(failure)s; a human answers"),
    _("automation was paused or a human took over meanwhile"),
    _("someone answered meanwhile"),
    _("the model asked for a human (confidence %(confidence)s)"),
    _("confidence %(confidence)s is below %(minimum)s"),
    _("overridden by %(actor)s: %(responder)s (%(note)s)"),
    _("overridden by %(actor)s: %(responder)s"),
)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each message with the regular expression of the English sentences it stands for."""
    out = []
    for message in PATTERNS:
        regex, at = [], 0
        for found in _PLACEHOLDER.finditer(message):
            regex.append(re.escape(message[at : found.start()]))
            name = found.group(1)
            regex.append("%" if name is None else f"(?P<{name}>{_VALUES.get(name, '.+?')})")
            at = found.end()
        regex.append(re.escape(message[at:]))
        out.append((message, re.compile("".join(regex), re.DOTALL)))
    return tuple(out)


def translate(text: str, gettext: Callable[[str], str], locale: str = "en") -> str:
    """A stored reason in the language of ``gettext`` (numbers as ``locale`` writes them); as
    stored when no pattern matches."""
    for message, regex in _compiled():
        found = regex.fullmatch(text)
        if found is not None:
            values = {name: _value(name, value, gettext, locale) for name, value in found.groupdict().items()}
            return gettext(message) % values if values else gettext(message)
    return text


def responder(name: str, gettext: Callable[[str], str]) -> str:
    """Who answers ("human", "automation", …) as the reader says it."""
    return gettext(RESPONDERS[name]) if name in RESPONDERS else name


def number(value: str, locale: str) -> str:
    """A stored number ("+0.75", "72%", "0.80") as ``locale`` writes it ("+0,75", "72%", "0,80"
    in Indonesian): its sign, its decimals and its percent sign kept, no thousands separator (a
    model's number is no amount)."""
    sign = value[:1] if value[:1] in "+-" else ""
    digits, percent = value[len(sign) :].removesuffix("%"), "%" if value.endswith("%") else ""
    try:
        parsed = Decimal(digits)
    except InvalidOperation:
        return value
    decimals = max(0, -int(parsed.as_tuple().exponent))
    pattern = "0." + "0" * decimals if decimals else "0"
    return sign + format_decimal(parsed, format=pattern, locale=locale) + percent


def _value(name: str, value: str, gettext: Callable[[str], str], locale: str) -> str:
    if name == "reasons":
        return "; ".join(translate(part, gettext, locale) for part in value.split("; "))
    if name == "lead_class":
        return gettext(CLASSES[value])
    if name == "responder":
        return responder(value, gettext)
    if name in _NUMBERS:
        return number(value, locale)
    return translate(value, gettext, locale) if name in _NESTED else value
