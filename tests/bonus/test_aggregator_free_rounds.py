"""Free rounds through an aggregator's API (SoftSwiss ``/freespins/issue``, Hub88 rewards):
the grant is issued once committed, against a real local HTTP server; an aggregator that is down
leaves it pending and a retry sends the same issue id once; a refusal fails it; the free-round
wins come back through the wallet callbacks and are credited once."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa

from app.bonus import free_spins, jobs, promotions
from app.bonus.models import FreeSpinGrant, PlayerBonus
from app.core import queues
from app.core.crypto import generate_rsa_private_key, rsa_public_pem, rsa_sign, rsa_verify
from app.core.db import atomic
from app.core.errors import ValidationError
from app.core.extensions import db
from app.play import aggregator_api, games
from app.play.callbacks import protocol as callback_protocol
from app.play.callbacks.adapters.slotegrator import slotegrator_signature
from app.play.callbacks.adapters.softswiss import SIGNATURE_HEADER, softswiss_signature
from app.play.models import Game
from app.wallet.models import LedgerTransaction, Wallet
from tests.live import free_port
from tests.moneykit import SECRET, fund, make_game, make_provider, reconcile_clean

AGGREGATOR_KEY = generate_rsa_private_key()
#: An answer's ``reward_uuid`` that the fake aggregator replaces by the one the call named.
ECHO = "<echo>"


class FakeAggregator:
    """A local HTTP server playing the aggregator's API: records every call, answers
    ``self.answer`` (status, JSON body), optionally signing it with the aggregator's key."""

    def __init__(self, sign_with: str | None = None) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {})
        #: Answers per path (without the query), before ``answer``.
        self.by_path: dict[str, tuple[int, dict[str, Any]]] = {}
        self.sign_with = sign_with
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls.append((self.path, dict(self.headers.items()), body))
                status, payload = outer.by_path.get(self.path.split("?")[0], outer.answer)
                if payload.get("reward_uuid") == ECHO:  # Hub88 answers the reward named
                    payload = {**payload, "reward_uuid": json.loads(body)["reward_uuid"]}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if outer.sign_with:
                    self.send_header("X-Hub88-Signature", rsa_sign(outer.sign_with, data))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body) for p, _h, body in self.calls if p.endswith(path)]


@pytest.fixture
def aggregator() -> Iterator[FakeAggregator]:
    server = FakeAggregator()
    yield server
    server.close()


def _promo(game_id: int, **kw: Any):
    data = {"name": "Aggregator spins", "type": "free_spins", "currency": "EUR",
            "free_spins_count": 5, "free_spins_game_id": game_id, "free_spin_value_minor": 1_00,
            "wagering_multiplier": 10, "max_claims_per_player": 1, **kw}  # fmt: skip
    p = promotions.create_promotion(data)
    return promotions.set_status(p.id, "active")


def _claim(player, promo) -> FreeSpinGrant:
    bonus = promotions.claim(player, promo.id)
    db.session.expire_all()
    return db.session.scalars(
        sa.select(FreeSpinGrant).where(FreeSpinGrant.bonus_id == bonus.id)
    ).one()


def _fresh(row: FreeSpinGrant) -> FreeSpinGrant:
    db.session.expire_all()
    return db.session.get_one(FreeSpinGrant, row.id)


def _wallet(user_id: int) -> tuple[int, int]:
    db.session.expire_all()
    w = db.session.scalars(sa.select(Wallet).where(Wallet.user_id == user_id)).one()
    return w.balance, w.bonus_balance


def _softswiss(api_url: str, code: str = "ssagg") -> Game:
    callback_protocol.clear_caches()
    make_provider(code, protocol="softswiss", api_url=api_url)
    return make_game(code, f"{code}-slot")


# --- SoftSwiss: issuing ----------------------------------------------------------------------


