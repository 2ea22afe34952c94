"""Demo data for ``make run``: idempotent, so re-running ``seed-demo`` is safe."""

from __future__ import annotations

from typing import Any

import pyotp
from flask import current_app
from sqlalchemy import func, select

from app.affiliates import program as affiliates
from app.bonus import loyalty, promotions, redemption
from app.bonus.models import LoyaltyReward, Promotion
from app.compliance import kyc, responsible_gaming
from app.compliance.models import KycSubmission
from app.core.base import utcnow
from app.core.extensions import db
from app.core.money import format_minor
from app.identity import access, totp, users
from app.identity.models import ADMIN, AGENT, MANAGER, PLAYER, SUPPORT, User
from app.originals import studio as originals
from app.originals.wallet_client import PROVIDER_CODE
from app.payments import deposits, gateways_admin, webhooks, withdrawals
from app.payments.gateways import sandbox
from app.payments.models import PaymentGateway, PaymentTransaction
from app.play import games
from app.play.callbacks import actions, protocol
from app.play.models import Game, GameCategory, Provider
from app.prizes import jackpots, lottery, tournaments
from app.prizes.models import JackpotPool, LotteryDraw, Tournament
from app.wallet import ledger as wallet

#: Fixed TOTP secrets for demo staff so a newcomer can add them to an authenticator app.
#: Every staff role needs TOTP (issue 21), so every demo staff member has one.
DEMO_TOTP = {
    "admin": "JBSWY3DPEHPK3PXPADMINAAA",
    "manager": "JBSWY3DPEHPK3PXPMANAGERA",
    "support": "JBSWY3DPEHPK3PXPSUPPORTA",
    "agent": "JBSWY3DPEHPK3PXPAGENTAAA",
}

DEMO_USERS: list[dict[str, Any]] = [
    {
        "username": "admin",
        "role_id": ADMIN,
        "password": "Admin-jackpot-demo",
        "email": "admin@jackpotx.local",
    },
    {
        "username": "manager",
        "role_id": MANAGER,
        "password": "Manager-jackpot-demo",
        "email": "manager@jackpotx.local",
    },
    {
        "username": "support",
        "role_id": SUPPORT,
        "password": "Support-jackpot-demo",
        "email": "support@jackpotx.local",
    },
    {
        "username": "agent",
        "role_id": AGENT,
        "password": "Agent-jackpot-demo",
        "email": "agent@jackpotx.local",
    },
    {
        "username": "player1",
        "role_id": PLAYER,
        "password": "Player-jackpot-demo",
        "email": "player1@jackpotx.local",
        "first_name": "Ada",
        "last_name": "Player",
        "country": "MT",
    },
    {
        "username": "player2",
        "role_id": PLAYER,
        "password": "Player-jackpot-demo",
        "email": "player2@jackpotx.local",
        "first_name": "Bo",
        "last_name": "Player",
        "country": "DE",
    },
]

ROLE_NAMES = {
    ADMIN: "Admin",
    MANAGER: "Manager",
    SUPPORT: "Support",
    AGENT: "Agent",
    PLAYER: "Player",
}


def seed_users() -> list[dict[str, str]]:
    access.ensure_roles()
    logins = []
    for spec in DEMO_USERS:
        spec = dict(spec)
        password = spec.pop("password")
        secret = DEMO_TOTP.get(spec["username"])
        existing = db.session.scalar(
            select(User).where(func.lower(User.username) == spec["username"])
        )
        if existing is None:
            # Demo accounts have a verified e-mail (withdrawals need one by default).
            users.create_user(
                password=password, totp_secret=secret, email_verified_at=utcnow(), **spec
            )
        elif secret and not existing.totp_enabled:
            # A demo database seeded before TOTP was mandatory for this role: enrol the
            # printed secret, so the demo login keeps working (development only: seed-demo
            # refuses production).
            totp.store_secret(existing, secret)
            existing.totp_enabled = True
        note = f"TOTP secret {secret} (code now: {pyotp.TOTP(secret).now()})" if secret else ""
        # The code above is stale 30 s later; the URI goes into any authenticator app.
        uri = (
            pyotp.TOTP(secret).provisioning_uri(name=spec["email"], issuer_name=totp.ISSUER)
            if secret
            else ""
        )
        logins.append(
            {
                "role": ROLE_NAMES[spec["role_id"]],
                "username": spec["username"],
                "password": password,
                "note": note,
                "otpauth_uri": uri,
            }
        )
    return logins


