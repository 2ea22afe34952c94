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
from app.models.originals import (
    OriginalsCredential,
    OriginalsRound,
    OriginalsSeed,
    OriginalsSession,
)
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
    "LedgerEntry",
    "LedgerTransaction",
    "OriginalsCredential",
    "OriginalsRound",
    "OriginalsSeed",
    "OriginalsSession",
    "Provider",
    "ProviderCallback",
    "ProviderTransaction",
    "Role",
    "Setting",
    "User",
    "Wallet",
]