def test_a_grant_is_issued_through_the_softswiss_api_signed_once(factory, aggregator):
    game = _softswiss(aggregator.url)
    aggregator.answer = (200, {})
    player = factory.player()
    grant = _claim(player, _promo(game.id))
    assert (grant.remote_status, grant.issue_attempts) == ("issued", 1)
    assert grant.provider_ref == grant.public_id
    [(path, headers, body)] = aggregator.calls
    assert path == "/freespins/issue"
    assert headers[SIGNATURE_HEADER] == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sent = json.loads(body)
    assert sent["issue_id"] == grant.public_id
    assert sent["games"] == [game.external_id]
    assert (sent["freespins_quantity"], sent["bet_amount"], sent["currency"]) == (5, 100, "EUR")
    assert sent["user"]["id"] == str(player.id)
    assert sent["valid_until"].endswith("Z")
    # Nothing is pending: the job sends nothing more.
    assert free_spins.retry_pending(older_than=timedelta(0)) == {}
    assert len(aggregator.calls) == 1


# --- the player's claim does not wait for the aggregator --------------------------------------


def _claim_by_api(client, token_for, player, promo):
    answer = client.post(f"/api/promotions/claim/{promo.id}", headers=token_for(player), json={})
    assert answer.status_code == 201, answer.json
    db.session.expire_all()
    grant = db.session.scalars(
        sa.select(FreeSpinGrant).join(PlayerBonus, PlayerBonus.id == FreeSpinGrant.bonus_id)
        .where(PlayerBonus.user_id == player.id)
    ).one()  # fmt: skip
    return answer, grant


def test_a_claim_answers_before_the_issue_call_which_follows_the_answer(
    client, token_for, factory, aggregator
):
    """Embedded mode (jobs in-process): the call goes out once the answer has (the response
    closed), never while the player waits."""
    game = _softswiss(aggregator.url)
    player = factory.player()
    answer, grant = _claim_by_api(client, token_for, player, _promo(game.id))
    assert (grant.remote_status, grant.issue_attempts, aggregator.calls) == ("pending", 0, [])
    answer.close()  # the server has sent the answer
    grant = _fresh(grant)
    assert (grant.remote_status, grant.issue_attempts) == ("issued", 1)
    assert [b["issue_id"] for b in aggregator.bodies("/freespins/issue")] == [grant.public_id]


class _AsyncQueue:
    is_async = True


def test_with_a_worker_the_claim_queues_the_issue_job(
    client, token_for, factory, aggregator, monkeypatch
):
    game = _softswiss(aggregator.url)
    queued: list[tuple[Any, tuple[Any, ...]]] = []
    monkeypatch.setattr(queues, "queue", lambda name="default": _AsyncQueue())
    monkeypatch.setattr(queues, "enqueue", lambda func, *args, **kw: queued.append((func, args)))
    answer, grant = _claim_by_api(client, token_for, factory.player(), _promo(game.id))
    answer.close()
    assert queued == [("app.bonus.jobs.issue_free_round", (grant.id,))]
    assert (_fresh(grant).remote_status, aggregator.calls) == ("pending", [])
    # The worker runs the job: issued once.
    assert jobs.issue_free_round(grant.id) == "issued"
    assert jobs.issue_free_round(grant.id) == "issued"
    assert len(aggregator.calls) == 1


def test_when_redis_refuses_the_job_the_issue_still_follows_the_answer(
    client, token_for, factory, aggregator, monkeypatch
):
    game = _softswiss(aggregator.url)

    def down(*_args: Any, **_kw: Any) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(queues, "queue", lambda name="default": _AsyncQueue())
    monkeypatch.setattr(queues, "enqueue", down)
    answer, grant = _claim_by_api(client, token_for, factory.player(), _promo(game.id))
    assert (grant.remote_status, aggregator.calls) == ("pending", [])
    answer.close()
    assert _fresh(grant).remote_status == "issued"
    assert len(aggregator.calls) == 1


