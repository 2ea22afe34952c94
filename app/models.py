"""All tables: importing this module registers every domain's models on the metadata.

Import models from their own domain (``from app.wallet.models import Wallet``); this module
exists for the app factory, migrations and tests, which need every table at once.
"""

from app.affiliates import models as affiliates  # noqa: F401
from app.bonus import models as bonus  # noqa: F401
from app.compliance import models as compliance  # noqa: F401
from app.content import models as content  # noqa: F401
from app.core import models as core  # noqa: F401
from app.identity import models as identity  # noqa: F401
from app.messaging import models as messaging  # noqa: F401
from app.originals import models as originals  # noqa: F401
from app.payments import models as payments  # noqa: F401
from app.play import models as play  # noqa: F401
from app.prizes import models as prizes  # noqa: F401
from app.reports import models as reports  # noqa: F401
from app.wallet import models as wallet  # noqa: F401
