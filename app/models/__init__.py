"""All tables: importing this package registers every model module on the metadata.

Import models from their own module (``from app.models.wallet import Wallet``).
"""

from app.models import (  # noqa: F401 - imported for their table definitions
    affiliates,
    audit,
    crm,
    engagement,
    games,
    identity,
    kyc,
    loyalty,
    mail,
    originals,
    payments,
    promotions,
    realtime,
    responsible_gaming,
    settings,
    support,
    user,
    wallet,
)