def test_a_forfeit_withdraws_the_grant_after_the_answer(client, token_for, factory, aggregator):
    game = _softswiss(aggregator.url)
    player = factory.player()
    answer, grant = _claim_by_api(client, token_for, player, _promo(game.id))
    answer.close()
    assert _fresh(grant).remote_status == "issued"
    forfeit = client.post(
        f"/api/promotions/bonuses/{grant.bonus_id}/forfeit", headers=token_for(player)
    )
    assert forfeit.status_code == 200, forfeit.json
    assert (_fresh(grant).remote_status, len(aggregator.bodies("/freespins/cancel"))) == (
        "issued", 0)  # fmt: skip
    forfeit.close()
    assert _fresh(grant).remote_status == "cancelled"
    assert len(aggregator.bodies("/freespins/cancel")) == 1


def test_an_aggregator_that_is_down_leaves_the_grant_pending_and_a_retry_issues_it_once(
    factory, aggregator
):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    game = _softswiss(down)
    player = factory.player()
    grant = _claim(player, _promo(game.id))
    grant = _fresh(grant)
    assert (grant.remote_status, grant.issue_attempts) == ("pending", 1)
    # One message for every network failure: no port oracle (issue 21).
    assert "could not be reached" in (grant.remote_error or "")
    # The grant is not lost: the bonus and its spins stand.
    bonus = db.session.get_one(PlayerBonus, grant.bonus_id)
    assert (bonus.status, grant.status, grant.spins_total) == ("active", "active", 5)
    # The aggregator comes back (same provider, now reachable): the retry issues it once.
    with atomic():
        provider = games.provider_by_code("ssagg")
        games.update_provider(provider.id, {"api_url": aggregator.url})
    assert free_spins.retry_pending(older_than=timedelta(0)) == {"issued": 1}
    assert free_spins.retry_pending(older_than=timedelta(0)) == {}
    assert free_spins.issue_remote(grant.id) == "issued"
    assert [b["issue_id"] for b in aggregator.bodies("/freespins/issue")] == [grant.public_id]
    grant = _fresh(grant)
    assert (grant.remote_status, grant.issue_attempts, grant.remote_error) == ("issued", 2, None)


def test_a_5xx_answer_is_a_retry_with_the_same_issue_id(factory, aggregator):
    game = _softswiss(aggregator.url)
    aggregator.answer = (503, {"code": 500, "message": "busy"})
    grant = _claim(factory.player(), _promo(game.id))
    assert grant.remote_status == "pending"
    aggregator.answer = (200, {})
    assert free_spins.retry_pending(older_than=timedelta(0)) == {"issued": 1}
    ids = [b["issue_id"] for b in aggregator.bodies("/freespins/issue")]
    assert ids == [grant.public_id, grant.public_id]


def test_an_aggregator_refusal_fails_the_grant_until_staff_retry_it(factory, aggregator):
    game = _softswiss(aggregator.url)
    aggregator.answer = (400, {"code": 154, "message": "game does not support freespins"})
    grant = _fresh(_claim(factory.player(), _promo(game.id)))
    assert grant.remote_status == "failed"
    assert "154" in (grant.remote_error or "")
    assert free_spins.retry_pending(older_than=timedelta(0)) == {}
    assert len(aggregator.calls) == 1
    aggregator.answer = (200, {})
    assert free_spins.issue_remote(grant.id, include_failed=True) == "issued"
    assert [b["issue_id"] for b in aggregator.bodies("/freespins/issue")] == [grant.public_id] * 2


def test_the_cli_retries_one_grant(app, factory, aggregator):
    game = _softswiss(f"http://127.0.0.1:{free_port()}")
    grant = _claim(factory.player(), _promo(game.id))
    assert grant.remote_status == "pending"
    with atomic():
        games.update_provider(games.provider_by_code("ssagg").id, {"api_url": aggregator.url})
    result = app.test_cli_runner().invoke(
        args=["jackpotx", "providers", "free-rounds-retry", "--grant", grant.public_id]
    )
    assert result.exit_code == 0, result.output
    assert f"{grant.public_id}: issued" in result.output
    assert len(aggregator.calls) == 1


