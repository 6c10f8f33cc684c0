"""A fake Odoo: ``POST /jsonrpc`` as Odoo 17 answers it (docs/formats.md "Odoo").

It implements the part of the external API the sync uses: ``common.version``,
``common.authenticate``/``login``, and ``object.execute_kw`` with ``search_read``, ``search``,
``search_count``, ``read``, ``create``, ``write``, ``fields_get``, ``message_post`` and
``activity_schedule``, on in-memory ``res.partner``, ``res.users``, ``crm.lead``, ``crm.stage``,
``crm.tag``, ``utm.source``, ``mail.message`` and ``mail.activity``. Domains in prefix notation
(``|``, ``&``, ``!``, the usual operators, dotted paths through many2ones), many2one values read
as ``[id, "name"]``, empty values as ``False``, x2many commands (``[6, 0, ids]``, ``[4, id, 0]``,
``[3, id, 0]``…). Errors come in Odoo's own envelope (HTTP 200, ``error.data.name``):
``AccessDenied`` for a wrong key, ``ValidationError`` for a missing required field, a duplicate
tag name or a record the test said to refuse, ``ValueError`` for an unknown field.

The test controls it: ``down("refuse")`` closes the listening socket (connection refused) and
``down(502)`` answers that status, until ``up()``; ``refuse(model, **values)`` fails validation
for records with those values; ``answer_late(model, method, seconds)`` does the next such call
but answers too late; ``fail_next``/``delay_next`` as for every fake. ``calls`` counts
every call by ``(model, method)``; ``records(model)`` shows what Odoo holds.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
import weakref
from collections import Counter
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

from testkit.fakes import FakeServer, Reply, _handler_for

UID = 2
# Fields each model accepts; the value is the related model for relational fields, else None.
MODELS: dict[str, dict[str, str | None]] = {
    "res.partner": {
        "name": None,
        "phone": None,
        "mobile": None,
        "email": None,
        "ref": None,
        "active": None,
        "write_date": None,
    },
    "res.users": {"name": None, "login": None},
    "res.currency": {"name": None},
    "crm.team": {"name": None},
    "crm.stage": {"name": None, "is_won": None, "sequence": None, "fold": None, "team_id": "crm.team"},
    "crm.tag": {"name": None, "color": None},
    "crm.lost.reason": {"name": None, "active": None},
    "utm.source": {"name": None},
    "utm.medium": {"name": None, "active": None},
    "utm.campaign": {"name": None, "title": None},
    "crm.lead": {
        "name": None,
        "partner_id": "res.partner",
        "contact_name": None,
        "phone": None,
        "mobile": None,
        "email_from": None,
        "tag_ids": "crm.tag",
        "priority": None,
        "user_id": "res.users",
        "team_id": "crm.team",
        "source_id": "utm.source",
        "medium_id": "utm.medium",
        "campaign_id": "utm.campaign",
        "stage_id": "crm.stage",
        "lost_reason_id": "crm.lost.reason",
        "description": None,
        "type": None,
        "active": None,
        "probability": None,
        "expected_revenue": None,
        "date_closed": None,
        "order_ids": "sale.order",
        "write_date": None,
        "write_uid": "res.users",
    },
    "product.pricelist": {"name": None, "currency_id": "res.currency", "active": None},
    "product.product": {
        "name": None,
        "default_code": None,
        "sale_ok": None,
        "list_price": None,
        "type": None,
        "active": None,
    },
    "sale.order": {
        "name": None,
        "partner_id": "res.partner",
        "opportunity_id": "crm.lead",
        "client_order_ref": None,
        "origin": None,
        "state": None,
        "locked": None,
        "order_line": "sale.order.line",
        "amount_untaxed": None,
        "amount_total": None,
        "currency_id": "res.currency",
        "pricelist_id": "product.pricelist",
        "user_id": "res.users",
        "team_id": "crm.team",
        "source_id": "utm.source",
        "medium_id": "utm.medium",
        "campaign_id": "utm.campaign",
        "note": None,
        "date_order": None,
        "invoice_status": None,
        "write_date": None,
    },
    "sale.order.line": {
        "order_id": "sale.order",
        "product_id": "product.product",
        "name": None,
        "product_uom_qty": None,
        "price_unit": None,
        "price_subtotal": None,
        "display_type": None,
        "sequence": None,
    },
    "account.move": {
        "name": None,
        "move_type": None,
        "state": None,
        "payment_state": None,
        "invoice_origin": None,
        "partner_id": "res.partner",
        "amount_total": None,
        "currency_id": "res.currency",
        "write_date": None,
    },
    "delivery.carrier": {"name": None},
    "stock.picking": {
        "name": None,
        "origin": None,
        "sale_id": "sale.order",
        "state": None,
        "picking_type_code": None,
        "partner_id": "res.partner",
        "scheduled_date": None,
        "date_done": None,
        "carrier_id": "delivery.carrier",
        "carrier_tracking_ref": None,
        "write_date": None,
    },
    "ir.model.data": {"module": None, "name": None, "model": None, "res_id": None, "noupdate": None},
    "mail.message": {
        "model": None,
        "res_id": None,
        "body": None,
        "message_type": None,
        "subtype_xmlid": None,
        "author_id": "res.partner",
    },
    "mail.activity": {
        "res_model": None,
        "res_id": None,
        "summary": None,
        "note": None,
        "date_deadline": None,
        "user_id": "res.users",
        "activity_type_xmlid": None,
    },
}
MANY2MANY = {("crm.lead", "tag_ids"), ("crm.stage", "team_ids")}
# Methods of the model, not of records: JSON-2 refuses ``ids`` for them (422), as Odoo 19 does.
MODEL_METHODS = frozenset({"search_read", "search", "search_count", "create", "fields_get", "context_get"})
# Odoo 19's JSON-2 answers an error with the HTTP status of its exception (odoo/exceptions.py
# ``http_status``; werkzeug's for the rest); anything else is a 500.
JSON2_STATUS = {
    "odoo.exceptions.UserError": 422,
    "odoo.exceptions.ValidationError": 422,
    "odoo.exceptions.RedirectWarning": 422,
    "odoo.exceptions.AccessError": 403,
    "odoo.exceptions.AccessDenied": 401,
    "odoo.exceptions.MissingError": 404,
    "werkzeug.exceptions.NotFound": 404,
    "werkzeug.exceptions.Unauthorized": 401,
    "werkzeug.exceptions.UnprocessableEntity": 422,
}


def models_of(version: int) -> dict[str, dict[str, str | None]]:
    """The models' fields as that Odoo version defines them: 19 dropped ``mobile`` on partners
    and leads and made the stage's team a many2many (``team_ids``); 17 and 18 share the rest."""
    models = copy.deepcopy(MODELS)
    if version >= 19:
        for model in ("res.partner", "crm.lead"):
            del models[model]["mobile"]
        del models["crm.stage"]["team_id"]
        models["crm.stage"]["team_ids"] = "crm.team"
        models["crm.lead"]["won_status"] = None
    return models


