"""SQLAlchemy models: one module per concept. Importing this package registers every table."""

from models.base import Base
from models.contacts import Company, Contact, ContactIdentity, Deal
from models.conversations import Conversation, DeliveryStatus, Message
from models.inbox import InboxEvent
from models.orders import DeliveryFollowup, Order
from models.outbox import OutboundMessage

__all__ = [
    "Base",
    "Company",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "Deal",
    "DeliveryFollowup",
    "DeliveryStatus",
    "InboxEvent",
    "Message",
    "Order",
    "OutboundMessage",
]
