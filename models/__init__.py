"""SQLAlchemy models: one module per concept. Importing this package registers every table."""

from models.base import Base
from models.broadcasts import Broadcast
from models.contacts import Company, Contact, ContactIdentity, Deal, IdentityConflict
from models.conversations import Conversation, DeliveryStatus, Message
from models.crm import CrmCursor, CrmRecord, CrmSyncJob
from models.inbox import InboxEvent
from models.labels import ContactLabel, Label, LabelChange
from models.orders import DeliveryFollowup, Order, OrderItem
from models.outbox import OutboundMessage
from models.routing import (
    AdaptiveFollowup,
    Agent,
    AuditEntry,
    FaqEntry,
    FollowupRules,
    RoutingDecision,
    SurveyResponse,
)

__all__ = [
    "AdaptiveFollowup",
    "Agent",
    "AuditEntry",
    "Base",
    "Broadcast",
    "Company",
    "Contact",
    "ContactIdentity",
    "ContactLabel",
    "Conversation",
    "CrmCursor",
    "CrmRecord",
    "CrmSyncJob",
    "Deal",
    "DeliveryFollowup",
    "DeliveryStatus",
    "FaqEntry",
    "FollowupRules",
    "IdentityConflict",
    "InboxEvent",
    "Label",
    "LabelChange",
    "Message",
    "Order",
    "OrderItem",
    "OutboundMessage",
    "RoutingDecision",
    "SurveyResponse",
]
