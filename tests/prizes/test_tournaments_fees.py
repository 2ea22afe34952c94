"""Tournaments II: entry fees (paid once, refunded on cancel/delete, RG rules), bonus prizes
through the bonus service, the participant cap under concurrency; the ledger reconciles."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.bonus import promotions
from app.bonus.models import PlayerBonus
from app.core.base import utcnow
from app.core.errors import Conflict, ValidationError
from app.core.extensions import db
from app.prizes import tournaments
from app.prizes.models import Tournament, TournamentParticipant
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund, open_table, reconcile_clean


def make_tournament(factory, **kw) -> Tournament:
    now = utcnow()
    data = {
        "name": "Paid Sprint",
        "currency": "EUR",
        "starts_at": now - timedelta(minutes=1),
        "ends_at": now + timedelta(hours=1),
        "entry": "opt_in",
        "entry_fee": "2.50",
        "prizes": ["10.00"],
    }
    data.update(kw)
    return tournaments.create(data, actor=factory.staff("admin"))


def funded_player(factory, cash: int = 20_00):
    player = factory.player()
    fund(player.id, cash)
    return player


def cash_of(user_id: int) -> int:
    from app.wallet.models import Wallet

    db.session.expire_all()
    return db.session.scalar(
        sa.select(Wallet.balance).where(Wallet.user_id == user_id, Wallet.currency == "EUR")
    )


def fee_postings(user_id: int) -> list[tuple[str, int]]:
    return [
        (t.type, t.cash_delta)
        for t in db.session.scalars(
            sa.select(LedgerTransaction)
            .where(LedgerTransaction.user_id == user_id, LedgerTransaction.source == "tournaments")
            .order_by(LedgerTransaction.id)
        )
    ]


def test_the_entry_fee_is_paid_once_at_join(client, factory, token_for):
    tour = make_tournament(factory)
    player = funded_player(factory)
    url = f"/api/tournaments/{tour.id}/join"
    assert client.post(url, headers=token_for(player)).status_code == 200
    assert client.post(url, headers=token_for(player)).status_code == 200  # idempotent
    assert cash_of(player.id) == 17_50
    assert fee_postings(player.id) == [("tournament_fee", -2_50)]
    detail = client.get(f"/api/tournaments/{tour.id}").get_json()["data"]
    assert detail["entry_fee"] == "2.50"
    assert detail["participants"] == 1
    reconcile_clean()


def test_a_player_who_cannot_pay_or_may_not_stake_does_not_join(client, factory, token_for):
    from app.compliance import responsible_gaming as rg

    tour = make_tournament(factory)
    url = f"/api/tournaments/{tour.id}/join"
    poor = funded_player(factory, cash=2_49)
    r = client.post(url, headers=token_for(poor))
    assert r.status_code == 400
    assert r.get_json()["code"] == "INSUFFICIENT_BALANCE"
    excluded = funded_player(factory)
    headers = token_for(excluded)
    rg.self_exclude(excluded, "24_hours")
    assert client.post(url, headers=headers).status_code in (401, 403)
    suspended = funded_player(factory)
    headers = token_for(suspended)
    suspended.status = "suspended"
    db.session.flush()
    assert client.post(url, headers=headers).status_code in (401, 403)
    count = db.session.scalar(
        sa.select(sa.func.count(TournamentParticipant.id)).where(
            TournamentParticipant.tournament_id == tour.id
        )
    )
    assert count == 0
    assert [cash_of(u.id) for u in (poor, excluded, suspended)] == [2_49, 20_00, 20_00]
    reconcile_clean()


def test_fees_count_against_wager_limits_like_any_stake(client, factory, token_for):
    from app.compliance import responsible_gaming as rg

    cheap = make_tournament(factory, entry_fee="2.00")
    dear = make_tournament(factory, entry_fee="2.50")
    player = funded_player(factory)
    rg.set_limit(player, limit_type="wager", period="daily", value=4_00, currency="EUR")
    assert (
        client.post(f"/api/tournaments/{cheap.id}/join", headers=token_for(player)).status_code
        == 200
    )
    r = client.post(f"/api/tournaments/{dear.id}/join", headers=token_for(player))
    assert r.status_code >= 400  # 2.00 already staked today + 2.50 > 4.00
    assert r.get_json()["code"] == "LIMIT_EXCEEDED"
    assert cash_of(player.id) == 18_00
    reconcile_clean()


def test_fees_need_opt_in_and_valid_amounts(factory):
    for bad in ({"entry": "free"}, {"entry_fee": "-5"}, {"entry_fee": "0.001"}):
        with pytest.raises(ValidationError) as exc:
            make_tournament(factory, **bad)
        assert getattr(exc.value, "code", None) == "VALIDATION_ERROR", bad


def test_cancel_refunds_every_fee_once_and_pays_no_prize(client, factory, token_for):
    tour = make_tournament(factory)
    players = [funded_player(factory) for _ in range(3)]
    for p in players:
        tournaments.join(tour.id, p)
    admin = factory.staff("admin")
    url = f"/api/admin/tournaments/{tour.id}/cancel"
    assert client.post(url, json={"reason": "x"}, headers=token_for(admin)).status_code == 400
    r = client.post(url, json={"reason": "provider outage"}, headers=token_for(admin))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["data"]["state"] == "cancelled"
    tournaments.cancel(tour.id, actor=admin, reason="again")  # a rerun refunds nothing more
    for p in players:
        assert cash_of(p.id) == 20_00
        assert fee_postings(p.id) == [("tournament_fee", -2_50), ("refund", 2_50)]
    assert tournaments.settle(tour.id).status == "cancelled"  # never settled
    r = client.post(f"/api/tournaments/{tour.id}/join", headers=token_for(funded_player(factory)))
    assert r.status_code == 409
    reconcile_clean()


def test_delete_before_start_refunds_fees(client, factory, token_for):
    start = utcnow() + timedelta(hours=2)
    tour = make_tournament(factory, starts_at=start, ends_at=start + timedelta(hours=1))
    player = funded_player(factory)
    tournaments.join(tour.id, player)
    assert cash_of(player.id) == 17_50
    admin = factory.staff("admin")
    r = client.delete(f"/api/admin/tournaments/{tour.id}", headers=token_for(admin))
    assert r.status_code == 204
    assert db.session.get(Tournament, tour.id) is None
    assert cash_of(player.id) == 20_00
    reconcile_clean()


def _bonus_promotion(*, offered: bool = True):
    p = promotions.create_promotion(
        {
            "name": "Tournament bonus terms",
            "type": "no_deposit",
            "currency": "EUR",
            "bonus_amount_minor": 1_00,
            "wagering_multiplier": 20,
        }
    )
    return promotions.set_status(p.id, "active") if offered else p


def test_a_bonus_prize_is_a_bonus_with_wagering_not_cash(client, factory):
    promo = _bonus_promotion(offered=False)  # terms only: players cannot claim it themselves
    tour = make_tournament(
        factory,
        entry="free",
        entry_fee="0",
        prizes=[{"amount": "5.00", "type": "bonus"}, "3.00"],
        bonus_promotion_id=promo.id,
    )
    first = open_table(client, factory, cash=100_00)
    second = open_table(client, factory, cash=100_00)
    assert first.bet("a1", "9.00", round_id="ra")["status"] == "ok"
    assert second.bet("b1", "4.00", round_id="rb")["status"] == "ok"
    db.session.execute(
        sa.update(Tournament)
        .where(Tournament.id == tour.id)
        .values(ends_at=utcnow() - timedelta(seconds=1))
    )
    tournaments.settle(tour.id)
    tournaments.settle(tour.id)
    assert first.balances() == (91_00, 5_00)  # bonus money, not cash
    assert second.balances() == (99_00, 0)
    bonus = db.session.scalar(sa.select(PlayerBonus).where(PlayerBonus.user_id == first.user_id))
    assert (bonus.amount_minor, bonus.wagering_required_minor, bonus.status) == (
        5_00,
        100_00,
        "active",
    )
    assert bonus.trigger_ref == f"tournament:{tour.id}:rank:1"
    part = db.session.scalar(
        sa.select(TournamentParticipant).where(TournamentParticipant.user_id == first.user_id)
    )
    assert (part.prize_type, part.prize_status, part.bonus_id) == ("bonus", "paid", bonus.id)
    reconcile_clean()


def test_a_bonus_prize_waits_while_the_winner_has_a_bonus_open(client, factory):
    promo = _bonus_promotion()
    tour = make_tournament(
        factory,
        entry="free",
        entry_fee="0",
        prizes=[{"amount": "5.00", "type": "bonus"}],
        bonus_promotion_id=promo.id,
    )
    table = open_table(client, factory, cash=100_00)
    from app.identity.models import User

    user = db.session.get(User, table.user_id)
    open_bonus = promotions.claim(user, promo.id)  # 1.00 bonus, 20.00 to wager
    table.bet("a1", "1.00", round_id="ra")
    db.session.execute(
        sa.update(Tournament)
        .where(Tournament.id == tour.id)
        .values(ends_at=utcnow() - timedelta(seconds=1))
    )
    tournaments.settle(tour.id)
    part = db.session.scalar(
        sa.select(TournamentParticipant).where(TournamentParticipant.tournament_id == tour.id)
    )
    assert part.prize_status == "awaiting"
    assert tournaments.grant_awaiting_prizes() == 0
    promotions.forfeit(user, open_bonus.id)
    assert tournaments.grant_awaiting_prizes() == 1
    assert tournaments.grant_awaiting_prizes() == 0
    db.session.expire_all()
    assert db.session.get(TournamentParticipant, part.id).prize_status == "paid"
    assert table.balances()[1] == 5_00
    reconcile_clean()


def test_bonus_prizes_need_a_promotion_in_the_tournament_currency(factory):
    with pytest.raises(ValidationError) as exc:
        make_tournament(factory, prizes=[{"amount": "5.00", "type": "bonus"}])
    assert getattr(exc.value, "code", None) == "VALIDATION_ERROR"


@pytest.mark.postgres
def test_racing_paid_joins_fill_the_cap_exactly_and_charge_only_those_in(
    app, requires_postgres, committed_db, factory
):
    tour = make_tournament(factory, max_participants=3)
    players = [funded_player(factory) for _ in range(8)]
    barrier = threading.Barrier(8, timeout=30)

    def join(player_id):
        from app.core.errors import Conflict
        from app.identity.models import User

        with app.app_context():
            try:
                user = db.session.get(User, player_id)
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
                tournaments.join(tour.id, user)
                return "in"
            except Conflict:
                return "full"
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(join, [p.id for p in players]))
    assert sorted(results) == ["full"] * 5 + ["in"] * 3
    joined = set(
        db.session.scalars(
            sa.select(TournamentParticipant.user_id).where(
                TournamentParticipant.tournament_id == tour.id
            )
        )
    )
    assert len(joined) == 3
    for p in players:
        assert cash_of(p.id) == (17_50 if p.id in joined else 20_00)
    reconcile_clean()


def test_odd_promotion_ids_are_validation_errors_not_crashes(client, factory, token_for):
    tour = make_tournament(factory)
    for bad in ("²", "9" * 19, "9" * 20, 10**20, -1, True, "1e3"):
        with pytest.raises(ValidationError):
            make_tournament(factory, bonus_promotion_id=bad)
        with pytest.raises(ValidationError):
            tournaments.update_tournament(tour.id, {"bonus_promotion_id": bad}, actor=None)
    admin = factory.staff("admin")
    r = client.put(
        f"/api/admin/tournaments/{tour.id}",
        json={"bonus_promotion_id": 10**20},
        headers=token_for(admin),
    )
    assert r.status_code == 400, r.get_json()


def _usd_cash(user_id: int) -> int | None:
    from app.wallet.models import Wallet

    db.session.expire_all()
    return db.session.scalar(
        sa.select(Wallet.balance).where(Wallet.user_id == user_id, Wallet.currency == "USD")
    )


def test_currency_and_fee_are_frozen_once_someone_paid(client, factory, token_for):
    start = utcnow() + timedelta(hours=2)
    tour = make_tournament(factory, starts_at=start, ends_at=start + timedelta(hours=1))
    admin = factory.staff("admin")
    url = f"/api/admin/tournaments/{tour.id}"
    # Nobody paid yet: the fee may still change.
    assert client.put(url, json={"entry_fee": "3.00"}, headers=token_for(admin)).status_code == 200
    player = funded_player(factory)
    tournaments.join(tour.id, player)
    assert cash_of(player.id) == 17_00
    for change in ({"currency": "USD"}, {"entry_fee": "5.00"}, {"entry_fee": "0"}):
        r = client.put(url, json=change, headers=token_for(admin))
        assert r.status_code == 409, change
        assert r.get_json()["code"] == "CONFLICT"
        assert "already paid the entry fee" in r.get_json()["message"]
    # Sending the same values, or other fields, is still fine.
    same = {"currency": "EUR", "entry_fee": "3.00", "name": "Paid Sprint II"}
    assert client.put(url, json=same, headers=token_for(admin)).status_code == 200
    db.session.expire_all()
    assert (tour.currency, tour.entry_fee, tour.name) == ("EUR", 3_00, "Paid Sprint II")
    tournaments.cancel(tour.id, actor=admin, reason="moved to next week")
    assert cash_of(player.id) == 20_00
    reconcile_clean()


def test_a_fee_is_refunded_in_the_currency_it_was_paid_in(factory):
    tour = make_tournament(factory)
    player = funded_player(factory)
    fund(player.id, 5_00, currency="USD")
    tournaments.join(tour.id, player)
    # A row changed behind the service's back (or before the rule existed): the refund follows
    # the fee's ledger posting, not the tournament's current currency.
    db.session.execute(sa.update(Tournament).where(Tournament.id == tour.id).values(currency="USD"))
    tournaments.cancel(tour.id, actor=factory.staff("admin"), reason="currency mix-up")
    assert cash_of(player.id) == 20_00
    assert _usd_cash(player.id) == 5_00
    reconcile_clean()


def test_refunds_interrupted_by_a_crash_are_finished_by_the_job_once(factory, monkeypatch):
    real = tournaments.refund_fees
    cancelled = make_tournament(factory)
    start = utcnow() + timedelta(hours=2)
    deleted = make_tournament(factory, starts_at=start, ends_at=start + timedelta(hours=1))
    players = [funded_player(factory) for _ in range(3)]
    for p in players:
        tournaments.join(cancelled.id, p)
        tournaments.join(deleted.id, p)
    admin = factory.staff("admin")
    # The process dies right after the tournament was closed, before any refund.
    monkeypatch.setattr(tournaments, "refund_fees", lambda _tid: 0)
    tournaments.cancel(cancelled.id, actor=admin, reason="outage")
    tournaments.delete_tournament(deleted.id, actor=admin)
    monkeypatch.setattr(tournaments, "refund_fees", real)
    assert [cash_of(p.id) for p in players] == [15_00] * 3
    assert db.session.get(Tournament, deleted.id).status == "cancelled"  # closed: no joins
    late = funded_player(factory)
    with pytest.raises(Conflict, match="over"):
        tournaments.join(deleted.id, late)
    # One refund posted but its row update lost: the ledger key stops a second payment.
    assert real(cancelled.id) == 3
    db.session.execute(
        sa.update(TournamentParticipant)
        .where(TournamentParticipant.tournament_id == cancelled.id)
        .values(fee_refund_transaction_id=None)
    )
    tournaments.settle_due()  # the settlement job finishes both
    tournaments.settle_due()  # and a rerun moves nothing
    for p in players:
        assert cash_of(p.id) == 20_00
        assert fee_postings(p.id).count(("refund", 2_50)) == 2  # one per tournament
    db.session.expire_all()
    assert db.session.get(Tournament, deleted.id) is None
    parts = db.session.scalars(
        sa.select(TournamentParticipant).where(TournamentParticipant.tournament_id == cancelled.id)
    ).all()
    assert all(p.fee_refund_transaction_id for p in parts)
    assert cash_of(late.id) == 20_00
    reconcile_clean()


@pytest.mark.postgres
def test_cancel_does_not_deadlock_with_a_participants_bet(
    app, requires_postgres, committed_db, factory
):
    """A bet locks the wallet, then reads the running tournaments FOR KEY SHARE. Cancel used to
    hold the tournament FOR UPDATE while it waited for that wallet: a deadlock."""
    import time

    from app.core.db import atomic
    from app.play import events as play_events
    from app.wallet import ledger as wallet

    tour = make_tournament(factory)
    player = funded_player(factory)
    tournaments.join(tour.id, player)
    admin_id = factory.staff("admin").id
    tour_id, player_id = tour.id, player.id
    db.session.commit()
    db.session.remove()
    wallet_held = threading.Event()

    def bet():
        with app.app_context():
            try:
                with atomic():
                    wallet.lock(player_id, "EUR")  # the callback's first lock
                    wallet_held.set()
                    time.sleep(1.0)  # cancel runs meanwhile and waits for this wallet
                    tournaments.on_play(
                        play_events.PlayEvent(
                            "bet", player_id, "EUR", 1_00, 1_00, 0, 1, None, "r1", 1
                        )
                    )
                return "ok"
            finally:
                db.session.remove()

    def cancel():
        from app.identity.models import User

        with app.app_context():
            try:
                assert wallet_held.wait(10)
                tournaments.cancel(tour_id, actor=db.session.get(User, admin_id), reason="outage")
                return "ok"
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=2) as ex:
        futures = [ex.submit(bet), ex.submit(cancel)]
        results = [f.result(timeout=60) for f in futures]
    assert results == ["ok", "ok"]
    assert cash_of(player_id) == 20_00
    assert db.session.get(Tournament, tour_id).status == "cancelled"
    reconcile_clean()
