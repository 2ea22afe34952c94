"""Free spins: a claimed ``free_spins`` promotion grants N rounds on one game; every spin is
consumed once by the provider's bet callback (never the player's money), the win is
operator-funded bonus money under the wagering contract, expiry forfeits what is left."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.bonus import promotions
from app.bonus.models import FreeSpinGrant, PlayerBonus
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import User
from app.originals import studio as service
from app.originals.models import OriginalsFreeRound
from app.originals.wallet_client import WalletRefused
from app.play import games
from app.play.callbacks import protocol as callback_protocol
from app.play.models import Game
from app.seed import seed_originals
from app.wallet.models import LedgerTransaction, Wallet
from tests.conftest import Factory
from tests.moneykit import fund, reconcile_clean
from tests.originals.test_originals_wallet import ClientTransport


@pytest.fixture
def studio(app):
    transport = ClientTransport(app)
    app.extensions["originals_transport"] = transport
    callback_protocol.clear_caches()
    with atomic():
        seed_originals()
    yield transport
    app.extensions.pop("originals_transport", None)
    callback_protocol.clear_caches()


def game_id(code: str = "jxo-slot") -> int:
    return db.session.scalar(sa.select(Game.id).where(Game.external_id == code))


def free_spins_promo(**kw):
    data = {
        "name": "10 free spins",
        "type": "free_spins",
        "currency": "EUR",
        "free_spins_count": 3,
        "free_spins_game_id": game_id(),
        "free_spin_value_minor": 1_00,
        "wagering_multiplier": 10,
        "max_claims_per_player": 1,
    }
    data.update(kw)
    p = promotions.create_promotion(data)
    return promotions.set_status(p.id, "active")


def claim(player, p):
    bonus = promotions.claim(player, p.id)
    return bonus, db.session.scalar(
        sa.select(FreeSpinGrant).where(FreeSpinGrant.bonus_id == bonus.id)
    )


def casino_session(player, code="jxo-slot") -> str:
    with atomic():
        return games.launch(player, game_id(code), demo=False).session_token


def call(action, **fields):
    return service.wallet_client().call(action, **fields)


def free_bet(token, grant_ref, n, *, amount="0.00", game="jxo-slot"):
    return call("bet", transaction_id=f"fs-{n}:bet", round_id=f"fs-{n}", game_id=game,
                session_token=token, amount=amount, currency="EUR",
                free_round_id=grant_ref)  # fmt: skip


def win(token, n, amount):
    return call("win", transaction_id=f"fs-{n}:win", round_id=f"fs-{n}", game_id="jxo-slot",
                session_token=token, amount=amount, currency="EUR")  # fmt: skip


def wallet_of(user_id):
    db.session.expire_all()
    w = db.session.scalar(sa.select(Wallet).where(Wallet.user_id == user_id))
    return w.balance, w.bonus_balance


def refreshed(row):
    db.session.expire_all()
    return db.session.get(type(row), row.id)


# --- staff API -------------------------------------------------------------------------------


def test_the_admin_promotions_api_takes_the_free_spins_fields(client, factory, token_for, studio):
    staff = token_for(factory.staff("admin"))
    body = {"name": "Spins", "type": "free_spins", "currency": "EUR", "free_spins_count": 10,
            "free_spins_game_id": game_id(), "free_spin_value": "0.20",
            "free_spins_valid_days": 3, "wagering_multiplier": 20}  # fmt: skip
    created = client.post("/api/admin/promotions", headers=staff, json=body)
    assert created.status_code == 201, created.json
    data = created.json["data"]
    assert (data["free_spins_count"], data["free_spins_game_id"]) == (10, game_id())
    assert (data["free_spin_value"], data["free_spins_valid_days"]) == ("0.20", 3)
    for bad in ("0.001", "-5", "abc", 1e309, "0"):
        answer = client.post("/api/admin/promotions", headers=staff,
                             json={**body, "free_spin_value": bad})  # fmt: skip
        assert answer.status_code == 400, (bad, answer.json)
    for field, value in (("free_spins_count", 0), ("free_spins_count", -1),
                         ("free_spins_game_id", 999_999), ("free_spins_count", "abc")):  # fmt: skip
        answer = client.post("/api/admin/promotions", headers=staff, json={**body, field: value})
        assert answer.status_code == 400, (field, value, answer.json)


# --- claim, listing, game page ---------------------------------------------------------------


def test_claimed_spins_are_listed_and_offered_on_the_game_page(client, factory, token_for, studio):
    p = free_spins_promo()
    player = factory.player()
    headers = token_for(player)
    claimed = client.post(f"/api/promotions/claim/{p.id}", headers=headers, json={})
    assert claimed.status_code == 201, claimed.json
    assert claimed.json["data"]["status"] == "active"
    spins = claimed.json["data"]["free_spins"]
    assert (spins["spins_remaining"], spins["spin_value"]) == (3, "1.00")
    listed = client.get("/api/promotions/free-spins", headers=headers).json["data"]
    assert [(g["id"], g["spins_remaining"], g["game"]["id"]) for g in listed] == [
        (spins["id"], 3, game_id())
    ]
    history = client.get("/api/promotions/history", headers=headers).json["data"]
    assert history[0]["free_spins"]["id"] == spins["id"]
    # The studio knows them too: the slot page offers them.
    from tests.originals.test_originals_wallet import _open

    token = _open(client, player, "jxo-slot")
    page = client.get(f"/originals/play/{token}").get_data(as_text=True)
    assert "Play a free spin" in page
    assert f'data-free-round="{spins["id"]}"' in page
    state = client.get(f"/originals/api/sessions/{token}").json["data"]
    offered = {"id": spins["id"], "remaining": 3, "stake": "1.00", "currency": "EUR",
               "expires_at": spins["expires_at"]}  # fmt: skip
    assert state["free_rounds"] == [offered]
    # Not on another game.
    dice = _open(client, player, "jxo-dice")
    assert client.get(f"/originals/api/sessions/{dice}").json["data"]["free_rounds"] == []


def test_free_spins_on_a_game_without_a_free_rounds_adapter_are_refused(factory, studio):
    from app.core.errors import ValidationError
    from app.play.models import Provider

    with atomic():
        other = Provider(code="acme", name="Acme", secret_enc="x", protocol="native")
        db.session.add(other)
        db.session.flush()
        g = Game(provider_id=other.id, external_id="acme-1", name="Acme", status="active")
        db.session.add(g)
    with pytest.raises(ValidationError):
        free_spins_promo(free_spins_game_id=g.id)


# --- settlement through the JxOriginals studio -----------------------------------------------


def test_free_spins_played_on_the_studio_never_take_the_players_money(client, factory, studio):
    from tests.originals.test_originals_wallet import _open

    p = free_spins_promo()
    player = factory.player()  # no money at all
    bonus, grant = claim(player, p)
    token = _open(client, player, "jxo-slot")
    payouts = 0
    for _ in range(3):
        played = client.post(f"/originals/api/sessions/{token}/rounds",
                             json={"free_round": grant.public_id})  # fmt: skip
        assert played.status_code == 201, played.json
        data = played.json["data"]
        assert (data["status"], data["stake"], data["free_round"]) == (
            "settled", "1.00", grant.public_id)  # fmt: skip
        payouts += int(data["payout"].replace(".", ""))
    refused = client.post(f"/originals/api/sessions/{token}/rounds",
                          json={"free_round": grant.public_id})  # fmt: skip
    assert refused.status_code == 400
    assert refused.json["code"] == "LIMIT_EXCEEDED"
    assert wallet_of(player.id) == (0, payouts)
    types = db.session.scalars(
        sa.select(LedgerTransaction.type).where(LedgerTransaction.user_id == player.id)
    ).all()
    assert "bet" not in types
    assert "win" not in types
    assert types.count("bonus_grant") == sum(1 for _ in types)  # only free-spin winnings
    grant, bonus = refreshed(grant), refreshed(bonus)
    assert (grant.status, grant.spins_used, grant.won_minor) == ("used", 3, payouts)
    assert bonus.amount_minor == payouts
    assert bonus.wagering_required_minor == payouts * 10
    assert bonus.status == ("active" if payouts else "completed")
    studio_row = db.session.scalar(sa.select(OriginalsFreeRound))
    assert studio_row.spins_played == 3
    reconcile_clean()


def test_a_free_spin_the_casino_refuses_gives_the_studio_spin_back(client, factory, studio):
    from tests.originals.test_originals_wallet import _open

    p = free_spins_promo(free_spins_count=2)
    player = factory.player()
    _, grant = claim(player, p)
    token = _open(client, player, "jxo-slot")
    with atomic():
        row = db.session.get(FreeSpinGrant, grant.id)
        row.spins_used = 2  # the casino's grant is used up; the studio does not know yet
    answer = client.post(f"/originals/api/sessions/{token}/rounds",
                         json={"free_round": grant.public_id})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json["code"] == "LIMIT_EXCEEDED"
    db.session.expire_all()
    assert db.session.scalar(sa.select(OriginalsFreeRound.spins_played)) == 0


# --- the callback seam (deterministic wins) --------------------------------------------------


def test_a_free_round_win_is_bonus_money_with_wagering_on_the_winnings(factory, studio):
    p = free_spins_promo(max_bet_minor=5_00)
    player = factory.player()
    fund(player.id, cash=20_00)
    bonus, grant = claim(player, p)
    token = casino_session(player)
    answer = free_bet(token, grant.public_id, 1)
    assert answer["balance"] == "20.00"
    paid = win(token, 1, "7.50")
    assert (paid["balance"], paid["bonus_balance"]) == ("20.00", "7.50")
    tx = db.session.scalar(
        sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == "fs-1:win")
    )
    assert (tx.type, tx.source, tx.bonus_delta, tx.cash_delta) == (
        "bonus_grant", "provider:jxoriginals", 7_50, 0)  # fmt: skip
    # A replayed win answers the same and pays nothing more.
    assert win(token, 1, "7.50") == paid
    bonus = refreshed(bonus)
    assert (bonus.amount_minor, bonus.wagering_required_minor) == (7_50, 75_00)
    # While spins are left, real bets do not count towards wagering.
    call("bet", transaction_id="real-1:bet", round_id="real-1", game_id="jxo-slot",
         session_token=token, amount="2.00", currency="EUR")  # fmt: skip
    assert refreshed(bonus).wagering_progress_minor == 0
    # The other two spins win nothing; then wagering starts.
    for n in (2, 3):
        free_bet(token, grant.public_id, n)
        win(token, n, "0")
    assert refreshed(grant).status == "used"
    call("bet", transaction_id="real-2:bet", round_id="real-2", game_id="jxo-slot",
         session_token=token, amount="2.00", currency="EUR")  # fmt: skip
    assert refreshed(bonus).wagering_progress_minor == 2_00
    with pytest.raises(WalletRefused) as exc:
        free_bet(token, grant.public_id, 4)
    assert exc.value.code == "LIMIT_EXCEEDED"
    reconcile_clean()


def test_without_wagering_free_spin_winnings_are_cash_up_to_the_cap(factory, studio):
    p = free_spins_promo(wagering_multiplier=0, max_cashout_minor=10_00, free_spins_count=2)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    assert win(token, 1, "6.00")["balance"] == "6.00"
    free_bet(token, grant.public_id, 2)
    answer = win(token, 2, "8.00")
    assert (answer["balance"], answer["bonus_balance"]) == ("10.00", "0.00")
    bonus = refreshed(bonus)
    assert (bonus.status, bonus.converted_minor, bonus.forfeited_minor) == (
        "completed",
        10_00,
        4_00,
    )
    types = db.session.scalars(
        sa.select(LedgerTransaction.type)
        .where(LedgerTransaction.user_id == player.id)
        .order_by(LedgerTransaction.id)
    ).all()
    assert types == ["bonus_grant", "bonus_convert", "bonus_grant", "bonus_convert",
                     "bonus_forfeit"]  # fmt: skip
    reconcile_clean()


def test_free_round_bets_are_checked_like_money(factory, studio):
    p = free_spins_promo()
    player, other = factory.player(), factory.player()
    _, grant = claim(player, p)
    token, other_token = casino_session(player), casino_session(other)
    for kw, code in (
        ({"amount": "1.00"}, "VALIDATION_ERROR"),  # a free bet takes no stake
        ({"amount": "-5"}, "VALIDATION_ERROR"),
        ({"amount": "0.001"}, "VALIDATION_ERROR"),
        ({"game": "jxo-dice"}, "GAME_NOT_FOUND"),
    ):
        with pytest.raises(WalletRefused) as exc:
            free_bet(token, grant.public_id, 9, **kw)
        assert exc.value.code == code, kw
    with pytest.raises(WalletRefused) as exc:
        free_bet(other_token, grant.public_id, 9)  # someone else's grant
    assert exc.value.code == "VALIDATION_ERROR"
    with pytest.raises(WalletRefused) as exc:
        free_bet(token, "fsg_guess", 9)
    assert exc.value.code == "VALIDATION_ERROR"
    assert refreshed(grant).spins_used == 0
    # A replay is answered the same and uses one spin; the same id for another grant is not.
    first = free_bet(token, grant.public_id, 1)
    assert free_bet(token, grant.public_id, 1) == first
    assert refreshed(grant).spins_used == 1


def test_a_rolled_back_free_bet_gives_the_spin_back_and_takes_no_win(factory, studio):
    p = free_spins_promo(free_spins_count=1)
    player = factory.player()
    _, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    assert refreshed(grant).status == "active"
    call("rollback", transaction_id="fs-1:rollback", reference_transaction_id="fs-1:bet",
         round_id="fs-1", session_token=token, amount="0.00", currency="EUR")  # fmt: skip
    grant = refreshed(grant)
    assert (grant.spins_used, grant.status) == (0, "active")
    with pytest.raises(WalletRefused) as exc:
        win(token, 1, "50.00")
    assert exc.value.code == "ROUND_CLOSED"
    assert wallet_of(player.id) == (0, 0)
    free_bet(token, grant.public_id, 2)  # the spin is there again
    assert refreshed(grant).spins_used == 1


def test_expiry_forfeits_the_spins_left_and_keeps_the_winnings_contract(factory, studio):
    p = free_spins_promo(free_spins_valid_days=2)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "3.00")
    later = utcnow() + timedelta(days=3)
    with freeze_time(later):
        assert promotions.expire_due() == 0  # the bonus itself is valid for 30 days
    grant, bonus = refreshed(grant), refreshed(bonus)
    assert (grant.status, grant.spins_used) == ("expired", 1)
    assert (bonus.status, bonus.wagering_required_minor) == ("active", 30_00)
    assert wallet_of(player.id) == (0, 3_00)


def test_expired_spins_that_won_nothing_end_the_bonus(factory, studio):
    p = free_spins_promo(free_spins_valid_days=1)
    player = factory.player()
    bonus, grant = claim(player, p)
    with freeze_time(utcnow() + timedelta(days=2)):
        promotions.expire_due()
    assert refreshed(grant).status == "expired"
    assert (refreshed(bonus).status, refreshed(bonus).end_reason) == (
        "completed", "free spins won nothing")  # fmt: skip
    db.session.expire_all()
    assert db.session.scalar(sa.select(OriginalsFreeRound.status)) == "active"


def test_forfeiting_the_bonus_forfeits_the_spins_and_tells_the_studio(
    client, factory, token_for, studio
):
    p = free_spins_promo()
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "4.00")
    answer = client.post(f"/api/promotions/bonuses/{bonus.id}/forfeit", headers=token_for(player))
    assert answer.status_code == 200, answer.json
    assert refreshed(grant).status == "forfeited"
    assert wallet_of(player.id) == (0, 0)
    db.session.expire_all()
    assert db.session.scalar(sa.select(OriginalsFreeRound.status)) == "cancelled"
    with pytest.raises(WalletRefused) as exc:
        free_bet(token, grant.public_id, 2)
    assert exc.value.code == "LIMIT_EXCEEDED"
    reconcile_clean()


# --- concurrency (PostgreSQL) ----------------------------------------------------------------


@pytest.mark.usefixtures("requires_postgres")
def test_racing_free_bets_never_use_more_spins_than_granted(app, committed_db):
    from tests.conftest import Factory

    transport = ClientTransport(app)
    app.extensions["originals_transport"] = transport
    callback_protocol.clear_caches()
    try:
        with app.app_context():
            with atomic():
                seed_originals()
            p = free_spins_promo(free_spins_count=2)
            player = Factory().player()
            bonus, grant = claim(db.session.get(User, player.id), p)
            token, ref, grant_id = casino_session(player), grant.public_id, grant.id
            bonus_id = bonus.id
            db.session.remove()
        barrier = threading.Barrier(6)
        outcomes: list[str] = []

        def attempt(n: int) -> None:
            with app.app_context():
                barrier.wait()
                try:
                    free_bet(token, ref, n)
                    outcomes.append("ok")
                except WalletRefused as exc:
                    outcomes.append(exc.code)
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["LIMIT_EXCEEDED"] * 4 + ["ok"] * 2
        with app.app_context():
            assert db.session.get(FreeSpinGrant, grant_id).spins_used == 2
            assert db.session.scalar(sa.select(sa.func.count()).select_from(
                sa.text("free_spin_rounds"))) == 2  # fmt: skip
            assert db.session.get(PlayerBonus, bonus_id).status == "active"
            reconcile_clean()
            db.session.remove()
    finally:
        app.extensions.pop("originals_transport", None)
        callback_protocol.clear_caches()


def test_a_free_round_closed_without_a_win_settles_the_last_spin(factory, studio):
    p = free_spins_promo(free_spins_count=1)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    assert refreshed(grant).status == "active"  # the spin is in flight
    call("end_round", transaction_id="fs-1:end", round_id="fs-1", game_id="jxo-slot",
         session_token=token, amount="0.00", currency="EUR")  # fmt: skip
    assert refreshed(grant).status == "used"
    bonus = refreshed(bonus)
    assert (bonus.status, bonus.end_reason) == ("completed", "free spins won nothing")
    assert wallet_of(player.id) == (0, 0)


def test_a_round_the_provider_never_settles_does_not_hold_the_bonus_forever(factory, studio):
    p = free_spins_promo(free_spins_valid_days=1, free_spins_count=2)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)  # the provider never sends the win
    with freeze_time(utcnow() + timedelta(days=1, minutes=30)):
        promotions.expire_due()
    assert refreshed(grant).status == "active"  # still within the grace period
    with freeze_time(utcnow() + timedelta(days=1, hours=2)):
        promotions.expire_due()
    assert refreshed(grant).status == "expired"
    assert refreshed(bonus).status == "completed"
    # The win finally arrives: paid, and forfeited under the ended (wagered) contract.
    answer = win(token, 1, "9.00")
    assert (answer["balance"], answer["bonus_balance"]) == ("0.00", "0.00")
    assert refreshed(bonus).forfeited_minor == 9_00
    reconcile_clean()


# --- a provider rolls back a free round's win ------------------------------------------------


def rollback_win(token, n, amount, *, tx=None):
    return call("rollback", transaction_id=tx or f"fs-{n}:rollback",
                reference_transaction_id=f"fs-{n}:win", round_id=f"fs-{n}",
                session_token=token, amount=amount, currency="EUR")  # fmt: skip


def free_round_row(n):
    from app.bonus.models import FreeSpinRound

    db.session.expire_all()
    return db.session.scalar(sa.select(FreeSpinRound).where(
        FreeSpinRound.external_round_id == f"fs-{n}"))  # fmt: skip


def round_total_win(n):
    from app.play.models import GameRound

    db.session.expire_all()
    return db.session.scalar(
        sa.select(GameRound.total_win).where(GameRound.external_round_id == f"fs-{n}")
    )


def review_flags(user_id):
    from app.compliance.models import RiskFlag

    db.session.expire_all()
    return db.session.scalars(
        sa.select(RiskFlag).where(
            RiskFlag.user_id == user_id, RiskFlag.kind == "free_spin_rollback_refused"
        )
    ).all()


def test_a_rolled_back_free_spin_win_shrinks_the_running_contract(factory, studio):
    p = free_spins_promo(free_spins_count=2)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "5.00")
    assert wallet_of(player.id) == (0, 5_00)
    answer = rollback_win(token, 1, "5.00")
    assert (answer["balance"], answer["bonus_balance"]) == ("0.00", "0.00")
    assert rollback_win(token, 1, "5.00") == answer  # a replay moves nothing more
    bonus, grant = refreshed(bonus), refreshed(grant)
    assert (bonus.status, bonus.amount_minor, bonus.wagering_required_minor) == ("active", 0, 0)
    assert (grant.won_minor, grant.status) == (0, "active")
    assert (free_round_row(1).win_minor, round_total_win(1)) == (0, 0)
    tx = db.session.scalar(
        sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == "fs-1:rollback")
    )
    assert (tx.type, tx.cash_delta, tx.bonus_delta) == ("rollback", 0, -5_00)
    reconcile_clean()
    # The last spin still plays under the same contract.
    free_bet(token, grant.public_id, 2)
    win(token, 2, "3.00")
    bonus = refreshed(bonus)
    assert (bonus.status, bonus.amount_minor, bonus.wagering_required_minor) == (
        "active", 3_00, 30_00)  # fmt: skip
    assert refreshed(grant).won_minor == 3_00
    assert review_flags(player.id) == []
    reconcile_clean()


def test_rolling_back_a_win_after_the_spins_may_complete_the_contract(factory, studio):
    p = free_spins_promo(free_spins_count=2)
    player = factory.player()
    fund(player.id, cash=50_00)
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "5.00")
    free_bet(token, grant.public_id, 2)
    win(token, 2, "1.00")
    assert refreshed(grant).status == "used"
    call("bet", transaction_id="real-1:bet", round_id="real-1", game_id="jxo-slot",
         session_token=token, amount="20.00", currency="EUR")  # fmt: skip
    assert refreshed(bonus).wagering_progress_minor == 20_00  # of 60.00
    rollback_win(token, 1, "5.00")
    # 1.00 left to wager 10 times: 20.00 wagered already meets it, so it converts now.
    bonus = refreshed(bonus)
    assert (bonus.status, bonus.amount_minor, bonus.wagering_required_minor) == (
        "completed", 1_00, 10_00)  # fmt: skip
    assert bonus.converted_minor == 1_00
    assert wallet_of(player.id) == (31_00, 0)
    assert refreshed(grant).won_minor == 1_00
    reconcile_clean()


def test_a_forfeited_free_spin_win_is_not_taken_from_a_newer_bonus(
    client, factory, token_for, studio
):
    p = free_spins_promo()
    later = promotions.set_status(promotions.create_promotion({
        "name": "Reload 10", "type": "no_deposit", "currency": "EUR",
        "bonus_amount_minor": 10_00, "wagering_multiplier": 5}).id, "active")  # fmt: skip
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "4.00")
    answer = client.post(f"/api/promotions/bonuses/{bonus.id}/forfeit", headers=token_for(player))
    assert answer.status_code == 200, answer.json
    newer = promotions.claim(db.session.get(User, player.id), later.id)
    assert wallet_of(player.id) == (0, 10_00)
    for _ in range(2):  # the provider retries: refused each time, flagged once
        with pytest.raises(WalletRefused) as exc:
            rollback_win(token, 1, "4.00")
        assert exc.value.code == "ROUND_CLOSED"
    assert wallet_of(player.id) == (0, 10_00)
    newer = refreshed(newer)
    assert (newer.status, newer.amount_minor) == ("active", 10_00)
    assert refreshed(grant).won_minor == 4_00
    assert (free_round_row(1).win_minor, round_total_win(1)) == (4_00, 4_00)
    (flag,) = review_flags(player.id)
    assert flag.details["reason"] == "contract_settled"
    assert flag.details["bonus_status"] == "forfeited"
    assert flag.details["win_transaction_id"] == "fs-1:win"
    from app.core.models import AuditLog

    assert db.session.scalar(sa.select(sa.func.count(AuditLog.id)).where(
        AuditLog.action == "bonus.free_spin_rollback_refused")) == 2  # fmt: skip
    reconcile_clean()


def test_a_free_spin_win_paid_as_cash_is_not_rolled_back(factory, studio):
    p = free_spins_promo(wagering_multiplier=0, free_spins_count=2)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "6.00")
    assert wallet_of(player.id) == (6_00, 0)
    with pytest.raises(WalletRefused) as exc:
        rollback_win(token, 1, "6.00")
    assert exc.value.code == "ROUND_CLOSED"  # not INSUFFICIENT_FUNDS: the money is cash
    assert wallet_of(player.id) == (6_00, 0)
    assert refreshed(bonus).converted_minor == 6_00
    assert review_flags(player.id)[0].details["reason"] == "contract_settled"
    reconcile_clean()


def test_a_spent_free_spin_win_is_refused_and_flagged(factory, studio):
    p = free_spins_promo(free_spins_count=1)
    player = factory.player()
    bonus, grant = claim(player, p)
    token = casino_session(player)
    free_bet(token, grant.public_id, 1)
    win(token, 1, "5.00")
    call("bet", transaction_id="real-1:bet", round_id="real-1", game_id="jxo-slot",
         session_token=token, amount="4.00", currency="EUR")  # fmt: skip
    assert wallet_of(player.id) == (0, 1_00)
    with pytest.raises(WalletRefused) as exc:
        rollback_win(token, 1, "5.00")
    assert exc.value.code == "INSUFFICIENT_FUNDS"
    assert wallet_of(player.id) == (0, 1_00)
    assert refreshed(bonus).amount_minor == 5_00
    assert review_flags(player.id)[0].details["reason"] == "spent"
    reconcile_clean()


@pytest.mark.usefixtures("requires_postgres")
def test_a_win_and_end_round_of_one_free_round_racing_do_not_deadlock(
    app, committed_db, monkeypatch
):
    """end_round settles a free round under the wallet lock: it must take it before the
    round row, as a win does (wallet, then round), or the two wait for each other."""
    import time

    from app.bonus import free_spins

    transport = ClientTransport(app)
    app.extensions["originals_transport"] = transport
    callback_protocol.clear_caches()
    round_locked = threading.Event()
    original = free_spins.round_ended

    def slow_round_ended(*args, **kw):
        # end_round holds the round row now; let the win arrive and take what it can.
        round_locked.set()
        time.sleep(0.5)
        return original(*args, **kw)

    monkeypatch.setattr(free_spins, "round_ended", slow_round_ended)
    try:
        with app.app_context():
            with atomic():
                seed_originals()
            p = free_spins_promo(free_spins_count=1)
            player = Factory().player()
            bonus, grant = claim(db.session.get(User, player.id), p)
            token, grant_id, bonus_id = casino_session(player), grant.id, bonus.id
            free_bet(token, grant.public_id, 1)
            db.session.remove()
        outcomes: dict[str, str] = {}

        def send(name, action, **fields):
            with app.app_context():
                try:
                    call(action, session_token=token, currency="EUR", game_id="jxo-slot",
                         round_id="fs-1", **fields)  # fmt: skip
                    outcomes[name] = "ok"
                except WalletRefused as exc:
                    outcomes[name] = exc.code
                finally:
                    db.session.remove()

        def late_win():
            assert round_locked.wait(10)
            send("win", "win", transaction_id="fs-1:win", amount="2.00")

        threads = [
            threading.Thread(target=send, args=("end", "end_round"),
                             kwargs={"transaction_id": "fs-1:end", "amount": "0.00"}),
            threading.Thread(target=late_win),
        ]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcomes == {"end": "ok", "win": "ok"}
        with app.app_context():
            assert db.session.get(FreeSpinGrant, grant_id).status == "used"
            assert db.session.get(PlayerBonus, bonus_id).status == "completed"
            reconcile_clean()
            db.session.remove()
    finally:
        app.extensions.pop("originals_transport", None)
        callback_protocol.clear_caches()


@pytest.mark.usefixtures("requires_postgres")
def test_end_round_settles_a_free_round_under_its_own_currencys_wallet_lock(app, committed_db):
    """The provider closes a EUR free round naming the player's newer USD session: the
    settlement waits for the EUR wallet (the round's), not the session's USD one."""
    import time

    transport = ClientTransport(app)
    app.extensions["originals_transport"] = transport
    callback_protocol.clear_caches()
    try:
        with app.app_context():
            with atomic():
                seed_originals()
            p = free_spins_promo(free_spins_count=1)
            player = Factory().player()
            _, grant = claim(db.session.get(User, player.id), p)
            token, grant_id, user_id = casino_session(player), grant.id, player.id
            free_bet(token, grant.public_id, 1)
            with atomic():
                usd_token = games.launch(
                    db.session.get(User, user_id), game_id(), demo=False, currency="USD"
                ).session_token
            db.session.remove()
        holding, held_for = threading.Event(), 1.0

        def hold_eur_wallet():
            with app.app_context():
                with atomic():
                    eur = sa.select(Wallet.id).where(
                        Wallet.user_id == user_id, Wallet.currency == "EUR"
                    )
                    db.session.execute(eur.with_for_update())
                    holding.set()
                    time.sleep(held_for)
                db.session.remove()

        holder = threading.Thread(target=hold_eur_wallet)
        holder.start()
        assert holding.wait(10)
        started = time.monotonic()
        with app.app_context():
            call("end_round", transaction_id="fs-1:end", round_id="fs-1", game_id="jxo-slot",
                 session_token=usd_token, amount="0.00", currency="USD")  # fmt: skip
            waited = time.monotonic() - started
            assert db.session.get(FreeSpinGrant, grant_id).status == "used"
            db.session.remove()
        holder.join(10)
        assert waited >= held_for * 0.6, waited
    finally:
        app.extensions.pop("originals_transport", None)
        callback_protocol.clear_caches()
