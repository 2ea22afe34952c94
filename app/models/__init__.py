"""All tables; importing this module registers every model on the metadata."""

from app.models.audit import AuditLog
from app.models.games import (
    Game,
    GameCategory,
    GameFavorite,
    GameRound,
    GameSession,
    Provider,
    ProviderCallback,
    ProviderTransaction,
)
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
from app.models.wallet import LedgerEntry, LedgerTransaction, Wallet

__all__ = [
    "AuditLog",
    "Game",
    "GameCategory",
    "GameFavorite",
    "GameRound",
    "GameSession",
    "KycDocument",
    "KycEvent",
    "KycSubmission",
    "LedgerEntry",
    "LedgerTransaction",
    "PaymentGateway",
    "PaymentTransaction",
    "PaymentWebhook",
    "Provider",
    "ProviderCallback",
    "ProviderTransaction",
    "RgExclusion",
    "RgLimit",
    "RgSession",
    "RgSettings",
    "RiskFlag",
    "Role",
    "Setting",
    "User",
    "Wallet",
    "WithdrawalApproval",
]
