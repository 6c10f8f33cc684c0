"""The learned lead score against the fixed weights, on held-out synthetic conversations.

    .venv/bin/python -m bench.lead_model [--quick] [--json figures.json]

Two synthetic worlds, each a fitting set and a held-out set drawn from the same rules, fitted and
scored by the code routing uses (``pipeline.lead_model.fit``: scikit-learn's logistic regression,
the fixed weights turned into a chance by a one-variable fit on the same fitting set):

- **this business**: what predicts an order partly is what the fixed weights count (intents,
  quick answers, past orders) and partly is not (one ad's customers buy, another's do not;
  evening chats buy more; a price question weighs less than the weights say). The model should
  rank and calibrate better: area under the ROC curve and Brier score, model vs fixed weights.
- **the fixed weights are right**: the chance of an order follows the fixed points exactly. The
  model should do no better (within noise), and its gate (LEAD_MODEL_MIN_AUC_GAIN) keeps the
  fixed weights.

Pure Python, no services: seconds. ``--quick`` draws fewer conversations.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence

from bench.report import Figure, add_json_argument, bench_main
from domain import lead_features
from domain.lead_features import ConversationFacts
from pipeline import lead_model

DESCRIPTION = "Learned lead score vs fixed weights: ROC AUC and calibration on held-out synthetic chats."
Truth = Callable[[ConversationFacts], float]  # the log-odds of an order


def draw(rng: random.Random) -> ConversationFacts:
    intents = tuple(
        name
        for name, share in (
            ("price", 0.4),
            ("purchase", 0.15),
            ("shipping", 0.2),
            ("payment", 0.08),
            ("info", 0.25),
        )
        if rng.random() < share
    )
    return ConversationFacts(
        intents=intents,
        customer_messages=rng.choice((1, 1, 2, 3, 4, 6, 9)),
        turns=rng.choice((1, 2, 3, 4, 6)),
        typical_response_seconds=rng.choice((None, 60.0, 900.0, 7200.0)),
        local_hour=rng.randrange(24),
        channel=rng.choice(("toko", "toko", "grosir")),
        campaign=rng.choice((None, None, "ad:gamis", "ad:diskon")),
        labels=("vip",) if rng.random() < 0.05 else (),
        past_orders=rng.choice((0, 0, 0, 1, 3)),
    )


def this_business(f: ConversationFacts) -> float:
    """Readable facts drive it, some that the fixed weights miss or weigh otherwise."""
    logit = -2.6
    logit += {"ad:gamis": 1.8, "ad:diskon": -0.9}.get(f.campaign or "", 0.0)
    logit += 0.3 * ("price" in f.intents) + 1.6 * ("purchase" in f.intents) + 1.4 * ("payment" in f.intents)
    logit += 0.7 if 18 <= f.local_hour < 24 else 0.0
    logit += 0.8 * (f.typical_response_seconds is not None and f.typical_response_seconds < 300)
    logit += 0.9 * (f.past_orders >= 1) + 0.5 * (f.turns >= 3)
    return logit


def fixed_is_right(f: ConversationFacts) -> float:
    return -3.0 + lead_features.fixed_weights_score(f) / 30


def world(truth: Truth, count: int, seed: int) -> list[tuple[ConversationFacts, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        f = draw(rng)
        rows.append((f, int(rng.random() < 1 / (1 + math.exp(-truth(f))))))
    return rows


def measure(quick: bool, figures: list[Figure]) -> None:
    fitting, held_out = (600, 400) if quick else (4000, 2000)
    for group, truth in (("this business", this_business), ("the fixed weights are right", fixed_is_right)):
        train, test = world(truth, fitting, 1), world(truth, held_out, 2)
        started = time.perf_counter()
        result = lead_model.fit(train, test)
        seconds = time.perf_counter() - started
        m, f = result.learned, result.fixed
        gate, why = lead_model.verdict(m, f)
        print(
            f"{group}: fitted on {fitting}, held out {held_out} "
            f"(ordered {result.base_rate:.0%}) in {seconds:.2f} s"
        )
        print(f"  {'':22s} {'model':>8s} {'fixed':>8s}")
        for name, a, b in (
            ("ROC AUC", m.auc, f.auc),
            ("Brier score", m.brier, f.brier),
            ("calibration error", m.calibration_error, f.calibration_error),
        ):
            print(f"  {name:22s} {a:8.3f} {b:8.3f}")
        print(f"  the model would score: {gate}: {why}\n")
        better = group == "this business"
        figures.extend(
            [
                Figure(
                    f"lead model, {group}",
                    "ROC AUC",
                    m.auc,
                    "",
                    f.auc,
                    "fixed weights",
                    goal="ratio > 1" if better else None,
                    met=m.auc > f.auc if better else None,
                ),
                Figure(
                    f"lead model, {group}",
                    "Brier score (lower is better)",
                    m.brier,
                    "",
                    f.brier,
                    "fixed weights",
                    goal="ratio <= 1" if better else None,
                    met=m.brier <= f.brier if better else None,
                ),
                Figure(
                    f"lead model, {group}",
                    "calibration error (lower is better)",
                    m.calibration_error,
                    "",
                    f.calibration_error,
                    "fixed weights",
                ),
                Figure(f"lead model, {group}", "fit and back-test", seconds, "s"),
            ]
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lead_model", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="fewer synthetic conversations")
    add_json_argument(parser)
    bench_main(measure, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
