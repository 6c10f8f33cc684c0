"""Identity resolution: which contact is this?

Every event says something about who sent it: a WhatsApp id, a BSUID, a phone as a person typed
it, an order-system contact id. Each of those becomes an ``Identity`` (kind, value); the table
``contact_identities`` is unique on it, so it is the database, not a check in Python, that decides
who wins when two workers meet a new number at once. When one event's identities belong to two
contacts, the two are one person: they are merged, and all history moves to the older one.

Except on an external id alone: an order system's contact id held by a contact with another
valid phone than the event's is a claim, not proof. The event goes to its phone's contact, the
two stay apart, and the conflict is recorded (``identity_conflicts``, shown on the contact and
its orders) for a person to settle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import phones
from models import Base, Company, Contact, ContactIdentity, Deal, IdentityConflict
from models.base import utcnow
from models.db import dialect_insert
from models.labels import merge_contact_labels
from pipeline import label_flow
from settings import settings

PHONE, WA_ID, BSUID, LID, EXTERNAL, INVALID_PHONE = (
    "phone",
    "wa_id",
    "bsuid",
    "lid",
    "external",
    "invalid_phone",
)

_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Identity:
    kind: str
    value: str


@dataclass
class Sighting:
    """What one event tells us about its person."""

    identities: list[Identity] = field(default_factory=list)
    name: str | None = None
    phone: phones.Phone | None = None
    company: str | None = None


def from_whatsapp(wa_id: str | None, bsuid: str | None = None, name: str | None = None) -> Sighting:
    """A WhatsApp sender: ``wa_id`` digits (no region applied) and/or a BSUID."""
    sighting = Sighting(name=name or None)
    if wa_id:
        sighting.phone = phones.from_wa_id(wa_id)
        sighting.identities.append(Identity(WA_ID, sighting.phone.digits))
        _add_phone(sighting)
    if bsuid:
        sighting.identities.append(Identity(BSUID, bsuid))
    return sighting


def from_typed_phone(
    raw: str, external_id: str | None = None, name: str | None = None, company: str | None = None
) -> Sighting:
    """A number a person typed (order system, forms): parsed with DEFAULT_REGION."""
    sighting = Sighting(
        name=name or None,
        phone=phones.from_user_input(raw, settings.default_region),
        company=(company or "").strip() or None,
    )
    _add_phone(sighting)
    if external_id:
        sighting.identities.append(Identity(EXTERNAL, external_id))
    return sighting


def _add_phone(sighting: Sighting) -> None:
    phone = sighting.phone
    assert phone is not None
    if phone.is_valid:
        sighting.identities.append(Identity(PHONE, phone.e164))  # type: ignore[arg-type]
    elif phone.digits:
        sighting.identities.append(Identity(INVALID_PHONE, phone.digits))


def resolve_contact(session: Session, sighting: Sighting) -> Contact:
    """Find or create the one contact these identities belong to, locked for this transaction."""
    if not sighting.identities:
        raise ValueError("an event with no identity (no phone, wa_id or user id) names nobody")
    for _ in range(_MAX_ATTEMPTS):
        wanted = list(dict.fromkeys(sighting.identities))
        owners = _owners(session, wanted)
        # An external id held by someone with another phone is not this person's: left out.
        disputed = _disputed(session, sighting, owners)
        wanted = [i for i in wanted if i not in disputed]
        owners = {i: owner for i, owner in owners.items() if i not in disputed}
        if not owners:
            contact = _try_create(session, sighting, wanted)
        else:
            contact = _lock_and_merge(session, sorted(set(owners.values())))
            if contact is not None and not _try_attach(
                session, contact, [i for i in wanted if i not in owners]
            ):
                contact = None
        if contact is not None:
            _update_profile(contact, sighting)
            if sighting.company and contact.company_id is None:
                contact.company_id = company_id(session, sighting.company)
            _record_conflicts(session, contact, sighting, disputed)
            return contact
        # Lost a race (another worker inserted one of these identities, or merged a contact we
        # saw): the committed state has changed, so look again.
        session.expire_all()
    raise RuntimeError("identity resolution did not settle; will be retried")


def _owners(session: Session, identities: list[Identity]) -> dict[Identity, int]:
    rows = session.execute(
        select(ContactIdentity.kind, ContactIdentity.value, ContactIdentity.contact_id).where(
            ContactIdentity.kind.in_({i.kind for i in identities}),
            ContactIdentity.value.in_({i.value for i in identities}),
        )
    )
    found = {Identity(kind, value): contact_id for kind, value, contact_id in rows}
    return {i: found[i] for i in identities if i in found}


def _disputed(
    session: Session, sighting: Sighting, owners: dict[Identity, int]
) -> dict[Identity, tuple[int, str]]:
    """The external ids (an order system's contact id) this event names that belong to a contact
    with another valid phone than the event's, with that contact and its phone.

    A phone identifies a person; an external id is only what another system believes, and it
    can be wrong (a reused account, a typo, a changed number). Merging on it alone would make two
    customers one, or keep sending to a number the customer no longer gave: it never decides
    against a phone. The event goes to its phone's contact, and the conflict is recorded.
    """
    phone = sighting.phone
    if phone is None or not phone.is_valid:
        return {}
    phone_owner = owners.get(Identity(PHONE, phone.e164))  # type: ignore[arg-type]
    claimed = {i: owner for i, owner in owners.items() if i.kind == EXTERNAL and owner != phone_owner}
    if not claimed:
        return {}
    phones_of = {
        contact_id: e164
        for contact_id, e164 in session.execute(
            select(Contact.id, Contact.phone_e164).where(Contact.id.in_(set(claimed.values())))
        )
    }
    return {
        i: (owner, phones_of[owner])
        for i, owner in claimed.items()
        if phones_of.get(owner) and phones_of[owner] != phone.e164
    }


def _record_conflicts(
    session: Session, contact: Contact, sighting: Sighting, disputed: dict[Identity, tuple[int, str]]
) -> None:
    """Keep each conflict once per (contact, identity, holder); a repeat only updates when it was
    last seen. The contact is locked, so two workers cannot both insert the same one."""
    now = utcnow()
    phone = sighting.phone.e164 if sighting.phone else None
    for identity, (holder, holder_phone) in disputed.items():
        known = session.scalars(
            select(IdentityConflict).where(
                IdentityConflict.contact_id == contact.id,
                IdentityConflict.other_contact_id == holder,
                IdentityConflict.kind == identity.kind,
                IdentityConflict.value == identity.value,
            )
        ).first()
        if known is None:
            session.add(
                IdentityConflict(
                    contact_id=contact.id,
                    other_contact_id=holder,
                    kind=identity.kind,
                    value=identity.value,
                    phone=phone,
                    other_phone=holder_phone,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        else:
            known.last_seen_at, known.phone, known.other_phone = now, phone, holder_phone


def _try_create(session: Session, sighting: Sighting, identities: list[Identity]) -> Contact | None:
    try:
        with session.begin_nested():
            contact = Contact(name=sighting.name)
            _update_profile(contact, sighting)  # written with the INSERT, not an UPDATE after it
            session.add(contact)
            session.flush()
            _insert_identities(session, contact, identities)
    except IntegrityError:
        return None
    # No lock to take: a row this transaction inserted is invisible to every other until the
    # commit, and a worker inserting one of its identities waits on the unique index until then,
    # so later work on it in this transaction is serialised as for a found, locked contact.
    return contact


def _try_attach(session: Session, contact: Contact, identities: list[Identity]) -> bool:
    if not identities:
        return True
    try:
        with session.begin_nested():
            _insert_identities(session, contact, identities)
    except IntegrityError:
        return False
    return True


def _insert_identities(session: Session, contact: Contact, identities: list[Identity]) -> None:
    session.add_all(ContactIdentity(contact_id=contact.id, kind=i.kind, value=i.value) for i in identities)
    session.flush()


def _lock_and_merge(session: Session, contact_ids: list[int]) -> Contact | None:
    """Lock the contacts (in id order, so two workers cannot deadlock) and merge them into one."""
    contacts = session.scalars(
        # FOR NO KEY UPDATE: serialises workers on the contact, but lets inserts that merely point
        # at it (their foreign-key check) through, so those can never close a deadlock cycle.
        select(Contact)
        .where(Contact.id.in_(contact_ids))
        .order_by(Contact.id)
        .with_for_update(key_share=True)
    ).all()
    if len(contacts) != len(contact_ids) or any(c.merged_into_id for c in contacts):
        return None  # merged away by another worker since we looked
    survivor, *absorbed = contacts
    for duplicate in absorbed:
        merge_into(session, survivor, duplicate)
    return survivor


def merge_into(session: Session, survivor: Contact, duplicate: Contact) -> None:
    """Make ``duplicate`` part of ``survivor``: every row that points at it moves, nothing is lost."""
    # At most one open deal per contact: the duplicate's yields to the survivor's.
    if session.scalar(select(Deal.id).where(Deal.contact_id == survivor.id, Deal.status == "open")):
        session.execute(
            update(Deal).where(Deal.contact_id == duplicate.id, Deal.status == "open").values(status="merged")
        )
    # Tables that allow one row per contact and thing settle their pairs first.
    merge_contact_labels(session, survivor.id, duplicate.id)
    label_flow.merge_contacts(session, survivor.id, duplicate.id)
    contacts = Base.metadata.tables["contacts"]
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if table is not contacts and any(fk.column is contacts.c.id for fk in column.foreign_keys):
                session.execute(
                    update(table).where(column == duplicate.id).values({column.name: survivor.id})
                )
    for attribute in (
        "name",
        "phone_e164",
        "company_id",
        "referral",
        "assigned_agent",  # a returning customer keeps their agent, whichever number they use
        "lead_class",
        "lead_score",
        "lead_reasons",
        "typical_response_seconds",
    ):
        if getattr(survivor, attribute) is None:
            setattr(survivor, attribute, getattr(duplicate, attribute))
    if survivor.lead_source == "organic":
        survivor.lead_source = duplicate.lead_source
    survivor.last_inbound_at = _latest(survivor.last_inbound_at, duplicate.last_inbound_at)
    survivor.last_outbound_at = _latest(survivor.last_outbound_at, duplicate.last_outbound_at)
    # Whoever said STOP stays opted out, from the first time they said it.
    survivor.opted_out_at = _earliest(survivor.opted_out_at, duplicate.opted_out_at)
    # A pause on either number holds for the person.
    survivor.automation_paused_at = _earliest(survivor.automation_paused_at, duplicate.automation_paused_at)
    if survivor.phone_e164:
        survivor.phone_invalid_reason = None
    # Contacts merged into the duplicate earlier now point straight at the survivor.
    session.execute(
        update(Contact).where(Contact.merged_into_id == duplicate.id).values(merged_into_id=survivor.id)
    )
    duplicate.merged_into_id = survivor.id
    session.flush()


def company_id(session: Session, name: str) -> int:
    """The company of that name, created on first mention (the unique name settles races)."""
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(insert(Company).values(name=name, created_at=utcnow()).on_conflict_do_nothing())
    return session.scalars(select(Company.id).where(Company.name == name)).one()


def _update_profile(contact: Contact, sighting: Sighting) -> None:
    if sighting.name and not contact.name:
        contact.name = sighting.name
    phone = sighting.phone
    if phone is None:
        return
    if phone.is_valid:
        if not contact.phone_e164:
            contact.phone_e164 = phone.e164
        contact.phone_invalid_reason = None
    elif not contact.phone_e164:
        contact.phone_invalid_reason = phone.invalid_reason


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((t for t in (a, b) if t is not None), default=None)
