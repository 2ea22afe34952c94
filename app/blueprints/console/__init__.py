"""The staff back office at ``/admin``: server-rendered pages with HTMX partial updates.

Importing this package registers every console view on ``bp``.
"""

from app.blueprints.console import (  # noqa: F401 - each module registers its views
    admin_settings,
    affiliates_views,
    audit_log,
    auth_views,
    content_views,
    crm_views,
    dashboard,
    exports_views,
    jobs_views,
    kyc_review,
    languages_views,
    payments_views,
    play_views,
    players,
    privacy_views,
    prizes_views,
    promotions_views,
    reports_views,
    support_views,
    tournaments_views,
)
from app.blueprints.console.core import bp

__all__ = ["bp"]