def seed_originals() -> None:
    """Register the built-in JxOriginals studio as a provider with its games.

    Like an operator onboarding a studio: the studio's callback secret (``JXORIGINALS_SECRET`` or
    the one it generated and keeps encrypted) is registered with the casino, and its published
    game list imported. Re-running keeps the provider and refreshes the games.
    """
    if not db.session.scalar(select(Provider.id).where(Provider.code == PROVIDER_CODE)):
        games.create_provider(
            code=PROVIDER_CODE,
            name="JxOriginals",
            secret=originals.provider_secret(),
            launch_url=originals.LAUNCH_URL_TEMPLATE,
        )
    games.import_games(PROVIDER_CODE, originals.game_catalog())
    # The operator's merchandising for the demo home page (set once, as staff would in the
    # console's games page; later edits there are kept).
    ours = db.session.scalars(
        select(Game).join(Provider, Game.provider_id == Provider.id)
        .where(Provider.code == PROVIDER_CODE).order_by(Game.id)
    ).all()  # fmt: skip
    if ours and not any(g.is_featured or g.is_new or g.is_hot for g in ours):
        for n, game in enumerate(ours):
            games.update_game(game.id, {"is_featured": True, "is_new": True, "is_hot": n == 0})


class SeedRefused(RuntimeError):
    """Demo data (known passwords, the sandbox gateway, funded players) in production."""


def seed_demo() -> list[dict[str, str]]:
    """Every domain adds its demo data here; each step must be idempotent.

    Refused in production: the demo logins' passwords are public (README) and the sandbox
    gateway credits deposits nobody paid."""
    if current_app.config["ENV"] == "production":
        raise SeedRefused(
            "refusing to seed demo data in production: it creates accounts with published "
            "passwords and the sandbox gateway"
        )
    logins = seed_users()
    db.session.flush()
    seed_money()
    seed_gateways()
    seed_originals()
    seed_engagement()
    seed_console_queues()
    seed_promotions()
    seed_affiliates()
    logins += [
        {"role": "Player", "username": name, "password": REFERRAL_PASSWORD, "note": "referred"}
        for name in [*(r[0] for r in DEMO_REFERRALS), DEMO_PLAYER_REFERRAL[0]]
    ]
    return logins


def seed_promotions() -> None:
    """A welcome deposit bonus, applied to a new player's first deposit (idempotent)."""
    name = "Welcome bonus 100%"
    if db.session.scalar(select(Promotion.id).where(Promotion.name == name)):
        return
    p = promotions.create_promotion(
        {
            "name": name,
            "description": "100% of your first deposit up to 200.00 EUR",
            "terms": "Wager the bonus 30 times within 30 days; max bet 5.00 EUR while wagering; "
            "slots count 100%. Withdrawing before completion forfeits the bonus.",
            "type": "deposit_match",
            "currency": "EUR",
            "match_percent": 100,
            "max_bonus_minor": 200_00,
            "min_deposit_minor": 20_00,
            "wagering_multiplier": 30,
            "max_bet_minor": 5_00,
            "bonus_valid_days": 30,
            "max_claims_per_player": 1,
            "first_deposit_only": True,
            "auto_apply": True,
            "priority": 100,
        }
    )
    promotions.set_status(p.id, "active")
    seed_free_spins()
    seed_loyalty_rewards()


