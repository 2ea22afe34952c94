"""All tables; importing this module registers every model on the metadata."""

from app.models.audit import AuditLog
from app.models.realtime import Notification, OutboxMessage, RealityCheckSetting
from app.models.settings import Setting
from app.models.user import Role, User

__all__ = [
    "AuditLog",
    "Notification",
    "OutboxMessage",
    "RealityCheckSetting",
    "Role",
    "Setting",
    "User",
]
