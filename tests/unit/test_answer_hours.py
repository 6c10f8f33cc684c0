"""When a customer usually writes, and the next such hour for a follow-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.answer_hours import at_usual_hour, counted, usual_hours

JAKARTA = ZoneInfo("Asia/Jakarta")  # UTC+7


def hours_of(*local_hours: int) -> list[int]:
    counts = None
    for hour in local_hours:
        counts = counted(counts, datetime(2026, 12, 1, hour, 30, tzinfo=JAKARTA), JAKARTA)
    return counts or []


def test_hours_are_counted_in_local_time():
    counts = counted(None, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), JAKARTA)  # 19:00 in Jakarta
    assert counts[19] == 1 and sum(counts) == 1


def test_an_hour_is_usual_once_enough_messages_fall_in_it():
    assert usual_hours(hours_of(19, 19, 19, 20)) == frozenset()  # four messages: too little known
    assert usual_hours(hours_of(19, 19, 19, 20, 20, *[13] * 5, 3)) == {13, 19, 20}  # 3 a.m. is 1 in 11


def test_a_follow_up_moves_to_the_next_usual_hour_within_the_limit():
    candidate = datetime(2026, 12, 1, 9, 15, tzinfo=JAKARTA).astimezone(UTC)
    latest = candidate + timedelta(hours=12)
    moved = at_usual_hour(candidate, latest, frozenset({13, 19}), JAKARTA)
    assert moved == datetime(2026, 12, 1, 13, 0, tzinfo=JAKARTA)
    # Already in a usual hour: unchanged; no usual hour before the limit: unchanged too.
    assert at_usual_hour(candidate, latest, frozenset({9}), JAKARTA) == candidate
    assert at_usual_hour(candidate, candidate + timedelta(hours=2), frozenset({13}), JAKARTA) == candidate
    assert at_usual_hour(candidate, latest, frozenset(), JAKARTA) == candidate


def test_the_next_usual_hour_may_be_the_next_day():
    candidate = datetime(2026, 12, 1, 22, 40, tzinfo=JAKARTA)
    moved = at_usual_hour(candidate, candidate + timedelta(hours=24), frozenset({8}), JAKARTA)
    assert moved == datetime(2026, 12, 2, 8, 0, tzinfo=JAKARTA)
