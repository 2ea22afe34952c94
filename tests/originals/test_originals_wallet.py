"""JxOriginals end to end: the studio settles every round with the casino wallet through the
signed callback endpoint (same bytes an outside provider would send), and survives lost answers."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from app.core.db import atomic
from app.core.extensions import db
from app.originals import studio as service
from app.originals.models import OriginalsRound
from app.originals.wallet_client import CALLBACK_PATH, RequestsTransport
from app.play import games
from app.play.callbacks import protocol as callback_protocol
from app.play.models import Game, ProviderCallback
from app.seed import seed_originals
from app.wallet.models import LedgerTransaction, Wallet
from tests.moneykit import fund, reconcile_clean


class ClientTransport:
    """Routes the studio's signed requests through the Flask test client (same bytes)."""

    def __init__(self, app) -> None:
        self.app = app
        self.sent: list[bytes] = []

    def post(self, path, body, headers, timeout):
        self.sent.append(body)
        response = self.app.test_client().post(path, data=body, headers=headers)
        return response.status_code, response.get_data()


class LossyTransport:
    """Delivers (or not) and then loses answers, on the actions it is told to sabotage."""

    def __init__(self, inner, *, lose_answer=(), drop_request=(), times=1) -> None:
        self.inner = inner
        self.lose_answer = set(lose_answer)
        self.drop_request = set(drop_request)
        self.left = times
        self.actions: list[str] = []

    def post(self, path, body, headers, timeout):
        import json

        action = json.loads(body)["action"]
        self.actions.append(action)
        if self.left and action in self.drop_request:
            self.left -= 1
            raise requests.ConnectionError("connection refused")
        answer = self.inner.post(path, body, headers, timeout)
        if self.left and action in self.lose_answer:
            self.left -= 1
            raise requests.ReadTimeout("read timed out")
        return answer


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


def _game_id(code: str) -> int:
    return db.session.scalar(sa.select(Game.id).where(Game.external_id == code))


def _open(client, player, code="jxo-dice", *, demo=False) -> str:
    """Launch as the casino does and follow the launch URL like the player's browser."""
    with atomic():
        launched = games.launch(player, _game_id(code), demo=demo)
    url = urlparse(launched.launch_url)
    assert url.path == f"/originals/launch/{code}"
    response = client.get(f"{url.path}?{url.query}")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


def _play(client, token, stake="1.00", **params):
    return client.post(f"/originals/api/sessions/{token}/rounds", json={"stake": stake, **params})


def _wallet(user_id: int) -> Wallet:
    db.session.expire_all()
    return db.session.scalar(sa.select(Wallet).where(Wallet.user_id == user_id))


def _round(round_ref: str) -> OriginalsRound:
    db.session.expire_all()
    return db.session.scalar(sa.select(OriginalsRound).where(OriginalsRound.round_ref == round_ref))


def test_seed_demo_registers_the_studio_with_its_games(studio):
    rows = db.session.execute(
        sa.select(Game.external_id, Game.rtp, Game.min_bet, Game.max_bet).order_by(Game.external_id)
    ).all()
    assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [
        ("jxo-dice", "99.00", 10, 100_00),
        ("jxo-slot", "96.19", 10, 100_00),
    ]
    with atomic():
        seed_originals()  # idempotent
    assert db.session.scalar(sa.select(sa.func.count(Game.id))) == 2


def test_player_plays_dice_through_the_wallet_and_the_ledger_reconciles(client, factory, studio):
    player = factory.player()
    fund(player.id, cash=50_00)
    token = _open(client, player)
    page = client.get(f"/originals/play/{token}").get_data(as_text=True)
    assert "50.00" in page
    assert "DEMO" not in page

    expected = 50_00
    for _ in range(12):
        response = _play(client, token, "2.50", target="49.50")
        assert response.status_code == 201, response.get_json()
        played = response.get_json()["data"]
        assert played["status"] == "settled"
        expected += -250 + (int(played["payout"].replace(".", "")))
        assert played["payout"] == ("5.00" if played["result"]["win"] else "0.00")
        assert played["balance"] == f"{expected // 100}.{expected % 100:02d}"
    assert _wallet(player.id).balance == expected

    # Every round = bet + win + end_round, signed, answered ok, on the casino's side too.
    actions = db.session.execute(
        sa.select(ProviderCallback.action, sa.func.count()).group_by(ProviderCallback.action)
    ).all()
    assert dict(actions) == {"authenticate": 1, "bet": 12, "win": 12, "end_round": 12}
    bets = db.session.scalar(
        sa.select(sa.func.count()).where(
            LedgerTransaction.user_id == player.id, LedgerTransaction.type == "bet"
        )
    )
    assert bets == 12
    reconcile_clean()
    state = client.get(f"/originals/api/sessions/{token}").get_json()["data"]
    assert state["balance"] == f"{expected // 100}.{expected % 100:02d}"
    assert state["seed"]["next_nonce"] == 12


