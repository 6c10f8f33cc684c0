"""Odoo through its external JSON-RPC API (``POST {ODOO_URL}/jsonrpc``), on ``requests``.

``OdooRpc`` is the transport: ``common.authenticate`` once with the API key as password, then
``object.execute_kw`` per call, every request with a timeout, and Odoo's answers turned into
the CRM errors of ``base``:

- HTTP 5xx or 429, a refused connection, a timeout: ``CrmTransientError`` (a read timeout, a
  connection dropped after sending, or a proxy's 502/504, which gave up waiting for Odoo, is
  marked ``unconfirmed``: Odoo may have done it);
- Odoo's error envelope (HTTP 200, ``{"error": {"data": {"name": "odoo.exceptions.…"}}}``):
  ``ValidationError``, ``UserError``, ``AccessError``, ``MissingError`` and unknown server
  errors are ``CrmPermanentError``; ``AccessDenied`` (the key is wrong or revoked) and
  PostgreSQL concurrency errors are transient, so the backlog drains once an operator fixes the
  key or the database calms down;
- any other HTTP status: ``CrmPermanentError`` (a wrong ``ODOO_URL`` path, a proxy refusing).

``OdooCrm`` implements the ``Crm`` interface on it. Records are found before they are created
(partners by our reference in ``ref``, then by phone however it was typed; leads as the
partner's open lead; tags and sources by name), so a retry after an unanswered create finds
what the first attempt made. Optional fields
(``mobile`` is gone in Odoo 19) are looked up once per process with ``fields_get``.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import logging
import re
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import requests

from domain import phones
from integrations.crm.base import (
    ActivityIn,
    CrmError,
    CrmPermanentError,
    CrmTransientError,
    LeadChange,
    LeadIn,
    LeadUpdate,
    LogLine,
    OrderChange,
    PartnerIn,
    SaleLine,
    SaleOrderIn,
    Target,
)
from integrations.network import never_sent

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.05
# How long tag and source ids are remembered by name before they are looked up again.
NAMES_CACHED_SECONDS = 600
# How many partners whose phone ends in the same four digits we compare, at most.
PHONE_CANDIDATES = 200
PERMANENT = frozenset(
    {
        "odoo.exceptions.ValidationError",
        "odoo.exceptions.UserError",
        "odoo.exceptions.AccessError",
        "odoo.exceptions.MissingError",
        "odoo.exceptions.RedirectWarning",
    }
)
# Errors that say "not now" rather than "not this": bad credentials (fixed by an operator),
# an expired session, and PostgreSQL concurrency failures Odoo gave up retrying.
TRANSIENT_PREFIXES = (
    "odoo.exceptions.AccessDenied",
    "odoo.http.SessionExpiredException",
    "odoo.exceptions.ConcurrencyError",
    "psycopg2.OperationalError",
    "psycopg2.errors.SerializationFailure",
    "psycopg2.errors.DeadlockDetected",
    "psycopg2.errors.LockNotAvailable",
    "psycopg2.extensions.TransactionRollbackError",
)
_SESSION_EXPIRED_CODE = 100
_PROXY_GAVE_UP = (502, 504)
MODELS = {"lead": "crm.lead", "partner": "res.partner", "sale_order": "sale.order"}
# The module of our external ids in ir.model.data: not an installed module's name, so no module
# update ever cleans them up.
XMLID_MODULE = "wacrm"
_STEP_ORDER = {"order.created": 0, "order.paid": 1, "order.shipped": 2}
_BAD_REQUEST = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


# The name of each positional argument the client passes, per method: JSON-2 takes names only
# (execute_kw keeps them positional: Odoo 17's create needs its vals_list there). A method not
# listed is a record method whose one positional argument is its records' ids.
POSITIONAL_NAMES: dict[str, tuple[str, ...]] = {
    "search_read": ("domain",),
    "search": ("domain",),
    "search_count": ("domain",),
    "create": ("vals_list",),
    "fields_get": (),
    "context_get": (),
    "write": ("ids", "vals"),
    "read": ("ids", "fields"),
}
JSONRPC, JSON2 = "jsonrpc", "json2"
PROTOCOLS = ("auto", JSONRPC, JSON2)
JSON2_SINCE = 19  # the first Odoo version serving POST /json/2/<model>/<method>
# How long the connected version (and the fields read with it) is trusted before it is read
# again: an Odoo upgraded under a running worker is noticed within this time.
VERSION_CACHED_SECONDS = 600


class OdooRpc:
    """One Odoo database, reached as one user with an API key.

    ``connect`` reads the server's version once (``common.version`` over JSON-RPC, else
    ``GET /web/version``) and picks the protocol: Odoo 19's JSON-2 (``POST /json/2/<model>/
    <method>``, ``Authorization: bearer <key>``, named arguments) on 19 and later, JSON-RPC's
    ``execute_kw`` before (or always, with ``protocol="jsonrpc"``). One ``requests.Session``
    keeps the connection alive from call to call."""

    def __init__(
        self,
        url: str,
        db: str,
        login: str,
        api_key: str,
        timeout: float,
        http: requests.Session | None = None,
        protocol: str = "auto",
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"ODOO_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.base_url = url.rstrip("/")
        self.endpoint = self.base_url + "/jsonrpc"
        self.db, self.login, self.api_key, self.timeout = db, login, api_key, timeout
        self.http = http or requests.Session()
        self.wanted = protocol
        self.protocol: str | None = None  # chosen at connect
        self.version: tuple[int, ...] = ()
        self.connected_at = 0.0
        self._uid: int | None = None
        self._ids = itertools.count(1)

    def connect(self) -> None:
        """Read the server's version and choose the protocol, once (again after
        VERSION_CACHED_SECONDS); logged each time it changes."""
        if self.protocol is not None and time.monotonic() - self.connected_at < VERSION_CACHED_SECONDS:
            return
        try:
            info = self.call("common", "version") or {}
            numbers = info.get("server_version_info") or []
        except CrmPermanentError:  # no JSON-RPC (a later Odoo, a proxy allowing JSON-2 only)
            numbers = self._get("/web/version").get("version_info") or []
        version = tuple(int(n) for n in numbers[:2] if isinstance(n, int) or str(n).isdigit())
        if self.wanted == "auto":
            protocol = JSON2 if version and version[0] >= JSON2_SINCE and self.api_key else JSONRPC
        else:
            protocol = self.wanted
        if (version, protocol) != (self.version, self.protocol):
            log.info(
                "odoo: connected to Odoo %s, speaking %s",
                ".".join(map(str, version)) or "of unknown version",
                "JSON-2" if protocol == JSON2 else "JSON-RPC",
                extra={"odoo_version": ".".join(map(str, version)), "protocol": protocol},
            )
            self._uid = None
        self.version, self.protocol, self.connected_at = version, protocol, time.monotonic()

    def _get(self, path: str) -> dict[str, Any]:
        try:
            response = self.http.get(self.base_url + path, timeout=self._timeouts(), allow_redirects=False)
        except requests.RequestException as exc:
            raise _network_error(exc) from exc
        self._check_status(response)
        try:
            answer = response.json()
        except ValueError as exc:
            raise CrmPermanentError(f"odoo: GET {path} did not answer JSON") from exc
        return answer if isinstance(answer, dict) else {}

    def _timeouts(self) -> tuple[float, float]:
        return (min(CONNECT_TIMEOUT_SECONDS, self.timeout), self.timeout)

    def _check_status(self, response: requests.Response) -> None:
        if response.status_code == 200:
            return
        error = {"message": f"odoo: HTTP {response.status_code}", "body": response.text[:500]}
        if response.status_code == 429 or response.status_code >= 500:
            # A proxy's 502/504: it sent the request on and gave up on the answer.
            unconfirmed = response.status_code in _PROXY_GAVE_UP
            raise CrmTransientError(error["message"], error=error, unconfirmed=unconfirmed)
        raise CrmPermanentError(error["message"], error=error)

    def call(self, service: str, method: str, *args: Any) -> Any:
        """One JSON-RPC call; its ``result``, or a ``CrmError``."""
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": next(self._ids),
            "params": {"service": service, "method": method, "args": list(args)},
        }
        try:
            response = self.http.post(
                self.endpoint, json=body, timeout=self._timeouts(), allow_redirects=False
            )
        except requests.RequestException as exc:
            raise _network_error(exc) from exc
        self._check_status(response)
        try:
            envelope = response.json()
        except ValueError as exc:
            error = {"message": "odoo: the answer is not JSON", "body": response.text[:500]}
            raise CrmTransientError(error["message"], error=error, unconfirmed=True) from exc
        if not isinstance(envelope, dict):
            raise CrmPermanentError("odoo: the answer is not a JSON-RPC envelope")
        if envelope.get("error") is not None:
            raise self._rpc_error(envelope["error"])
        return envelope.get("result")

    def uid(self) -> int:
        """The user id, the first time: ``common.authenticate`` (API key as password) over
        JSON-RPC, ``res.users/context_get`` over JSON-2."""
        self.connect()
        if self._uid is None:
            if self.protocol == JSON2:
                uid = (self._json2("res.users", "context_get", {}) or {}).get("uid")
            else:
                uid = self.call("common", "authenticate", self.db, self.login, self.api_key, {})
            if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
                message = f"odoo: login {self.login!r} on database {self.db!r} refused (check ODOO_API_KEY)"
                raise CrmTransientError(message, error={"message": message, "name": "AccessDenied"})
            self._uid = uid
        return self._uid

    def execute(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``model.method(*args, **kwargs)``: ``object.execute_kw(db, uid, key, model, method,
        args, kwargs)`` over JSON-RPC; over JSON-2 the positional arguments get their names
        (POSITIONAL_NAMES) and go in the body with the rest."""
        self.connect()
        if self.protocol == JSON2:
            names = POSITIONAL_NAMES.get(method, ("ids",))
            if len(args) > len(names):
                raise ValueError(f"odoo: {method} takes at most {len(names)} positional arguments")
            return self._json2(model, method, {**dict(zip(names, args, strict=False)), **kwargs})
        return self.call(
            "object", "execute_kw", self.db, self.uid(), self.api_key, model, method, list(args), kwargs
        )

    def _json2(self, model: str, method: str, body: dict[str, Any]) -> Any:
        """``POST /json/2/<model>/<method>``: the return value, or a ``CrmError`` from the status
        and Odoo's error body (``{"name", "message", ...}``, or a bare string)."""
        headers = {"Authorization": f"bearer {self.api_key}", "X-Odoo-Database": self.db}
        try:
            response = self.http.post(
                f"{self.base_url}/json/2/{model}/{method}",
                json=body,
                headers=headers,
                timeout=self._timeouts(),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _network_error(exc) from exc
        try:
            answer = response.json()
        except ValueError as exc:
            if response.status_code == 200:
                error = {"message": "odoo: the answer is not JSON", "body": response.text[:500]}
                raise CrmTransientError(error["message"], error=error, unconfirmed=True) from exc
            answer = None
        if response.status_code == 200:
            return answer
        return self._raise_json2(response, answer)

    def _raise_json2(self, response: requests.Response, answer: Any) -> Any:
        status = response.status_code
        if not isinstance(answer, dict | str):
            self._check_status(response)  # a proxy's page: by its status alone
            raise CrmPermanentError(f"odoo: HTTP {status}")
        data = answer if isinstance(answer, dict) else {"message": answer}
        name = str(data.get("name") or "")
        message = f"odoo: {data.get('message') or f'HTTP {status}'}"
        kept = {"message": message, "name": name, "code": status}
        if status == 401:  # the key is wrong, expired or revoked: an operator fixes it, the jobs wait
            self._uid = None
            raise CrmTransientError(message, error=kept)
        if name.startswith(TRANSIENT_PREFIXES) or status == 429 or (status >= 500 and not name):
            raise CrmTransientError(message, error=kept, unconfirmed=status in _PROXY_GAVE_UP)
        raise CrmPermanentError(message, error=kept)

    def _rpc_error(self, error: dict[str, Any]) -> CrmError:
        data = error.get("data") if isinstance(error.get("data"), dict) else {}
        name = str(data.get("name") or "")
        message = str(data.get("message") or error.get("message") or "Odoo Server Error")
        kept = {"message": f"odoo: {message}", "name": name, "code": error.get("code")}
        if name.startswith("odoo.exceptions.AccessDenied"):
            self._uid = None  # log in again next time: the key may have been replaced
        if name.startswith(TRANSIENT_PREFIXES) or error.get("code") == _SESSION_EXPIRED_CODE:
            return CrmTransientError(kept["message"], error=kept)
        # PERMANENT, and any other server error: the same request would fail the same way.
        return CrmPermanentError(kept["message"], error=kept)


class OdooCrm:
    """The ``Crm`` interface on Odoo's models: res.partner, crm.lead, crm.tag, utm.source,
    res.users, mail.message (chatter), mail.activity (through ``activity_schedule``)."""

    name = "odoo"

    def __init__(self, rpc: OdooRpc, region: str, *, generic_product: str = "WACRM-ITEM") -> None:
        self.rpc = rpc
        self.region = region
        self.generic_product = generic_product
        self._pricelists: dict[str, int | bool] = {}
        self._stages: list[dict[str, Any]] | None = None
        self._teams: dict[str, int | bool] = {}
        self._reported: set[str] = set()
        self._fields: dict[str, frozenset[str]] = {}
        self._names: dict[tuple[str, str], int] = {}  # (model, name) -> id: tags, sources
        self._names_since = time.monotonic()
        self._users: dict[str, int] = {}
        self._fields_version: tuple[int, ...] = ()
        self._missing_reported: set[str] = set()
        self._notices: list[tuple[str, str | None]] = []

    # --- partners and leads ------------------------------------------------------------------

    def upsert_partner(self, partner: PartnerIn) -> tuple[int, bool]:
        found = self._partner_by_ref(partner.ref) if partner.ref else None
        if found is None and partner.phone:
            found = self._partner_by_phone(partner.phone)
        if found is not None:
            return found, False
        values = {"name": partner.name, "phone": partner.phone or False}
        if partner.ref:
            values["ref"] = partner.ref
        return _one_id(self.rpc.execute("res.partner", "create", values)), True

    def upsert_partners(self, partners: Sequence[PartnerIn]) -> list[tuple[int, bool]]:
        """``upsert_partner`` for many at once: one ``search_read`` for all their references and
        phones, one ``create`` of the list of those not found."""
        if not partners:
            return []
        fields = [f for f in ("phone", "mobile") if f in self._fields_of("res.partner")]
        refs = [p.ref for p in partners if p.ref]
        tails = sorted({re.sub(r"\D", "", p.phone)[-4:] for p in partners if p.phone})
        leaves: list[Any] = [("ref", "in", refs)] if refs else []
        leaves += [(f, "ilike", tail) for tail in tails for f in fields]
        rows: list[dict[str, Any]] = []
        if leaves:
            rows = self.rpc.execute(
                "res.partner",
                "search_read",
                ["|"] * (len(leaves) - 1) + leaves,
                fields=["id", "ref", *fields],
                order="id asc",
                limit=PHONE_CANDIDATES * len(partners),
            )
        by_ref: dict[str, int] = {}
        by_phone: dict[str, int] = {}
        for row in rows:  # oldest first: the oldest wins
            if row.get("ref"):
                by_ref.setdefault(str(row["ref"]), int(row["id"]))
            for field in fields:
                value = row.get(field)
                if value:
                    e164 = phones.from_user_input(str(value), self.region).e164
                    if e164:
                        by_phone.setdefault(e164, int(row["id"]))
        found: list[int | None] = [
            by_ref.get(p.ref or "") or (by_phone.get(p.phone) if p.phone else None) for p in partners
        ]
        missing = [index for index, partner_id in enumerate(found) if partner_id is None]
        if missing:
            values = []
            for index in missing:
                partner = partners[index]
                value = {"name": partner.name, "phone": partner.phone or False}
                if partner.ref:
                    value["ref"] = partner.ref
                values.append(value)
            created = _ids(self.rpc.execute("res.partner", "create", values))
            for index, partner_id in zip(missing, created, strict=True):
                found[index] = partner_id
        return [(int(partner_id or 0), index in missing) for index, partner_id in enumerate(found)]

    def create_leads(self, leads: Sequence[LeadIn]) -> list[int]:
        """New leads for partners that have none (just created): one ``create`` of the list."""
        if not leads:
            return []
        created = self._create_leads(leads)
        for lead_id, lead in zip(created, leads, strict=True):
            self._close(lead_id, lead.outcome, lead.lost_reason)
        return created

    def find_or_create_lead(self, lead: LeadIn) -> tuple[int, bool]:
        if not lead.partner_is_new:
            open_leads = self.rpc.execute(
                "crm.lead",
                "search_read",
                [("partner_id", "=", lead.partner_id), ("stage_id.is_won", "=", False)],
                fields=["id"],
                order="id asc",
                limit=1,
            )
            if open_leads:
                return int(open_leads[0]["id"]), False
        lead_id = self._create_leads([lead])[0]
        self._close(lead_id, lead.outcome, lead.lost_reason)
        return lead_id, True

    def _create_leads(self, leads: Sequence[LeadIn]) -> list[int]:
        try:
            return _ids(self.rpc.execute("crm.lead", "create", [self._lead_values(lead) for lead in leads]))
        except CrmPermanentError:
            if not self._names:
                raise
            # A tag, source, medium or campaign we remembered may have been deleted in Odoo:
            # look the names up again, once.
            self._names, self._names_since = {}, time.monotonic()
            return _ids(self.rpc.execute("crm.lead", "create", [self._lead_values(lead) for lead in leads]))

    def _lead_values(self, lead: LeadIn) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": lead.title,
            "partner_id": lead.partner_id,
            "contact_name": lead.contact_name or False,
            "phone": lead.phone or False,
            "priority": lead.priority,
            # Odoo assigns the calling user when user_id is absent: unassigned must be explicit.
            "user_id": self._user_id(lead.salesperson) if lead.salesperson else False,
        }
        if lead.description:
            values["description"] = lead.description
        if lead.tags and self._has("crm.lead", "tag_ids"):
            values["tag_ids"] = [[6, 0, self._named_ids("crm.tag", lead.tags)]]
        for name, field, model in (
            (lead.source, "source_id", "utm.source"),
            (lead.medium, "medium_id", "utm.medium"),
            (lead.campaign, "campaign_id", "utm.campaign"),
        ):
            if name and self._has("crm.lead", field):
                found = self._named_ids(model, [name])
                if found:
                    values[field] = found[0]
        team = self._team_id(lead.team) if lead.team else False
        if team:
            values["team_id"] = team
        if lead.expected_revenue is not None:
            values["expected_revenue"] = float(lead.expected_revenue)
        stage = self._stage_id(lead.stage, team) if lead.stage and lead.outcome is None else False
        if stage:
            values["stage_id"] = stage
        return self._known("crm.lead", values)

    def update_lead(self, lead_id: int, update: LeadUpdate) -> None:
        values: dict[str, Any] = {}
        commands = [[4, tag_id, 0] for tag_id in self._named_ids("crm.tag", update.add_tags)]
        removed = self._named_ids("crm.tag", update.remove_tags, create=False)
        commands += [[3, tag_id, 0] for tag_id in removed]
        if commands:
            values["tag_ids"] = commands
        if update.priority is not None:
            values["priority"] = update.priority
        user = self._user_id(update.salesperson) if update.salesperson else False
        if user:  # never unassign: a salesperson set by hand in Odoo stays
            values["user_id"] = user
        team = self._team_id(update.team) if update.team else False
        if team:
            values["team_id"] = team
        if update.expected_revenue is not None:
            values["expected_revenue"] = float(update.expected_revenue)
        if update.outcome == "open":
            # No longer lost (a new order after a cancelled one): unarchive, as the UI's Restore.
            self.rpc.execute("crm.lead", "action_unarchive", [lead_id])
        if update.stage and update.outcome in (None, "open"):
            stage = self._stage_id(update.stage, team)
            if stage:
                values["stage_id"] = stage
        values = self._known("crm.lead", values)
        if values:
            try:
                self.rpc.execute("crm.lead", "write", [lead_id], values)
            except CrmPermanentError:
                if not commands:
                    raise
                # A tag we remembered may have been deleted in Odoo: look the names up again, once.
                self._names = {key: value for key, value in self._names.items() if key[0] != "crm.tag"}
                values.pop("tag_ids")
                retry = LeadUpdate(add_tags=update.add_tags, remove_tags=update.remove_tags)
                self.rpc.execute("crm.lead", "write", [lead_id], values)
                self.update_lead(lead_id, retry)
        self._close(lead_id, update.outcome, update.lost_reason)

    def _close(self, lead_id: int, outcome: str | None, lost_reason: str | None) -> None:
        """Won or lost through Odoo's own actions (they set the won stage, the probability, the
        closing date and archive a lost lead), never by writing those fields."""
        if outcome == "won":
            self.rpc.execute("crm.lead", "action_set_won", [lead_id])
        elif outcome == "lost":
            extra: dict[str, Any] = {}
            if lost_reason:
                extra["lost_reason_id"] = (self._named_ids("crm.lost.reason", [lost_reason]) or [False])[0]
            try:
                self.rpc.execute("crm.lead", "action_set_lost", [lead_id], **extra)
            except CrmPermanentError:
                if not lost_reason:
                    raise
                # The lost reason we remembered may have been deleted: look it up again, once.
                self._names.pop(("crm.lost.reason", lost_reason), None)
                extra["lost_reason_id"] = (self._named_ids("crm.lost.reason", [lost_reason]) or [False])[0]
                self.rpc.execute("crm.lead", "action_set_lost", [lead_id], **extra)

    def _stage_id(self, name: str, team: int | bool) -> int | bool:
        """The stage called ``name`` of the team (or shared by all teams), from the stages read
        once per process; never created. A name Odoo does not have is reported once."""
        stages = self._all_stages()
        candidates = [s for s in stages if s["name"].casefold() == name.casefold()]
        own = [s for s in candidates if team and team in s["teams"]]
        shared = [s for s in candidates if not s["teams"]]
        found = (own or shared or [None])[0]
        if found is None:
            self._report(
                f"odoo: no crm.stage named {name!r} for the team (CRM_STAGE_MAP): the lead stays where it is"
            )
            return False
        return int(found["id"])

    def _all_stages(self) -> list[dict[str, Any]]:
        """Every stage, with its teams, read once per process."""
        if self._stages is None:
            team_field = "team_ids" if "team_ids" in self._fields_of("crm.stage") else "team_id"
            rows = self.rpc.execute(
                "crm.stage", "search_read", [], fields=["id", "name", "is_won", "sequence", team_field]
            )
            self._stages = []
            for row in sorted(rows, key=lambda r: (r.get("sequence") or 0, r["id"])):
                teams = row.get(team_field) or []
                if teams and not isinstance(teams[0], list) and team_field == "team_id":
                    teams = [teams[0]]  # many2one: [id, "name"]
                self._stages.append(
                    {"id": int(row["id"]), "name": row["name"], "teams": list(teams), "is_won": row["is_won"]}
                )
        return self._stages

    def _team_id(self, name: str) -> int | bool:
        if name not in self._teams:
            ids = self.rpc.execute("crm.team", "search", [("name", "=ilike", name)], order="id asc", limit=1)
            self._teams[name] = int(ids[0]) if ids else False
            if not ids:
                self._report(f"odoo: no crm.team named {name!r}: leads are created without a team")
        return self._teams[name]

    def _report(self, message: str) -> None:
        """A configuration Odoo does not match: logged once per process, clearly."""
        if message not in self._reported:
            self._reported.add(message)
            log.warning(message)

    def set_lead_priority(self, lead_id: int, priority: str, salesperson: str | None) -> None:
        values: dict[str, Any] = {"priority": priority}
        user = self._user_id(salesperson) if salesperson else False
        if user:  # never unassign: a salesperson set by hand in Odoo stays
            values["user_id"] = user
        self.rpc.execute("crm.lead", "write", [lead_id], values)

    def set_lead_tags(self, lead_id: int, add: Sequence[str], remove: Sequence[str]) -> None:
        if not add and not remove:
            return
        try:
            self._write_tags(lead_id, add, remove)
        except CrmPermanentError:
            # A tag we remembered may have been deleted in Odoo: look the names up again, once.
            self._names = {key: value for key, value in self._names.items() if key[0] != "crm.tag"}
            self._write_tags(lead_id, add, remove)

    # --- sale orders ---------------------------------------------------------------------------

    def upsert_sale_order(self, order: SaleOrderIn, check_first: bool) -> tuple[int, str]:
        xmlid = sale_order_xmlid(order.key)
        if check_first:
            found = self._sale_order_by_key(order, xmlid)
            if found is not None:
                return found
        values: dict[str, Any] = {
            "partner_id": order.partner_id,
            "client_order_ref": order.key,
            "origin": order.origin,
            "order_line": [[0, 0, line] for line in self._order_lines(order)],
        }
        if order.lead_id:
            values["opportunity_id"] = order.lead_id
        pricelist = self._pricelist(order.currency) if order.currency else False
        if pricelist:
            values["pricelist_id"] = pricelist
        sale_order_id = _one_id(self.rpc.execute("sale.order", "create", values))
        self._stamp(xmlid, sale_order_id)
        return sale_order_id, "draft"

    def set_sale_order_state(self, sale_order_id: int, state: str, check_first: bool) -> str:
        if check_first:
            rows = self.rpc.execute("sale.order", "read", [sale_order_id], fields=["state"])
            if not rows:
                raise CrmPermanentError(f"odoo: sale.order {sale_order_id} was deleted")
            if rows[0]["state"] == state:
                return state
        if state == "sale":
            self.rpc.execute("sale.order", "action_confirm", [sale_order_id])
        else:
            # No "are you sure" wizard: cancel outright (the UI asks when e-mails were sent).
            self.rpc.execute(
                "sale.order", "action_cancel", [sale_order_id], context={"disable_cancel_warning": True}
            )
        return state

    def _sale_order_by_key(self, order: SaleOrderIn, xmlid: str) -> tuple[int, str] | None:
        """The sale order an earlier attempt made: by our external id, else by the customer
        reference (the create landed, the stamp did not)."""
        stamps = self.rpc.execute(
            "ir.model.data",
            "search_read",
            [("module", "=", XMLID_MODULE), ("name", "=", xmlid), ("model", "=", "sale.order")],
            fields=["res_id"],
            limit=1,
        )
        domain: list[Any] = [("client_order_ref", "=", order.key), ("partner_id", "=", order.partner_id)]
        if stamps:
            domain = [("id", "=", int(stamps[0]["res_id"]))]
        rows = self.rpc.execute(
            "sale.order", "search_read", domain, fields=["id", "state"], order="id asc", limit=1
        )
        if not rows:
            return None
        if not stamps:
            self._stamp(xmlid, int(rows[0]["id"]))
        return int(rows[0]["id"]), str(rows[0]["state"])

    def _stamp(self, xmlid: str, sale_order_id: int) -> None:
        self.rpc.execute(
            "ir.model.data",
            "create",
            {
                "module": XMLID_MODULE,
                "name": xmlid,
                "model": "sale.order",
                "res_id": sale_order_id,
                "noupdate": True,
            },
        )

    def _order_lines(self, order: SaleOrderIn) -> list[dict[str, Any]]:
        """The order's lines on their products (by internal reference, else the generic
        product), plus a line that makes the untaxed total the order's total when the items do
        not add up to it (shipping, a discount); an order without items is one generic line."""
        lines = list(order.lines)
        if not lines:
            lines = [SaleLine(f"Order {order.key}", Decimal(1), order.total or Decimal(0))]
        products = self._products([line.sku for line in lines if line.sku] + [self.generic_product])
        generic = products.get(self.generic_product)
        values = []
        for line in lines:
            product = products.get(line.sku or "") or generic
            if product is None:
                raise CrmPermanentError(
                    f"odoo: no product with internal reference {self.generic_product!r} "
                    "(ODOO_GENERIC_PRODUCT) for order lines without a matching product"
                )
            name = line.name if not line.sku else f"[{line.sku}] {line.name}"
            values.append(
                {
                    "product_id": product,
                    "name": name,
                    "product_uom_qty": float(line.qty),
                    "price_unit": float(line.price),
                }
            )
        if order.lines and order.total is not None:
            difference = order.total - sum((line.qty * line.price for line in order.lines), Decimal(0))
            if difference != 0:
                if generic is None:
                    raise CrmPermanentError(
                        f"odoo: no product with internal reference {self.generic_product!r} "
                        "(ODOO_GENERIC_PRODUCT)"
                    )
                values.append(
                    {
                        "product_id": generic,
                        "name": "Shipping and adjustments",
                        "product_uom_qty": 1.0,
                        "price_unit": float(difference),
                    }
                )
        return values

    def _products(self, codes: list[str]) -> dict[str, int]:
        """Product ids by internal reference, in one call (the oldest wins a duplicate)."""
        rows = self.rpc.execute(
            "product.product",
            "search_read",
            [("default_code", "in", list(dict.fromkeys(codes)))],
            fields=["id", "default_code"],
            order="id desc",
        )
        return {str(row["default_code"]): int(row["id"]) for row in rows}

    def _pricelist(self, currency: str) -> int | bool:
        """A pricelist in the order's currency, so the sale order is in it; False when Odoo has
        none (the order is then in the company's currency)."""
        if currency not in self._pricelists:
            ids = self.rpc.execute(
                "product.pricelist", "search", [("currency_id.name", "=", currency)], order="id asc", limit=1
            )
            self._pricelists[currency] = int(ids[0]) if ids else False
        return self._pricelists[currency]

    # --- back from Odoo ---------------------------------------------------------------------

    def changed_leads(self, since: str | None, limit: int) -> list[LeadChange]:
        domain: list[Any] = [("active", "in", [True, False])]
        if since:
            domain.append(("write_date", ">=", since))
        rows = self.rpc.execute(
            "crm.lead",
            "search_read",
            domain,
            fields=["id", "user_id", "stage_id", "active", "probability", "write_date"],
            order="write_date asc, id asc",
            limit=limit,
        )
        logins = self._logins({int(row["user_id"][0]) for row in rows if row.get("user_id")})
        won = {s["id"] for s in self._all_stages() if s.get("is_won")}
        changes = []
        for row in rows:
            stage = row.get("stage_id") or None
            stage_id = int(stage[0]) if stage else None
            changes.append(
                LeadChange(
                    lead_id=int(row["id"]),
                    salesperson=logins.get(int(row["user_id"][0])) if row.get("user_id") else None,
                    stage=str(stage[1]) if stage else None,
                    won=stage_id in won,
                    lost=not row.get("active") and not row.get("probability"),
                    changed_at=str(row["write_date"]),
                )
            )
        return changes

    def changed_orders(
        self, since: dict[str, str | None], limit: int
    ) -> tuple[list[OrderChange], dict[str, str]]:
        """Confirmed sale orders, paid customer invoices and done outgoing pickings with a
        tracking number, written since the cursors: one ``search_read`` per model, then one for
        the sale orders they belong to and one for their customers."""
        cursors = {model: value for model, value in since.items() if value}

        def changed(model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
            needed = {*fields, *(leaf[0] for leaf in domain if isinstance(leaf, tuple))} - {"id"}
            if not self._has(model) or not all([self._has(model, name) for name in sorted(needed)]):
                return []  # that module is not installed there (reported once): nothing to read
            if cursors.get(model):
                domain = [*domain, ("write_date", ">=", cursors[model])]
            rows = self.rpc.execute(
                model,
                "search_read",
                domain,
                fields=[*fields, "write_date"],
                order="write_date asc, id asc",
                limit=limit,
            )
            if rows:
                cursors[model] = str(rows[-1]["write_date"])
            return rows

        order_fields = [
            "id",
            "name",
            "partner_id",
            "amount_total",
            "currency_id",
            "client_order_ref",
            "state",
        ]
        orders = {int(r["id"]): r for r in changed("sale.order", [("state", "=", "sale")], order_fields)}
        invoices = changed(
            "account.move",
            [("move_type", "=", "out_invoice"), ("payment_state", "in", ["paid", "in_payment"])],
            ["id", "invoice_origin"],
        )
        pickings = changed(
            "stock.picking",
            [
                ("state", "=", "done"),
                ("picking_type_code", "=", "outgoing"),
                ("carrier_tracking_ref", "!=", False),
            ],
            ["id", "sale_id", "origin", "carrier_tracking_ref", "carrier_id", "scheduled_date"],
        )
        names = {str(r["invoice_origin"]).split(",")[0].strip() for r in invoices if r.get("invoice_origin")}
        names |= {str(r["origin"]) for r in pickings if r.get("origin") and not r.get("sale_id")}
        ids = {int(r["sale_id"][0]) for r in pickings if r.get("sale_id")}
        known_names = {str(o["name"]) for o in orders.values()}
        wanted_ids, wanted_names = sorted(ids - set(orders)), sorted(names - known_names)
        if wanted_ids or wanted_names:
            domain: list[Any] = ["|", ("id", "in", wanted_ids), ("name", "in", wanted_names)]
            for row in self.rpc.execute(
                "sale.order", "search_read", domain, fields=[*order_fields, "write_date"]
            ):
                orders[int(row["id"])] = row
        by_name = {str(o["name"]): o for o in orders.values()}
        partner_ids = sorted({int(o["partner_id"][0]) for o in orders.values() if o.get("partner_id")})
        phone_fields = [f for f in ("phone", "mobile") if f in self._fields_of("res.partner")]
        partners = {
            int(p["id"]): p
            for p in (
                self.rpc.execute("res.partner", "read", partner_ids, fields=["name", *phone_fields])
                if partner_ids
                else []
            )
        }

        def change(
            kind: str, source: str, order: dict[str, Any], at: str, **extra: Any
        ) -> OrderChange | None:
            if not order.get("partner_id"):
                return None
            partner = partners.get(int(order["partner_id"][0]), {})
            phone = next((str(partner[f]) for f in phone_fields if partner.get(f)), None)
            return OrderChange(
                type=kind,
                source=source,
                sale_order_id=int(order["id"]),
                order_name=str(order["name"]),
                customer_reference=order.get("client_order_ref") or None,
                partner_id=int(order["partner_id"][0]),
                partner_name=partner.get("name") or None,
                phone=phone,
                total=Decimal(str(order["amount_total"])) if order.get("amount_total") is not None else None,
                currency=str(order["currency_id"][1]) if order.get("currency_id") else None,
                changed_at=at,
                **extra,
            )

        changes: list[OrderChange | None] = []
        for row in orders.values():
            if (
                row.get("state") == "sale"
                and row.get("write_date")
                and (
                    "sale.order" not in since
                    or not since["sale.order"]
                    or str(row["write_date"]) >= str(since["sale.order"])
                )
            ):
                changes.append(
                    change("order.created", f"sale.order:{row['id']}", row, str(row["write_date"]))
                )
        for row in invoices:
            origin = str(row.get("invoice_origin") or "").split(",")[0].strip()
            if origin in by_name:
                changes.append(
                    change("order.paid", f"account.move:{row['id']}", by_name[origin], str(row["write_date"]))
                )
        for row in pickings:
            order = (
                orders.get(int(row["sale_id"][0]))
                if row.get("sale_id")
                else by_name.get(str(row.get("origin")))
            )
            if order is None:
                continue
            scheduled = str(row.get("scheduled_date") or "")[:10] or None
            changes.append(
                change(
                    "order.shipped",
                    f"stock.picking:{row['id']}",
                    order,
                    str(row["write_date"]),
                    tracking_number=str(row["carrier_tracking_ref"]),
                    courier=str(row["carrier_id"][1]) if row.get("carrier_id") else None,
                    estimated_delivery_date=scheduled,
                )
            )
        ready = sorted(
            (c for c in changes if c is not None), key=lambda c: (c.changed_at, _STEP_ORDER[c.type])
        )
        return ready, cursors

    def _logins(self, user_ids: set[int]) -> dict[int, str]:
        """Logins of Odoo users, by id: read once per user and process."""
        missing = sorted(user_ids - set(self._users.values()))
        if missing:
            for row in self.rpc.execute("res.users", "read", missing, fields=["login"]):
                self._users[str(row["login"])] = int(row["id"])
        by_id = {user_id: login for login, user_id in self._users.items()}
        return {user_id: by_id[user_id] for user_id in user_ids if user_id in by_id}

    # --- chatter and activities ----------------------------------------------------------------

    def post_log(self, target: Target, heading: str, lines: Sequence[LogLine], marker: str) -> None:
        rows = "<br/>".join(
            f"[{line.at:%Y-%m-%d %H:%M}] <b>{_escape(line.author)}</b>: {_escape(line.text)}"
            for line in lines
        )
        self._post(target, f"<p><b>{_escape(heading)}</b></p><p>{rows}</p>{_marker_html(marker)}")

    def post_note(self, target: Target, text: str, marker: str) -> None:
        self._post(target, f"<p>{_escape(text)}</p>{_marker_html(marker)}")

    def find_note(self, target: Target, marker: str) -> str | None:
        rows = self.rpc.execute(
            "mail.message",
            "search_read",
            [("model", "=", MODELS[target.kind]), ("res_id", "=", target.id), ("body", "ilike", marker)],
            fields=["body"],
            order="id desc",
            limit=1,
        )
        return str(rows[0]["body"]) if rows else None

    def create_activity(self, target: Target, activity: ActivityIn, marker: str, check_first: bool) -> None:
        model = MODELS[target.kind]
        if check_first and self.rpc.execute(
            "mail.activity",
            "search",
            [("res_model", "=", model), ("res_id", "=", target.id), ("note", "ilike", marker)],
            limit=1,
        ):
            return
        user_id = self.rpc.uid()
        if target.kind == "lead":
            rows = self.rpc.execute("crm.lead", "search_read", [("id", "=", target.id)], fields=["user_id"])
            if rows and rows[0].get("user_id"):
                user_id = int(rows[0]["user_id"][0])  # many2one: [id, "name"]
        self.rpc.execute(
            model,
            "activity_schedule",
            [target.id],
            act_type_xmlid="mail.mail_activity_data_todo",
            date_deadline=activity.due.isoformat(),
            summary=activity.summary,
            note=f"<p>{_escape(activity.note)}</p>{_marker_html(marker)}",
            user_id=user_id,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _partner_by_ref(self, ref: str) -> int | None:
        """The partner we created with this reference (the oldest, should a person copy it)."""
        ids = self.rpc.execute("res.partner", "search", [("ref", "=", ref)], order="id asc", limit=1)
        return int(ids[0]) if ids else None

    def _partner_by_phone(self, e164: str) -> int | None:
        """Partners whose phone ends in the same four digits, compared after normalising what
        Odoo holds (``0812-1234-5678``, ``+62 812 1234 5678``, ``62812…`` are all one number)."""
        fields = [f for f in ("phone", "mobile") if f in self._fields_of("res.partner")]
        tail = re.sub(r"\D", "", e164)[-4:]
        domain: list[Any] = ["|"] * (len(fields) - 1) + [(f, "ilike", tail) for f in fields]
        rows = self.rpc.execute(
            "res.partner",
            "search_read",
            domain,
            fields=["id", *fields],
            order="id asc",
            limit=PHONE_CANDIDATES,
        )
        for row in rows:
            for field in fields:
                value = row.get(field)
                if value and phones.from_user_input(str(value), self.region).e164 == e164:
                    return int(row["id"])
        return None

    def _write_tags(self, lead_id: int, add: Sequence[str], remove: Sequence[str]) -> None:
        commands = [[4, tag_id, 0] for tag_id in self._named_ids("crm.tag", add)]
        commands += [[3, tag_id, 0] for tag_id in self._named_ids("crm.tag", remove, create=False)]
        if commands:
            self.rpc.execute("crm.lead", "write", [lead_id], {"tag_ids": commands})

    def _named_ids(self, model: str, names: Iterable[str], *, create: bool = True) -> list[int]:
        """Ids of the records of ``model`` with these names (tags, sources), created if missing."""
        if time.monotonic() - self._names_since > NAMES_CACHED_SECONDS:
            # A tag renamed or deleted in Odoo: look the names up again now and then.
            self._names, self._names_since = {}, time.monotonic()
        wanted = list(dict.fromkeys(names))
        if wanted and self._fields.get(model) == frozenset():
            return []  # no such model there (reported once): the field it would fill is left out
        missing = [n for n in wanted if (model, n) not in self._names]
        if missing:
            try:
                self._look_up_names(model, missing)
            except CrmPermanentError as exc:
                if not _no_such_model(exc):
                    raise
                self._fields[model] = frozenset()
                self._missing(model, None)
                return []
        for name in wanted:
            if (model, name) not in self._names and create:
                try:
                    self._names[(model, name)] = _one_id(self.rpc.execute(model, "create", {"name": name}))
                except CrmPermanentError:
                    # Another worker created it a moment ago (crm.tag names are unique).
                    self._look_up_names(model, [name])
                    if (model, name) not in self._names:
                        raise
        return [self._names[(model, n)] for n in wanted if (model, n) in self._names]

    def _look_up_names(self, model: str, names: list[str]) -> None:
        rows = self.rpc.execute(model, "search_read", [("name", "in", names)], fields=["id", "name"])
        for row in sorted(rows, key=lambda r: r["id"], reverse=True):  # the oldest wins
            self._names[(model, row["name"])] = int(row["id"])

    def _user_id(self, login: str) -> int | bool:
        if login not in self._users:
            ids = self.rpc.execute("res.users", "search", [("login", "=", login)], limit=1)
            if not ids:
                return False  # an agent with no Odoo user: unassigned rather than refused
            self._users[login] = int(ids[0])
        return self._users[login]

    def _fields_of(self, model: str) -> frozenset[str]:
        """The model's fields in the connected Odoo, read once per version (empty: no such
        model there)."""
        self.rpc.connect()
        if self.rpc.version != self._fields_version:  # another Odoo answers now: read again
            self._fields, self._stages, self._fields_version = {}, None, self.rpc.version
        if model not in self._fields:
            try:
                self._fields[model] = frozenset(self.rpc.execute(model, "fields_get", attributes=["type"]))
            except CrmPermanentError as exc:
                if not _no_such_model(exc):
                    raise
                self._fields[model] = frozenset()
        return self._fields[model]

    def _has(self, model: str, field: str | None = None) -> bool:
        """Whether the connected Odoo has the model (and its field); what it lacks is reported
        once, and the sync does without it."""
        fields = self._fields_of(model)
        if not fields:
            self._missing(model, None)
            return False
        if field is not None and field not in fields:
            self._missing(model, field)
            return False
        return True

    def _known(self, model: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` without the fields the connected Odoo's model lacks (each reported once)."""
        return {name: value for name, value in values.items() if self._has(model, name)}

    def _missing(self, model: str, field: str | None) -> None:
        what = f"{model}.{field}" if field else model
        if what in self._missing_reported:
            return
        self._missing_reported.add(what)
        version = ".".join(map(str, self.rpc.version)) or "?"
        kind = f"no field {field!r} on {model}" if field else f"no model {model} (a module not installed)"
        message = f"odoo: the connected Odoo {version} has {kind}: the sync goes on without it"
        log.warning(message, extra={"missing": what, "odoo_version": version})
        self._notices.append((model, field))

    def connection(self) -> dict[str, str]:
        """The connected Odoo: its version and the protocol spoken ({} before the first call)."""
        if not self.rpc.protocol:
            return {}
        return {"version": ".".join(map(str, self.rpc.version)), "protocol": self.rpc.protocol}

    def take_notices(self) -> list[tuple[str, str | None]]:
        """What the connected Odoo lacks, each (model, field) handed over once per process."""
        notices, self._notices = self._notices, []
        return notices

    def finish_activity(self, target: Target, marker: str, feedback: str) -> None:
        ids = self.rpc.execute(
            "mail.activity",
            "search",
            [("res_model", "=", MODELS[target.kind]), ("res_id", "=", target.id), ("note", "ilike", marker)],
        )
        if ids:  # done by a person already, or deleted: nothing to do
            # Odoo's own "Mark Done": the activity goes, a note of it stays in the chatter.
            self.rpc.execute("mail.activity", "action_feedback", ids, feedback=feedback)

    def _post(self, target: Target, body: str) -> None:
        """An internal note (``mail.mt_note``: no e-mail to followers), as HTML."""
        options: dict[str, Any] = {"body": body, "message_type": "comment", "subtype_xmlid": "mail.mt_note"}
        if self._server_version() >= 17:
            options["body_is_html"] = True  # 17+ escapes a str body unless told it is HTML
        self.rpc.execute(MODELS[target.kind], "message_post", [target.id], **options)

    def _server_version(self) -> int:
        self.rpc.connect()
        return self.rpc.version[0] if self.rpc.version else 0


def sale_order_xmlid(key: str) -> str:
    """Our external id of the sale order of the order system's order ``key``: readable, and
    unique (a short hash keeps ids that differ only in punctuation apart)."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", key)[:80]
    return f"sale_order_{readable}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _ids(result: Any) -> list[int]:
    """``create`` of a list answers the list of new ids."""
    if isinstance(result, int) and not isinstance(result, bool):
        return [result]
    if isinstance(result, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in result):
        return list(result)
    raise CrmPermanentError(f"odoo: expected record ids, got {result!r}")


def _one_id(result: Any) -> int:
    """``create`` answers an id (Odoo ≤18) or a list of ids (19, and ``create`` of a list)."""
    if isinstance(result, list) and result:
        result = result[0]
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    raise CrmPermanentError(f"odoo: expected a record id, got {result!r}")


def _no_such_model(exc: CrmPermanentError) -> bool:
    """Odoo's answer for a model it does not have: JSON-RPC's "Object x doesn't exist" (a
    UserError; a KeyError on older versions), JSON-2's 404."""
    name, message = str(exc.error.get("name") or ""), str(exc.error.get("message") or "")
    return "doesn't exist" in message or name in ("builtins.KeyError", "werkzeug.exceptions.NotFound")


def _escape(text: str) -> str:
    return html.escape(text or "", quote=False).replace("\n", "<br/>")


def _marker_html(marker: str) -> str:
    return f'<p style="color:#999"><small>ref {_escape(marker)}</small></p>'


def _network_error(exc: requests.RequestException) -> CrmError:
    """A failed request: transient, and ``unconfirmed`` unless it surely never left."""
    detail = f"odoo: {type(exc).__name__}: {exc}"
    if isinstance(exc, _BAD_REQUEST):
        return CrmPermanentError(detail)  # ODOO_URL is not a URL: configuration, not luck
    return CrmTransientError(detail, unconfirmed=not never_sent(exc))
