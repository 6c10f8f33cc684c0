"""The routing queue: one decision per inbound message (pipeline/routing.py decides).

Published after the ingest transaction commits; the routing sweeper republishes a lost one.
A second delivery finds the decision made and changes nothing.
"""

from __future__ import annotations

from models.db import session_scope
from observability.metrics import ROUTING_DECISIONS
from pipeline.routing import route
from queueing import names
from queueing.tasks import event_task


@event_task(names.ROUTE_MESSAGE)
def route_message(message_id: int) -> str:
    with session_scope() as session:
        outcome = route(session, message_id)
    if outcome != "skipped":
        ROUTING_DECISIONS.labels(outcome).inc()
    return outcome
