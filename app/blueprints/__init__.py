"""Blueprint registration: the one list of everything the app serves."""

from __future__ import annotations

from flask import Flask, request

from app.blueprints import console, health, index, media, metrics, sandbox
from app.blueprints.api import (
    admin_affiliate,
    admin_analytics,
    admin_auth,
    admin_content,
    admin_crm,
    admin_exports,
    admin_games,
    admin_jobs,
    admin_money,
    admin_payments,
    admin_reports,
    admin_settings,
    admin_users,
    affiliate,
    auth,
    content,
    games,
    home,
    kyc,
    loyalty,
    notifications,
    payments,
    promotions,
    responsible_gaming,
    social_auth,
    support,
    system,
    user_account,
    user_phones,
    wallet,
)
from app.blueprints.api import jackpots as jackpots_api
from app.blueprints.api import lottery as lottery_api
from app.blueprints.api import tournaments as tournaments_api
from app.blueprints.api.identity_common import init_access_gate
from app.blueprints.originals import api as originals_api
from app.blueprints.originals import pages as originals_pages
from app.blueprints.provider import callbacks
from app.core.extensions import api as rest_api
from app.core.extensions import csrf, limiter


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(health.bp)
    limiter.exempt(health.bp)
    csrf.exempt(health.bp)
    app.register_blueprint(metrics.bp)  # GET /metrics: token or address allow-list
    limiter.exempt(metrics.bp)
    csrf.exempt(metrics.bp)
    app.register_blueprint(index.bp)  # GET / only: links to the docs, the console, health
    app.register_blueprint(media.bp)  # GET /media/games/<name>: uploaded game images
    # The back office: session cookie + CSRF token on every form (never exempted).
    app.register_blueprint(console.bp)

    # JxOriginals pages are GETs; its JSON API carries the session in the path, not a cookie.
    app.register_blueprint(originals_pages.bp)
    app.register_blueprint(sandbox.bp)  # HTML checkout page: CSRF-protected forms

    init_access_gate(app)
    for blp in (
        system.blp,
        auth.blp,
        social_auth.blp,
        user_account.blp,
        user_phones.blp,
        admin_auth.blp,
        admin_users.blp,
        payments.blp,
        admin_payments.blp,
        kyc.blp,
        responsible_gaming.blp,
        originals_api.blp,
        notifications.blp,
        admin_jobs.blp,
        admin_settings.blp,
    ):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies, so no CSRF surface
        rest_api.register_blueprint(blp)
    payments.document_spec(rest_api.spec)

    register_money_blueprints(app)
    register_engagement_blueprints(app)
    register_promotion_blueprints(app)


def register_promotion_blueprints(app: Flask) -> None:
    """Promotions and bonuses, support, home feed (issue 8)."""
    for blp in (
        promotions.blp,
        support.blp,
        home.blp,
        affiliate.blp,
        admin_crm.blp,
        admin_affiliate.blp,
        loyalty.blp,
        loyalty.redeem_blp,
        loyalty.admin_blp,
        content.blp,
        admin_content.blp,
    ):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies
        rest_api.register_blueprint(blp)


def register_money_blueprints(app: Flask) -> None:
    """Wallet, games and the provider callback endpoint (issue 4)."""
    for blp in (
        wallet.blp,
        games.blp,
        admin_money.blp,
        admin_games.blp,
        admin_reports.blp,
        admin_analytics.blp,
        admin_exports.blp,
    ):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies
        rest_api.register_blueprint(blp)

    csrf.exempt(callbacks.blp)  # signed server-to-server calls, no cookies
    # Its own per-worker limit (provider/callbacks.py); a request filter skips Flask-Limiter's
    # resolution of every limit before it would find the exemption (a quarter of a millisecond).
    limiter.request_filter(_is_provider_callback)
    rest_api.register_blueprint(callbacks.blp)


def register_engagement_blueprints(app: Flask) -> None:
    """Jackpots, tournaments, lottery draws (issue 9)."""
    for blp in (
        jackpots_api.blp,
        jackpots_api.admin_blp,
        tournaments_api.blp,
        tournaments_api.admin_blp,
        lottery_api.blp,
        lottery_api.user_blp,
        lottery_api.admin_blp,
    ):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies
        rest_api.register_blueprint(blp)


def _is_provider_callback() -> bool:
    return request.blueprint == callbacks.blp.name