# one2many fields: the inverse many2one on the related model.
ONE2MANY = {("sale.order", "order_line"): "order_id", ("crm.lead", "order_ids"): "opportunity_id"}
REQUIRED = {
    "res.partner": ("name",),
    "crm.lead": ("name",),
    "crm.tag": ("name",),
    "crm.lost.reason": ("name",),
    "utm.source": ("name",),
    "utm.medium": ("name",),
    "sale.order": ("partner_id",),
    "sale.order.line": ("order_id", "name"),
    "ir.model.data": ("module", "name", "model"),
    "product.product": ("name",),
}
# Computed by Odoo: written values are ignored, as Odoo ignores a write to a readonly compute.
COMPUTED = {
    ("sale.order", "amount_untaxed"),
    ("sale.order", "amount_total"),
    ("sale.order.line", "price_subtotal"),
    ("crm.lead", "write_date"),
    ("sale.order", "write_date"),
    ("res.partner", "write_date"),
    ("crm.lead", "write_uid"),
    ("crm.lead", "won_status"),
    ("account.move", "write_date"),
    ("stock.picking", "write_date"),
}
UNIQUE_NAME = {"crm.tag", "utm.medium"}
CHATTER = {"res.partner", "crm.lead", "sale.order", "account.move", "stock.picking"}


class OdooError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


