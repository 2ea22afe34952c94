"""All tables; importing this module registers every model on the metadata."""

from app.models.audit import AuditLog
from app.models.identity import LoginEvent, PasswordResetToken, RefreshToken, TokenFamily
from app.models.mail import OutboxEmail
from app.models.settings import Setting
from app.models.user import Role, User

__all__ = [
    "AuditLog",
    "LoginEvent",
    "OutboxEmail",
    "PasswordResetToken",
    "RefreshToken",
    "Role",
    "Setting",
    "TokenFamily",
    "User",
]