def test_the_slot_settles_its_paytable_win(client, factory, studio):
    player = factory.player()
    fund(player.id, cash=20_00)
    token = _open(client, player, "jxo-slot")
    total = 20_00
    for _ in range(8):
        spin = _play(client, token, "1.00").get_json()["data"]
        total += int(spin["result"]["multiplier"]) * 100 - 100
        assert spin["status"] == "settled"
    assert _wallet(player.id).balance == total
    reconcile_clean()


def test_insufficient_funds_is_shown_to_the_player_and_nothing_moves(client, factory, studio):
    player = factory.player()
    fund(player.id, cash=50)
    token = _open(client, player)
    response = _play(client, token, "1.00", target="50")
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "INSUFFICIENT_BALANCE"
    assert body["message"] == "Insufficient funds for this stake"
    assert _wallet(player.id).balance == 50
    rnd = db.session.scalar(sa.select(OriginalsRound))
    assert (rnd.status, rnd.error_code) == ("rejected", "INSUFFICIENT_FUNDS")
    reconcile_clean()


def test_a_lost_bet_answer_is_rolled_back_and_the_stake_returned(client, factory, studio, app):
    player = factory.player()
    fund(player.id, cash=10_00)
    token = _open(client, player)
    app.extensions["originals_transport"] = LossyTransport(studio, lose_answer={"bet"})
    response = _play(client, token, "3.00", target="50")
    assert response.status_code == 503
    body = response.get_json()
    assert "cancelled" in body["message"]
    rnd = _round(body["round_id"])
    assert rnd.status == "rolled_back"
    assert _wallet(player.id).balance == 10_00
    types = db.session.scalars(
        sa.select(LedgerTransaction.type).where(LedgerTransaction.user_id == player.id)
    ).all()
    assert sorted(types) == ["bet", "deposit", "rollback"]
    reconcile_clean()


def test_a_bet_that_never_arrived_is_rolled_back_and_can_never_be_taken_later(
    client, factory, studio, app
):
    player = factory.player()
    fund(player.id, cash=10_00)
    token = _open(client, player)
    app.extensions["originals_transport"] = LossyTransport(studio, drop_request={"bet"})
    response = _play(client, token, "3.00", target="50")
    assert response.status_code == 503
    round_ref = response.get_json()["round_id"]
    assert _round(round_ref).status == "rolled_back"
    assert _wallet(player.id).balance == 10_00
    # The late bet (a retry that finally arrives) is refused by the wallet: nothing moves.
    late = next(body for body in studio.sent if b'"action":"rollback"' in body)
    assert b":bet" in late
    bet_body = (
        late.replace(b'"action":"rollback"', b'"action":"bet"')
        .replace(b'"reference_transaction_id":"' + round_ref.encode() + b':bet",', b"")
        .replace(b":rollback", b":bet")
    )
    from app.originals.wallet_client import sign

    _status, raw = studio.post(
        CALLBACK_PATH,
        bet_body,
        {
            "Content-Type": "application/json",
            "X-Signature": sign(service.provider_secret(), bet_body),
        },
        5,
    )
    assert b'"status":"error"' in raw.replace(b" ", b"")
    assert _wallet(player.id).balance == 10_00
    reconcile_clean()


def test_lost_win_answers_are_retried_as_the_same_transaction_and_paid_once(
    client, factory, studio, app
):
    player = factory.player()
    fund(player.id, cash=10_00)
    token = _open(client, player)
    lossy = LossyTransport(studio, lose_answer={"win"}, times=2)
    app.extensions["originals_transport"] = lossy
    played = _play(client, token, "1.00", target="98.00").get_json()["data"]
    assert played["status"] == "settled"
    assert lossy.actions == ["bet", "win", "win", "win", "end_round"]
    expected = 10_00 - 100 + (101 if played["result"]["win"] else 0)
    assert _wallet(player.id).balance == expected
    wins = db.session.scalar(
        sa.select(sa.func.count()).where(
            LedgerTransaction.user_id == player.id, LedgerTransaction.type == "win"
        )
    )
    assert wins == (1 if played["result"]["win"] else 0)
    assert _round(played["round_id"]).attempts == 2
    reconcile_clean()