def seed_free_spins() -> None:
    """A claimable free-spins offer on the JxOriginals slot (idempotent)."""
    name = "20 free spins on Fruit Slot"
    slot = db.session.scalar(select(Game.id).where(Game.external_id == "jxo-slot"))
    if slot is None or db.session.scalar(select(Promotion.id).where(Promotion.name == name)):
        return
    p = promotions.create_promotion(
        {
            "name": name,
            "description": "20 free spins of 0.20 EUR on JxOriginals Fruit Slot",
            "terms": "Spins valid 7 days; winnings are a bonus wagered 20 times within 30 days.",
            "type": "free_spins",
            "currency": "EUR",
            "free_spins_count": 20,
            "free_spins_game_id": slot,
            "free_spin_value_minor": 20,
            "free_spins_valid_days": 7,
            "wagering_multiplier": 20,
            "bonus_valid_days": 30,
            "max_claims_per_player": 1,
            "priority": 10,
        }
    )
    promotions.set_status(p.id, "active")


#: The demo redemption catalogue: (code, name, points, template promotion).
DEMO_REWARDS: list[tuple[str, str, int, dict[str, Any]]] = [
    (
        "bonus-5",
        "5.00 EUR bonus",
        500,
        {"type": "no_deposit", "bonus_amount_minor": 5_00, "wagering_multiplier": 20},
    ),
    (
        "bonus-20",
        "20.00 EUR bonus",
        1_800,
        {"type": "no_deposit", "bonus_amount_minor": 20_00, "wagering_multiplier": 20},
    ),
    (
        "spins-10",
        "10 free spins on Fruit Slot",
        300,
        {"type": "free_spins", "free_spins_count": 10, "free_spin_value_minor": 20,
         "free_spins_valid_days": 7, "wagering_multiplier": 20},
    ),
]  # fmt: skip


def seed_loyalty_rewards() -> None:
    """The loyalty redemption catalogue (idempotent): each reward's terms are a promotion kept
    in draft (a template, never offered on its own)."""
    slot = db.session.scalar(select(Game.id).where(Game.external_id == "jxo-slot"))
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    for code, name, points, terms in DEMO_REWARDS:
        if db.session.scalar(select(LoyaltyReward.id).where(LoyaltyReward.code == code)):
            continue
        if terms["type"] == "free_spins" and slot is None:
            continue
        data = {"name": f"Loyalty reward: {name}", "currency": "EUR", "bonus_valid_days": 30,
                "max_bet_minor": 5_00, **terms}  # fmt: skip
        if terms["type"] == "free_spins":
            data["free_spins_game_id"] = slot
            data.pop("max_bet_minor")
        p = promotions.create_promotion(data)
        amount = terms.get("bonus_amount_minor")
        redemption.admin_put(
            {"code": code, "name": name, "points": points, "promotion_id": p.id,
             "bonus_amount": None if amount is None else format_minor(amount, "EUR")},
            admin,
        )  # fmt: skip


#: Demo webhook secret of the local sandbox gateway (development only; rotate with the API).
DEMO_SANDBOX_SECRET = "sandbox-demo-webhook-secret"  # noqa: S105 - demo data


def seed_gateways() -> None:
    """The sandbox gateway, so deposits and withdrawals work out of the box."""
    from decimal import Decimal

    if db.session.scalar(select(PaymentGateway.id).where(PaymentGateway.code == "sandbox")):
        return
    gateways_admin.create_gateway(
        {
            "code": "sandbox",
            "name": "Sandbox (test payments)",
            "type": "sandbox",
            "adapter": "sandbox",
            "description": "Local test gateway: hosted checkout, signed webhooks, payouts",
            "webhook_secret": DEMO_SANDBOX_SECRET,
            "supported_currencies": ["EUR", "USD", "GBP"],
            "min_amount": Decimal("5"),
            "max_amount": Decimal("10000"),
            "processing_time": "instant",
            "fees_percentage": Decimal("2.5"),
            "fees_fixed": Decimal("0.30"),
        }
    )


#: Demo money for demo players: (username, currency, cash, bonus) in minor units.
DEMO_WALLETS = [
    ("player1", "EUR", 500_00, 50_00),
    ("player1", "USD", 100_00, 0),
    ("player2", "EUR", 250_00, 0),
]

