"""The scenarios every protocol must pass, written once against ``base.Driver``.

Each takes the run's ``Context`` and raises ``Failed`` when the server does not meet an
expectation. Money is compared in minor units; every scenario that sends a refused call
also checks that the balance did not move.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from app.conformance.aggregator import GIS_TOTAL_BETS, AggregatorApi, ApiCall
from app.conformance.base import (
    Driver,
    Failed,
    PlayerSession,
    RawJSON,
    Reply,
    Scenario,
    encode,
)
from app.conformance.evolution import EvolutionDriver
from app.conformance.fixtures import (
    FREE_SPIN_VALUE,
    FREE_SPINS,
    RACER_START,
    START,
    Setup,
    grant_free_rounds,
    grant_row,
)
from app.conformance.slotegrator import SlotegratorDriver
from app.conformance.softswiss import SoftSwissDriver
from app.core.crypto import rsa_verify
from app.play import aggregator_api
from app.play.callbacks.adapters.slotegrator import SIGNED_HEADERS as GIS_HEADERS
from app.play.callbacks.adapters.slotegrator import slotegrator_signature


@dataclass
class Context:
    driver: Driver
    setup: Setup

    def id(self, name: str) -> str:
        """A transaction/round id unique to this run."""
        return f"cf-{self.setup.run_id}-{name}"


def expect(ctx: Context, reply: Reply, *outcomes: str, balance: int | None = None) -> Reply:
    if not ctx.driver.expects(reply, *outcomes):
        wanted = " or ".join(f"{o} {'/'.join(ctx.driver.codes[o])}" for o in outcomes)
        raise Failed(f"expected {wanted}, got {reply.code}")
    if balance is not None and reply.balance != balance:
        raise Failed(f"expected balance {balance}, answer says {reply.balance}")
    return reply


def balance_of(ctx: Context, s: PlayerSession) -> int:
    reply = expect(ctx, ctx.driver.balance(s), "ok")
    if reply.balance is None:
        raise Failed("the balance answer carries no balance")
    return reply.balance


def same_balance(ctx: Context, s: PlayerSession, before: int) -> None:
    after = balance_of(ctx, s)
    if after != before:
        raise Failed(f"a refused call moved money: balance {before} -> {after}")


def refused(ctx: Context, s: PlayerSession, send: Callable[[], Reply], *outcomes: str) -> Reply:
    """``send`` answers one of ``outcomes`` and ``s``'s balance does not move."""
    before = balance_of(ctx, s)
    reply = expect(ctx, send(), *outcomes)
    same_balance(ctx, s, before)
    return reply


AnyDriver = TypeVar("AnyDriver", bound=Driver)


def driver_of(ctx: Context, kind: type[AnyDriver]) -> AnyDriver:
    """The run's driver as the protocol's own (a scenario registered for that protocol)."""
    if not isinstance(ctx.driver, kind):  # pragma: no cover - registered for it
        raise Failed(f"a {kind.protocol} scenario run with another driver")
    return ctx.driver


SCENARIOS: list[Scenario] = []


def scenario(group: str, *protocols: str) -> Callable[[Callable[[Context], None]], Any]:
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        SCENARIOS.append(Scenario(fn.__name__, group, fn, tuple(protocols)))
        return fn

    return register


# --- happy path ------------------------------------------------------------------------------


@scenario("happy")
def balance_is_the_funded_balance(ctx: Context) -> None:
    if balance_of(ctx, ctx.setup.main) != START:
        raise Failed(f"expected the runner's starting balance {START}")


@scenario("happy")
def player_info_names_the_player(ctx: Context) -> None:
    expect(ctx, ctx.driver.info(ctx.setup.main), "ok")


@scenario("happy")
def bet_debits(ctx: Context) -> None:
    s = ctx.setup.main
    before = balance_of(ctx, s)
    expect(ctx, ctx.driver.bet(s, ctx.id("b1"), ctx.id("r1"), "1.00"), "ok", balance=before - 100)


@scenario("happy")
def win_credits(ctx: Context) -> None:
    s = ctx.setup.main
    before = balance_of(ctx, s)
    d = ctx.driver
    expect(ctx, d.bet(s, ctx.id("b2"), ctx.id("r2"), "1.00"), "ok")
    expect(
        ctx,
        d.win(s, ctx.id("w2"), ctx.id("r2"), "2.50", bet_tx=ctx.id("b2")),
        "ok",
        balance=before + 150,
    )


@scenario("happy")
def rollback_gives_the_stake_back(ctx: Context) -> None:
    s = ctx.setup.main
    before = balance_of(ctx, s)
    expect(ctx, ctx.driver.bet(s, ctx.id("b3"), ctx.id("r3"), "3.00"), "ok")
    expect(ctx, ctx.driver.rollback(s, ctx.id("x3"), ctx.id("b3"), ctx.id("r3")), "ok")
    if balance_of(ctx, s) != before:
        raise Failed("the rollback did not restore the balance")


