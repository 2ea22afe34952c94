"""The console blueprint, its one permission guard, navigation and error pages.

Every console view is wrapped in ``console_view(permission)``: anonymous → redirect to the
login page, signed in without the permission → 403 page. Permission names come from
``app.identity.access`` and are checked with ``User.can``, like the JSON API.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from app.blueprints.console.wording import human
from app.compliance.models import KycSubmission
from app.core import errors
from app.core import settings as settings_service
from app.core.errors import AppError
from app.core.extensions import db
from app.core.i18n import N_, translate_message
from app.core.money import format_minor
from app.identity import console_sessions
from app.messaging import chat
from app.payments.models import PaymentTransaction

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("console", __name__, url_prefix="/admin")

SESSION_ID = "console_sid"
SESSION_STARTED = "console_started_at"


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    permission: str | None
    #: Other endpoints that highlight this item (detail pages of a list).
    also: tuple[str, ...] = ()
    #: A pending-work badge: the name of a counter in ``PENDING_COUNTS``.
    count: str | None = None


#: The console menu; later areas (KYC, withdrawals, reports...) add a line here.
NAV: list[NavItem] = [
    NavItem("console.dashboard", "Dashboard", None),
    NavItem("console.players", "Players", "players.read", ("console.player_detail",)),
    NavItem("console.kyc_queue", "KYC review", "kyc.read", ("console.kyc_detail",), "kyc"),
    NavItem(
        "console.withdrawals",
        "Withdrawals",
        "withdrawals.read",
        ("console.withdrawal_detail",),
        "withdrawals",
    ),
    NavItem("console.deposits", "Deposits", "withdrawals.read"),
    NavItem("console.transactions", "Ledger", "transactions.read"),
    NavItem("console.bets", "Bets", "transactions.read"),
    NavItem("console.callbacks", "Callbacks", "callbacks.read"),
    NavItem("console.games_list", "Games", "games.manage"),
    NavItem("console.providers", "Providers", "games.manage"),
    NavItem(
        "console.financial_report",
        "Reports",
        "reports.read",
        ("console.providers_report", "console.players_report"),
    ),
    NavItem(
        "console.promotions_list",
        "Promotions",
        "promotions.manage",
        ("console.promotion_new", "console.promotion_edit", "console.promotion_bonuses"),
    ),
    NavItem(
        "console.jackpots_list",
        "Jackpots",
        "promotions.manage",
        ("console.jackpot_detail", "console.jackpot_new", "console.jackpot_edit"),
    ),
    NavItem(
        "console.lottery_list",
        "Lottery",
        "promotions.manage",
        ("console.lottery_detail", "console.lottery_new"),
    ),
    NavItem(
        "console.tournaments_list",
        "Tournaments",
        "promotions.manage",
        ("console.tournament_detail", "console.tournament_new", "console.tournament_edit"),
    ),
    NavItem(
        "console.support_inbox",
        "Support",
        "support.manage",
        ("console.support_conversation",),
        "support",
    ),
    NavItem(
        "console.crm_segments",
        "CRM",
        "crm.manage",
        ("console.crm_segment_new", "console.crm_broadcasts", "console.crm_broadcast_new"),
    ),
    NavItem(
        "console.content_list",
        "Content",
        "content.manage",
        (
            "console.content_new",
            "console.content_edit",
            "console.content_version",
            "console.content_preview",
        ),
    ),
    NavItem("console.affiliates_page", "Affiliates", "affiliates.read"),
    NavItem("console.erasure_requests", "Erasure requests", "players.read"),
    NavItem("console.audit_log", "Audit log", "audit.read"),
    NavItem("console.staff", "Staff", "staff.manage", ("console.staff_new",)),
    NavItem("console.settings", "Settings", "settings.manage"),
    NavItem(
        "console.mail_templates_list",
        "E-mail templates",
        "settings.manage",
        ("console.mail_template_edit",),
    ),
    NavItem("console.jobs", "Jobs", "jobs.manage"),
    NavItem("console.my_exports", "My exports", "exports.own"),
]


def nav_for(user: Any) -> list[NavItem]:
    return [item for item in NAV if item.permission is None or user.can(item.permission)]


def _pending_kyc() -> int:
    query = select(func.count(KycSubmission.id)).where(KycSubmission.status == "pending")
    return int(db.session.scalar(query) or 0)


def _pending_withdrawals() -> int:
    query = select(func.count(PaymentTransaction.id)).where(
        PaymentTransaction.type == "withdrawal", PaymentTransaction.status == "pending"
    )
    return int(db.session.scalar(query) or 0)


#: Badge counters of the menu (``NavItem.count``): work waiting in a queue.
PENDING_COUNTS: dict[str, Callable[[], int]] = {
    "support": chat.conversations_waiting,
    "kyc": _pending_kyc,
    "withdrawals": _pending_withdrawals,
}


def nav_counts(user: Any) -> dict[str, int]:
    """The badge counts of the menu items ``user`` sees (one COUNT query each)."""
    return {item.count: PENDING_COUNTS[item.count]() for item in nav_for(user) if item.count}


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def safe_next(target: str | None) -> str | None:
    """Only a path inside the console: never another host or a scheme-relative URL."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or "\\" in target:
        return None
    return target


