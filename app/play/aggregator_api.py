"""Outbound calls to an aggregator's own API (``Provider.api_url``): free rounds issued and
cancelled there. One client per wire protocol that has such an API; like the callback
adapters they only translate (body, signature, answer). What a grant is, its status and its
retries belong to ``app.bonus.free_spins``.

* SoftSwiss-style: ``POST {api_url}/freespins/issue`` and ``/freespins/cancel``, JSON,
  ``X-REQUEST-SIGN`` = hex HMAC-SHA256 of the raw body with the provider's secret. The
  aggregator keys a grant by our ``issue_id`` (a retry re-sends the same one); its later
  ``POST <wallet>/freespins`` callback reports the outcome (``adapters/softswiss.py``).
* Hub88: ``POST {api_url}/freebet/rewards/create`` and ``/freebet/rewards/cancel`` (``api_url``
  is the Operator API base, ``.../operator/generic/v2``), JSON, ``X-Hub88-Signature`` = base64
  RSA-SHA256 of the body with our private key. Hub88 answers the reward's ``reward_uuid``, which
  its free bets then name (``is_free`` + ``reward_uuid`` in ``transaction/bet``).

Every call has short timeouts. ``IssueUnavailable``: no answer, a timeout or a 5xx: the call
may be sent again as it is. ``IssueRefused``: the aggregator answered a refusal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from flask import current_app

from app.core import outbound
from app.core.crypto import BadKey, decrypt, rsa_sign, rsa_verify
from app.play.callbacks.adapters.hub88 import SIGNATURE_HEADER as HUB88_SIGNATURE
from app.play.callbacks.adapters.hub88 import minor_to_units
from app.play.callbacks.adapters.softswiss import SIGNATURE_HEADER as SOFTSWISS_SIGNATURE
from app.play.callbacks.adapters.softswiss import softswiss_signature
from app.play.models import Provider

#: (connect, read) seconds: a grant must not hold a request or a job for long.
TIMEOUTS = (3.0, 5.0)


class IssueUnavailable(Exception):
    """No usable answer (connection refused, timeout, 5xx, a bad answer signature): retry."""


class IssueRefused(Exception):
    """The aggregator refused the call (4xx, or an error in the answer): final."""


@dataclass(frozen=True)
class RemoteGrant:
    """What the aggregator needs to issue free rounds to one player."""

    issue_id: str
    player_id: int
    game_external_id: str
    currency: str
    spin_value_minor: int
    spins: int
    expires_at: datetime


@dataclass(frozen=True)
class Account:
    """The provider as its outbound calls need it (decrypted credentials)."""

    code: str
    protocol: str
    api_url: str
    secret: str
    private_key: str | None
    peer_public_key: str | None

    @classmethod
    def of(cls, row: Provider) -> Account:
        return cls(
            code=row.code,
            protocol=row.protocol,
            api_url=(row.api_url or "").rstrip("/"),
            secret=decrypt(row.secret_enc),
            private_key=decrypt(row.private_key_enc) if row.private_key_enc else None,
            peer_public_key=row.peer_public_key,
        )


class FreeRoundsClient(Protocol):
    def issue(self, account: Account, grant: RemoteGrant) -> str:
        """Issue (idempotent on ``grant.issue_id``); answers the aggregator's reference."""
        ...

    def cancel(self, account: Account, issue_id: str, reference: str | None) -> None: ...


def _operator_id() -> str:
    # Our assumption: one account id at every aggregator, from the configuration.
    return str(current_app.config.get("AGGREGATOR_OPERATOR_ID") or "jackpotx")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    # Through the outbound guard (issue 21): no private or internal address, one message for
    # every network failure (no port oracle in the grant's remote_error).
    try:
        response = outbound.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=TIMEOUTS,
        )
    except outbound.OutboundError as exc:
        raise IssueUnavailable(f"{url}: {exc}") from None
    if response.status_code >= 500:
        raise IssueUnavailable(f"{url}: HTTP {response.status_code}")
    return response


