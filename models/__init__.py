"""SQLAlchemy models: one module per concept. Importing this package registers every table."""

from models.accounts import AuthToken, SignInFailure
from models.base import Base
from models.broadcasts import Broadcast
from models.campaigns import ConversionEvent, LinkClick, Touch, TrackedLink
from models.channels import Channel
from models.contacts import Company, Contact, ContactIdentity, Deal, IdentityConflict
from models.conversations import Conversation, ConversationNote, DeliveryStatus, Message
from models.crm import CrmCursor, CrmRecord, CrmSyncJob
from models.flows import FlowAnswer
from models.inbox import InboxEvent
from models.labels import ContactLabel, Label, LabelChange, LabelFlowContact, LabelFlowDay
from models.lead_models import LeadModel
from models.media import CloudMediaUpload, MediaFile
from models.orders import DeliveryFollowup, Order, OrderItem
from models.outbox import OutboundMessage
from models.routing import (
    AdaptiveFollowup,
    Agent,
    AgentTeam,
    AuditEntry,
    FaqEntry,
    FollowupRules,
    RoutingDecision,
    SurveyResponse,
)
from models.templates import MessageTemplate

__all__ = [
    "AdaptiveFollowup",
    "Agent",
    "AgentTeam",
    "AuditEntry",
    "AuthToken",
    "Base",
    "Broadcast",
    "Channel",
    "CloudMediaUpload",
    "Company",
    "Contact",
    "ContactIdentity",
    "ContactLabel",
    "Conversation",
    "ConversationNote",
    "ConversionEvent",
    "CrmCursor",
    "CrmRecord",
    "CrmSyncJob",
    "Deal",
    "DeliveryFollowup",
    "DeliveryStatus",
    "FaqEntry",
    "FlowAnswer",
    "FollowupRules",
    "IdentityConflict",
    "InboxEvent",
    "Label",
    "LabelChange",
    "LabelFlowContact",
    "LabelFlowDay",
    "LeadModel",
    "LinkClick",
    "MediaFile",
    "Message",
    "MessageTemplate",
    "Order",
    "OrderItem",
    "OutboundMessage",
    "RoutingDecision",
    "SignInFailure",
    "SurveyResponse",
    "Touch",
    "TrackedLink",
]
