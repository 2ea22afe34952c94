"""What a protocol driver is: it builds, signs and sends one protocol's calls and reads the
answers into ``Reply`` objects that scenarios compare in protocol-neutral terms."""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import requests

from app.core.money import MoneyError, parse_minor

#: What scenarios expect; each driver maps them to its protocol's answer codes.
OUTCOMES = (
    "ok",
    "duplicate",
    "not_found",
    "rollback_unknown",
    "insufficient",
    "blocked",
    "limit",
    "bad_signature",
    "invalid_token",
    "expired_token",
    "wrong_currency",
    "bad_request",
    "unknown_game",
    "round_closed",
)


@dataclass(frozen=True)
class RawJSON:
    """An amount sent as this literal JSON token (``1e309``, ``"abc"``), not as a number."""

    token: str


Amount = str | RawJSON


def amount_text(amount: Amount) -> str:
    """An amount as a form field's text: a raw JSON token by its value (``"abc"`` -> abc)."""
    if isinstance(amount, RawJSON):
        return str(json.loads(amount.token, parse_float=str, parse_int=str))
    return amount


@dataclass(frozen=True)
class PlayerSession:
    """A funded test player with a game session token of the provider under test."""

    user_id: int
    token: str
    currency: str
    game: str
    label: str


@dataclass(frozen=True)
class Credentials:
    """How the runner signs as a provider (secret or private key) and checks our answers."""

    code: str
    secret: str | None = None
    private_key: str | None = None
    #: Our public key (key-pair protocols): every answer's signature is checked with it.
    answer_key: str | None = None


@dataclass
class Reply:
    """One request and its answer, as the report shows them."""

    method_path: str
    sent: bytes
    http: int
    body: Any
    #: The protocol's answer code (``ok``/error code, ``RS_OK`` ...), or ``HTTP <n>``.
    code: str
    #: Cash + bonus in minor units, when the answer carries a balance.
    balance: int | None
    #: The answer's own signature, for protocols that sign answers (None: not applicable).
    answer_signed: bool | None = None
    raw: bytes = b""
    #: The driver call that made it (``bet``, ``balance`` ...); ``raw`` for hand-built ones.
    call: str = "raw"

    def brief(self, limit: int = 220) -> str:
        sent = self.sent.decode("utf-8", "replace")
        got = self.raw.decode("utf-8", "replace").strip()
        return (
            f"sent {self.method_path} {_cut(sent, limit)}"
            f" -> got HTTP {self.http} {_cut(got, limit)}"
        )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(value: Any) -> str:
    """A JSON number read as text (``97.5``, ``1E+2``) as a plain decimal string."""
    return format(Decimal(str(value)), "f")


def minor_total(currency: str, *amounts: Any, numbers: bool = False) -> int | None:
    """The sum of decimal ``amounts`` (cash, bonus) in minor units of ``currency``; None when
    one is not an amount. ``numbers``: the amounts are JSON numbers, read through ``plain``."""
    try:
        return sum(parse_minor(plain(a) if numbers else a, currency) for a in amounts)
    except (MoneyError, InvalidOperation):
        return None