DEMO_CATEGORIES = [
    ("slots", "Slots", 1),
    ("dice", "Dice", 2),
    ("table", "Table Games", 3),
    ("live", "Live Casino", 4),
    ("crash", "Crash", 5),
]


def seed_money() -> list[str]:
    """Game categories and funded demo wallets, credited through the ledger (idempotent)."""
    for slug, name, order in DEMO_CATEGORIES:
        if not db.session.scalar(select(GameCategory.id).where(GameCategory.slug == slug)):
            db.session.add(GameCategory(slug=slug, name=name, sort_order=order))
    lines = []
    for username, currency, cash, bonus in DEMO_WALLETS:
        user = db.session.scalar(select(User).where(func.lower(User.username) == username))
        if user is None:
            continue
        wallet.get_or_create_wallet(user.id, currency)
        for kind, amount in (("cash", cash), ("bonus", bonus)):
            if amount:
                wallet.post(
                    user.id,
                    currency,
                    "adjustment" if kind == "cash" else "bonus_grant",
                    cash_delta=amount if kind == "cash" else 0,
                    bonus_delta=amount if kind == "bonus" else 0,
                    source="seed",
                    idempotency_key=f"demo:{username}:{currency}:{kind}",
                    description="Demo credit",
                )
        lines.append(f"{username}: {currency} wallet funded")
    return lines


def seed_engagement() -> None:
    """A tiered jackpot, a free and an entry-fee tournament and a lottery draw on JxOriginals
    (idempotent)."""
    from datetime import timedelta

    game_ids = list(
        db.session.scalars(
            select(Game.id)
            .join(Provider, Provider.id == Game.provider_id)
            .where(Provider.code == PROVIDER_CODE)
        )
    )
    if not game_ids:
        return
    # Mini: must drop by 50.00 or within a day, whichever comes first; Major: by 1 000.00 or
    # within a week (the secret drop time is committed at each cycle's start).
    for tier, seed, percent, must_drop, odds, within in (
        ("mini", "10.00", "0.5", "50.00", 20_000, "24h"),
        ("major", "100.00", "0.5", "1000.00", 500_000, "7d"),
    ):
        name = f"JxOriginals {tier.title()}"
        existing = db.session.scalar(select(JackpotPool).where(JackpotPool.name == name))
        if existing is not None:
            if existing.drop_window_seconds is None:  # seeded before must-drop by time
                jackpots.update_pool(existing.id, {"must_drop_within": within}, actor=None)
            continue
        jackpots.create_pool(
            {
                "name": name,
                "currency": "EUR",
                "tier": tier,
                "group_code": "jxoriginals",
                "seed_amount": seed,
                "contribution_percent": percent,
                "must_drop_by": must_drop,
                "hit_odds": odds,
                "min_bet": "0.10",
                "game_ids": game_ids,
                "must_drop_within": within,
            },
            actor=None,
        )
    now = utcnow()
    running = db.session.scalar(
        select(Tournament.id).where(
            Tournament.name == "JxOriginals Weekly Race",
            Tournament.status == "scheduled",
            Tournament.ends_at > now,
        )
    )
    if running is None:
        tournaments.create(
            {
                "name": "JxOriginals Weekly Race",
                "description": "Most wagered on JxOriginals in a week wins.",
                "currency": "EUR",
                "game_ids": game_ids,
                "starts_at": now,
                "ends_at": now + timedelta(days=7),
                "entry": "free",
                "scoring": "wagered",
                "min_bet": "0.10",
                "prizes": ["100.00", "50.00", "25.00"],
            },
            actor=None,
        )
    duel = db.session.scalar(
        select(Tournament.id).where(
            Tournament.name == "JxOriginals Daily Duel",
            Tournament.status == "scheduled",
            Tournament.ends_at > now,
        )
    )
    if duel is None:
        tournaments.create(
            {
                "name": "JxOriginals Daily Duel",
                "description": "Join for 1.00; the best multiplier of the day wins.",
                "currency": "EUR",
                "game_ids": game_ids,
                "starts_at": now,
                "ends_at": now + timedelta(days=1),
                "entry": "opt_in",
                "entry_fee": "1.00",
                "scoring": "multiplier",
                "min_bet": "0.10",
                "max_participants": 100,
                "prizes": ["40.00", "20.00", "10.00"],
            },
            actor=None,
        )
    open_draw = db.session.scalar(
        select(LotteryDraw.id).where(
            LotteryDraw.title == "JackpotX Demo Draw", LotteryDraw.status == "scheduled"
        )
    )
    if open_draw is None:
        lottery.create(
            {
                "title": "JackpotX Demo Draw",
                "description": "One ticket in the draw, one winner of EUR 100.",
                "currency": "EUR",
                "prize_amount": "100.00",
                "ticket_price": "1.00",
                "max_tickets": 1000,
                "max_per_player": 50,
                "sales_open_at": now,
                "sales_close_at": now + timedelta(days=3),
            },
            actor=None,
        )


