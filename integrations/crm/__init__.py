"""Syncing contacts, leads and conversations to a CRM (Odoo today).

``crm_for(settings)`` is the one place that turns the ``ODOO_*`` settings into an adapter: None
while ``ODOO_URL`` is unset (sync is off), a ValueError naming the missing setting when the URL
is set without the rest, so a worker refuses to start half-configured.
"""

from __future__ import annotations

from domain import deal_stages
from integrations.crm.base import (
    ActivityIn,
    Crm,
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
from integrations.crm.odoo import OdooCrm, OdooRpc
from settings import Settings

__all__ = [
    "ActivityIn",
    "Crm",
    "CrmError",
    "CrmPermanentError",
    "CrmTransientError",
    "LeadChange",
    "LeadIn",
    "LeadUpdate",
    "LogLine",
    "OdooCrm",
    "OdooRpc",
    "OrderChange",
    "PartnerIn",
    "SaleLine",
    "SaleOrderIn",
    "Target",
    "crm_for",
]


def crm_for(config: Settings) -> Crm | None:
    """The Odoo adapter for ``config``, or None when sync is off."""
    if not config.odoo_url:
        return None
    needed = {"ODOO_DB": config.odoo_db, "ODOO_LOGIN": config.odoo_login, "ODOO_API_KEY": config.odoo_api_key}
    missing = [name for name, value in needed.items() if not value]
    if missing:
        raise ValueError(f"ODOO_URL is set, so Odoo sync needs {' and '.join(missing)}")
    rpc = OdooRpc(
        config.odoo_url,
        config.odoo_db or "",
        config.odoo_login or "",
        config.odoo_api_key or "",
        config.odoo_timeout_seconds,
        protocol=config.odoo_protocol,
    )
    deal_stages.parse_stage_map(config.crm_stage_map)  # a wrong map stops the worker, named
    return OdooCrm(rpc, config.default_region, generic_product=config.odoo_generic_product)