def test_a_wallet_outage_after_the_bet_leaves_the_win_owed_until_retry_pending(
    client, factory, studio, app, runner
):
    player = factory.player()
    fund(player.id, cash=10_00)
    token = _open(client, player)
    app.extensions["originals_transport"] = LossyTransport(
        studio, drop_request={"win"}, times=len(service.RETRY_DELAYS)
    )
    response = _play(client, token, "1.00", target="98.00")
    assert response.status_code == 201
    played = response.get_json()["data"]
    assert played["status"] == "win_pending"
    assert _wallet(player.id).balance == 9_00

    app.extensions["originals_transport"] = studio
    result = runner.invoke(args=["jackpotx", "originals", "retry-pending", "--older-than", "0s"])
    assert result.exit_code == 0, result.output
    assert "settled 1" in result.output
    assert _round(played["round_id"]).status == "settled"
    assert _wallet(player.id).balance == 9_00 + (101 if played["result"]["win"] else 0)
    # Running it again finds nothing left and moves nothing.
    again = runner.invoke(args=["jackpotx", "originals", "retry-pending", "--older-than", "0s"])
    assert "rolled back 0, settled 0, still pending 0" in again.output
    reconcile_clean()


def test_a_studio_with_the_wrong_secret_is_refused_at_launch(client, factory, studio, app):
    player = factory.player()
    fund(player.id, cash=10_00)
    app.config["JXORIGINALS_SECRET"] = "not-the-registered-secret-at-all"
    try:
        with atomic():
            launched = games.launch(player, _game_id("jxo-dice"))
        url = urlparse(launched.launch_url)
        response = client.get(f"{url.path}?{url.query}")
    finally:
        app.config["JXORIGINALS_SECRET"] = ""
    assert response.status_code == 401
    assert b"did not accept this game session" in response.data
    verdicts = db.session.scalars(sa.select(ProviderCallback.verdict)).all()
    assert verdicts == ["INVALID_SIGNATURE"]


def test_demo_launched_from_the_casino_never_calls_the_wallet(client, factory, studio):
    player = factory.player()
    token = _open(client, player, demo=True)
    played = _play(client, token, "5.00", target="50").get_json()["data"]
    assert played["demo"] is True
    assert played["status"] == "settled"
    assert db.session.scalar(sa.select(sa.func.count(ProviderCallback.id))) == 0
    assert _wallet(player.id) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_studio_settles_over_real_http_against_a_live_server(
    app, client, factory, committed_db, requires_postgres
):
    port = _free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.extensions["originals_transport"] = RequestsTransport(f"http://127.0.0.1:{port}")
    callback_protocol.clear_caches()
    try:
        with atomic():
            seed_originals()
        player = factory.player()
        fund(player.id, cash=30_00)
        token = _open(client, player)
        expected = 30_00
        for _ in range(5):
            played = _play(client, token, "2.00", target="50").get_json()["data"]
            assert played["status"] == "settled"
            expected += -200 + (396 if played["result"]["win"] else 0)
        assert _wallet(player.id).balance == expected
        reconcile_clean()
    finally:
        app.extensions.pop("originals_transport", None)
        server.shutdown()
        thread.join(5)
        callback_protocol.clear_caches()


def test_a_bonus_max_bet_refusal_says_so(client, factory, studio, token_for):
    from tests.bonus.test_promotions import promo

    player = factory.player()
    fund(player.id, cash=50_00)
    p = promo(type="no_deposit", bonus_amount_minor=10_00, match_percent=0, max_bet_minor=5_00)
    claimed = client.post(f"/api/promotions/claim/{p.id}", headers=token_for(player), json={})
    assert claimed.status_code == 201, claimed.json
    token = _open(client, player)
    response = _play(client, token, "5.01", target="50")
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "LIMIT_EXCEEDED"
    assert "maximum bet while wagering a bonus is 5.00 EUR" in body["message"]
    assert "responsible gaming" not in body["message"]
    assert _play(client, token, "5.00", target="50").status_code == 201
    reconcile_clean()
