"""The learned lead score's readable features, its scoring and reasons, and a fit on synthetic
conversations where one readable fact truly predicts ordering."""

from __future__ import annotations

import random

from domain import lead_features
from domain.lead_features import ConversationFacts, LinearModel
from pipeline import lead_model


def facts(**changes) -> ConversationFacts:
    base = {
        "intents": (),
        "customer_messages": 1,
        "turns": 1,
        "typical_response_seconds": None,
        "local_hour": 10,
        "channel": "default",
        "campaign": None,
        "labels": (),
        "past_orders": 0,
    }
    return ConversationFacts(**(base | changes))


def test_each_stored_fact_becomes_a_feature_a_person_can_read():
    found = lead_features.features(
        facts(
            intents=("price", "shipping", "not-an-intent"),
            customer_messages=7,
            turns=4,
            typical_response_seconds=120,
            local_hour=23,
            channel="toko-2",
            campaign="ad:1202",
            labels=(" VIP ",),
            past_orders=3,
        )
    )
    assert found == {
        "intent:price": 1.0,
        "intent:shipping": 1.0,
        "messages:3+": 1.0,
        "messages:6+": 1.0,
        "turns:3+": 1.0,
        "answers:5min": 1.0,
        "answers:1h": 1.0,
        "hour:evening": 1.0,
        "channel:toko-2": 1.0,
        "campaign:ad:1202": 1.0,
        "label:vip": 1.0,
        "past_orders:1+": 1.0,
        "past_orders:3+": 1.0,
    }
    assert [
        lead_features.describe(name) for name in ("intent:price", "campaign:ad:1202", "hour:evening")
    ] == [
        "asks about price",
        "came from campaign ad:1202",
        "wrote first in the evening (18-24)",
    ]


def test_a_quiet_first_message_has_only_its_hour_and_channel():
    assert lead_features.features(facts(local_hour=3)) == {"hour:night": 1.0, "channel:default": 1.0}


def test_rare_channels_campaigns_and_labels_stay_out_of_the_model():
    rows = [{"intent:price": 1.0, "campaign:big": 1.0}] * 5 + [{"campaign:once": 1.0, "label:x": 1.0}]
    assert lead_features.vocabulary(rows) == ["campaign:big", "intent:price"]


def test_the_fixed_weights_score_a_conversation_as_routing_scores_its_best_message():
    # price 40 + 3 messages 10 + answers within 5 minutes 15 + returning customer 15
    assert (
        lead_features.fixed_weights_score(
            facts(intents=("price",), customer_messages=3, typical_response_seconds=60, past_orders=1)
        )
        == 80
    )


def test_the_reasons_are_the_features_that_moved_the_chance_most():
    model = LinearModel(
        intercept=-2.0, coefficients={"campaign:ad:1": 3.0, "intent:price": 0.5, "hour:night": -1.0}
    )
    present = {"campaign:ad:1": 1.0, "intent:price": 1.0, "hour:night": 1.0, "channel:default": 1.0}
    chance = lead_features.probability(model, present)
    assert round(chance, 3) == 0.622  # sigmoid(0.5)
    assert [c.reads() for c in lead_features.contributions(model, present)] == [
        "came from campaign ad:1 +3.00",
        "wrote first at night (00-06) -1.00",
        "asks about price +0.50",
    ]
    assert lead_features.lead_class(chance, hot=0.5, warm=0.2) == "hot"
    assert lead_features.lead_class(0.3, hot=0.5, warm=0.2) == "warm"
    assert lead_features.lead_class(0.1, hot=0.5, warm=0.2) == "cold"


def test_calibration_error_is_zero_when_the_chances_are_what_happened():
    assert lead_features.calibration_error([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.0
    assert lead_features.calibration_error([1, 1], [0.05, 0.05]) == 0.95


def synthetic(count: int, seed: int) -> list[tuple[ConversationFacts, int]]:
    """Customers from one ad order four times in five; the others one time in ten, whatever
    they ask, so the fixed weights (which know nothing of campaigns) rank by noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        from_ad = rng.random() < 0.4
        intents = tuple(name for name in ("price", "shipping", "stock") if rng.random() < 0.4)
        ordered = int(rng.random() < (0.8 if from_ad else 0.1))
        rows.append((facts(intents=intents, campaign="ad:777" if from_ad else None), ordered))
    return rows


def test_a_fit_learns_the_fact_that_predicts_ordering_and_beats_the_fixed_weights():
    result = lead_model.fit(synthetic(400, 1), synthetic(100, 2))
    assert result.model.coefficients["campaign:ad:777"] > 2
    assert result.learned.auc > result.fixed.auc + 0.2
    assert result.learned.brier < result.fixed.brier
    assert 0 <= result.learned.calibration_error < 0.2


def test_a_model_scores_only_when_it_ranks_better_by_a_margin_and_is_calibrated_no_worse():
    fixed = lead_model.Figures(auc=0.70, brier=0.20, calibration_error=0.05)
    better = lead_model.Figures(auc=0.80, brier=0.15, calibration_error=0.03)
    by_noise = lead_model.Figures(auc=0.705, brier=0.19, calibration_error=0.03)
    worse_calibrated = lead_model.Figures(auc=0.80, brier=0.21, calibration_error=0.09)
    assert lead_model.verdict(better, fixed) == (
        True,
        "beats the fixed weights (AUC 0.800 vs 0.700, Brier 0.150 vs 0.200)",
    )
    assert lead_model.verdict(by_noise, fixed)[0] is False
    assert "by 0.01 AUC" in lead_model.verdict(by_noise, fixed)[1]
    assert lead_model.verdict(worse_calibrated, fixed) == (
        False,
        "ranks better but is less well calibrated than the fixed weights "
        "(AUC 0.800 vs 0.700, Brier 0.210 vs 0.200)",
    )


def test_beat_refits_the_lead_model_daily_on_the_schedules_queue():
    import celeryconfig
    from queueing import names

    entry = celeryconfig.beat_schedule["refit-lead-model"]
    assert (entry["task"], entry["schedule"]) == (names.REFIT_LEAD_MODEL, 86400)
    assert celeryconfig.task_routes[names.REFIT_LEAD_MODEL] == {"queue": "schedules"}
    assert "schedules.lead_model" in celeryconfig.imports