class FakeOdoo(FakeServer):
    def __init__(
        self,
        db: str = "wacrm",
        login: str = "bot@example.com",
        api_key: str = "test-odoo-key",
        version: int = 17,
    ):
        self.db, self.login, self.api_key, self.version = db, login, api_key, version
        self.models = models_of(version)
        self._state = threading.RLock()
        self._down: str | int | None = None
        self._refusals: list[tuple[str, dict[str, Any]]] = []
        self._denied: set[tuple[str, str | None]] = set()
        self._late: dict[tuple[str, str], float] = {}
        self._connections: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.writes: list[tuple[str, list[int], dict[str, Any]]] = []  # every write's values
        self.tables: dict[str, dict[int, dict[str, Any]]] = {}
        self._next_id: dict[str, int] = {}
        self._seed()
        super().__init__()
        self._keep_alive()

    @property
    def url(self) -> str:
        return self.root_url

    # --- what the tests use ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every record, call and scripted failure; up again."""
        super().reset()
        with self._state:
            self._refusals.clear()
            self._denied.clear()
            self._late.clear()
            self.calls.clear()
            self.writes.clear()
            self._seed()
        self.up()

    def set_version(self, version: int) -> None:
        """Become that Odoo version (its models' fields, JSON-2 from 19 on), with no records."""
        with self._state:
            self.version, self.models = version, models_of(version)
        self.reset()

    def drop_field(self, model: str, name: str) -> None:
        """The connected Odoo has no such field (another version, a module not installed)."""
        with self._state:
            self.models[model].pop(name, None)
            for record in self.tables.get(model, {}).values():
                record.pop(name, None)

    def drop_model(self, model: str) -> None:
        """The connected Odoo has no such model (its module is not installed)."""
        with self._state:
            self.models.pop(model, None)
            self.tables.pop(model, None)

    def down(self, how: str | int = "refuse") -> None:
        """``"refuse"``: stop listening (connection refused); a status: answer it to everything."""
        with self._state:
            if self._down == "refuse":
                return
            self._down = how
        if how == "refuse":
            self._server.shutdown()
            self._server.server_close()
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        with self._state:
            was, self._down = self._down, None
        if was == "refuse":
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
            self._server.daemon_threads = True
            self._keep_alive()
            self._thread = threading.Thread(target=self._server.serve_forever, name="FakeOdoo", daemon=True)
            self._thread.start()

    def _keep_alive(self) -> None:
        """HTTP/1.1 with keep-alive, as Odoo's server speaks it (the handler class is this
        server's own), so a client's pooled connection is reused as it would be. The open
        connections are kept, so that ``down("refuse")`` closes them as a stopped Odoo would."""
        server = self._server
        server.RequestHandlerClass.protocol_version = "HTTP/1.1"
        accept = server.get_request

        def get_request() -> tuple[socket.socket, Any]:
            connection, address = accept()
            self._connections.add(connection)
            return connection, address

        server.get_request = get_request  # type: ignore[method-assign]

    def answer_late(self, model: str, method: str, seconds: float) -> None:
        """Do the next ``model.method`` call, but answer it only after ``seconds`` (once)."""
        with self._state:
            self._late[(model, method)] = seconds

    def refuse(self, model: str, **values: Any) -> None:
        """Fail validation when a ``model`` record with these values is created or written."""
        with self._state:
            self._refusals.append((model, values))

    def deny(self, model: str, method: str | None = None) -> None:
        """Answer ``AccessError`` to ``model.method`` (every method when None), as Odoo does for
        a user without the rights."""
        with self._state:
            self._denied.add((model, method))

    def delete(self, model: str, record_id: int) -> None:
        """A person deleted the record in Odoo."""
        with self._state:
            self.tables[model].pop(record_id, None)

    def edit(self, model: str, record_id: int, **values: Any) -> None:
        """A person changed the record in Odoo's UI (as user ``uid``, Administrator by default)."""
        with self._state:
            self._write(model, record_id, values, uid=1)

    def records(self, model: str) -> list[dict[str, Any]]:
        with self._state:
            rows = [copy.deepcopy(r) for _, r in sorted(self.tables[model].items())]
            for row in rows:
                for owner, name in ONE2MANY:
                    if owner == model:
                        row[name] = self._children(model, row["id"], name)
            return rows

    def count(self, model: str | None = None, method: str | None = None) -> int:
        with self._state:
            return sum(
                n
                for (m, meth), n in self.calls.items()
                if (model is None or m == model) and (method is None or meth == method)
            )

    def add(self, model: str, **values: Any) -> int:
        """A record that was in Odoo before (typed in by a person)."""
        with self._state:
            return self._create(model, values)

    # --- the protocol ------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        if self._down is not None:
            return Reply(int(self._down), f"{self._down} Bad Gateway".encode())
        if path.startswith("/json/2/") and self.version >= 19:
            return self._json2(path, headers, body)
        if path == "/web/webclient/version_info":
            return Reply(200, {"jsonrpc": "2.0", "id": None, "result": self._version_info()})
        if path != "/jsonrpc":
            return Reply(404, b"404 Not Found")
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return Reply(action.status, f"{action.status} upstream error".encode())
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            return Reply(
                200, {"jsonrpc": "2.0", "id": None, "error": _envelope("werkzeug.BadRequest", "bad")}
            )
        params = body["params"]
        try:
            result = self._dispatch(
                params.get("service"), params.get("method"), list(params.get("args") or [])
            )
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": body.get("id"), "result": result}
        except OdooError as exc:
            answer = {"jsonrpc": "2.0", "id": body.get("id"), "error": _envelope(exc.name, exc.message)}
        if action is not None and action.kind == "drop":
            return Reply(200, drop=True)
        args = params.get("args") or []
        with self._state:
            late = self._late.pop((args[3], args[4]), 0.0) if len(args) > 4 else 0.0
        return Reply(200, answer, delay=late or (action.seconds if action is not None else 0.0))

    def handle_get(self, path: str, headers: dict[str, str]) -> Reply:
        if self._down is not None:
            return Reply(int(self._down), f"{self._down} Bad Gateway".encode())
        if path == "/web/version":
            return Reply(
                200,
                {"version_info": self._version_info()["server_version_info"], "version": f"{self.version}.0"},
            )
        return Reply(404, b"404 Not Found")

    def _version_info(self) -> dict[str, Any]:
        return {
            "server_version": f"{self.version}.0",
            "server_version_info": [self.version, 0, 0, "final", 0, ""],
            "server_serie": f"{self.version}.0",
            "protocol_version": 1,
        }

    def _json2(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        """Odoo 19's ``POST /json/2/<model>/<method>``: ``Authorization: bearer <key>``, named
        arguments only (``ids`` for the records), the return value as the body; an error as its
        HTTP status with ``{"name", "message", "arguments", "context", "debug"}``."""
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return Reply(action.status, f"{action.status} upstream error".encode())
        model, _, method = path[len("/json/2/") :].partition("/")
        try:
            result = self._json2_call(model, method, headers, body)
            reply = Reply(200, result)
        except OdooError as exc:
            reply = Reply(JSON2_STATUS.get(exc.name, 500), _envelope(exc.name, exc.message)["data"])
        if action is not None and action.kind == "drop":
            return Reply(200, drop=True)
        with self._state:
            late = self._late.pop((model, method), 0.0)
        return Reply(reply.status, reply.body, delay=late or (action.seconds if action is not None else 0.0))

    def _json2_call(self, model: str, method: str, headers: dict[str, str], body: Any) -> Any:
        with self._state:
            self.calls[(model, method)] += 1
            scheme, _, key = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or key != self.api_key:
                raise OdooError("werkzeug.exceptions.Unauthorized", "Invalid apikey")
            if headers.get("x-odoo-database", self.db) != self.db:
                raise OdooError("werkzeug.exceptions.NotFound", "database not found")
            if not isinstance(body, dict):
                raise OdooError("werkzeug.exceptions.UnprocessableEntity", "the body must be a JSON object")
            named = dict(body)
            named.pop("context", None)
            ids = named.pop("ids", None)
            if model not in self.models:
                raise OdooError("werkzeug.exceptions.NotFound", f"the model {model!r} does not exist")
            if method in MODEL_METHODS and ids is not None:
                raise OdooError("werkzeug.exceptions.UnprocessableEntity", f"{method} takes no ids")
            self._allowed(model, method)
            args = [list(ids or [])] if method not in MODEL_METHODS else []
            if method == "context_get":
                return {"lang": "en_US", "tz": "UTC", "uid": UID}
            return self._execute(model, method, args, named)

    def _allowed(self, model: str, method: str) -> None:
        if (model, method) in self._denied or (model, None) in self._denied:
            raise OdooError(
                "odoo.exceptions.AccessError",
                f"You are not allowed to access '{model}' records. This operation is allowed for "
                "the following groups: Sales / Administrator. "
                "Contact your administrator to request access if necessary.",
            )
        if method.startswith("_"):
            raise OdooError(
                "odoo.exceptions.AccessError",
                f"Private methods (such as '{model}.{method}') cannot be called remotely.",
            )

    def _dispatch(self, service: str, method: str, args: list[Any]) -> Any:
        with self._state:
            if service == "common":
                self.calls[("common", method)] += 1
                if method == "version":
                    return self._version_info()
                if method in ("login", "authenticate"):
                    db, login, key = args[0], args[1], args[2]
                    return UID if (db, login, key) == (self.db, self.login, self.api_key) else False
                raise OdooError("builtins.AttributeError", f"no method {method}")
            if service != "object" or method != "execute_kw":
                raise OdooError("builtins.Exception", f"unknown service {service}.{method}")
            db, uid, key, model, model_method = args[:5]
            positional = list(args[5]) if len(args) > 5 else []
            named = dict(args[6]) if len(args) > 6 and args[6] else {}
            named.pop("context", None)
            self.calls[(model, model_method)] += 1
            if (db, uid, key) != (self.db, UID, self.api_key):
                raise OdooError("odoo.exceptions.AccessDenied", "Access Denied")
            if model not in self.models:  # odoo/service/model.py execute_cr
                raise OdooError("odoo.exceptions.UserError", f"Object {model} doesn't exist")
            self._allowed(model, model_method)
            return self._execute(model, model_method, positional, named)

    def _execute(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        fields = kwargs.get("fields") or (args[1] if method == "read" and len(args) > 1 else None)
        for name in fields or ():  # checked before any record is read, as Odoo does
            if name != "id" and name not in self.models[model]:
                raise OdooError("builtins.ValueError", f"Invalid field '{name}' on model '{model}'")
        if method == "search_read":
            ids = self._search(model, args[0] if args else kwargs.get("domain", []), kwargs)
            return [
                self._read(model, i, kwargs.get("fields"), kwargs.get("load", "_classic_read")) for i in ids
            ]
        if method == "search":
            return self._search(model, args[0] if args else kwargs.get("domain", []), kwargs)
        if method == "search_count":
            return len(self._search(model, args[0] if args else kwargs.get("domain", []), {}))
        if method == "read":
            fields = args[1] if len(args) > 1 else kwargs.get("fields")
            load = kwargs.get("load", "_classic_read")
            return [self._read(model, i, fields, load) for i in args[0] if i in self.tables[model]]
        if method == "create":
            values = args[0] if args else kwargs["vals_list"]
            if isinstance(values, list):
                return [self._create(model, v) for v in values]
            created = self._create(model, values)
            return [created] if self.version >= 19 else created  # 19 answers .ids for a recordset
        if method == "write":
            values = args[1] if len(args) > 1 else kwargs["vals"]
            self.writes.append((model, list(args[0]), copy.deepcopy(values)))
            for record_id in args[0]:
                self._write(model, record_id, values)
            return True
        if method == "fields_get":
            return {name: {"type": self._type(model, name)} for name in self.models[model]}
        if model == "crm.lead" and method == "action_set_won":
            for record_id in args[0]:
                self._set_won(record_id)
            return True
        if model == "crm.lead" and method == "action_set_lost":
            for record_id in args[0]:
                self._set_lost(record_id, kwargs)
            return True
        if model == "crm.lead" and method == "action_unarchive":
            for record_id in args[0]:
                self._existing(model, record_id)
                self._write(model, record_id, {"active": True, "lost_reason_id": False, "probability": 10})
            return True
        if model == "mail.activity" and method == "action_feedback":
            for record_id in args[0]:
                activity = self._existing(model, record_id)
                self._create(
                    "mail.message",
                    {
                        "model": activity["res_model"],
                        "res_id": activity["res_id"],
                        "body": f"<p>{activity['summary']} done</p><p>{kwargs.get('feedback', '')}</p>",
                        "message_type": "notification",
                    },
                )
                del self.tables[model][record_id]  # done activities leave the record, as in Odoo
            return False
        if model == "sale.order" and method == "action_confirm":
            for record_id in args[0]:
                self._confirm(record_id)
            return True
        if model == "sale.order" and method == "action_cancel":
            for record_id in args[0]:
                order = self._existing(model, record_id)
                if order["locked"]:
                    raise OdooError(
                        "odoo.exceptions.UserError",
                        "You cannot cancel a locked order. Please unlock it first.",
                    )
                self._write(model, record_id, {"state": "cancel"})
            return True
        if method == "message_post" and model in CHATTER:
            for record_id in args[0]:
                self._existing(model, record_id)
            if len(args[0]) != 1:
                raise OdooError("builtins.ValueError", f"Expected singleton: {model}({args[0]})")
            message = self._create(
                "mail.message",
                {
                    "model": model,
                    "res_id": args[0][0],
                    "body": kwargs.get("body", ""),
                    "message_type": kwargs.get("message_type", "notification"),
                    "subtype_xmlid": kwargs.get("subtype_xmlid"),
                },
            )
            return [message] if self.version >= 19 else message
        if method == "activity_schedule" and model in CHATTER:
            created = []
            for record_id in args[0]:
                self._existing(model, record_id)
                created.append(
                    self._create(
                        "mail.activity",
                        {
                            "res_model": model,
                            "res_id": record_id,
                            "summary": kwargs.get("summary"),
                            "note": kwargs.get("note"),
                            "date_deadline": kwargs.get("date_deadline"),
                            "user_id": kwargs.get("user_id") or UID,
                            "activity_type_xmlid": kwargs.get("act_type_xmlid"),
                        },
                    )
                )
            if self.version >= 19:
                return created  # 19's call_kw answers a recordset's ids
            return f"mail.activity({','.join(map(str, created))},)"  # Odoo 17 stringifies recordsets
        raise OdooError(
            "builtins.AttributeError", f"The method '{method}' does not exist on the model '{model}'"
        )

    # --- records -----------------------------------------------------------------------------

    def _seed(self) -> None:
        # Like Odoo, never hand out an id twice, even across resets: a worker that remembers the
        # id of a tag from an earlier test must not hit another record by chance.
        self.tables = {model: {} for model in self.models}
        self._next_id = {model: self._next_id.get(model, 1) for model in self.models}
        self._next_id.update({"res.users": 1, "crm.stage": 1, "res.currency": 1, "crm.team": 1})
        self._sequence = getattr(self, "_sequence", 0)
        self._create("res.users", {"name": "Administrator", "login": "admin"})
        self._next_id["res.users"] = UID
        self._create("res.users", {"name": "Sync bot", "login": self.login})
        self._create("res.currency", {"name": "IDR"})  # the company's currency
        self._create("res.currency", {"name": "USD"})
        self._create("crm.team", {"name": "Sales"})
        # Odoo's default pipeline (crm/data/crm_stage_data.xml).
        for sequence, name in enumerate(("New", "Qualified", "Proposition"), start=1):
            self._create("crm.stage", {"name": name, "is_won": False, "sequence": sequence})
        self._create("crm.stage", {"name": "Won", "is_won": True, "sequence": 70, "fold": False})

    def _type(self, model: str, name: str) -> str:
        if (model, name) in MANY2MANY:
            return "many2many"
        if (model, name) in ONE2MANY:
            return "one2many"
        return "many2one" if self.models[model][name] else "char"

    def _create(self, model: str, values: dict[str, Any], uid: int = UID) -> int:
        self._check(model, values)
        record: dict[str, Any] = dict.fromkeys(self.models[model], False)
        if "active" in record:
            record["active"] = True
        if model == "crm.lead":
            # user_id: the calling user when not given (an explicit False leaves it unassigned).
            record.update(
                stage_id=self._first_stage(), user_id=uid, priority="0", type="lead", probability=10
            )
            record["expected_revenue"] = 0.0
        if model == "sale.order":
            self._sequence += 1
            record.update(name=f"S{self._sequence:05d}", state="draft", locked=False, invoice_status="no")
            record.update(currency_id=1, user_id=uid, amount_untaxed=0.0, amount_total=0.0)
        if model == "sale.order.line":
            record.update(product_uom_qty=1.0, price_unit=0.0, price_subtotal=0.0, sequence=10)
        if model == "ir.model.data":
            record["noupdate"] = False
        if model == "account.move":
            record.update(move_type="entry", state="draft", payment_state="not_paid", name="/", currency_id=1)
        if model == "stock.picking":
            record.update(state="draft", picking_type_code="outgoing")
        for owner, field_name in (*MANY2MANY, *ONE2MANY):
            if owner == model and field_name in self.models[model]:
                record[field_name] = []
        record_id = self._next_id[model]
        self._next_id[model] += 1
        record["id"] = record_id
        self.tables[model][record_id] = record  # so that one2many lines can point at it
        try:
            self._apply(model, record, values)
            if model == "sale.order.line":
                self._line_defaults(record)
            for name in REQUIRED.get(model, ()):
                if not record.get(name):
                    raise OdooError(
                        "odoo.exceptions.ValidationError", f"Missing required value for {model}.{name}"
                    )
            if model in UNIQUE_NAME and any(
                r["name"] == record["name"] for i, r in self.tables[model].items() if i != record_id
            ):
                raise OdooError("odoo.exceptions.ValidationError", "Tag name already exists!")
            if model == "utm.source":
                record["name"] = self._unique_source_name(record["name"], record_id)
            if model == "ir.model.data" and any(
                (r["module"], r["name"]) == (record["module"], record["name"])
                for i, r in self.tables[model].items()
                if i != record_id
            ):
                raise OdooError(
                    "psycopg2.errors.UniqueViolation",
                    'duplicate key value violates unique constraint "ir_model_data_module_name_uniq_index"',
                )
        except OdooError:
            self.tables[model].pop(record_id, None)
            raise
        self._touched(model, record, uid)
        return record_id

    def _write(self, model: str, record_id: int, values: dict[str, Any], uid: int = UID) -> None:
        record = self._existing(model, record_id)
        self._check(model, {**record, **values})
        updated = dict(record)
        self._apply(model, updated, values)
        if model == "crm.lead" and "stage_id" in values and values["stage_id"] != record["stage_id"]:
            stage = self.tables["crm.stage"][updated["stage_id"]]
            if stage["is_won"]:
                updated.update(probability=100, date_closed=_now())
                if self.version >= 19:
                    updated["active"] = True
            elif "probability" not in values:
                updated["date_closed"] = False
        if model == "crm.lead" and self.version >= 19:
            stage = self.tables["crm.stage"].get(updated["stage_id"]) or {}
            if stage.get("is_won") and updated["probability"] != 100:
                raise OdooError(
                    "odoo.exceptions.ValidationError",
                    "A lead in a Won stage cannot be lost. Move it to another stage first.",
                )
        self.tables[model][record_id] = updated
        self._touched(model, updated, uid)

    def _touched(self, model: str, record: dict[str, Any], uid: int) -> None:
        if "won_status" in record:  # 19's stored compute (crm_lead.py _compute_won_status)
            stage = self.tables["crm.stage"].get(record["stage_id"]) or {}
            won = record["probability"] == 100 and stage.get("is_won")
            lost = not record["active"] and not record["probability"]
            record["won_status"] = "won" if won else "lost" if lost else "pending"
        if "write_date" in record:
            record["write_date"] = _now()
        if "write_uid" in record:
            record["write_uid"] = uid
        if model == "sale.order.line" and record.get("order_id"):
            self._totals(record["order_id"])
        if model == "sale.order":
            self._totals(record["id"])

    def _totals(self, order_id: int) -> None:
        order = self.tables["sale.order"].get(order_id)
        if order is None:
            return
        total = 0.0
        for line_id in self._children("sale.order", order_id, "order_line"):
            line = self.tables["sale.order.line"][line_id]
            line["price_subtotal"] = round(
                float(line["product_uom_qty"] or 0) * float(line["price_unit"] or 0), 2
            )
            total += line["price_subtotal"]
        order["amount_untaxed"] = order["amount_total"] = round(total, 2)  # no taxes in the fake

    def _line_defaults(self, line: dict[str, Any]) -> None:
        """sale.order.line: ``name`` computed from the product; a product line needs a product."""
        if line.get("display_type"):
            if line.get("product_id"):
                raise OdooError(
                    "odoo.exceptions.ValidationError", "Forbidden values on non-accountable sale order line"
                )
            return
        if not line.get("product_id"):
            raise OdooError(
                "odoo.exceptions.ValidationError",
                "Missing required fields on accountable sale order line.",
            )
        if not line.get("name"):
            line["name"] = self.tables["product.product"][line["product_id"]]["name"]

    def _unique_source_name(self, name: str, record_id: int) -> str:
        """utm.source's create renames a duplicate name "X [2]" rather than failing."""
        taken = {r["name"] for i, r in self.tables["utm.source"].items() if i != record_id}
        if name not in taken:
            return name
        n = 2
        while f"{name} [{n}]" in taken:
            n += 1
        return f"{name} [{n}]"

    def _first_stage(self) -> int | bool:
        stages = sorted(
            (r for r in self.tables["crm.stage"].values() if not r["fold"]),
            key=lambda r: (r["sequence"] or 0, r["id"]),
        )
        return stages[0]["id"] if stages else False

    def _set_won(self, lead_id: int) -> None:
        lead = self._existing("crm.lead", lead_id)
        current = self.tables["crm.stage"].get(lead["stage_id"]) or {"sequence": 0}
        won = sorted(
            (r for r in self.tables["crm.stage"].values() if r["is_won"]),
            key=lambda r: (r["sequence"] or 0, r["id"]),
        )
        if not won:
            raise OdooError("odoo.exceptions.UserError", "No won stage is set up.")
        after = [r for r in won if (r["sequence"] or 0) > (current["sequence"] or 0)]
        before = [r for r in won if (r["sequence"] or 0) <= (current["sequence"] or 0)]
        stage = after[0] if after else before[-1] if before else won[0]
        self._write("crm.lead", lead_id, {"stage_id": stage["id"], "probability": 100, "active": True})

    def _set_lost(self, lead_id: int, values: dict[str, Any]) -> None:
        lead = self._existing("crm.lead", lead_id)
        stage = self.tables["crm.stage"].get(lead["stage_id"]) or {}
        if self.version >= 19 and stage.get("is_won"):
            raise OdooError(
                "odoo.exceptions.ValidationError",
                "A lead in a Won stage cannot be lost. Move it to another stage first.",
            )
        # One write, so a refused value (a lost reason that is gone) leaves the lead as it was,
        # as Odoo's transaction would.
        self._write("crm.lead", lead_id, {**values, "active": False, "probability": 0, "date_closed": _now()})

    def _confirm(self, order_id: int) -> None:
        order = self._existing("sale.order", order_id)
        if order["state"] not in ("draft", "sent"):
            raise OdooError(
                "odoo.exceptions.UserError", "Some orders are not in a state requiring confirmation."
            )
        for line_id in self._children("sale.order", order_id, "order_line"):
            line = self.tables["sale.order.line"][line_id]
            if not line["display_type"] and not line["product_id"]:
                raise OdooError("odoo.exceptions.UserError", "A line on these orders is missing a product.")
        self._write("sale.order", order_id, {"state": "sale", "date_order": _now()})

    def _apply(self, model: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.models[model]:
                raise OdooError("builtins.ValueError", f"Invalid field '{name}' on model '{model}'")
            if (model, name) in COMPUTED:
                continue
            if (model, name) in MANY2MANY:
                record[name] = self._commands(self.models[model][name] or "", list(record[name]), value)
            elif (model, name) in ONE2MANY:
                record[name] = self._one2many(model, record, name, value)
            elif self.models[model][name] and value:
                if isinstance(value, list | dict | bool):
                    raise OdooError(
                        "builtins.TypeError", f"{model}.{name}: a many2one takes an id, not {value!r}"
                    )
                self._existing(self.models[model][name] or "", int(value))
                record[name] = int(value)
            else:
                record[name] = value

    def _children(self, model: str, record_id: int, name: str) -> list[int]:
        """A one2many's ids: the related records whose inverse many2one points here."""
        related, inverse = self.models[model][name] or "", ONE2MANY[(model, name)]
        return sorted(i for i, r in self.tables[related].items() if r.get(inverse) == record_id)

    def _one2many(self, model: str, record: dict[str, Any], name: str, commands: list[Any]) -> list[int]:
        related, inverse = self.models[model][name] or "", ONE2MANY[(model, name)]
        current = self._children(model, record["id"], name)
        for command in commands:
            code = command[0]
            if code == 0:
                current.append(self._create(related, {**command[2], inverse: record["id"]}))
            elif code == 1:
                self._write(related, command[1], command[2])
            elif code == 2:
                self.tables[related].pop(command[1], None)
                current = [i for i in current if i != command[1]]
            elif code == 5:
                for line_id in current:
                    self.tables[related].pop(line_id, None)
                current = []
            else:
                raise OdooError("builtins.ValueError", f"Unsupported one2many command {command!r}")
        return current

    def _commands(self, related: str, current: list[int], commands: list[Any]) -> list[int]:
        for command in commands:
            code = command[0]
            if code == 6:
                current = [self._existing(related, i)["id"] for i in command[2]]
            elif code == 4 and command[1] not in current:
                current.append(self._existing(related, command[1])["id"])
            elif code == 3 and command[1] in current:
                current.remove(command[1])
            elif code == 5:
                current = []
            elif code == 0:
                current.append(self._create(related, command[2]))
        return current

    def _check(self, model: str, values: dict[str, Any]) -> None:
        for refused_model, wanted in self._refusals:
            if refused_model == model and all(values.get(k) == v for k, v in wanted.items()):
                raise OdooError("odoo.exceptions.ValidationError", f"Invalid {model}: {wanted} refused")

    def _existing(self, model: str, record_id: int) -> dict[str, Any]:
        record = self.tables.get(model, {}).get(record_id)
        if record is None:
            raise OdooError(
                "odoo.exceptions.MissingError",
                f"Record does not exist or has been deleted. ({model}({record_id},))",
            )
        return record

    def _read(
        self, model: str, record_id: int, fields: list[str] | None, load: str | None = "_classic_read"
    ) -> dict[str, Any]:
        record = self.tables[model][record_id]
        result: dict[str, Any] = {"id": record_id}
        for name in fields or list(self.models[model]):
            if name == "id":
                continue
            if name not in self.models[model]:
                raise OdooError("builtins.ValueError", f"Invalid field '{name}' on model '{model}'")
            value = record[name]
            if (model, name) in ONE2MANY:
                value = self._children(model, record_id, name)
            related = self.models[model][name]
            if related and (model, name) not in MANY2MANY and (model, name) not in ONE2MANY:
                found = self.tables[related].get(value) if value else None
                value = ([value, found.get("name") or ""] if load else value) if found else False
            result[name] = copy.deepcopy(value)
        return result

    def _search(self, model: str, domain: list[Any], options: dict[str, Any]) -> list[int]:
        records = list(self.tables[model].values())
        if "active" in self.models[model] and not any(_leaf(t) and t[0] == "active" for t in domain):
            records = [r for r in records if r["active"]]
        matched = [r for r in records if self._matches(model, r, list(domain))]
        order = str(options.get("order") or "id asc")
        for term in reversed([t.split() for t in order.split(",") if t.strip()]):  # stable: last key first
            name, descending = term[0], len(term) > 1 and term[1].lower() == "desc"
            if name != "id" and name not in self.models[model]:
                raise OdooError("builtins.ValueError", f"Invalid field {name!r} on model {model!r} in order")
            matched.sort(key=lambda r, n=name: (r.get(n) is False, r.get(n) or 0), reverse=descending)
        ids = [r["id"] for r in matched]
        offset = int(options.get("offset") or 0)
        limit = options.get("limit")
        return ids[offset : offset + int(limit)] if limit else ids[offset:]

    def _matches(self, model: str, record: dict[str, Any], domain: list[Any]) -> bool:
        """Prefix-notation domain; leaves are ANDed unless an operator says otherwise."""
        stack: list[bool] = []
        for term in reversed(domain):
            if term == "|":
                stack.append(stack.pop() | stack.pop())
            elif term == "&":
                stack.append(stack.pop() & stack.pop())
            elif term == "!":
                stack.append(not stack.pop())
            else:
                stack.append(self._leaf_matches(model, record, term))
        return all(stack)

    def _leaf_matches(self, model: str, record: dict[str, Any], term: list[Any]) -> bool:
        field, operator, value = term
        current_model, current = model, record
        *path, last = field.split(".")
        for step in path:  # many2one hops: "stage_id.is_won"
            related = self.models[current_model].get(step)
            if not related or not current.get(step):
                return False
            current_model, current = related, self.tables[related][current[step]]
        if last != "id" and last not in self.models[current_model]:
            raise OdooError("builtins.ValueError", f"Invalid field {current_model}.{last} in leaf {term}")
        actual = current.get(last, False)
        if operator == "=":
            return actual == value if not isinstance(actual, list) else value in actual
        if operator == "!=":
            return actual != value
        if operator == "in":
            return actual in value
        if operator == "not in":
            return actual not in value
        if operator in ("ilike", "like", "=ilike"):
            if not actual:
                return False
            text, pattern = str(actual), str(value)
            if operator == "=ilike":
                return text.lower() == pattern.lower()
            return pattern.lower() in text.lower() if operator == "ilike" else pattern in text
        comparisons = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b}
        comparisons[">="] = lambda a, b: a >= b
        if operator in comparisons:
            return actual is not False and comparisons[operator](actual, value)
        raise OdooError("builtins.ValueError", f"Invalid operator {operator!r}")


def _now() -> str:
    """Odoo's datetime format over JSON-RPC: UTC, "YYYY-MM-DD HH:MM:SS"."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _leaf(term: Any) -> bool:
    return isinstance(term, list | tuple) and len(term) == 3


def _envelope(name: str, message: str) -> dict[str, Any]:
    """Odoo's JSON-RPC error: HTTP 200, ``error.data.name`` the exception's dotted name."""
    return {
        "code": 200,
        "message": "Odoo Server Error",
        "data": {
            "name": name,
            "debug": f"Traceback (most recent call last):\n  ...\n{name}: {message}\n",
            "message": message,
            "arguments": [message],
            "context": {},
        },
    }
