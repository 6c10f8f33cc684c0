"""Intent: how well the rules read shop chat, on a labelled held-out set, new rules against old.

    .venv/bin/python -m bench.intents                 # the held-out set (bench/data/intents_heldout.csv)
    .venv/bin/python -m bench.intents --dev           # the development set, with every miss listed
    .venv/bin/python -m bench.intents --json figures.json

For every message of the set: does it need a reply (``domain.intent.needs_reply``), what is it
about (``domain.chat_intent.read_message``), and does it show buying intent
(``domain.lead_score.buying_intents`` is not empty). Figures: needs-reply accuracy, buying-intent
precision and recall, how many messages that need no reply are queued for one and how many that
need one are dropped, and precision and recall per intent. Each is measured for the rules of
today and, in the same run, for the rules before issue 21 (``bench.baseline_intent`` and
``bench.baseline_lead_score``, frozen copies kept only for this comparison). The old rules know
no complaint, order-status or auto-reply intent, so their figures for those are 0.

Pure Python, no services: a second or two. ``--quick`` changes nothing (the set is small).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import baseline_intent, baseline_lead_score
from bench.report import Figure, add_json_argument, bench_main
from domain import chat_intent, intent, lead_score

DATA = Path(__file__).resolve().parent / "data"
HELD_OUT, DEVELOPMENT = DATA / "intents_heldout.csv", DATA / "intents_dev.csv"
GOAL = 0.95
DESCRIPTION = "Needs-reply accuracy, buying precision and recall, per-intent figures: new rules vs old."


@dataclass(frozen=True)
class Example:
    text: str
    needs_reply: bool
    intent: str
    lead_relevant: bool


@dataclass(frozen=True)
class Prediction:
    needs_reply: bool
    intent: str
    lead_relevant: bool


def load(path: Path) -> list[Example]:
    """The labelled messages of a CSV file (text, needs_reply, intent, lead_relevant)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    examples = []
    for number, row in enumerate(rows, start=2):
        if row["intent"] not in chat_intent.INTENTS:
            raise ValueError(f"{path.name}:{number}: unknown intent {row['intent']!r}")
        flags = [row["needs_reply"].strip().lower(), row["lead_relevant"].strip().lower()]
        if any(flag not in ("true", "false") for flag in flags):
            raise ValueError(f"{path.name}:{number}: needs_reply and lead_relevant are true or false")
        examples.append(Example(row["text"], flags[0] == "true", row["intent"], flags[1] == "true"))
    return examples


def new_rules(text: str) -> Prediction:
    needed, _ = intent.needs_reply("text", text)
    reading = chat_intent.read_message(text)
    return Prediction(needed, reading.intent, bool(lead_score.buying_intents(text)))


_OLD_NO_REPLY = {"thanks": "thanks", "a goodbye": "closing", "an acknowledgement": "ack", "only emoji": "ack"}
_OLD_ORDER = ("price", "purchase", "payment", "shipping", "info", "stock")


def old_rules(text: str) -> Prediction:
    """The rules before issue 21, read the same way: no reply -> thanks/closing/ack by its reason,
    else the first buying intent, else a question or other."""
    needed, why = baseline_intent.needs_reply("text", text)
    buying = baseline_lead_score.buying_intents(text)
    if not needed:
        label = _OLD_NO_REPLY.get(why, "other")
    elif buying:
        label = next(name for name in _OLD_ORDER if name in buying)
    else:
        label = "question" if why == "a question" else "other"
    return Prediction(needed, label, bool(buying))


@dataclass
class Scores:
    examples: int
    needs_reply_accuracy: float
    queued_needlessly: int  # need no reply, queued for one
    no_reply_needed: int
    dropped: int  # need a reply, given none: the miss that matters most
    buying_precision: float
    buying_recall: float
    per_intent: dict[str, tuple[float, float, int]]  # intent -> precision, recall, examples
    misses: list[tuple[Example, Prediction]]


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def score(examples: Sequence[Example], rules: Callable[[str], Prediction]) -> Scores:
    predictions = [rules(e.text) for e in examples]
    pairs = list(zip(examples, predictions, strict=True))
    right = sum(e.needs_reply == p.needs_reply for e, p in pairs)
    tp = sum(e.lead_relevant and p.lead_relevant for e, p in pairs)
    per_intent = {}
    for name in chat_intent.INTENTS:
        labelled = sum(e.intent == name for e in examples)
        predicted = sum(p.intent == name for p in predictions)
        hits = sum(e.intent == name == p.intent for e, p in pairs)
        if labelled or predicted:
            per_intent[name] = (
                _ratio(hits, predicted) if predicted else 0.0,
                _ratio(hits, labelled),
                labelled,
            )
    return Scores(
        examples=len(examples),
        needs_reply_accuracy=right / len(examples),
        queued_needlessly=sum(not e.needs_reply and p.needs_reply for e, p in pairs),
        no_reply_needed=sum(not e.needs_reply for e in examples),
        dropped=sum(e.needs_reply and not p.needs_reply for e, p in pairs),
        buying_precision=_ratio(tp, sum(p.lead_relevant for p in predictions)),
        buying_recall=_ratio(tp, sum(e.lead_relevant for e in examples)),
        per_intent=per_intent,
        misses=[
            (e, p)
            for e, p in pairs
            if (e.needs_reply, e.intent, e.lead_relevant) != (p.needs_reply, p.intent, p.lead_relevant)
        ],
    )


