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

import copy
import threading
from collections import Counter
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
    },
    "res.users": {"name": None, "login": None},
    "crm.stage": {"name": None, "is_won": None, "sequence": None},
    "crm.tag": {"name": None, "color": None},
    "utm.source": {"name": None},
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
        "source_id": "utm.source",
        "stage_id": "crm.stage",
        "description": None,
        "type": None,
        "active": None,
        "probability": None,
    },
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
MANY2MANY = {("crm.lead", "tag_ids")}
REQUIRED = {"res.partner": ("name",), "crm.lead": ("name",), "crm.tag": ("name",), "utm.source": ("name",)}
UNIQUE_NAME = {"crm.tag"}
CHATTER = {"res.partner", "crm.lead"}


class OdooError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


class FakeOdoo(FakeServer):
    def __init__(self, db: str = "wacrm", login: str = "bot@example.com", api_key: str = "test-odoo-key"):
        self.db, self.login, self.api_key = db, login, api_key
        self._state = threading.RLock()
        self._down: str | int | None = None
        self._refusals: list[tuple[str, dict[str, Any]]] = []
        self._late: dict[tuple[str, str], float] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.tables: dict[str, dict[int, dict[str, Any]]] = {}
        self._next_id: dict[str, int] = {}
        self._seed()
        super().__init__()

    @property
    def url(self) -> str:
        return self.root_url

    # --- what the tests use ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every record, call and scripted failure; up again."""
        super().reset()
        with self._state:
            self._refusals.clear()
            self._late.clear()
            self.calls.clear()
            self._seed()
        self.up()

    def down(self, how: str | int = "refuse") -> None:
        """``"refuse"``: stop listening (connection refused); a status: answer it to everything."""
        with self._state:
            if self._down == "refuse":
                return
            self._down = how
        if how == "refuse":
            self._server.shutdown()
            self._server.server_close()

    def up(self) -> None:
        with self._state:
            was, self._down = self._down, None
        if was == "refuse":
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, name="FakeOdoo", daemon=True)
            self._thread.start()

    def answer_late(self, model: str, method: str, seconds: float) -> None:
        """Do the next ``model.method`` call, but answer it only after ``seconds`` (once)."""
        with self._state:
            self._late[(model, method)] = seconds

    def refuse(self, model: str, **values: Any) -> None:
        """Fail validation when a ``model`` record with these values is created or written."""
        with self._state:
            self._refusals.append((model, values))

    def records(self, model: str) -> list[dict[str, Any]]:
        with self._state:
            return [copy.deepcopy(r) for _, r in sorted(self.tables[model].items())]

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

    def _dispatch(self, service: str, method: str, args: list[Any]) -> Any:
        with self._state:
            if service == "common":
                self.calls[("common", method)] += 1
                if method == "version":
                    return {
                        "server_version": "17.0",
                        "server_version_info": [17, 0, 0, "final", 0, ""],
                        "server_serie": "17.0",
                        "protocol_version": 1,
                    }
                if method in ("login", "authenticate"):
                    db, login, key = args[0], args[1], args[2]
                    return UID if (db, login, key) == (self.db, self.login, self.api_key) else False
                raise OdooError("builtins.AttributeError", f"no method {method}")
            if service != "object" or method != "execute_kw":
                raise OdooError("builtins.Exception", f"unknown service {service}.{method}")
            db, uid, key, model, model_method = args[:5]
            positional = list(args[5]) if len(args) > 5 else []
            named = dict(args[6]) if len(args) > 6 and args[6] else {}
            self.calls[(model, model_method)] += 1
            if (db, uid, key) != (self.db, UID, self.api_key):
                raise OdooError("odoo.exceptions.AccessDenied", "Access Denied")
            if model not in MODELS:
                raise OdooError("builtins.KeyError", repr(model))
            return self._execute(model, model_method, positional, named)

    def _execute(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if method == "search_read":
            ids = self._search(model, args[0] if args else kwargs.get("domain", []), kwargs)
            return [self._read(model, i, kwargs.get("fields")) for i in ids]
        if method == "search":
            return self._search(model, args[0] if args else kwargs.get("domain", []), kwargs)
        if method == "search_count":
            return len(self._search(model, args[0] if args else kwargs.get("domain", []), {}))
        if method == "read":
            return [self._read(model, i, kwargs.get("fields")) for i in args[0] if i in self.tables[model]]
        if method == "create":
            values = args[0] if args else kwargs["vals_list"]
            if isinstance(values, list):
                return [self._create(model, v) for v in values]
            return self._create(model, values)
        if method == "write":
            for record_id in args[0]:
                self._write(model, record_id, args[1])
            return True
        if method == "fields_get":
            return {name: {"type": "many2one" if rel else "char"} for name, rel in MODELS[model].items()}
        if method == "message_post" and model in CHATTER:
            for record_id in args[0]:
                self._existing(model, record_id)
            return self._create(
                "mail.message",
                {
                    "model": model,
                    "res_id": args[0][0],
                    "body": kwargs.get("body", ""),
                    "message_type": kwargs.get("message_type", "notification"),
                    "subtype_xmlid": kwargs.get("subtype_xmlid"),
                },
            )
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
            return f"mail.activity({','.join(map(str, created))},)"  # Odoo 17 stringifies recordsets
        raise OdooError(
            "builtins.AttributeError", f"The method '{method}' does not exist on the model '{model}'"
        )

    # --- records -----------------------------------------------------------------------------

    def _seed(self) -> None:
        # Like Odoo, never hand out an id twice, even across resets: a worker that remembers the
        # id of a tag from an earlier test must not hit another record by chance.
        self.tables = {model: {} for model in MODELS}
        self._next_id = {model: self._next_id.get(model, 1) for model in MODELS}
        self._next_id.update({"res.users": 1, "crm.stage": 1})
        self._create("res.users", {"name": "Administrator", "login": "admin"})
        self._next_id["res.users"] = UID
        self._create("res.users", {"name": "Sync bot", "login": self.login})
        self._create("crm.stage", {"name": "New", "is_won": False, "sequence": 1})
        self._create("crm.stage", {"name": "Won", "is_won": True, "sequence": 70})

    def _create(self, model: str, values: dict[str, Any]) -> int:
        self._check(model, values)
        record: dict[str, Any] = dict.fromkeys(MODELS[model], False)
        if "active" in record:
            record["active"] = True
        if model == "crm.lead":
            record.update(stage_id=1, user_id=UID, priority="0", type="lead", probability=10)
        for name in MANY2MANY:
            if name[0] == model:
                record[name[1]] = []
        record_id = self._next_id[model]
        self._next_id[model] += 1
        record["id"] = record_id
        self._apply(model, record, values)
        for name in REQUIRED.get(model, ()):
            if not record.get(name):
                raise OdooError(
                    "odoo.exceptions.ValidationError", f"Missing required value for {model}.{name}"
                )
        if model in UNIQUE_NAME and any(r["name"] == record["name"] for r in self.tables[model].values()):
            raise OdooError("odoo.exceptions.ValidationError", "Tag name already exists!")
        self.tables[model][record_id] = record
        return record_id

    def _write(self, model: str, record_id: int, values: dict[str, Any]) -> None:
        record = self._existing(model, record_id)
        self._check(model, {**record, **values})
        updated = dict(record)
        self._apply(model, updated, values)
        self.tables[model][record_id] = updated

    def _apply(self, model: str, record: dict[str, Any], values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in MODELS[model]:
                raise OdooError("builtins.ValueError", f"Invalid field '{name}' on model '{model}'")
            if (model, name) in MANY2MANY:
                record[name] = self._commands(MODELS[model][name] or "", list(record[name]), value)
            elif MODELS[model][name] and value:
                self._existing(MODELS[model][name] or "", int(value))
                record[name] = int(value)
            else:
                record[name] = value

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

    def _read(self, model: str, record_id: int, fields: list[str] | None) -> dict[str, Any]:
        record = self.tables[model][record_id]
        result: dict[str, Any] = {"id": record_id}
        for name in fields or list(MODELS[model]):
            if name == "id":
                continue
            if name not in MODELS[model]:
                raise OdooError("builtins.ValueError", f"Invalid field '{name}' on model '{model}'")
            value = record[name]
            related = MODELS[model][name]
            if related and (model, name) not in MANY2MANY:
                value = [value, self.tables[related][value].get("name") or ""] if value else False
            result[name] = copy.deepcopy(value)
        return result

    def _search(self, model: str, domain: list[Any], options: dict[str, Any]) -> list[int]:
        records = list(self.tables[model].values())
        if "active" in MODELS[model] and not any(_leaf(t) and t[0] == "active" for t in domain):
            records = [r for r in records if r["active"]]
        ids = [r["id"] for r in records if self._matches(model, r, list(domain))]
        order = str(options.get("order") or "id asc")
        ids.sort(reverse=order.split()[-1].lower() == "desc")
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
            related = MODELS[current_model].get(step)
            if not related or not current.get(step):
                return False
            current_model, current = related, self.tables[related][current[step]]
        if last != "id" and last not in MODELS[current_model]:
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