@scenario("happy")
def closed_round_takes_no_more_bets(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b4"), ctx.id("r4"), "1.00"), "ok")
    expect(ctx, d.close_round(s, ctx.id("c4"), ctx.id("r4"), ctx.id("b4")), "ok")
    before = balance_of(ctx, s)
    expect(ctx, d.bet(s, ctx.id("b4b"), ctx.id("r4"), "1.00"), "round_closed")
    same_balance(ctx, s, before)


@scenario("happy")
def late_win_on_a_closed_round_still_pays(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b5"), ctx.id("r5"), "1.00"), "ok")
    expect(ctx, d.close_round(s, ctx.id("c5"), ctx.id("r5"), ctx.id("b5")), "ok")
    before = balance_of(ctx, s)
    expect(
        ctx,
        d.win(s, ctx.id("w5"), ctx.id("r5"), "4.00", bet_tx=ctx.id("b5")),
        "ok",
        balance=before + 400,
    )


@scenario("happy")
def win_with_an_expired_token_still_pays(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b6"), ctx.id("r6"), "1.00"), "ok")
    before = balance_of(ctx, s)
    late = ctx.setup.expired
    expect(
        ctx,
        d.win(late, ctx.id("w6"), ctx.id("r6"), "1.50", bet_tx=ctx.id("b6")),
        "ok",
        balance=before + 150,
    )


# --- idempotency -----------------------------------------------------------------------------


@scenario("idempotency")
def exact_bet_retry_answers_the_same_and_debits_once(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    before = balance_of(ctx, s)
    first = expect(ctx, d.bet(s, ctx.id("b10"), ctx.id("r10"), "1.25"), "ok")
    again = expect(ctx, d.bet(s, ctx.id("b10"), ctx.id("r10"), "1.25"), "ok")
    if (first.code, first.balance) != (again.code, again.balance):
        raise Failed("the retry answered differently")
    if balance_of(ctx, s) != before - 125:
        raise Failed("the retry debited again")


@scenario("idempotency")
def exact_win_retry_answers_the_same_and_credits_once(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b11"), ctx.id("r11"), "1.00"), "ok")
    before = balance_of(ctx, s)
    first = expect(ctx, d.win(s, ctx.id("w11"), ctx.id("r11"), "3.00", bet_tx=ctx.id("b11")), "ok")
    again = expect(ctx, d.win(s, ctx.id("w11"), ctx.id("r11"), "3.00", bet_tx=ctx.id("b11")), "ok")
    if first.balance != again.balance:
        raise Failed("the retry answered differently")
    if balance_of(ctx, s) != before + 300:
        raise Failed("the retry credited again")


def _changed_bet(ctx: Context, name: str, outcomes: tuple[str, ...], **change: Any) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id(name), ctx.id(f"{name}r"), "1.00"), "ok")
    round_id = change.pop("round_id", ctx.id(f"{name}r"))
    amount = change.pop("amount", "1.00")
    refused(ctx, s, lambda: d.bet(s, ctx.id(name), round_id, amount, **change), *outcomes)


@scenario("idempotency")
def same_bet_id_with_another_amount_is_a_duplicate(ctx: Context) -> None:
    _changed_bet(ctx, "b12", ("duplicate",), amount="2.00")


@scenario("idempotency")
def same_bet_id_in_another_round_is_a_duplicate(ctx: Context) -> None:
    _changed_bet(ctx, "b13", ("duplicate",), round_id=ctx.id("b13other"))


@scenario("idempotency")
def same_bet_id_in_another_currency_is_refused(ctx: Context) -> None:
    _changed_bet(ctx, "b14", ("duplicate", "wrong_currency"), currency="USD")


@scenario("idempotency")
def same_bet_id_from_another_player_is_a_duplicate(ctx: Context) -> None:
    s, other, d = ctx.setup.main, ctx.setup.second, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b15"), ctx.id("r15"), "1.00"), "ok")
    refused(ctx, other, lambda: d.bet(other, ctx.id("b15"), ctx.id("r15"), "1.00"), "duplicate")


@scenario("idempotency")
def win_for_an_unknown_bet_does_not_exist(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    win = partial(d.win, s, ctx.id("w16"), ctx.id("r16"), "5.00", bet_tx=ctx.id("b16"))
    refused(ctx, s, win, "not_found")


@scenario("idempotency")
def rollback_before_its_bet_refuses_the_late_bet(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    before = balance_of(ctx, s)
    expect(ctx, d.rollback(s, ctx.id("x17"), ctx.id("b17"), ctx.id("r17")), "rollback_unknown")
    expect(ctx, d.bet(s, ctx.id("b17"), ctx.id("r17"), "1.00"), "duplicate")
    same_balance(ctx, s, before)


@scenario("idempotency")
def rollback_twice_gives_the_stake_back_once(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    before = balance_of(ctx, s)
    expect(ctx, d.bet(s, ctx.id("b18"), ctx.id("r18"), "2.00"), "ok")
    first = expect(ctx, d.rollback(s, ctx.id("x18"), ctx.id("b18"), ctx.id("r18")), "ok")
    again = expect(ctx, d.rollback(s, ctx.id("x18"), ctx.id("b18"), ctx.id("r18")), "ok")
    if first.balance != again.balance:
        raise Failed("the retried rollback answered differently")
    expect(ctx, d.rollback(s, ctx.id("x18b"), ctx.id("b18"), ctx.id("r18")), "ok")
    if balance_of(ctx, s) != before:
        raise Failed("the stake did not come back exactly once")


@scenario("idempotency")
def rollback_without_amount_uses_the_stored_one(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    before = balance_of(ctx, s)
    expect(ctx, d.bet(s, ctx.id("b19"), ctx.id("r19"), "2.37"), "ok", balance=before - 237)
    expect(ctx, d.rollback(s, ctx.id("x19"), ctx.id("b19"), ctx.id("r19")), "ok", balance=before)


# --- concurrency -----------------------------------------------------------------------------


def _parallel(calls: list[Callable[[], Reply]]) -> list[Reply]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


@scenario("concurrency")
def ten_simultaneous_debits_end_exact_and_never_negative(ctx: Context) -> None:
    s, d = ctx.setup.racer, ctx.driver
    if balance_of(ctx, s) != RACER_START:
        raise Failed(f"the racer should start at {RACER_START}")
    replies = _parallel(
        [
            lambda i=i: d.bet(s, ctx.id(f"b20-{i}"), ctx.id(f"r20-{i}"), "1.00")  # type: ignore[misc]
            for i in range(10)
        ]
    )
    ok = [r for r in replies if d.expects(r, "ok")]
    poor = [r for r in replies if d.expects(r, "insufficient")]
    if len(ok) != RACER_START // 100 or len(ok) + len(poor) != 10:
        raise Failed(f"{len(ok)} accepted and {len(poor)} refused for lack of funds, of 10")
    if any(r.balance is not None and r.balance < 0 for r in replies):
        raise Failed("an answer showed a negative balance")
    if balance_of(ctx, s) != 0:
        raise Failed("the balance is not exactly zero")


@scenario("concurrency")
def concurrent_duplicate_wins_credit_once(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b21"), ctx.id("r21"), "1.00"), "ok")
    before = balance_of(ctx, s)
    replies = _parallel(
        [lambda: d.win(s, ctx.id("w21"), ctx.id("r21"), "5.00", bet_tx=ctx.id("b21"))] * 10
    )
    if not all(d.expects(r, "ok") for r in replies):
        raise Failed(f"answers: {sorted({r.code for r in replies})}")
    if {r.balance for r in replies} != {before + 500}:
        raise Failed(f"answers showed balances {sorted({r.balance or 0 for r in replies})}")
    if balance_of(ctx, s) != before + 500:
        raise Failed("the win was credited more than once")


@scenario("concurrency")
def two_players_racing_one_transaction_id_are_kept_apart(ctx: Context) -> None:
    a, b, d = ctx.setup.main, ctx.setup.second, ctx.driver
    before = balance_of(ctx, a) + balance_of(ctx, b)
    replies = _parallel(
        [
            lambda: d.bet(a, ctx.id("b22"), ctx.id("r22a"), "1.00"),
            lambda: d.bet(b, ctx.id("b22"), ctx.id("r22b"), "1.00"),
        ]
    )
    outcomes = sorted(
        "ok" if d.expects(r, "ok") else "dup" for r in replies if d.expects(r, "ok", "duplicate")
    )
    if outcomes != ["dup", "ok"]:
        raise Failed(f"answers: {[r.code for r in replies]}")
    if balance_of(ctx, a) + balance_of(ctx, b) != before - 100:
        raise Failed("the two players' balances moved by other than one stake")


# --- security --------------------------------------------------------------------------------


def _refused_bet(
    ctx: Context, name: str, send: Callable[[str, bytes], Reply], *outcomes: str
) -> None:
    """A bet built as usual, sent by ``send`` (as it signs it): refused, nothing moves."""
    s, d = ctx.setup.main, ctx.driver
    path, body = d.build("bet", s, d.bet_fields(ctx.id(name), ctx.id(f"{name}r"), "1.00"))
    refused(ctx, s, lambda: send(path, body), *(outcomes or ("bad_signature",)))


@scenario("security")
def bad_signature_is_refused(ctx: Context) -> None:
    d = ctx.driver

    def send(path: str, body: bytes) -> Reply:
        forged = d.signature_headers(body + b" ")
        return d.send(path, body, forged)

    _refused_bet(ctx, "b30", send)


@scenario("security")
def missing_signature_is_refused(ctx: Context) -> None:
    _refused_bet(ctx, "b31", lambda path, body: ctx.driver.send(path, body, {}))


@scenario("security")
def another_providers_signature_is_refused(ctx: Context) -> None:
    d = ctx.driver

    def send(path: str, body: bytes) -> Reply:
        return d.send(path, body, d.signature_headers(body, ctx.setup.other))

    _refused_bet(ctx, "b32", send)


@scenario("security")
def tampered_body_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    path, body = d.build("bet", s, d.bet_fields(ctx.id("b33"), ctx.id("r33"), "1.00"))
    headers = d.signature_headers(body)
    _path, tampered = d.build("bet", s, d.bet_fields(ctx.id("b33"), ctx.id("r33"), "0.01"))
    refused(ctx, s, lambda: d.send(path, tampered, headers), "bad_signature")


@scenario("security")
def replayed_signature_with_another_body_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    path, body = d.build("bet", s, d.bet_fields(ctx.id("b34"), ctx.id("r34"), "1.00"))
    headers = d.signature_headers(body)
    expect(ctx, d.send(path, body, headers), "ok")
    _path, other = d.build("bet", s, d.bet_fields(ctx.id("b34b"), ctx.id("r34"), "1.00"))
    refused(ctx, s, lambda: d.send(path, other, headers), "bad_signature")


@scenario("security")
def another_providers_session_token_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    foreign = ctx.setup.foreign
    # Signed correctly by this provider, but the session was opened with the other one.
    refused(ctx, s, lambda: d.bet(foreign, ctx.id("b35"), ctx.id("r35"), "1.00"), "invalid_token")


@scenario("security")
def unknown_provider_is_not_found(ctx: Context) -> None:
    d, s = ctx.driver, ctx.setup.main
    path, body = d.build("balance", s, {})
    reply = d.send(path, body, d.signature_headers(body), code=f"cf-none-{ctx.setup.run_id}")
    if reply.http != 404:
        raise Failed(f"expected HTTP 404, got {reply.http}")


# --- player state ----------------------------------------------------------------------------


@scenario("player")
def suspended_player_may_not_bet_but_is_paid(ctx: Context) -> None:
    s, d = ctx.setup.suspended, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b40"), ctx.id("r40"), "1.00"), "ok")
    ctx.setup.suspend(s)
    before = balance_of(ctx, s)
    expect(ctx, d.bet(s, ctx.id("b40b"), ctx.id("r40"), "1.00"), "blocked")
    expect(
        ctx,
        d.win(s, ctx.id("w40"), ctx.id("r40"), "2.00", bet_tx=ctx.id("b40")),
        "ok",
        balance=before + 200,
    )


@scenario("player")
def self_excluded_player_may_not_bet(ctx: Context) -> None:
    s = ctx.setup.excluded
    refused(ctx, s, lambda: ctx.driver.bet(s, ctx.id("b41"), ctx.id("r41"), "1.00"), "blocked")


@scenario("player")
def wager_limit_refuses_the_bet(ctx: Context) -> None:
    s = ctx.setup.limited
    refused(ctx, s, lambda: ctx.driver.bet(s, ctx.id("b42"), ctx.id("r42"), "2.00"), "limit")


@scenario("player")
def insufficient_funds_answer_the_balance(ctx: Context) -> None:
    s = ctx.setup.main
    before = balance_of(ctx, s)
    reply = ctx.driver.bet(s, ctx.id("b43"), ctx.id("r43"), "1000000.00")
    expect(ctx, reply, "insufficient", balance=before)
    same_balance(ctx, s, before)


# --- edge cases ------------------------------------------------------------------------------


@scenario("edge")
def zero_bet_is_accepted_and_moves_nothing(ctx: Context) -> None:
    s = ctx.setup.main
    before = balance_of(ctx, s)
    expect(ctx, ctx.driver.bet(s, ctx.id("b50"), ctx.id("r50"), "0"), "ok", balance=before)


def _refused_main_bet(
    ctx: Context, name: str, amount: str | RawJSON, *outcomes: str, **over: Any
) -> None:
    """The main player's bet ``name`` of ``amount`` is refused (default: a bad request)."""
    s = ctx.setup.main
    bet = partial(ctx.driver.bet, s, ctx.id(name), ctx.id(f"{name}r"), amount, **over)
    refused(ctx, s, bet, *(outcomes or ("bad_request",)))


def _bad_amount(ctx: Context, name: str, amount: str | RawJSON) -> None:
    _refused_main_bet(ctx, name, amount)


@scenario("edge")
def negative_amount_is_refused(ctx: Context) -> None:
    _bad_amount(ctx, "b51", "-1.00")


@scenario("edge")
def non_finite_amount_is_refused(ctx: Context) -> None:
    _bad_amount(ctx, "b52", RawJSON("1e309"))


@scenario("edge")
def huge_amount_is_refused(ctx: Context) -> None:
    _bad_amount(ctx, "b53", "10000000000000000.00")


@scenario("edge")
def over_precise_amount_is_refused(ctx: Context) -> None:
    _bad_amount(ctx, "b54", "0.001")


@scenario("edge")
def text_amount_is_refused(ctx: Context) -> None:
    _bad_amount(ctx, "b55", RawJSON('"one euro"'))


@scenario("edge")
def unicode_ids_work_and_retry(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    tx, round_id = ctx.id("ставка-🎰-56"), ctx.id("раунд-56")
    before = balance_of(ctx, s)
    first = expect(ctx, d.bet(s, tx, round_id, "1.00"), "ok", balance=before - 100)
    again = expect(ctx, d.bet(s, tx, round_id, "1.00"), "ok")
    if first.balance != again.balance:
        raise Failed("the retry answered differently")


@scenario("edge")
def very_long_id_is_refused_cleanly(ctx: Context) -> None:
    s = ctx.setup.main
    bet = partial(ctx.driver.bet, s, ctx.id("b57-" + "x" * 300), ctx.id("r57"), "1.00")
    refused(ctx, s, bet, "bad_request")


@scenario("edge")
def wrong_currency_is_refused(ctx: Context) -> None:
    _refused_main_bet(ctx, "b58", "1.00", "wrong_currency", currency="USD")


@scenario("edge")
def unknown_game_is_refused(ctx: Context) -> None:
    game = {ctx.driver.game_field: "cf-no-such-game"}
    _refused_main_bet(ctx, "b59", "1.00", "unknown_game", **game)


@scenario("edge")
def unknown_token_is_refused(ctx: Context) -> None:
    s = ctx.setup.main
    expect(
        ctx, ctx.driver.balance(s, token="cf-no-such-token-" + ctx.setup.run_id), "invalid_token"
    )


@scenario("edge")
def expired_token_may_not_bet(ctx: Context) -> None:
    late = partial(ctx.driver.bet, ctx.setup.expired, ctx.id("b60"), ctx.id("r60"), "1.00")
    refused(ctx, ctx.setup.main, late, "expired_token")


@scenario("edge")
def malformed_json_is_refused(ctx: Context) -> None:
    d = ctx.driver
    body = b'{"transaction": '
    _refused_bet(ctx, "b61", lambda path, _: d.send(path, body, d.signature_headers(body)),
                 "bad_request")  # fmt: skip


# --- protocol features -----------------------------------------------------------------------


@scenario("protocol", "native", "pragmatic")
def rollback_with_another_amount_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b70"), ctx.id("r70"), "2.00"), "ok")
    rollback = partial(d.rollback, s, ctx.id("x70"), ctx.id("b70"), ctx.id("r70"), amount="1.00")
    refused(ctx, s, rollback, "bad_request")


@scenario("protocol", "hub88")
def answers_are_signed_and_echo_the_request(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    path, body = d.build("balance", s, {"request_uuid": f"cf-{ctx.setup.run_id}-req"})
    reply = expect(ctx, d.send(path, body, d.signature_headers(body)), "ok")
    if not reply.answer_signed:
        raise Failed("the answer's X-Hub88-Signature does not verify with our public key")
    answer = reply.body if isinstance(reply.body, dict) else {}
    if answer.get("request_uuid") != f"cf-{ctx.setup.run_id}-req":
        raise Failed("request_uuid is not echoed")
    if answer.get("user") != str(s.user_id) or answer.get("currency") != s.currency:
        raise Failed("the answer does not name the player and currency")


@scenario("protocol", "hub88")
def refusals_are_signed_too(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    path, body = d.build("bet", s, d.bet_fields(ctx.id("b71"), ctx.id("r71"), "1.00"))
    reply = expect(ctx, d.send(path, body, {}), "bad_signature")
    if not reply.answer_signed:
        raise Failed("a refusal must be signed like any answer")


@scenario("protocol", "pragmatic")
def authenticate_names_the_player_and_echoes_the_token(ctx: Context) -> None:
    s = ctx.setup.main
    reply = expect(ctx, ctx.driver.info(s), "ok", balance=balance_of(ctx, s))
    answer = reply.body if isinstance(reply.body, dict) else {}
    if (answer.get("userId"), answer.get("token"), answer.get("currency")) != (
        str(s.user_id),
        s.token,
        s.currency,
    ):
        raise Failed("authenticate must answer userId, the token and the currency")


@scenario("protocol", "pragmatic")
def unknown_user_is_player_not_found(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    reply = d.call("balance", s, {"userId": "987654321987", "token": None})
    if reply.code != "2":
        raise Failed(f"expected error 2 (player not found), got {reply.code}")


@scenario("protocol", "pragmatic")
def missing_parameter_is_bad_parameters(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    fields = {**d.bet_fields(ctx.id("b80"), ctx.id("r80"), "1.00"), "roundId": None}
    refused(ctx, s, lambda: d.call("bet", s, fields), "bad_request")


@scenario("protocol", "pragmatic")
def bonus_win_pays_its_round_once(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b81"), ctx.id("r81"), "1.00"), "ok")
    before = balance_of(ctx, s)
    fields = {"reference": ctx.id("bw81"), "roundId": ctx.id("r81"), "amount": "6.40",
              "bonusCode": ctx.id("frb81")}  # fmt: skip
    first = expect(ctx, d.call("bonus_win", s, fields), "ok", balance=before + 640)
    again = expect(ctx, d.call("bonus_win", s, fields), "ok", balance=before + 640)
    if (first.body or {}).get("transactionId") != (again.body or {}).get("transactionId"):
        raise Failed("the retried bonusWin answered another transactionId")
    if balance_of(ctx, s) != before + 640:
        raise Failed("the bonus win was not credited exactly once")


@scenario("protocol", "pragmatic")
def promo_win_credits_once_outside_any_round(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    before = balance_of(ctx, s)
    fields = {"reference": ctx.id("pw82"), "campaignId": ctx.id("camp82"), "amount": "12.00"}
    expect(ctx, d.call("promo_win", s, fields), "ok", balance=before + 1200)
    expect(ctx, d.call("promo_win", s, fields), "ok", balance=before + 1200)
    expect(ctx, d.call("promo_win", s, {**fields, "amount": "13.00"}), "duplicate")
    if balance_of(ctx, s) != before + 1200:
        raise Failed("the promo win was not credited exactly once")


@scenario("protocol", "pragmatic")
def promo_win_in_another_currency_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    fields = {"reference": ctx.id("pw83"), "campaignId": ctx.id("camp83"), "amount": "1.00",
              "currency": "USD"}  # fmt: skip
    refused(ctx, s, lambda: d.call("promo_win", s, fields), "wrong_currency")


@scenario("protocol", "pragmatic")
def jackpot_win_from_an_unknown_pool_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, ctx.driver
    expect(ctx, d.bet(s, ctx.id("b84"), ctx.id("r84"), "1.00"), "ok")
    fields = {"reference": ctx.id("jw84"), "roundId": ctx.id("r84"), "amount": "50.00",
              "jackpotId": "cf-no-such-pool"}  # fmt: skip
    refused(ctx, s, lambda: d.call("jackpot_win", s, fields), "bad_request")


def _softswiss(ctx: Context) -> SoftSwissDriver:
    return driver_of(ctx, SoftSwissDriver)


@scenario("protocol", "softswiss")
def play_with_a_bet_and_a_win_applies_both_and_finished_closes_the_round(ctx: Context) -> None:
    s, d = ctx.setup.main, _softswiss(ctx)
    before = balance_of(ctx, s)
    actions = [("bet", ctx.id("b90"), "2.00"), ("win", ctx.id("w90"), "5.00")]
    reply = expect(ctx, d.play(s, ctx.id("r90"), actions, finished=True), "ok",
                   balance=before + 300)  # fmt: skip
    ids = [t.get("action_id") for t in (reply.body or {}).get("transactions", [])]
    if ids != [ctx.id("b90"), ctx.id("w90")]:
        raise Failed(f"the answer's transactions are {ids}")
    expect(ctx, d.bet(s, ctx.id("b90b"), ctx.id("r90"), "1.00"), "round_closed")
    same_balance(ctx, s, before + 300)


@scenario("protocol", "softswiss")
def play_whose_second_action_is_refused_moves_nothing(ctx: Context) -> None:
    s, d = ctx.setup.main, _softswiss(ctx)
    before = balance_of(ctx, s)
    actions = [("bet", ctx.id("b91"), "1.00"), ("bet", ctx.id("b91b"), "1000000.00")]
    expect(ctx, d.play(s, ctx.id("r91"), actions), "insufficient", balance=before)
    same_balance(ctx, s, before)
    # The first bet was not kept either: sent alone it applies now.
    expect(ctx, d.bet(s, ctx.id("b91"), ctx.id("r91"), "1.00"), "ok", balance=before - 100)


@scenario("protocol", "softswiss")
def retried_play_answers_the_same_transactions_and_moves_money_once(ctx: Context) -> None:
    s, d = ctx.setup.main, _softswiss(ctx)
    before = balance_of(ctx, s)
    actions = [("bet", ctx.id("b92"), "1.00"), ("win", ctx.id("w92"), "0.40")]
    first = expect(ctx, d.play(s, ctx.id("r92"), actions), "ok", balance=before - 60)
    again = expect(ctx, d.play(s, ctx.id("r92"), actions), "ok", balance=before - 60)
    if (first.body or {}).get("transactions") != (again.body or {}).get("transactions"):
        raise Failed("the retry answered other transactions")
    same_balance(ctx, s, before - 60)


@scenario("protocol", "softswiss")
def same_action_id_twice_in_one_play_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, _softswiss(ctx)
    actions = [("bet", ctx.id("b93"), "1.00"), ("bet", ctx.id("b93"), "1.00")]
    refused(ctx, s, lambda: d.play(s, ctx.id("r93"), actions), "duplicate")


def _slotegrator(ctx: Context) -> SlotegratorDriver:
    return driver_of(ctx, SlotegratorDriver)


def _slotegrator_code(reply: Reply, code: str) -> Reply:
    if reply.code != code:
        raise Failed(f"expected {code}, got {reply.code}")
    return reply


def _bet_signed_at(ctx: Context, name: str, skew: int) -> None:
    """A bet signed ``skew`` seconds off the clock: REQUEST_EXPIRED, nothing moves."""
    s, d = ctx.setup.main, _slotegrator(ctx)
    before = balance_of(ctx, s)
    path, body = d.build("bet", s, d.bet_fields(ctx.id(name), ctx.id(f"r{name[1:]}"), "1.00"))
    headers = d.signed_headers(body, timestamp=int(time.time()) + skew)
    _slotegrator_code(d.send(path, body, headers), "REQUEST_EXPIRED")
    same_balance(ctx, s, before)


@scenario("security", "slotegrator")
def stale_timestamp_is_refused(ctx: Context) -> None:
    _bet_signed_at(ctx, "b100", -600)


@scenario("security", "slotegrator")
def timestamp_from_the_future_is_refused(ctx: Context) -> None:
    _bet_signed_at(ctx, "b101", 600)


@scenario("security", "slotegrator")
def timestamp_within_the_skew_is_accepted(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    path, body = d.build("balance", s, {})
    expect(ctx, d.send(path, body, d.signed_headers(body, timestamp=int(time.time()) - 240)),
           "ok")  # fmt: skip


@scenario("security", "slotegrator")
def replayed_request_with_its_nonce_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    path, body = d.build("bet", s, d.bet_fields(ctx.id("b102"), ctx.id("r102"), "1.00"))
    headers = d.signature_headers(body)
    expect(ctx, d.send(path, body, headers), "ok")
    before = balance_of(ctx, s)
    _slotegrator_code(d.send(path, body, headers), "NONCE_REUSED")
    same_balance(ctx, s, before)


@scenario("security", "slotegrator")
def nonce_reused_by_a_newly_signed_request_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    nonce = f"{ctx.id('n103')}"
    path, body = d.build("balance", s, {})
    expect(ctx, d.send(path, body, d.signed_headers(body, nonce=nonce)), "ok")
    before = balance_of(ctx, s)
    path, body = d.build("bet", s, d.bet_fields(ctx.id("b103"), ctx.id("r103"), "1.00"))
    _slotegrator_code(d.send(path, body, d.signed_headers(body, nonce=nonce)), "NONCE_REUSED")
    same_balance(ctx, s, before)


@scenario("concurrency", "slotegrator")
def one_nonce_racing_is_accepted_once(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    before = balance_of(ctx, s)
    nonce = ctx.id("n104")
    calls: list[Callable[[], Reply]] = []
    for i in range(5):
        path, body = d.build("bet", s, d.bet_fields(ctx.id(f"b104-{i}"), ctx.id("r104"), "1.00"))
        headers = d.signed_headers(body, nonce=nonce)
        calls.append(partial(d.send, path, body, headers))
    replies = _parallel(calls)
    codes = sorted(r.code for r in replies)
    if codes != ["NONCE_REUSED"] * 4 + ["ok"]:
        raise Failed(f"answers: {codes}")
    same_balance(ctx, s, before - 100)


@scenario("happy", "slotegrator")
def refund_without_amount_gives_the_stored_stake_back(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    before = balance_of(ctx, s)
    expect(ctx, d.bet(s, ctx.id("b105"), ctx.id("r105"), "2.50"), "ok", balance=before - 250)
    reply = d.call(
        "rollback",
        s,
        {
            "transaction_id": ctx.id("x105"),
            "bet_transaction_id": ctx.id("b105"),
            "action": "rollback",
        },
    )
    expect(ctx, reply, "ok", balance=before)  # fmt: skip


@scenario("happy", "slotegrator")
def rollback_undoes_every_listed_transaction_once(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    before = balance_of(ctx, s)
    bet, win, rnd = ctx.id("b106"), ctx.id("w106"), ctx.id("r106")
    expect(ctx, d.bet(s, bet, rnd, "3.00"), "ok")
    expect(ctx, d.win(s, win, rnd, "5.00", bet_tx=bet), "ok", balance=before + 200)
    items = [("bet", bet, "3.00"), ("win", win, "5.00")]
    first = expect(ctx, d.rollback_listed(s, ctx.id("x106"), rnd, items), "ok", balance=before)
    if (first.body or {}).get("rollback_transactions") != [bet, win]:
        raise Failed("the answer must list the rolled-back transaction ids")
    again = expect(ctx, d.rollback_listed(s, ctx.id("x106"), rnd, items), "ok", balance=before)
    if again.body != first.body:
        raise Failed("the retried rollback answered differently")
    other = d.rollback_listed(s, ctx.id("x106b"), rnd, items[:1])
    expect(ctx, other, "ok", balance=before)
    same_balance(ctx, s, before)


@scenario("idempotency", "slotegrator")
def rollback_listing_a_transaction_never_seen_refuses_it_later(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    before = balance_of(ctx, s)
    bet, rnd = ctx.id("b107"), ctx.id("r107")
    expect(ctx, d.rollback_listed(s, ctx.id("x107"), rnd, [("bet", bet, "1.00")]), "ok",
           balance=before)  # fmt: skip
    refused(ctx, s, lambda: d.bet(s, bet, rnd, "1.00"), "duplicate")


@scenario("idempotency", "slotegrator")
def rollback_that_cannot_undo_one_listed_transaction_undoes_none(ctx: Context) -> None:
    s, d = ctx.setup.main, _slotegrator(ctx)
    here, there = ctx.id("b108"), ctx.id("b108b")
    expect(ctx, d.bet(s, here, ctx.id("r108"), "1.00"), "ok")
    expect(ctx, d.bet(s, there, ctx.id("r108b"), "1.00"), "ok")
    items = [("bet", here, "1.00"), ("bet", there, "1.00")]
    # The second bet is in another round than the rollback's.
    send = partial(d.rollback_listed, s, ctx.id("x108"), ctx.id("r108"), items)
    refused(ctx, s, send, "not_found")


def _evolution(ctx: Context) -> EvolutionDriver:
    return driver_of(ctx, EvolutionDriver)


def _evolution_token(ctx: Context, name: str, token: str) -> None:
    d = _evolution(ctx)
    _refused_bet(ctx, name, lambda path, body: d.send(path, body, d.token_headers(token)))


@scenario("security", "evolution")
def wrong_auth_token_is_refused(ctx: Context) -> None:
    _evolution_token(ctx, "b110", "not-the-token")


@scenario("security", "evolution")
def auth_token_differing_in_its_last_character_is_refused(ctx: Context) -> None:
    secret = _evolution(ctx).creds.secret or ""
    near = secret[:-1] + ("A" if secret[-1:] != "A" else "B")
    _evolution_token(ctx, "b111", near)


@scenario("security", "evolution")
def auth_token_with_extra_characters_is_refused(ctx: Context) -> None:
    _evolution_token(ctx, "b112", (_evolution(ctx).creds.secret or "") + "x")


@scenario("security", "evolution")
def empty_auth_token_is_refused(ctx: Context) -> None:
    _evolution_token(ctx, "b113", "")


@scenario("protocol", "evolution")
def answers_echo_the_uuid_and_check_echoes_the_sid(ctx: Context) -> None:
    s, d = ctx.setup.main, _evolution(ctx)
    path, body = d.build("info", s, {"uuid": ctx.id("u114")})
    reply = expect(ctx, d.send(path, body, d.signature_headers(body)), "ok")
    answer = reply.body if isinstance(reply.body, dict) else {}
    if (answer.get("uuid"), answer.get("sid")) != (ctx.id("u114"), s.token):
        raise Failed("check must echo uuid and sid")
    refused = d.bet(s, ctx.id("b114"), ctx.id("r114"), "1000000.00", uuid=ctx.id("u114b"))
    expect(ctx, refused, "insufficient")
    if (refused.body or {}).get("uuid") != ctx.id("u114b"):
        raise Failed("a refusal must echo uuid too")


@scenario("protocol", "evolution")
def promo_payout_is_credited_once_and_linked(ctx: Context) -> None:
    s, d = ctx.setup.main, _evolution(ctx)
    before = balance_of(ctx, s)
    jackpots = [
        {"id": ctx.id("jp115a"), "winAmount": 10},
        {"id": ctx.id("jp115b"), "winAmount": 2.5},
    ]
    fields = {"id": ctx.id("pp115"), "amount": "12.50", "jackpots": jackpots}
    first = expect(ctx, d.call("promo_payout", s, fields), "ok", balance=before + 12_50)
    again = expect(ctx, d.call("promo_payout", s, fields), "ok", balance=before + 12_50)
    if (again.body or {}).get("uuid") != json.loads(again.sent).get("uuid"):
        raise Failed("a promo payout's answer must echo its uuid")
    if first.balance != again.balance:
        raise Failed("the retried promo payout answered differently")
    changed = {**fields, "amount": "13.50"}
    refused(ctx, s, lambda: d.call("promo_payout", s, changed), "duplicate")
    if balance_of(ctx, s) != before + 12_50:
        raise Failed("the promo payout was not credited exactly once")


@scenario("protocol", "evolution")
def promo_payout_of_nothing_or_in_another_currency_is_refused(ctx: Context) -> None:
    s, d = ctx.setup.main, _evolution(ctx)
    zero = {"id": ctx.id("pp116"), "amount": "0"}
    refused(ctx, s, lambda: d.call("promo_payout", s, zero), "bad_request")
    usd = {"id": ctx.id("pp116b"), "amount": "1.00", "currency": "USD"}
    refused(ctx, s, lambda: d.call("promo_payout", s, usd), "wrong_currency")


# --- free rounds through the aggregator's API (SoftSwiss, Hub88) ------------------------------
#
# The runner is the aggregator's API too (``aggregator.AggregatorApi``, the provider's
# ``api_url`` for the run): a player of this run claims the free-spins promotion, JackpotX issues
# the grant to the listener, the scenario checks that call and then plays the free-round wins
# through the wallet as the aggregator would.


def _aggregator(ctx: Context) -> AggregatorApi:
    if ctx.setup.aggregator is None:
        raise Failed("no aggregator API listener for this protocol")
    return ctx.setup.aggregator


def _issue_call(ctx: Context, suffix: str, key: str, value: str) -> ApiCall:
    calls = [c for c in _aggregator(ctx).calls_to(suffix) if _fields(c).get(key) == value]
    if len(calls) != 1:
        raise Failed(f"expected one {suffix} call for {value}, the aggregator got {len(calls)}")
    return calls[0]


def _fields(call: ApiCall) -> dict[str, Any]:
    """A call's JSON object, or its form fields."""
    body = call.json()
    return body if isinstance(body, dict) else call.params()


def _issued(ctx: Context, grant_id: int) -> tuple[str, str | None]:
    row = grant_row(grant_id)
    if row.remote_status != "issued":
        raise Failed(f"the grant is {row.remote_status} ({row.remote_error}), not issued")
    return row.public_id, row.provider_ref


@scenario("free_rounds", "softswiss")
def free_rounds_are_issued_through_the_aggregator_api(ctx: Context) -> None:
    s, grant_id = grant_free_rounds(ctx.setup, "softswiss", "1")
    issue_id, _ref = _issued(ctx, grant_id)
    call = _issue_call(ctx, "/freespins/issue", "issue_id", issue_id)
    expected = _softswiss(ctx).signature_headers(call.body)["X-REQUEST-SIGN"]
    if call.headers.get("X-REQUEST-SIGN") != expected:
        raise Failed("the issue call's X-REQUEST-SIGN is not the HMAC of its body")
    body = call.json() or {}
    sent = (body.get("games"), body.get("freespins_quantity"), body.get("currency"),
            (body.get("user") or {}).get("id"), body.get("bet_amount"))  # fmt: skip
    if sent != ([s.game], FREE_SPINS, s.currency, str(s.user_id), FREE_SPIN_VALUE):
        raise Failed(f"the issue call does not describe the grant: {body}")
    if not body.get("valid_until"):
        raise Failed("the issue call has no valid_until")


@scenario("free_rounds", "softswiss")
def free_rounds_report_is_credited_once(ctx: Context) -> None:
    d = _softswiss(ctx)
    s, grant_id = grant_free_rounds(ctx.setup, "softswiss", "2")
    issue_id, _ref = _issued(ctx, grant_id)
    report = {"issue_id": issue_id, "status": "played", "total_amount": 2_50}
    body = encode(report)
    expect(ctx, d.send("freespins", body, d.signature_headers(body)), "ok", balance=2_50)
    expect(ctx, d.send("freespins", body, d.signature_headers(body)), "ok", balance=2_50)
    if balance_of(ctx, s) != 2_50:
        raise Failed("the reported free-rounds win is not in the balance once")
    other = encode({**report, "total_amount": 9_00})
    expect(ctx, d.send("freespins", other, d.signature_headers(other)), "duplicate")
    same_balance(ctx, s, 2_50)
    if grant_row(grant_id).status != "used":
        raise Failed("the reported grant did not end")


@scenario("free_rounds", "hub88")
def free_rounds_are_issued_as_a_hub88_reward(ctx: Context) -> None:
    s, grant_id = grant_free_rounds(ctx.setup, "hub88", "1")
    issue_id, reference = _issued(ctx, grant_id)
    named = aggregator_api.hub88_reward_uuid(issue_id)
    call = _issue_call(ctx, "/freebet/rewards/create", "reward_uuid", named)
    key = ctx.driver.creds.answer_key or ""
    signature = call.headers.get("X-Hub88-Signature") or ""
    if not signature or not rsa_verify(key, call.body, signature):
        raise Failed("the rewards call's X-Hub88-Signature does not verify with our public key")
    body = call.json() or {}
    sent = (body.get("user"), body.get("currency"), body.get("game_code"),
            body.get("bet_count"), body.get("bet_value"))  # fmt: skip
    if sent != (str(s.user_id), s.currency, s.game, FREE_SPINS, FREE_SPIN_VALUE * 1000):
        raise Failed(f"the rewards call does not describe the grant: {body}")
    if reference != call.answer.get("reward_uuid"):
        raise Failed("the grant does not keep the reward_uuid the aggregator answered")


@scenario("free_rounds", "hub88")
def free_bet_of_a_reward_is_paid_once(ctx: Context) -> None:
    d = ctx.driver
    s, grant_id = grant_free_rounds(ctx.setup, "hub88", "2")
    _issue_id, reward = _issued(ctx, grant_id)
    bet, rnd = ctx.id("fb1"), ctx.id("fr1")
    expect(ctx, d.bet(s, bet, rnd, "1.00", is_free=True, reward_uuid=reward), "ok", balance=0)
    win = d.win(s, ctx.id("fw1"), rnd, "2.50", bet_tx=bet, close=True)
    expect(ctx, win, "ok", balance=2_50)
    retry = d.win(s, ctx.id("fw1"), rnd, "2.50", bet_tx=bet, close=True)
    expect(ctx, retry, "ok", balance=2_50)
    same_balance(ctx, s, 2_50)
    row = grant_row(grant_id)
    if (row.spins_used, row.won_minor) != (1, 2_50):
        raise Failed(f"the grant shows {row.spins_used} spin(s) and {row.won_minor} won")


@scenario("free_rounds", "slotegrator")
def free_rounds_are_a_slotegrator_freespin_campaign(ctx: Context) -> None:
    s, grant_id = grant_free_rounds(ctx.setup, "slotegrator", "1")
    issue_id, reference = _issued(ctx, grant_id)
    call = _issue_call(ctx, "/freespins/set", "freespin_id", issue_id)
    sent = call.params()
    signed = {k: call.headers.get(k) or "" for k in GIS_HEADERS}
    secret = ctx.driver.creds.secret or ""
    if call.headers.get("X-Sign") != slotegrator_signature(secret, sent, signed):
        raise Failed("the /freespins/set call's X-Sign is not the HMAC of its fields and headers")
    value = FREE_SPIN_VALUE / 100
    wanted = next(str(k) for k, v in GIS_TOTAL_BETS.items() if v == value)
    got = (sent.get("player_id"), sent.get("game_uuid"), sent.get("currency"),
           sent.get("quantity"), sent.get("total_bet_id"))  # fmt: skip
    if got != (str(s.user_id), s.game, s.currency, str(FREE_SPINS), wanted):
        raise Failed(f"the campaign does not describe the grant: {sent}")
    if reference != issue_id:
        raise Failed("the grant's reference is not its freespin_id")


@scenario("free_rounds", "slotegrator")
def free_spin_bets_debit_nothing_and_their_wins_pay_once(ctx: Context) -> None:
    d = _slotegrator(ctx)
    s, grant_id = grant_free_rounds(ctx.setup, "slotegrator", "2")
    issue_id, _ref = _issued(ctx, grant_id)
    free = {"type": "freespin", "freespin_id": issue_id}
    bet, rnd = ctx.id("fsb1"), ctx.id("fsr1")
    expect(ctx, d.bet(s, bet, rnd, "1.00", **free), "ok", balance=0)
    expect(ctx, d.bet(s, bet, rnd, "1.00", **free), "ok", balance=0)
    win = partial(d.win, s, ctx.id("fsw1"), rnd, "2.50", bet_tx=bet, close=True, **free)
    expect(ctx, win(), "ok", balance=2_50)
    expect(ctx, win(), "ok", balance=2_50)
    same_balance(ctx, s, 2_50)
    row = grant_row(grant_id)
    if (row.spins_used, row.won_minor) != (1, 2_50):
        raise Failed(f"the grant shows {row.spins_used} spin(s) and {row.won_minor} won")
    other = {"type": "freespin", "freespin_id": f"fsg_cf{ctx.setup.run_id}"}
    refused(ctx, s, partial(d.bet, s, ctx.id("fsb2"), ctx.id("fsr2"), "1.00", **other),
            "bad_request")  # fmt: skip
