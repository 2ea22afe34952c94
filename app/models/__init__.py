"""All tables; importing this module registers every model on the metadata."""

from app.models.audit import AuditLog
from app.models.kyc import KycDocument, KycEvent, KycSubmission
from app.models.payments import (
    PaymentGateway,
    PaymentTransaction,
    PaymentWebhook,
    WithdrawalApproval,
)
from app.models.responsible_gaming import RgExclusion, RgLimit, RgSession, RgSettings, RiskFlag
from app.models.settings import Setting
from app.models.user import Role, User

__all__ = [
    "AuditLog",
    "KycDocument",
    "KycEvent",
    "KycSubmission",
    "PaymentGateway",
    "PaymentTransaction",
    "PaymentWebhook",
    "RgExclusion",
    "RgLimit",
    "RgSession",
    "RgSettings",
    "RiskFlag",
    "Role",
    "Setting",
    "User",
    "WithdrawalApproval",
]
