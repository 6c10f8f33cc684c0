"""The one interface a CRM implements for the sync worker, and how a call can fail.

The sync worker (workers/crm.py) decides *what* to sync and keeps the mapping of local ids to
CRM ids; a CRM adapter only knows how to talk to its system. Another CRM is one more module that
implements ``Crm``. Every method makes a few HTTP calls and either returns or raises one of the
errors below; the class of the error is the whole contract with the worker:

- ``CrmTransientError``: try again later (timeouts, connection refused, 5xx, rate limits, the CRM
  not accepting our credentials yet). ``unconfirmed`` is true when the request may have been
  applied before the failure (a read timeout, a proxy's 502/504): a retry must check before
  writing again.
- ``CrmPermanentError``: the CRM refused this request and will refuse it again as it is
  (validation, access rights, a deleted record). The job stops and keeps the error for a person.

Methods that create a record search first, so calling one twice never makes two records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class PartnerIn:
    """A person as the CRM should know them. ``ref`` is our stable reference for the person
    ("wacrm-contact:12"): stored on the partner and searched first, so a retry after a create
    whose answer we lost finds that partner, phone or not (a WAHA contact known only by a LID)."""

    name: str
    phone: str | None  # E.164, "+6281212345678"
    ref: str | None = None


@dataclass(frozen=True)
class LeadIn:
    """A new lead. ``salesperson`` is a CRM login (None: unassigned); ``source`` a source name."""

    title: str
    partner_id: int
    contact_name: str | None
    phone: str | None
    tags: Sequence[str] = ()
    priority: str = "1"  # Odoo's scale: "0" low, "1" medium, "2" high, "3" very high
    salesperson: str | None = None
    source: str | None = None
    description: str | None = None
    # The partner was created a moment ago, so it has no open lead to reuse: no need to look.
    partner_is_new: bool = False
    stage: str | None = None  # a stage name (None: the CRM's first stage)
    outcome: Literal["won", "lost"] | None = None
    lost_reason: str | None = None
    team: str | None = None  # a sales team's name
    medium: str | None = None
    campaign: str | None = None
    expected_revenue: Decimal | None = None


@dataclass(frozen=True)
class LeadUpdate:
    """What changed on a lead; None (or empty) leaves that part as it is."""

    add_tags: Sequence[str] = ()
    remove_tags: Sequence[str] = ()
    priority: str | None = None
    salesperson: str | None = None  # a login; one without a CRM user leaves the lead's as it is
    stage: str | None = None
    outcome: Literal["won", "lost", "open"] | None = None  # "open": no longer lost
    lost_reason: str | None = None
    team: str | None = None
    expected_revenue: Decimal | None = None


@dataclass(frozen=True)
class Target:
    """The record a note, a log or an activity goes on: a lead, or a partner when there is none;
    a sale order for an order's payment and shipment."""

    kind: Literal["lead", "partner", "sale_order"]
    id: int


@dataclass(frozen=True)
class SaleLine:
    """One line of an order. ``sku`` is matched to a product's internal reference; a line
    without a match (or without a sku) goes on the generic product, under its own name."""

    name: str
    qty: Decimal
    price: Decimal
    sku: str | None = None


@dataclass(frozen=True)
class SaleOrderIn:
    """An order of the order system as the CRM's sale order. ``key`` is the order system's id:
    the sale order's customer reference, and its external id, so a retry finds it."""

    key: str
    partner_id: int
    lead_id: int | None
    lines: Sequence[SaleLine]
    total: Decimal | None
    currency: str | None
    origin: str


@dataclass(frozen=True)
class LogLine:
    """One message of the conversation log."""

    at: datetime
    author: str
    text: str


@dataclass(frozen=True)
class ActivityIn:
    summary: str
    due: date
    note: str = ""


@dataclass(frozen=True)
class LeadChange:
    """A lead as the CRM holds it now, read back because it changed there."""

    lead_id: int
    salesperson: str | None  # the user's login; None: unassigned
    stage: str | None  # the stage's name
    won: bool
    lost: bool
    changed_at: str  # the CRM's own change time, the cursor of the next read


@dataclass(frozen=True)
class OrderChange:
    """A step of an order run in the CRM (Odoo as the order system): a sale order confirmed
    (``order.created``), its invoice paid (``order.paid``), its delivery done with a tracking
    number (``order.shipped``)."""

    type: str  # "order.created" | "order.paid" | "order.shipped"
    source: str  # the record that says so: "sale.order:7", "account.move:3", "stock.picking:9"
    sale_order_id: int
    order_name: str  # the sale order's name, "S00042": the order's id here
    customer_reference: str | None  # client_order_ref: set on the sale orders we made
    partner_id: int
    partner_name: str | None
    phone: str | None  # as typed in the CRM
    total: Decimal | None
    currency: str | None
    tracking_number: str | None = None
    courier: str | None = None
    estimated_delivery_date: str | None = None  # YYYY-MM-DD
    changed_at: str = ""  # the CRM's change time of the record


