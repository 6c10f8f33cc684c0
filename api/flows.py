"""The WhatsApp Flows this system serves, and each one's Flow JSON to upload to Meta."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from settings import PROJECT_ROOT

# One Flow JSON per Flow; producers/flow_screens.py answers each one's data-endpoint requests.
FLOWS_DIR = PROJECT_ROOT / "templates" / "flows"

router = APIRouter(prefix="/api", tags=["flows"])  # who may call: api/permissions.py


class FlowOut(BaseModel):
    name: str
    endpoint: str  # the data endpoint to set in the Flow's settings at Meta
    definition: str  # where its Flow JSON is


def shipped_flows() -> list[str]:
    return sorted(path.stem for path in FLOWS_DIR.glob("*.json"))


@router.get("/flows", response_model=list[FlowOut])
def list_flows() -> list[FlowOut]:
    return [FlowOut(name=n, endpoint=f"/flows/{n}", definition=f"/api/flows/{n}") for n in shipped_flows()]


@router.get("/flows/{name}")
def flow_definition(name: str) -> dict[str, Any]:
    """The Flow JSON, as it is uploaded to Meta (Flow Builder or the Flows API)."""
    if name not in shipped_flows():
        raise HTTPException(404, f"no Flow named {name!r}")
    return json.loads((FLOWS_DIR / f"{name}.json").read_text())
