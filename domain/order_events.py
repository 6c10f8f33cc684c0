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
