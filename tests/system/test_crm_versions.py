"""Odoo 17, 18 and 19: the protocol each is spoken to in, and what a version lacks.

The fake Odoo (testkit/fakes/odoo.py) answers as the version it is told to be: JSON-RPC for all,
JSON-2 (``POST /json/2/<model>/<method>``, a bearer API key, named arguments) from 19 on, and
each version's fields (no ``mobile`` on 19, the stage's ``team_ids``). The real sync worker
reads the version at connect and picks the protocol; ``GET /api/crm`` says what it found.
"""

from __future__ import annotations

import pytest

from testkit import samples
from tests.system.conftest import SHARED, odoo_shaped
from tests.system.test_crm_sync import crm_view, leads_of, partners, settled, unique_phone

pytestmark = pytest.mark.usefixtures("worker")


def chat_from_an_ad(client, name: str) -> str:
    """A new customer's first message, from a click-to-WhatsApp ad; their E.164 phone."""
    wa_id, phone = unique_phone()
    payload = samples.inbound_text(wa_id, name, "Halo, masih ada stok?")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["referral"] = samples.ad_referral()
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    return phone


def test_each_version_is_spoken_to_in_its_protocol_and_shown_in_the_api(client, admin_headers, odoo_version):
    odoo = odoo_version
    phone = chat_from_an_ad(client, "Budi")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    assert lead["source_id"] and lead["medium_id"] and lead["campaign_id"]
    assert crm_view(client, admin_headers, phone)["state"] == "synced"

    object_calls = [
        r for r in odoo.requests if r["path"] != "/jsonrpc" or r["body"]["params"]["service"] == "object"
    ]
    if odoo.version >= 19:
        assert object_calls and all(r["path"].startswith("/json/2/") for r in object_calls)
        assert {r["headers"]["authorization"] for r in object_calls} == {f"bearer {odoo.api_key}"}
        assert "mobile" not in partner
    else:
        assert object_calls and all(r["path"] == "/jsonrpc" for r in object_calls)
    status = client.get("/api/crm", headers=admin_headers).json()
    assert status["version"] == f"{odoo.version}.0"
    assert status["protocol"] == ("json2" if odoo.version >= 19 else "jsonrpc")
    assert status["missing"] == []
    assert odoo.api_key not in str(status)


@pytest.fixture
def odoo_lacking(worker):
    """Odoo 19 without the lead's ``medium_id`` field and without the ``utm.campaign`` model
    (as if their module were not installed); Odoo 17 with everything again afterwards."""
    odoo = odoo_shaped(19, without=("crm.lead.medium_id", "utm.campaign"))
    odoo.reset()
    yield odoo
    odoo_shaped(17)


def test_a_field_and_a_model_odoo_lacks_are_reported_once_and_the_sync_goes_on(
    client, admin_headers, odoo_lacking
):
    odoo = odoo_lacking
    phones = [chat_from_an_ad(client, f"Pelanggan {n}") for n in range(3)]
    settled()
    for phone in phones:
        [partner] = partners(odoo, phone)
        [lead] = leads_of(odoo, partner["id"])
        assert lead["source_id"] and "medium_id" not in lead  # the rest of the lead is there
        assert crm_view(client, admin_headers, phone)["state"] == "synced"
    assert not odoo.count("utm.campaign", "create")

    status = client.get("/api/crm", headers=admin_headers).json()
    assert status["version"] == "19.0" and status["protocol"] == "json2"
    missing = {entry["what"]: entry for entry in status["missing"]}
    assert set(missing) == {"crm.lead.medium_id", "utm.campaign"}
    assert "no field 'medium_id' on crm.lead" in missing["crm.lead.medium_id"]["message"]
    assert missing["utm.campaign"]["odoo_version"] == "19.0"

    # Logged once per worker process (two here), not once per lead.
    [crm_worker] = [p for p in SHARED if "crm" in " ".join(p._args)]
    log = crm_worker.log_path.read_text(errors="replace")
    assert 1 <= log.count("has no field 'medium_id' on crm.lead") <= 2