def test_a_forfeited_grant_is_cancelled_at_the_aggregator(factory, aggregator):
    game = _softswiss(aggregator.url)
    player = factory.player()
    grant = _claim(player, _promo(game.id))
    promotions.forfeit(player, grant.bonus_id)
    assert [b["issue_id"] for b in aggregator.bodies("/freespins/cancel")] == [grant.public_id]
    assert _fresh(grant).remote_status == "cancelled"


def test_a_softswiss_provider_without_api_url_cannot_carry_free_spins(factory):
    callback_protocol.clear_caches()
    make_provider("ssnoapi", protocol="softswiss")
    game = make_game("ssnoapi", "ssnoapi-slot")
    with pytest.raises(ValidationError):
        _promo(game.id)


# --- SoftSwiss: the outcome comes back through /freespins ---------------------------------------


def _report(client, code: str, body: dict[str, Any], secret: str = SECRET):
    data = json.dumps(body).encode()
    response = client.post(
        f"/api/provider-callback/{code}/freespins",
        data=data,
        headers={SIGNATURE_HEADER: softswiss_signature(secret, data)},
        content_type="application/json",
    )
    return response.status_code, response.get_json()


def test_the_freespins_report_credits_the_total_once_linked_to_the_grant(
    client, factory, aggregator
):
    game = _softswiss(aggregator.url)
    player = factory.player()
    fund(player.id, 10_00)
    games.launch(player, game.id)
    grant = _claim(player, _promo(game.id))
    report = {"issue_id": grant.public_id, "status": "played", "total_amount": 7_50}
    status, body = _report(client, "ssagg", report)
    assert (status, body) == (200, {"balance": 10_00 + 7_50})
    assert _wallet(player.id) == (10_00, 7_50)
    # The aggregator retries: the same answer, nothing moves again.
    assert _report(client, "ssagg", report) == (200, {"balance": 10_00 + 7_50})
    # Another total for the same grant is a duplicate with other data.
    status, body = _report(client, "ssagg", {**report, "total_amount": 9_00})
    assert (status, body["code"]) == (409, 107)
    assert _wallet(player.id) == (10_00, 7_50)
    grant = _fresh(grant)
    assert (grant.status, grant.spins_used, grant.won_minor) == ("used", 5, 7_50)
    bonus = db.session.get_one(PlayerBonus, grant.bonus_id)
    assert (bonus.amount_minor, bonus.wagering_required_minor) == (7_50, 75_00)
    credits = db.session.scalars(
        sa.select(LedgerTransaction).where(
            LedgerTransaction.user_id == player.id, LedgerTransaction.type == "bonus_grant"
        )
    ).all()
    assert len(credits) == 1
    assert credits[0].meta["free_spin_grant"] == grant.public_id
    reconcile_clean()


def test_a_report_of_an_unknown_or_foreign_issue_is_refused(client, factory, aggregator):
    game = _softswiss(aggregator.url)
    player = factory.player()
    games.launch(player, game.id)
    grant = _claim(player, _promo(game.id))
    status, body = _report(client, "ssagg", {"issue_id": "fsg_nope", "status": "played",
                                             "total_amount": 100})  # fmt: skip
    assert (status, body["code"]) == (404, 107)
    other = factory.player()
    foreign = {"issue_id": grant.public_id, "status": "played", "total_amount": 100,
               "user_id": str(other.id)}  # fmt: skip
    status, body = _report(client, "ssagg", foreign)
    assert (status, body["code"]) == (403, 101)
    for bad in ({"status": "won"}, {"total_amount": -1}, {"total_amount": "5"}):
        payload = {"issue_id": grant.public_id, "status": "played", "total_amount": 1, **bad}
        assert _report(client, "ssagg", payload)[0] == 400
    assert _report(client, "ssagg", {"issue_id": grant.public_id, "status": "played",
                                     "total_amount": 1}, secret="forged")[0] == 403  # fmt: skip
    assert _wallet(player.id) == (0, 0)


