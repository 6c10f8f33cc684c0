"""The order system's event types (the interface in README, "Order-system events")."""

EVENT_TYPES = (
    "contact.created",
    "order.created",
    "order.updated",
    "order.paid",
    "order.shipped",
    "order.received",
    "order.cancelled",
)

# The order system's contact id becomes the contact identity "orders:<id>".
CONTACT_ID_PREFIX = "orders:"
# An event's note on the CRM lead is keyed "order-event:<event id>" (once per event).
CRM_NOTE_PREFIX = "order-event:"
