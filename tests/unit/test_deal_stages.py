"""The deal's milestone from what happened, and the stage map's setting."""

import pytest

from domain import deal_stages
from domain.deal_stages import Facts, parse_stage_map, stage_of


@pytest.mark.parametrize(
    ("facts", "stage"),
    [
        (Facts(), "new"),
        (Facts(human_replied=True), "replied"),
        (Facts(human_replied=True, lead_class="hot"), "qualified"),
        (Facts(labels=("Grade A",), qualifying_labels=("Grade A",)), "qualified"),
        (Facts(labels=("Grade B",), qualifying_labels=("Grade A",)), "new"),
        (Facts(lead_class="hot", open_orders=1), "ordered"),
        (Facts(open_orders=1, paid_orders=1), "won"),
        (Facts(cancelled_orders=1), "lost"),
        (Facts(cancelled_orders=1, open_orders=1), "ordered"),
        (Facts(opted_out=True, open_orders=1), "lost"),
        (Facts(opted_out=True, paid_orders=1), "won"),  # a won deal stays won
    ],
)
def test_the_milestone_follows_what_happened(facts, stage):
    assert stage_of(facts) == stage


def test_the_stage_map_names_odoo_stages_and_refuses_what_it_cannot_map():
    assert parse_stage_map(" replied = Qualified , ordered=Proposition,") == {
        "replied": "Qualified",
        "ordered": "Proposition",
    }
    assert parse_stage_map("") == {}
    for wrong in ("won=Won", "paid=Won", "replied", "replied="):
        with pytest.raises(ValueError, match="CRM_STAGE_MAP"):
            parse_stage_map(wrong)
    assert deal_stages.names("Grade A, VIP ,") == ("Grade A", "VIP")


@pytest.mark.parametrize(
    ("current", "computed", "moves"),
    [
        ("new", "qualified", True),
        ("ordered", "qualified", False),  # set further on in Odoo: stays
        ("ordered", "lost", True),
        ("won", "lost", False),
        ("lost", "ordered", True),
        ("won", "won", False),
    ],
)
def test_what_happened_moves_a_deal_forward_into_and_out_of_lost(current, computed, moves):
    assert deal_stages.moves(current, computed) is moves