def figures_for(new: Scores, old: Scores, set_name: str) -> list[Figure]:
    def goal(value: float) -> dict[str, object]:
        return {"goal": f">= {GOAL}", "met": value >= GOAL}

    group = f"intents ({set_name}, {new.examples} messages)"
    baseline = "rules before issue 21"
    figures = [
        Figure(
            group,
            "needs-reply accuracy",
            new.needs_reply_accuracy,
            "",
            old.needs_reply_accuracy,
            baseline,
            **goal(new.needs_reply_accuracy),
        ),
        Figure(
            group,
            "buying intent precision",
            new.buying_precision,
            "",
            old.buying_precision,
            baseline,
            **goal(new.buying_precision),
        ),
        Figure(
            group,
            "buying intent recall",
            new.buying_recall,
            "",
            old.buying_recall,
            baseline,
            **goal(new.buying_recall),
        ),
        Figure(
            group,
            f"queued for a reply, of {new.no_reply_needed} that need none",
            new.queued_needlessly,
            "",
            old.queued_needlessly,
            baseline,
        ),
        Figure(
            group,
            "needing a reply but given none",
            new.dropped,
            "",
            old.dropped,
            baseline,
            goal="0",
            met=new.dropped == 0,
        ),
    ]
    for name, (precision, recall, count) in new.per_intent.items():
        old_precision, old_recall, _ = old.per_intent.get(name, (0.0, 0.0, count))
        figures.append(Figure(group, f"{name} ({count}): precision", precision, "", old_precision, baseline))
        figures.append(Figure(group, f"{name} ({count}): recall", recall, "", old_recall, baseline))
    return figures


def print_table(new: Scores, old: Scores) -> None:
    print(f"{'':34s} {'new':>7s} {'old':>7s}")
    rows = [
        ("needs-reply accuracy", new.needs_reply_accuracy, old.needs_reply_accuracy),
        ("buying precision", new.buying_precision, old.buying_precision),
        ("buying recall", new.buying_recall, old.buying_recall),
    ]
    for name, a, b in rows:
        print(f"{name:34s} {a:7.3f} {b:7.3f}")
    print(
        f"{'queued, need no reply (of ' + str(new.no_reply_needed) + ')':34s} "
        f"{new.queued_needlessly:7d} {old.queued_needlessly:7d}"
    )
    print(f"{'need a reply, given none':34s} {new.dropped:7d} {old.dropped:7d}")
    print(f"\n{'intent (examples)':26s} {'new P':>6s} {'new R':>6s} {'old P':>6s} {'old R':>6s}")
    for name, (precision, recall, count) in new.per_intent.items():
        old_p, old_r, _ = old.per_intent.get(name, (0.0, 0.0, count))
        print(
            f"{name + ' (' + str(count) + ')':26s} {precision:6.2f} {recall:6.2f} {old_p:6.2f} {old_r:6.2f}"
        )


def measure(path: Path, figures: list[Figure], show_misses: bool) -> None:
    examples = load(path)
    new, old = score(examples, new_rules), score(examples, old_rules)
    print(f"{path.name}: {len(examples)} labelled messages\n")
    print_table(new, old)
    if show_misses:
        print(f"\nMisses of the new rules ({len(new.misses)}): labelled -> read")
        for e, p in new.misses:
            print(
                f"  {e.text!r}: {e.needs_reply},{e.intent},{e.lead_relevant} -> "
                f"{p.needs_reply},{p.intent},{p.lead_relevant}"
            )
    figures.extend(figures_for(new, old, "development set" if path == DEVELOPMENT else "held-out set"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intents", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="the same run (the set is small)")
    parser.add_argument("--dev", action="store_true", help="the development set, listing each miss")
    parser.add_argument("--file", type=Path, help="another labelled CSV file")
    parser.add_argument("--misses", action="store_true", help="list the new rules' misses")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    path = args.file or (DEVELOPMENT if args.dev else HELD_OUT)
    bench_main(lambda _quick, figures: measure(path, figures, args.dev or args.misses), args)


if __name__ == "__main__":
    sys.exit(main())