def _demo_document(title: str) -> bytes:
    """A clearly fake ID card image for the demo KYC queue (PNG)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (480, 300), "#e8eef7")
    draw = ImageDraw.Draw(image)
    draw.rectangle((12, 12, 467, 287), outline="#3b6fe0", width=4)
    draw.rectangle((32, 70, 152, 230), fill="#c5d3ea")
    for y, line in enumerate((title, "DEMO - NOT A REAL DOCUMENT", "Ada Player", "MT 1990-01-01")):
        draw.text((172, 70 + 36 * y), line, fill="#14203a")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _demo_pdf() -> bytes:
    """A one-page blank PDF (a KYC upload must parse and have a page)."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def seed_console_queues() -> None:
    """Work for the back office: a pending KYC submission (player1) and two pending
    withdrawals (player2), made through the real services. Skipped once they exist."""
    player1 = db.session.scalar(select(User).where(User.username == "player1"))
    player2 = db.session.scalar(select(User).where(User.username == "player2"))
    if player1 and not db.session.scalar(
        select(KycSubmission.id).where(KycSubmission.user_id == player1.id)
    ):
        kyc.upload_document(
            player1, doc_type="passport", data=_demo_document("PASSPORT"), filename=None, ip=None
        )
        kyc.upload_document(
            player1, doc_type="proof_of_address", data=_demo_pdf(), filename=None, ip=None
        )
    if player2 and not db.session.scalar(
        select(PaymentTransaction.id).where(
            PaymentTransaction.user_id == player2.id, PaymentTransaction.type == "withdrawal"
        )
    ):
        for amount in ("40.00", "60.00"):
            withdrawals.request_withdrawal(player2, amount=amount, currency="EUR", method="sandbox")


#: Players the demo agent referred: (username, country, first deposit, plays) where plays are
#: (round, action, amount) callbacks on JxOriginals dice.
DEMO_REFERRALS = [
    (
        "ref_ana",
        "MT",
        "60.00",
        [
            (1, "bet", "5.00"),
            (1, "win", "2.00"),
            (2, "bet", "5.00"),
            (3, "bet", "5.00"),
            (4, "bet", "5.00"),
        ],
    ),
    ("ref_ben", "DE", "25.00", [(1, "bet", "4.00"), (1, "win", "9.00"), (2, "bet", "3.00")]),
]
#: A published demo login, like the ones in ``DEMO_USERS``.
REFERRAL_PASSWORD = "Player-jackpot-demo"  # noqa: S105
#: The seeded welcome bonus caps bets at 5.00 while it is wagered: the demo plays within it.


