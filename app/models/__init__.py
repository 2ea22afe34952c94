"""All tables; importing this module registers every model on the metadata."""

from app.models.audit import AuditLog
from app.models.originals import (
    OriginalsCredential,
    OriginalsRound,
    OriginalsSeed,
    OriginalsSession,
)
from app.models.settings import Setting
from app.models.user import Role, User

__all__ = [
    "AuditLog",
    "OriginalsCredential",
    "OriginalsRound",
    "OriginalsSeed",
    "OriginalsSession",
    "Role",
    "Setting",
    "User",
]
