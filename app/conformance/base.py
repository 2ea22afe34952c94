"""What a protocol driver is: it builds, signs and sends one protocol's calls and reads the
answers into ``Reply`` objects that scenarios compare in protocol-neutral terms."""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests

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

    def __init__(self, base_url: str, creds: Credentials, http: requests.Session) -> None:
        self.base_url = base_url.rstrip("/")
        self.creds = creds
        self.http = http
        #: Every reply since the runner last cleared it (what a scenario's report line shows).
        self.log: list[Reply] = []

    # -- what scenarios call ------------------------------------------------------------------

    @abstractmethod
    def info(self, s: PlayerSession) -> Reply: ...

    @abstractmethod
    def balance(self, s: PlayerSession, *, token: str | None = None) -> Reply: ...

    @abstractmethod
    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        """A bet's fields under the protocol's names (for ``build``)."""

    def bet(self, s: PlayerSession, tx: str, round_id: str, amount: Amount, **over: Any) -> Reply:
        return self.call("bet", s, {**self.bet_fields(tx, round_id, amount), **over})

    @abstractmethod
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
    ) -> Reply: ...

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
    def parse(self, path: str, sent: bytes, response: requests.Response) -> Reply: ...

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
        content_type: str = "application/json",
    ) -> Reply:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        response = self.http.post(self.url(path, code), data=body, headers=all_headers, timeout=30)
        reply = self.parse(path, body, response)
        self.log.append(reply)
        return reply

    def call(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> Reply:
        path, body = self.build(call, s, fields)
        reply = self.send(path, body, self.signature_headers(body))
        reply.call = call
        return reply


def encode(payload: dict[str, Any]) -> bytes:
    """JSON of ``payload`` where ``RawJSON`` values are written as their literal tokens."""
    raws: dict[str, str] = {}
    # A placeholder no real value can equal (random per call).
    nonce = secrets.token_hex(8)

    def mark(value: Any) -> Any:
        if isinstance(value, RawJSON):
            key = f"__raw_{nonce}_{len(raws)}__"
            raws[key] = value.token
            return key
        return value

    text = json.dumps({k: mark(v) for k, v in payload.items()}, ensure_ascii=False)
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