def test_an_expired_report_with_nothing_won_completes_the_bonus(client, factory, aggregator):
    game = _softswiss(aggregator.url)
    player = factory.player()
    games.launch(player, game.id)
    grant = _claim(player, _promo(game.id))
    report = {"issue_id": grant.public_id, "status": "expired", "total_amount": 0}
    assert _report(client, "ssagg", report)[0] == 200
    grant = _fresh(grant)
    assert grant.status == "expired"
    assert db.session.get_one(PlayerBonus, grant.bonus_id).status == "completed"


# --- Hub88: rewards ----------------------------------------------------------------------------


@pytest.fixture
def hub88_aggregator() -> Iterator[FakeAggregator]:
    server = FakeAggregator(sign_with=AGGREGATOR_KEY)
    yield server
    server.close()


def test_a_grant_is_a_hub88_reward_and_its_free_bets_pay_once(client, factory, hub88_aggregator):
    callback_protocol.clear_caches()
    games.create_provider(
        code="hubagg", name="Hub88", protocol="hub88", currencies=["EUR"],
        peer_public_key=rsa_public_pem(AGGREGATOR_KEY),
        api_url=f"{hub88_aggregator.url}/operator/generic/v2",
    )  # fmt: skip
    game = make_game("hubagg", "hubagg-slot")
    player = factory.player()
    token = games.launch(player, game.id).session_token
    # Hub88 answers the reward the operator named.
    hub88_aggregator.answer = (200, {"reward_uuid": ECHO})
    grant = _claim(player, _promo(game.id, wagering_multiplier=0))
    reward = aggregator_api.hub88_reward_uuid(grant.public_id)
    assert (grant.remote_status, grant.provider_ref) == ("issued", reward)
    [(path, headers, body)] = hub88_aggregator.calls
    assert path == "/operator/generic/v2/freebet/rewards/create"
    assert rsa_verify(games.provider_public_key("hubagg"), body, headers["X-Hub88-Signature"])
    sent = json.loads(body)
    assert (sent["user"], sent["currency"], sent["game_code"]) == (
        str(player.id),
        "EUR",
        "hubagg-slot",
    )
    assert (sent["bet_value"], sent["bet_count"], sent["reward_uuid"]) == (100_000, 5, reward)

    def post(path: str, fields: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps({"user": str(player.id), "request_uuid": str(uuid.uuid4()),
                           "token": token, "game_code": "hubagg-slot", "currency": "EUR",
                           **fields}).encode()  # fmt: skip
        headers = {"Content-Type": "application/json",
                   "X-Hub88-Signature": rsa_sign(AGGREGATOR_KEY, data)}  # fmt: skip
        response = client.post(f"/api/provider-callback/hubagg/{path}", data=data, headers=headers)
        return response.get_json()

    bet = post("transaction/bet", {"transaction_uuid": "fb1", "round": "FR1", "amount": 100_000,
                                   "is_free": True, "reward_uuid": reward})  # fmt: skip
    assert bet["status"] == "RS_OK", bet
    win = {"transaction_uuid": "fw1", "round": "FR1", "amount": 250_000,
           "reference_transaction_uuid": "fb1", "round_closed": True}  # fmt: skip
    assert post("transaction/win", win)["balance"] == 250_000
    assert post("transaction/win", win)["balance"] == 250_000
    assert _wallet(player.id) == (2_50, 0)  # no wagering: straight to cash
    grant = _fresh(grant)
    assert (grant.spins_used, grant.won_minor) == (1, 2_50)
    reconcile_clean()


def test_a_hub88_answer_with_a_forged_signature_leaves_the_grant_pending(factory):
    server = FakeAggregator(sign_with=generate_rsa_private_key())
    try:
        callback_protocol.clear_caches()
        games.create_provider(
            code="hubforged", name="Hub88", protocol="hub88", currencies=["EUR"],
            peer_public_key=rsa_public_pem(AGGREGATOR_KEY), api_url=server.url,
        )  # fmt: skip
        game = make_game("hubforged", "hubforged-slot")
        server.answer = (200, {"reward_uuid": str(uuid.uuid4())})
        grant = _fresh(_claim(factory.player(), _promo(game.id)))
        assert grant.remote_status == "pending"
        assert grant.provider_ref is None
    finally:
        server.close()


def test_a_report_for_a_grant_whose_issue_answer_was_lost_credits_it_and_marks_it_issued(
    client, factory
):
    game = _softswiss(f"http://127.0.0.1:{free_port()}")
    player = factory.player()
    games.launch(player, game.id)
    grant = _claim(player, _promo(game.id, wagering_multiplier=0))
    assert grant.remote_status == "pending"
    report = {"issue_id": grant.public_id, "status": "played", "total_amount": 3_00}
    assert _report(client, "ssagg", report) == (200, {"balance": 3_00})
    assert _wallet(player.id) == (3_00, 0)
    grant = _fresh(grant)
    assert (grant.remote_status, grant.status) == ("issued", "used")
    assert free_spins.retry_pending(older_than=timedelta(0)) == {}


def test_a_hub88_answer_without_a_reward_fails_the_grant(factory, hub88_aggregator):
    callback_protocol.clear_caches()
    games.create_provider(
        code="hubnoreward", name="Hub88", protocol="hub88", currencies=["EUR"],
        peer_public_key=rsa_public_pem(AGGREGATOR_KEY), api_url=hub88_aggregator.url,
    )  # fmt: skip
    game = make_game("hubnoreward", "hubnoreward-slot")
    hub88_aggregator.answer = (200, {"status": "ok"})
    grant = _fresh(_claim(factory.player(), _promo(game.id)))
    assert grant.remote_status == "failed"
    assert "reward_uuid" in (grant.remote_error or "")


# --- Slotegrator: /freespins/set, and the free spins played through the wallet ----------------


GIS_BETS = {"denominations": ["0.01"], "total_bets": [{"bet_id": 0, "amount": 0.5},
                                                       {"bet_id": 7, "amount": 1.0}]}  # fmt: skip


def _gis(aggregator: FakeAggregator, code: str = "sgagg") -> Game:
    callback_protocol.clear_caches()
    make_provider(code, protocol="slotegrator", api_url=aggregator.url)
    aggregator.by_path = {"/freespins/bets": (200, GIS_BETS), "/freespins/set": (200, {})}
    return make_game(code, f"{code}-slot")


def _gis_signed(headers: dict[str, str], params: dict[str, str]) -> bool:
    signed = {k: headers[k] for k in ("X-Merchant-Id", "X-Timestamp", "X-Nonce")}
    return headers.get("X-Sign") == slotegrator_signature(SECRET, params, signed)


def test_a_grant_is_a_slotegrator_freespin_campaign_at_the_games_matching_total_bet(
    factory, aggregator
):
    game = _gis(aggregator)
    player = factory.player()
    grant = _claim(player, _promo(game.id))
    assert (grant.remote_status, grant.provider_ref) == ("issued", grant.public_id)
    (bets_path, bets_headers, _), (set_path, set_headers, set_body) = aggregator.calls
    path, query = bets_path.split("?")
    assert path == "/freespins/bets"
    assert _gis_signed(bets_headers, dict(parse_qsl(query)))
    assert dict(parse_qsl(query)) == {"game_uuid": game.external_id, "currency": "EUR"}
    sent = dict(parse_qsl(set_body.decode()))
    assert set_path == "/freespins/set"
    assert _gis_signed(set_headers, sent)
    assert set_headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (sent["freespin_id"], sent["player_id"], sent["game_uuid"], sent["quantity"],
            sent["total_bet_id"], sent["currency"]) == (
        grant.public_id, str(player.id), game.external_id, "5", "7", "EUR")  # fmt: skip
    assert int(sent["valid_until"]) == int(grant.expires_at.timestamp())


def test_a_game_without_a_total_bet_of_the_spin_value_fails_the_grant(factory, aggregator):
    game = _gis(aggregator)
    aggregator.by_path["/freespins/bets"] = (200, {"total_bets": [{"bet_id": 0, "amount": 0.2}]})
    grant = _fresh(_claim(factory.player(), _promo(game.id)))
    assert grant.remote_status == "failed"
    assert "no free-spin total bet of 1.00 EUR" in grant.remote_error
    assert [p for p, _h, _b in aggregator.calls if p.startswith("/freespins/set")] == []


def test_a_refused_set_of_a_campaign_that_exists_under_our_id_is_issued(factory, aggregator):
    game = _gis(aggregator)
    player = factory.player()
    aggregator.by_path["/freespins/set"] = (422, {"message": "freespin_id already exists"})
    grant = _claim(player, _promo(game.id))
    # The earlier call's answer was lost: the aggregator holds the campaign under our id.
    aggregator.by_path["/freespins/get"] = (200, {"freespin_id": grant.public_id,
                                                 "player_id": str(player.id)})  # fmt: skip
    assert grant.remote_status == "failed"  # no campaign there when the claim sent it
    assert free_spins.issue_remote(grant.id, include_failed=True) == "issued"
    other = _fresh(_claim(factory.player(), _promo(game.id, name="Other spins")))
    assert other.remote_status == "failed"  # /get names another campaign


def _gis_callback(client, code: str, params: dict[str, Any]) -> dict[str, Any]:
    headers = {"X-Merchant-Id": "m", "X-Timestamp": str(int(time.time())),
               "X-Nonce": uuid.uuid4().hex}  # fmt: skip
    form = {k: str(v) for k, v in params.items()}
    headers["X-Sign"] = slotegrator_signature(SECRET, form, headers)
    response = client.post(f"/api/provider-callback/{code}", data=form, headers=headers)
    assert response.status_code == 200
    return response.get_json()


def test_slotegrator_free_spins_debit_nothing_and_their_wins_pay_once(client, factory, aggregator):
    game = _gis(aggregator)
    player = factory.player()
    fund(player.id, 10_00)
    token = games.launch(player, game.id).session_token
    grant = _claim(player, _promo(game.id, wagering_multiplier=0))
    common = {"player_id": player.id, "session_id": token, "currency": "EUR",
              "game_uuid": game.external_id, "freespin_id": grant.public_id}  # fmt: skip
    bet = {**common, "action": "bet", "type": "freespin", "transaction_id": "fsb1",
           "round_id": "fsr1", "amount": "1.00", "quantity": "4"}  # fmt: skip
    first = _gis_callback(client, "sgagg", bet)
    assert first["balance"] == 10.0  # the spin's nominal 1.00 is not the player's
    assert _gis_callback(client, "sgagg", bet) == first
    win = {**common, "action": "win", "type": "freespin", "transaction_id": "fsw1",
           "round_id": "fsr1", "amount": "2.50", "finished": "1"}  # fmt: skip
    assert _gis_callback(client, "sgagg", win)["balance"] == 12.5
    assert _gis_callback(client, "sgagg", win)["balance"] == 12.5
    grant = _fresh(grant)
    assert (grant.spins_used, grant.won_minor) == (1, 2_50)
    # A freespin bet of a grant that is not the player's, or without its id, is refused.
    foreign = {**bet, "transaction_id": "fsb2", "round_id": "fsr2", "freespin_id": "fsg_nope"}
    assert _gis_callback(client, "sgagg", foreign)["error_code"] == "VALIDATION_ERROR"
    assert _gis_callback(client, "sgagg", {**foreign, "freespin_id": ""})["error_code"] == (
        "VALIDATION_ERROR")  # fmt: skip
    reconcile_clean()
