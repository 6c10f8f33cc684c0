"""Where a deal stands, from what happened: the one map the local deal stage and the CRM's
pipeline both follow.

The milestones, in order: ``new`` (a chat), ``replied`` (a person answered), ``qualified`` (a
hot lead, or a qualifying label), ``ordered`` (an open order), ``won`` (an order paid, shipped
or received). ``lost``: every order cancelled and none paid, or the customer opted out. A won
deal stays won. ``CRM_STAGE_MAP`` names the CRM stage of each milestone before ``won`` (won and
lost are the CRM's own actions, not stages we pick).
"""

from __future__ import annotations

from dataclasses import dataclass

NEW, REPLIED, QUALIFIED, ORDERED, WON, LOST = "new", "replied", "qualified", "ordered", "won", "lost"
MILESTONES = (NEW, REPLIED, QUALIFIED, ORDERED, WON)
MAPPED = (NEW, REPLIED, QUALIFIED, ORDERED)  # the milestones a stage name is given for
RANK = {stage: rank for rank, stage in enumerate(MILESTONES)}


@dataclass(frozen=True)
class Facts:
    human_replied: bool = False
    lead_class: str | None = None
    labels: tuple[str, ...] = ()
    qualifying_labels: tuple[str, ...] = ()
    open_orders: int = 0  # created, neither paid nor cancelled
    paid_orders: int = 0  # paid, shipped or received
    cancelled_orders: int = 0
    opted_out: bool = False


def stage_of(facts: Facts) -> str:
    """The deal's milestone (or ``lost``) for these facts."""
    if facts.paid_orders:
        return WON
    if facts.opted_out:
        return LOST
    if facts.open_orders:
        return ORDERED
    if facts.cancelled_orders:
        return LOST
    if facts.lead_class == "hot" or set(facts.labels) & set(facts.qualifying_labels):
        return QUALIFIED
    if facts.human_replied:
        return REPLIED
    return NEW


def moves(current: str | None, computed: str) -> bool:
    """Whether what happened (``computed``) moves a deal at ``current``: forward, into lost (a
    won deal stays won), or out of lost."""
    if current == computed:
        return False
    if current is None or current == LOST:
        return True
    if computed == LOST:
        return current != WON
    return RANK.get(computed, -1) > RANK.get(current, -1)


def parse_stage_map(text: str) -> dict[str, str]:
    """``"replied=Qualified,qualified=Qualified,ordered=Proposition"`` -> {milestone: stage name}.
    A milestone left out keeps the lead in the stage it is in. ValueError names a wrong entry."""
    mapping: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        milestone, _, stage = entry.partition("=")
        milestone, stage = milestone.strip(), stage.strip()
        if milestone not in MAPPED or not stage:
            raise ValueError(
                f"CRM_STAGE_MAP entry {entry!r}: expected <milestone>=<Odoo stage name>, "
                f"the milestone one of {', '.join(MAPPED)}"
            )
        mapping[milestone] = stage
    return mapping


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list setting, as a tuple of names."""
    return tuple(name.strip() for name in text.split(",") if name.strip())
