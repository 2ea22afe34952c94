"""All tables: importing this package registers every model module on the metadata.

Import models from their own module (``from app.models.wallet import Wallet``).
"""

from app.models import (  # noqa: F401 - imported for their table definitions
    audit,
    engagement,
    games,
    identity,
    kyc,
    mail,
    originals,
    payments,
    realtime,
    responsible_gaming,
    settings,
    user,
    wallet,
)