class CrmError(Exception):
    """A call that did not succeed; ``error`` is what the CRM said, kept for people to see."""

    def __init__(self, message: str, *, error: dict[str, Any] | None = None, unconfirmed: bool = False):
        super().__init__(message)
        self.unconfirmed = unconfirmed
        self.error = error or {"message": message}
        if unconfirmed:
            self.error = {**self.error, "unconfirmed": True}


class CrmTransientError(CrmError):
    pass


class CrmPermanentError(CrmError):
    pass


class Crm(Protocol):
    name: str  # "odoo": the ``crm`` column of the mapping table

    def connection(self) -> dict[str, str]:
        """What the connected CRM is (``version``, ``protocol``); empty before the first call."""
        ...

    def take_notices(self) -> list[tuple[str, str | None]]:
        """What the connected CRM lacks that the sync would use, as ``(model, field)`` (field
        None: the whole model): each handed over once per process, as it is first noticed."""
        ...

    def upsert_partner(self, partner: PartnerIn) -> tuple[int, bool]:
        """The partner with our reference, else with this phone (however it was typed in the
        CRM), created (with the reference) if none; and whether it was created."""
        ...

    def upsert_partners(self, partners: Sequence[PartnerIn]) -> list[tuple[int, bool]]:
        """``upsert_partner`` for many people in as few calls as the CRM allows."""
        ...

    def create_leads(self, leads: Sequence[LeadIn]) -> list[int]:
        """New leads (for partners that cannot have one yet) in as few calls as the CRM allows."""
        ...

    def find_or_create_lead(self, lead: LeadIn) -> tuple[int, bool]:
        """The partner's open lead, or a new one from ``lead`` (with its tags); and whether it
        was created."""
        ...

    def update_lead(self, lead_id: int, update: LeadUpdate) -> None:
        """Everything that changed on the lead, in as few calls as the CRM allows: its fields in
        one write, then winning or losing it through the CRM's own actions."""
        ...

    def set_lead_tags(self, lead_id: int, add: Sequence[str], remove: Sequence[str]) -> None:
        """Add and remove tags by name (created when missing); other tags are left alone."""
        ...

    def set_lead_priority(self, lead_id: int, priority: str, salesperson: str | None) -> None:
        """The lead's priority, and its salesperson when we know one (a login; None, or a login
        without a CRM user, leaves the lead's salesperson as it is)."""
        ...

    def post_log(self, target: Target, heading: str, lines: Sequence[LogLine], marker: str) -> None:
        """Post a batch of conversation lines as one internal note; ``marker`` identifies it."""
        ...

    def post_note(self, target: Target, text: str, marker: str) -> None:
        """Post one internal note."""
        ...

    def find_note(self, target: Target, marker: str) -> str | None:
        """The body of a note already posted with ``marker`` on ``target``, if any (used after an
        unconfirmed post, so a retry does not post it twice)."""
        ...

    def upsert_sale_order(self, order: SaleOrderIn, check_first: bool) -> tuple[int, str]:
        """The sale order of ``order.key`` (looked for first with ``check_first``: a retry after
        an attempt that may have created it), else a new quotation; its id and its state."""
        ...

    def set_sale_order_state(
        self, sale_order_id: int, state: Literal["sale", "cancel"], check_first: bool
    ) -> str:
        """Confirm (``sale``) or cancel the sale order; with ``check_first``, read its state first,
        so a confirmation that did land is not repeated. The state it is in now."""
        ...

    def finish_activity(self, target: Target, marker: str, feedback: str) -> None:
        """Mark the activity with ``marker`` on ``target`` done (nothing if it is gone already)."""
        ...

    def changed_leads(self, since: str | None, limit: int) -> list[LeadChange]:
        """The leads changed since ``since`` (a ``changed_at`` read before; the same moment is
        read again, so nothing written in it is missed), oldest change first."""
        ...

    def changed_orders(
        self, since: dict[str, str | None], limit: int
    ) -> tuple[list[OrderChange], dict[str, str]]:
        """The order steps recorded in the CRM since the cursors (one per model, as
        ``changed_leads``), oldest first, and the cursors to read from next time."""
        ...

    def create_activity(self, target: Target, activity: ActivityIn, marker: str, check_first: bool) -> None:
        """Schedule a to-do for the target's salesperson (the CRM user when there is none);
        with ``check_first``, not if one with ``marker`` is already there."""
        ...