class Driver(ABC):
    """One protocol, as the aggregator side speaks it."""

    protocol: ClassVar[str]
    #: outcome (``OUTCOMES``) -> the codes of this protocol that mean it.
    codes: ClassVar[dict[str, tuple[str, ...]]]
    #: The name of the game field in money calls.
    game_field: ClassVar[str]
    #: Shared scenarios that cannot apply to this protocol (a token that does not cover the
    #: body cannot be forged over another body); the driver's own scenarios replace them.
    not_applicable: ClassVar[tuple[str, ...]] = ()
    #: The field of a balance call that carries the session token.
    session_field: ClassVar[str]
    #: How bodies travel.
    content_type: ClassVar[str] = "application/json"
    #: Answers' JSON numbers are read as text (exact decimals), not floats.
    floats_as_text: ClassVar[bool] = False
    #: A win that closes its round is followed by an ``end_round`` call (else the win's own
    #: fields close it).
    ends_round_apart: ClassVar[bool] = False

    def __init__(self, base_url: str, creds: Credentials, http: requests.Session) -> None:
        self.base_url = base_url.rstrip("/")
        self.creds = creds
        self.http = http
        #: Every reply since the runner last cleared it (what a scenario's report line shows).
        self.log: list[Reply] = []

    # -- what scenarios call ------------------------------------------------------------------

    def info(self, s: PlayerSession) -> Reply:
        return self.call("info", s, {})

    def balance(self, s: PlayerSession, *, token: str | None = None) -> Reply:
        return self.call("balance", s, {self.session_field: token} if token else {})

    @abstractmethod
    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        """A bet's fields under the protocol's names (for ``build``)."""

    def bet(self, s: PlayerSession, tx: str, round_id: str, amount: Amount, **over: Any) -> Reply:
        return self.call("bet", s, {**self.bet_fields(tx, round_id, amount), **over})

    @abstractmethod
    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        """A win's fields under the protocol's names (``close``: it ends the round)."""

    def win(
        self,
        s: PlayerSession,
        tx: str,
        round_id: str,
        amount: Amount,
        *,
        bet_tx: str | None,
        close: bool = False,
        **over: Any,
    ) -> Reply:
        fields = self.win_fields(tx, round_id, amount, bet_tx=bet_tx, close=close)
        reply = self.call("win", s, {**fields, **over})
        if close and self.ends_round_apart and self.expects(reply, "ok"):
            self.close_round(s, f"{tx}:end", round_id, bet_tx or "")
        return reply

    @abstractmethod
    def rollback(
        self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any
    ) -> Reply: ...

    @abstractmethod
    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        """End the round (``end_round``, or a zero win that closes it)."""

    @abstractmethod
    def build(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> tuple[str, bytes]:
        """(path, body) of ``call`` (``bet``, ``balance`` ...) with ``fields`` overriding."""

    @abstractmethod
    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        """The headers that sign ``body`` with ``creds`` (default: the provider's own)."""

    @abstractmethod
    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        """(code, balance) of an answer whose JSON is ``body`` (None: not JSON); a None code
        is reported as ``HTTP <status>``."""

    def answer_signed(self, response: requests.Response) -> bool | None:
        """Whether the answer carries our valid signature (None: the protocol signs none)."""
        return None

    def parse(self, path: str, sent: bytes, response: requests.Response) -> Reply:
        try:
            body = response.json(parse_float=str) if self.floats_as_text else response.json()
        except ValueError:
            body = None
        code, balance = self.answer(response, body)
        signed = self.answer_signed(response)
        return Reply(
            f"POST /{path}" if path else "POST",
            sent,
            response.status_code,
            body,
            code or f"HTTP {response.status_code}",
            balance,
            signed,
            raw=response.content,
        )

    # -- shared plumbing ----------------------------------------------------------------------

    def expects(self, reply: Reply, *outcomes: str) -> bool:
        return any(reply.code in self.codes[o] for o in outcomes)

    def url(self, path: str, code: str | None = None) -> str:
        base = f"{self.base_url}/api/provider-callback/{code or self.creds.code}"
        return f"{base}/{path}" if path else base

    def send(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> Reply:
        url, wire, headers = self.prepare(self.url(path, code), body, dict(headers or {}))
        all_headers = {"Content-Type": self.content_type, **headers}
        response = self.http.post(url, data=wire, headers=all_headers, timeout=30)
        reply = self.parse(path, wire, response)
        self.log.append(reply)
        return reply

    def prepare(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[str, bytes, dict[str, str]]:
        """(url, body, headers) as they go on the wire: a protocol whose credential travels in
        the body or the query moves it there from the marker header ``signature_headers``
        set."""
        return url, body, headers

    def call(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> Reply:
        path, body = self.build(call, s, fields)
        reply = self.send(path, body, self.signature_headers(body))
        reply.call = call
        return reply


def encode(payload: dict[str, Any]) -> bytes:
    """JSON of ``payload`` where ``RawJSON`` values, at any depth, are written as their literal
    tokens."""
    raws: dict[str, str] = {}
    # A placeholder no real value can equal (random per call).
    nonce = secrets.token_hex(8)

    def mark(value: Any) -> Any:
        if isinstance(value, RawJSON):
            key = f"__raw_{nonce}_{len(raws)}__"
            raws[key] = value.token
            return key
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(payload), ensure_ascii=False)
    for key, token in raws.items():
        text = text.replace(json.dumps(key), token)
    return text.encode()


@dataclass
class Scenario:
    """A named check: ``run`` raises ``Failed`` (or anything) to fail; the replies it made are
    what the report shows."""

    name: str
    group: str
    run: Callable[[Any], None]
    protocols: tuple[str, ...] = ()


class Failed(AssertionError):
    """A scenario's expectation that the server did not meet."""


@dataclass
class Outcome:
    scenario: Scenario
    passed: bool
    detail: str
    replies: list[Reply] = field(default_factory=list)