def hx_redirect(url: str) -> Response:
    """Redirect that also works when the request came from HTMX (full page load)."""
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)  # type: ignore[return-value]


def console_view(permission: str | None = None) -> Callable[[F], F]:
    """The one guard for console pages: signed-in staff, plus ``permission`` when given."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                nxt = request.full_path if request.method == "GET" else None
                return hx_redirect(url_for("console.login", next=safe_next(nxt)))
            if permission is not None and not current_user.can(permission):
                abort(403)
            return fn(*args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


@bp.before_request
def _live_session_only():
    """A cookie alone is not enough: its session must still be open server-side."""
    if not current_user.is_authenticated:
        return None
    alive = console_sessions.touch(session.get(SESSION_ID), current_user.id)
    cutoff = current_user.tokens_valid_after
    if alive and cutoff is not None and cutoff.timestamp() > session.get(SESSION_STARTED, 0):
        alive = False  # revoked (force logout, password change) after this session started
    if alive and console_sessions.expired(session.get(SESSION_STARTED)):
        alive = False  # older than CONSOLE_SESSION_MAX_HOURS, however active (issue 21)
    if alive and not current_user.totp_enabled:
        alive = False  # opened before TOTP was mandatory for every staff role: enrol first
    if alive:
        session.permanent = True
        return None
    console_sessions.close(session.get(SESSION_ID))
    logout_user()
    session.clear()
    flash("Your session has ended. Please sign in again.", "info")
    return hx_redirect(url_for("console.login"))


@bp.after_request
def _no_store(response: Response) -> Response:
    # Staff pages carry personal data: never cached by the browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("Vary", "Cookie")
    return response


@bp.app_context_processor
def _console_globals() -> dict[str, Any]:
    return {
        "console_nav": nav_for,
        "console_nav_counts": nav_counts,
        "is_htmx": is_htmx,
        "now_ts": time.time,
        "maintenance_state": settings_service.maintenance_state,
    }


def _error_page(status: int, title: str, message: str):
    return render_template(
        "console/error.html", status=status, title=title, message=message
    ), status


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError):
    return _error_page(
        400,
        _("Form expired"),
        _("The form was missing its security token. Reload and try again."),
    )


@bp.errorhandler(AppError)
def _domain_error(exc: AppError):
    return _error_page(exc.status, _("Not possible"), translate_message(exc.message))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    status = exc.code or 500
    titles = {
        403: (_("Access denied"), _("Your role does not allow this page or action.")),
        404: (_("Not found"), _("There is nothing here.")),
        405: (_("Not allowed"), _("This address does not accept that kind of request.")),
        429: (_("Too many attempts"), _("Wait a minute before trying again.")),
    }
    title, message = titles.get(status, (exc.name, exc.description or ""))
    return _error_page(status, title, message)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _routing_error(exc: HTTPException):
    """An address under ``/admin`` that no console page serves (a mistyped or stale link, a
    bookmark of ``/admin/reports``) answers the console's error page, as the console's own
    404s do, not the API's JSON envelope. Flask matches the URL before it knows the
    blueprint, so only an app-wide handler sees these; every other path keeps the envelope."""
    if request.path == bp.url_prefix or request.path.startswith(f"{bp.url_prefix}/"):
        return _http_error(exc)
    return errors.handle_http(exc)


_LEADING_NUMBER = re.compile(r"^(-?)(\d{4,})")


def thousands(value: Any) -> str:
    """``1234567.89 EUR`` → ``1,234,567.89 EUR``: groups the leading whole number only."""
    text = str(value)
    return _LEADING_NUMBER.sub(lambda m: f"{m.group(1)}{int(m.group(2)):,}", text, count=1)


def enum_label(value: Any) -> str:
    """A stored enum value in words: ``"on_sale"`` → ``"On sale"``, ``"deposit_match"`` →
    ``"Deposit match"`` (never ``"On_sale"``)."""
    text = str(value or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


#: The words of the stored values the console shows through ``|label`` (statuses, types,
#: kinds), so that they are extracted and translated; a value not listed shows in English.
LABEL_WORDS = (
    N_("Active"),
    N_("Adjustment"),
    N_("All"),
    N_("Answered"),
    N_("Approved"),
    N_("Banned"),
    N_("Banner"),
    N_("Bet"),
    N_("Bonus"),
    N_("Bonus convert"),
    N_("Bonus forfeit"),
    N_("Bonus grant"),
    N_("Both"),
    N_("Canceled"),
    N_("Cancelled"),
    N_("Cash"),
    N_("Cashback"),
    N_("Closed"),
    N_("Closing"),
    N_("Commission"),
    N_("Completed"),
    N_("Daily"),
    N_("Deposit"),
    N_("Deposit match"),
    N_("Dismissed"),
    N_("Draft"),
    N_("Drawn"),
    N_("Ended"),
    N_("Excluded"),
    N_("Expired"),
    N_("Failed"),
    N_("Forfeited"),
    N_("Free spins"),
    N_("Id back"),
    N_("Id front"),
    N_("Inactive"),
    N_("Issued"),
    N_("Jackpot win"),
    N_("Locked"),
    N_("Loss"),
    N_("Maintenance"),
    N_("Monthly"),
    N_("Multiplier"),
    N_("Net"),
    N_("No deposit"),
    N_("None"),
    N_("Open"),
    N_("Paid"),
    N_("Passport"),
    N_("Paused"),
    N_("Pending"),
    N_("Placing"),
    N_("Played"),
    N_("Processing"),
    N_("Proof of address"),
    N_("Redemption"),
    N_("Referral"),
    N_("Refund"),
    N_("Rejected"),
    N_("Reload"),
    N_("Reversal"),
    N_("Reversed"),
    N_("Reviewed"),
    N_("Rollback"),
    N_("Rollback pending"),
    N_("Rolled back"),
    N_("Running"),
    N_("Scheduled"),
    N_("Self exclusion"),
    N_("Selfie"),
    N_("Sent"),
    N_("Session time"),
    N_("Settled"),
    N_("Suspended"),
    N_("Time out"),
    N_("Tournament fee"),
    N_("Tournament prize"),
    N_("Upcoming"),
    N_("Used"),
    N_("Wager"),
    N_("Wagered"),
    N_("Weekly"),
    N_("Win"),
    N_("Win pending"),
    N_("Withdrawal"),
    N_("Withdrawal hold"),
    N_("Withdrawal release"),
    N_("Won"),
)


#: More stored values shown through ``|label`` (support, content, reports, settings pages).
LABEL_WORDS_MORE = (
    N_("Acknowledged"),
    N_("Cleared"),
    N_("Verified"),
    N_("Unverified"),
    N_("Unassigned"),
    N_("Anyone"),
    N_("Me"),
    N_("Account"),
    N_("Payments"),
    N_("Games"),
    N_("Technical"),
    N_("Responsible gaming"),
    N_("Other"),
    N_("Platform"),
    N_("Identity"),
    N_("Reports"),
    N_("Risk"),
    N_("Support"),
    N_("Day"),
    N_("Week"),
    N_("Month"),
    N_("Game"),
    N_("Provider"),
    N_("Segment"),
    N_("Vip"),
    N_("Home top"),
    N_("Home middle"),
    N_("Lobby"),
    N_("Cashier"),
    N_("Sidebar"),
    N_("Queued"),
    N_("Ready"),
    N_("Published"),
    N_("Money"),
)


@bp.app_template_filter("translate")
def _translate(message: Any) -> Any:
    """A text that is not in the template (a menu label, a flashed or domain message) in the
    page's language when the catalogue has it; never %-formatted (it may contain a "%")."""
    return translate_message(message)


@bp.app_template_filter("label")
def _label(value: Any) -> str:
    return translate_message(enum_label(value))


@bp.app_template_filter("human_error")
def _human_error(message: str, label: Any = "") -> str:
    # A label may be a lazy (translated) string: the wording rules work on plain text.
    return human(str(message), str(label))


@bp.app_template_filter("thousands")
def _thousands(value: Any) -> str:
    return thousands(value)


@bp.app_template_filter("money")
def _money(minor: int | None, currency: str) -> str:
    """Integer minor units → ``"1,152.40 EUR"`` (the currency's own exponent, grouped)."""
    return f"{thousands(format_minor(int(minor or 0), currency))} {currency}"