def _answer(response: requests.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400:
        detail = payload if isinstance(payload, dict) else response.text[:200]
        raise IssueRefused(f"HTTP {response.status_code}: {detail}")
    if not isinstance(payload, dict):
        # A 2xx without a JSON object: we cannot know it was applied; the same issue id again.
        raise IssueUnavailable(f"HTTP {response.status_code}: the answer is not a JSON object")
    return payload


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class SoftSwissFreeRounds:
    """SoftSwiss-style ``/freespins/issue`` and ``/freespins/cancel``. The field names follow
    the public descriptions of SoftSwiss casino protocols; ``bet_amount`` (minor units, in
    place of a game's ``bet_level``) and ``user`` as an object are our assumption."""

    def issue(self, account: Account, grant: RemoteGrant) -> str:
        payload = {
            "casino_id": _operator_id(),
            "issue_id": grant.issue_id,
            "currency": grant.currency,
            "games": [grant.game_external_id],
            "freespins_quantity": grant.spins,
            "bet_amount": grant.spin_value_minor,
            "valid_until": _iso(grant.expires_at),
            "user": {"id": str(grant.player_id), "currency": grant.currency},
        }
        answer = _answer(self._send(account, "freespins/issue", payload))
        if answer.get("code") not in (None, 0, "0"):
            raise IssueRefused(f"code {answer.get('code')}: {answer.get('message', '')}")
        return grant.issue_id

    def cancel(self, account: Account, issue_id: str, reference: str | None) -> None:
        payload = {"casino_id": _operator_id(), "issue_id": issue_id}
        _answer(self._send(account, "freespins/cancel", payload))

    @staticmethod
    def _send(account: Account, path: str, payload: dict[str, Any]) -> requests.Response:
        body = _body(payload)
        signature = softswiss_signature(account.secret, body)
        return _post(f"{account.api_url}/{path}", body, {SOFTSWISS_SIGNATURE: signature})


class Hub88FreeRounds:
    """Hub88's Freebets API (Operator API): a single-use reward per grant. ``operator_reference``
    carrying our issue id (so that a retry is recognised) and the ``rewards/cancel`` path are our
    assumption; the other fields follow Hub88's public reference."""

    def issue(self, account: Account, grant: RemoteGrant) -> str:
        payload = {
            "operator_id": _operator_id(),
            "operator_reference": grant.issue_id,
            "user": str(grant.player_id),
            "currency": grant.currency,
            "game_codes": [grant.game_external_id],
            "bet_value": minor_to_units(grant.spin_value_minor, grant.currency),
            "bet_count": grant.spins,
            "start_time": _iso(datetime.now(UTC)),
            "end_time": _iso(grant.expires_at),
        }
        answer = _answer(self._send(account, "freebet/rewards/create", payload))
        reference = answer.get("reward_uuid") or answer.get("uuid")
        if not isinstance(reference, str) or not reference or len(reference) > 100:
            raise IssueRefused(f"no reward_uuid in the answer: {str(answer)[:200]}")
        return reference

    def cancel(self, account: Account, issue_id: str, reference: str | None) -> None:
        payload = {"operator_id": _operator_id(), "reward_uuid": reference or issue_id}
        _answer(self._send(account, "freebet/rewards/cancel", payload))

    @staticmethod
    def _send(account: Account, path: str, payload: dict[str, Any]) -> requests.Response:
        if not account.private_key:
            raise IssueRefused("no private key to sign with (providers add generates one)")
        body = _body(payload)
        headers = {HUB88_SIGNATURE: rsa_sign(account.private_key, body)}
        response = _post(f"{account.api_url}/{path}", body, headers)
        signature = response.headers.get(HUB88_SIGNATURE)
        # Our assumption: Hub88 signs its answers as it signs its calls; a signed answer must
        # verify with its key (an unsigned one is accepted).
        if signature and account.peer_public_key:
            try:
                valid = rsa_verify(account.peer_public_key, response.content, signature)
            except BadKey:
                valid = False
            if not valid:
                raise IssueUnavailable("the answer's X-Hub88-Signature does not verify")
        return response


#: protocol -> its free-rounds client; a provider of another protocol has no outbound API.
CLIENTS: dict[str, FreeRoundsClient] = {
    "softswiss": SoftSwissFreeRounds(),
    "hub88": Hub88FreeRounds(),
}


def client_for(row: Provider) -> FreeRoundsClient | None:
    """The outbound client when the provider is an aggregator with an API to call."""
    if not row.api_url:
        return None
    return CLIENTS.get(row.protocol)