def seed_affiliates() -> list[str]:
    """Loyalty levels; a default commission plan and the demo agent's own plan; two players the
    agent referred, who deposited through the sandbox gateway (signed webhook) and played
    through the provider callback service, so the agent's and staff's statistics, the tree and
    the players' loyalty points show real figures (idempotent). Commission statements appear
    once the current period closes and the job runs (``flask jackpotx affiliates
    pay-commissions``)."""
    loyalty.ensure_levels()
    agent = db.session.scalar(select(User).where(User.username == "agent"))
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    if agent is None or admin is None:
        return []
    if affiliates.plan_for(None) is None:
        affiliates.set_plan(admin, {"revenue_share_percent": "20"})
    plan = affiliates.plan_for(agent.id)
    if plan is None or plan.agent_id != agent.id:
        affiliates.set_plan(
            admin,
            {
                "agent_id": agent.id,
                "revenue_share_percent": "25",
                "level2_share_percent": "10",
                "cpa_amount": "20.00",
                "cpa_currency": "EUR",
                "cpa_min_deposit": "10.00",
            },
        )
    lines = []
    for username, country, deposit, plays in DEMO_REFERRALS:
        if db.session.scalar(select(User.id).where(User.username == username)):
            continue
        player = users.create_user(
            username=username,
            email=f"{username}@jackpotx.local",
            password=REFERRAL_PASSWORD,
            role_id=PLAYER,
            country=country,
            referred_by_id=agent.id,
            agent_id=agent.id,
            email_verified_at=utcnow(),
        )
        db.session.flush()
        _demo_deposit(player, deposit)
        _demo_play(player, plays)
        lines.append(f"{username}: referred by agent, deposited {deposit} EUR and played")
    lines += _seed_player_referral()
    return lines


#: A player referred by the demo player ``player1``: (username, country, first deposit). Their
#: first deposit earns player1 the referral reward (loyalty points, docs/engagement.md).
DEMO_PLAYER_REFERRAL = ("ref_cleo", "ES", "20.00")


def _seed_player_referral() -> list[str]:
    username, country, deposit = DEMO_PLAYER_REFERRAL
    referrer = db.session.scalar(select(User).where(User.username == "player1"))
    if referrer is None or db.session.scalar(select(User.id).where(User.username == username)):
        return []
    player = users.create_user(
        username=username,
        email=f"{username}@jackpotx.local",
        password=REFERRAL_PASSWORD,
        role_id=PLAYER,
        country=country,
        referred_by_id=referrer.id,
        email_verified_at=utcnow(),
    )
    db.session.flush()
    _demo_deposit(player, deposit)
    return [f"{username}: referred by player1, deposited {deposit} EUR (player1 earned points)"]


def _demo_deposit(player: User, amount: str) -> None:
    import json

    # The demo player answered the deposit-limit prompt (UKGC RTS 12A) before depositing.
    if responsible_gaming.deposit_limit_prompt(player.id)["answer"] is None:
        responsible_gaming.answer_deposit_limit_prompt(player, "declined")
    txn = deposits.create_deposit(player, amount=amount, currency="EUR", method="sandbox")
    body = json.dumps(
        {
            "event": "payment.succeeded",
            "transaction_id": txn.public_id,
            "gateway_reference": txn.gateway_reference,
            "amount": amount,
            "currency": "EUR",
        }
    ).encode()
    signature = sandbox.sign(gateways_admin.webhook_secret_of("sandbox"), body)
    webhooks.handle_webhook("sandbox", body, {sandbox.SIGNATURE_HEADER: signature}, None)


def _demo_play(player: User, plays: list[tuple[int, str, str]]) -> None:
    game = db.session.scalar(select(Game).where(Game.external_id == "jxo-dice"))
    provider = protocol.provider_config(PROVIDER_CODE)
    if game is None or provider is None:
        return
    token = games.launch(player, game.id).session_token
    for n, (round_no, action, amount) in enumerate(plays):
        result = actions.handle(
            provider,
            protocol.CallbackRequest(
                action=action,
                transaction_id=f"seed-{player.username}-{n}",
                round_id=f"seed-{player.username}-{round_no}",
                game_id=game.external_id,
                session_token=token,
                amount=amount,
                currency="EUR",
            ),
        )
        if result.status != "ok":
            raise RuntimeError(f"demo play refused: {result.code} {result.message}")
