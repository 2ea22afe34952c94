"""Who may open what: every console page for every role, CSRF on every change, headers."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from app.blueprints.console.core import NAV
from app.compliance.models import KycSubmission
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from app.payments.models import PaymentTransaction
from app.play.models import Game
from app.wallet import ledger as wallet
from tests.console.conftest import PASSWORD, csrf_token_of, login
from tests.prodenv import PRODUCTION_SECRETS

ALL_STAFF = {"admin", "manager", "support", "agent"}

#: page → roles that may open it (the role table in app/identity/access.py, spelled out).
PAGES = {
    "/admin/": ALL_STAFF,
    "/admin/players": {"admin", "manager", "support"},
    "/admin/players/suggest": {"admin", "manager", "support"},
    "/admin/nav-counts": ALL_STAFF,
    "/admin/players/{player}": {"admin", "manager", "support"},
    "/admin/players/{player}/suspend": {"admin", "manager"},
    "/admin/players/{player}/ban": {"admin", "manager"},
    "/admin/players/{player}/reactivate": {"admin", "manager"},
    "/admin/players/{player}/force-logout": {"admin", "manager"},
    "/admin/audit": {"admin", "manager"},
    "/admin/kyc": {"admin", "manager", "support"},
    "/admin/kyc/{kyc}": {"admin", "manager", "support"},
    "/admin/kyc/{kyc}/approve": {"admin", "manager", "support"},
    "/admin/kyc/{kyc}/reject": {"admin", "manager", "support"},
    "/admin/withdrawals": {"admin", "manager"},
    "/admin/withdrawals/{withdrawal}": {"admin", "manager"},
    "/admin/withdrawals/{withdrawal}/approve": {"admin", "manager"},
    "/admin/withdrawals/{withdrawal}/reject": {"admin", "manager"},
    "/admin/deposits": {"admin", "manager"},
    "/admin/transactions": {"admin", "manager", "support"},
    "/admin/players/{player}/adjust-balance": {"admin", "manager"},
    "/admin/bets": {"admin", "manager", "support"},
    "/admin/callbacks": {"admin", "manager"},
    "/admin/callbacks/{callback}/replay": {"admin"},
    "/admin/games": {"admin", "manager"},
    "/admin/providers": {"admin", "manager"},
    "/admin/reports/financial": {"admin", "manager"},
    "/admin/reports/providers": {"admin", "manager"},
    "/admin/reports/players": {"admin", "manager"},
    "/admin/settings": {"admin"},
    "/admin/support": {"admin", "manager", "support"},
    "/admin/erasure-requests": {"admin", "manager", "support"},
    "/admin/crm/segments": {"admin", "manager"},
    "/admin/crm/segments/new": {"admin", "manager"},
    "/admin/crm/broadcasts": {"admin", "manager"},
    "/admin/crm/broadcasts/new": {"admin", "manager"},
    "/admin/staff": {"admin"},
    "/admin/staff/new": {"admin"},
    "/admin/promotions": {"admin", "manager"},
    "/admin/promotions/new": {"admin", "manager"},
    "/admin/promotions/{promotion}/edit": {"admin", "manager"},
    "/admin/promotions/{promotion}/bonuses": {"admin", "manager"},
    "/admin/jackpots": {"admin", "manager"},
    "/admin/jackpots/new": {"admin", "manager"},
    "/admin/jackpots/{pool}": {"admin", "manager"},
    "/admin/jackpots/{pool}/edit": {"admin", "manager"},
    "/admin/jackpots/{pool}/payout": {"admin"},
    "/admin/lottery": {"admin", "manager"},
    "/admin/lottery/new": {"admin", "manager"},
    "/admin/lottery/{draw}": {"admin", "manager"},
    "/admin/lottery/{draw}/cancel": {"admin", "manager"},
    "/admin/lottery/{draw}/draw": {"admin", "manager"},
    "/admin/jobs": {"admin"},
}


@pytest.fixture
def subjects(app, player, factory, gateway) -> dict[str, int]:
    """Ids for the pages that show one record (a KYC submission, a withdrawal...)."""
    from app.play.models import Game, ProviderCallback
    from tests.console.seeding import kyc_submission, verified_player, withdrawal
    from tests.moneykit import open_table

    payee = verified_player(factory, 100_00)
    table = open_table(app.test_client(), factory)
    table.bet("b-subject", "1.00")
    game = db.session.scalar(select(Game).where(Game.external_id == table.game_external))
    from datetime import timedelta

    from app.bonus import promotions
    from app.core.base import utcnow
    from app.prizes import jackpots, lottery

    now = utcnow()
    promotion = promotions.create_promotion(
        {"name": "Matrix", "type": "reload", "currency": "EUR", "match_percent": 50}
    )
    pool = jackpots.create_pool(
        {"name": "Matrix pot", "currency": "EUR", "seed_amount": "10", "contribution_percent": "1"},
        actor=None,
    )
    draw = lottery.create(
        {"title": "Matrix draw", "currency": "EUR", "prize_amount": "10", "ticket_price": "1",
         "max_tickets": 10, "sales_open_at": now, "sales_close_at": now + timedelta(days=1)},
        actor=None,
    )  # fmt: skip
    return {
        "promotion": promotion.id,
        "pool": pool.id,
        "draw": draw.id,
        "kyc": kyc_submission(player, docs=("passport",)).id,
        "withdrawal": withdrawal(payee, "40.00").id,
        "callback": db.session.scalar(
            select(ProviderCallback.id).order_by(ProviderCallback.id.desc())
        ),
        "game": game.id,
        "provider": game.provider_id,
    }


@pytest.mark.parametrize("path", sorted(PAGES))
@pytest.mark.parametrize("role", ["admin", "manager", "support", "agent", "player", "anonymous"])
def test_every_page_for_every_role(role, path, signed_in, client, factory, player, subjects):
    url = path.format(player=player.id, **subjects)
    if role == "anonymous":
        response = client.get(url)
    elif role == "player":
        # A player can never hold a console session: the closest they get is a forged cookie.
        someone = factory.player(password=PASSWORD)
        with client.session_transaction() as session:
            session["_user_id"] = str(someone.id)
        response = client.get(url)
    else:
        client, _staff = signed_in(role)
        response = client.get(url)
    if role in PAGES[path]:
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    elif role in ("anonymous", "player"):
        assert response.status_code == 302
        assert "/admin/login" in response.headers["Location"]
    else:
        assert response.status_code == 403
        assert "Access denied" in response.get_data(as_text=True)


def test_every_console_view_goes_through_the_guard(app):
    """A new page cannot forget the permission check: each view is wrapped by console_view."""
    public = {"console.login", "console.enrol_totp"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in public:
            continue
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "required_permission"), f"{rule.endpoint} is not guarded"


@pytest.mark.parametrize(
    ("role", "visible", "hidden"),
    [
        (
            "admin",
            {"Players", "KYC review", "Audit log", "Staff", "Settings", "Promotions", "Jobs"},
            set(),
        ),
        (
            "manager",
            {
                "Players",
                "KYC review",
                "Withdrawals",
                "Reports",
                "Audit log",
                "Promotions",
                "Jackpots",
                "Lottery",
            },
            {"Staff", "Settings", "Jobs"},
        ),
        (
            "support",
            {"Players", "KYC review", "Ledger"},
            {
                "Reports",
                "Audit log",
                "Staff",
                "Settings",
                "Promotions",
                "Jackpots",
                "Lottery",
                "Jobs",
            },
        ),
        (
            "agent",
            set(),
            {
                "Players",
                "KYC review",
                "Withdrawals",
                "Ledger",
                "Bets",
                "Games",
                "Audit log",
                "Staff",
                "Settings",
                "Promotions",
                "Jackpots",
                "Lottery",
                "Jobs",
            },
        ),
    ],
)
def test_navigation_shows_only_what_the_role_may_open(signed_in, role, visible, hidden):
    client, _staff = signed_in(role)
    html = client.get("/admin/").get_data(as_text=True)
    nav = html[html.index('<ul class="nav">') : html.index("</ul>", html.index('<ul class="nav">'))]
    for label in visible:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav
    assert {item.label for item in NAV} >= visible | hidden


def _audit_count() -> int:
    return db.session.scalar(select(func.count(AuditLog.id)))


def _state_changing_requests(player_id: int, subjects: dict) -> list[tuple[str, dict]]:
    reason = {"reason": "Chargeback fraud", "context": "panel"}
    return [
        (f"/admin/kyc/{subjects['kyc']}/approve", {"context": "panel"}),
        (f"/admin/kyc/{subjects['kyc']}/reject", reason),
        (f"/admin/withdrawals/{subjects['withdrawal']}/approve", {"context": "panel"}),
        (f"/admin/withdrawals/{subjects['withdrawal']}/reject", reason),
        (
            f"/admin/players/{player_id}/adjust-balance",
            {"currency": "EUR", "balance_type": "cash", "amount": "5", "reason": "Goodwill"},
        ),
        (f"/admin/callbacks/{subjects['callback']}/replay", {"context": "row"}),
        (f"/admin/games/{subjects['game']}/toggle/active", {}),
        (f"/admin/games/{subjects['game']}/toggle/featured", {}),
        (f"/admin/providers/{subjects['provider']}/toggle", {}),
        (f"/admin/players/{player_id}/suspend", {**reason, "duration": "7d"}),
        (f"/admin/players/{player_id}/ban", reason),
        (f"/admin/players/{player_id}/reactivate", reason),
        (f"/admin/players/{player_id}/force-logout", reason),
        ("/admin/settings/platform", {"maintenance_mode": "y", "maintenance_message": "Back soon"}),
        (
            "/admin/staff/new",
            {
                "username": "newbie",
                "email": "newbie@example.test",
                "role": "5",
                "password": PASSWORD,
            },
        ),
        ("/admin/promotions/new", {"name": "X", "type": "reload", "currency": "EUR",
                                   "match_percent": "10"}),
        (f"/admin/promotions/{subjects['promotion']}/edit", {"name": "Renamed"}),
        (f"/admin/promotions/{subjects['promotion']}/activate", {}),
        (f"/admin/jackpots/{subjects['pool']}/edit", {"name": "Renamed"}),
        ("/admin/jackpots/new", {"name": "X", "currency": "EUR", "contribution_percent": "1"}),
        (f"/admin/jackpots/{subjects['pool']}/payout",
         {"player": str(player_id), "reason": "csrf test", "confirm": "y"}),
        ("/admin/lottery/new", {"title": "X", "currency": "EUR", "prize_amount": "1",
                                "ticket_price": "1", "max_tickets": "5",
                                "sales_open_at": "2026-12-01T00:00",
                                "sales_close_at": "2026-12-02T00:00"}),
        (f"/admin/lottery/{subjects['draw']}/cancel", reason),
        (f"/admin/lottery/{subjects['draw']}/draw", {"context": "panel"}),
        ("/admin/jobs/some-job/requeue", {}),
        ("/admin/logout", {}),
    ]  # fmt: skip


def test_every_state_changing_route_refuses_a_post_without_csrf_token(
    signed_in, player, subjects, csrf_enforced
):
    client, _admin = signed_in("admin")
    for url, data in _state_changing_requests(player.id, subjects):
        before = _audit_count()
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert "security token" in response.get_data(as_text=True), url
        assert _audit_count() == before, url
        hx = client.post(url, data=data, headers={"HX-Request": "true"})
        assert hx.status_code == 400, url
    assert db.session.get(User, player.id).status == "active"
    assert db.session.get(KycSubmission, subjects["kyc"]).status == "pending"
    assert db.session.get(PaymentTransaction, subjects["withdrawal"]).status == "pending"
    game = db.session.get(Game, subjects["game"])
    assert (game.status, game.is_featured, game.provider.active) == ("active", False, True)
    assert wallet.wallet_for(player.id, "EUR") is None  # no adjustment, no jackpot payout
    from app.bonus.models import Promotion
    from app.prizes.models import JackpotPool, LotteryDraw

    promotion = db.session.get(Promotion, subjects["promotion"])
    assert (promotion.name, promotion.status) == ("Matrix", "draft")
    assert db.session.scalar(select(func.count(Promotion.id))) == 1
    assert db.session.get(JackpotPool, subjects["pool"]).name == "Matrix pot"
    assert db.session.scalar(select(func.count(JackpotPool.id))) == 1
    assert db.session.get(LotteryDraw, subjects["draw"]).status == "scheduled"
    assert db.session.scalar(select(func.count(LotteryDraw.id))) == 1
    assert client.get("/admin/").status_code == 200  # the logout was refused too


def test_login_and_enrolment_refuse_a_post_without_csrf_token(client, make_staff, csrf_enforced):
    manager = make_staff("manager")
    response = client.post(
        "/admin/login",
        data={"username": manager.user.username, "password": PASSWORD, "code": manager.code()},
    )
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302
    assert client.post("/admin/login/totp-setup", data={"code": "123456"}).status_code == 400


def test_a_token_from_the_page_lets_forms_and_htmx_requests_through(
    client, make_staff, player, csrf_enforced
):
    manager = make_staff("manager")
    token = csrf_token_of(client.get("/admin/login").get_data(as_text=True))
    response = client.post(
        "/admin/login",
        data={
            "username": manager.user.username,
            "password": PASSWORD,
            "code": manager.code(),
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    # The session was renewed at sign-in: a fresh token comes from the next page.
    page = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    fresh = csrf_token_of(page)
    response = client.post(
        f"/admin/players/{player.id}/force-logout",
        data={"reason": "Shared device", "context": "panel"},
        headers={"HX-Request": "true", "X-CSRFToken": fresh},
    )
    assert response.status_code == 200
    assert 'id="player-panel"' in response.get_data(as_text=True)


def test_console_pages_carry_the_security_headers(signed_in):
    client, _staff = signed_in("manager")
    for url in ("/admin/login", "/admin/", "/admin/players"):
        headers = client.get(url).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_and_samesite(client, make_staff):
    response = login(client, make_staff("support"))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a permanent session: the idle timeout applies


def test_production_uses_a_host_prefixed_secure_cookie(database_url, redis_url, tmp_path):
    if not redis_url:
        pytest.skip("needs Redis for the production profile")
    prod = create_app(
        {
            "ENV": "production",
            **PRODUCTION_SECRETS,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_DIR": str(tmp_path),
        }
    )
    response = prod.test_client().get("/admin/login", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-jackpotx=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert "Domain=" not in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_static_assets_are_served_locally(client):
    for path, marker in (
        ("/static/vendor/htmx.min.js", b"htmx"),
        ("/static/console/console.js", b"X-CSRFToken"),
        ("/static/console/console.css", b"--accent"),
    ):
        with client.get(path) as response:
            assert response.status_code == 200
            assert marker in response.data
