"""Beat's refit of the learned lead score (pipeline/lead_model.py), also run on request
(``POST /api/lead-model/refit``). Two refits at once would each store a model; a transaction-level
advisory lock makes the second wait, then fit on the same data, which is harmless."""

from __future__ import annotations

import logging

from models.db import lock_key, session_scope
from pipeline import lead_model
from queueing import names
from queueing.tasks import periodic_task

log = logging.getLogger(__name__)


@periodic_task(names.REFIT_LEAD_MODEL)
def refit_lead_model() -> int:
    """Fit, back-test and store a model; returns its id."""
    with session_scope() as session:
        lock_key(session, "lead-model-refit")
        row = lead_model.refit(session)
        log.info(
            "lead model refitted",
            extra={"model": row.id, "active": row.active, "outcomes": row.outcomes, "reason": row.reason},
        )
        return row.id
