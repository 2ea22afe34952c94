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
  RSA-SHA256 of the body with our private key. The operator names the reward: its
  ``reward_uuid`` is derived from our issue id (``hub88_reward_uuid``), so a retry names the same
  reward; Hub88 answers the reward, whose ``reward_uuid`` its free bets then name (``is_free`` +
  ``reward_uuid`` in ``transaction/bet``).
* Slotegrator GIS: ``GET {api_url}/freespins/bets`` (the game's possible free-spin bets: the
  ``total_bets`` entry whose ``amount`` is the grant's spin value is chosen), then ``POST
  {api_url}/freespins/set`` (form: ``player_id``, ``player_name``, ``currency``, ``quantity``,
  ``valid_from``/``valid_until`` Unix seconds, ``freespin_id`` = our issue id, ``game_uuid``,
  ``total_bet_id``) and ``/freespins/cancel`` (``freespin_id``); every call signed as GIS signs
  (``X-Merchant-Id``, ``X-Timestamp``, ``X-Nonce``, ``X-Sign`` = HMAC-SHA1 of the sorted
  parameters merged with those headers, the provider's secret). A refused ``set`` is looked up
  with ``GET /freespins/get``: a campaign that exists under our id was issued by an earlier
  call whose answer was lost. Its free spins come back as ``bet``/``win`` callbacks with
  ``type=freespin`` and ``freespin_id``.

Every call has short timeouts. ``IssueUnavailable``: no answer, a timeout or a 5xx: the call
may be sent again as it is. ``IssueRefused``: the aggregator answered a refusal.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import requests
from flask import current_app

from app.core import outbound
from app.core.crypto import BadKey, decrypt, rsa_sign, rsa_verify
from app.core.money import exponent
from app.play.callbacks.adapters.hub88 import SIGNATURE_HEADER as HUB88_SIGNATURE
from app.play.callbacks.adapters.hub88 import minor_to_units
from app.play.callbacks.adapters.slotegrator import slotegrator_signature
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
    return _request("POST", url, headers={"Content-Type": "application/json", **headers}, data=body)


def _request(method: str, url: str, *, headers: dict[str, str], **sent: Any) -> requests.Response:
    """One call with short timeouts, through the outbound guard (issue 21: no private or
    internal address, one message for every network failure, so no port oracle in the grant's
    remote_error); no answer or a 5xx is ``IssueUnavailable``."""
    try:
        response = outbound.request(method, url, headers=headers, timeout=TIMEOUTS, **sent)
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


def hub88_reward_uuid(issue_id: str) -> str:
    """The ``reward_uuid`` we give a grant's Hub88 reward: the same for every send."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jackpotx:free-rounds:{issue_id}"))


def _hub88_operator_id() -> int | str:
    """Hub88 operator ids are numbers; a configured one in digits travels as a number."""
    value = _operator_id()
    return int(value) if value.isdigit() else value


class Hub88FreeRounds:
    """Hub88's Freebets API (Operator API): a single-use reward per grant, its fields as public
    Hub88 clients send them (``reward_uuid`` chosen by the operator, one ``game_code``,
    ``bet_value`` in 1/100,000 units, ``bet_count``, ``start_time``/``end_time``)."""

    def issue(self, account: Account, grant: RemoteGrant) -> str:
        payload = {
            "operator_id": _hub88_operator_id(),
            "reward_uuid": hub88_reward_uuid(grant.issue_id),
            "user": str(grant.player_id),
            "currency": grant.currency,
            "game_code": grant.game_external_id,
            "bet_value": minor_to_units(grant.spin_value_minor, grant.currency),
            "bet_count": grant.spins,
            "start_time": _iso(datetime.now(UTC)),
            "end_time": _iso(grant.expires_at),
        }
        answer = _answer(self._send(account, "freebet/rewards/create", payload))
        reference = answer.get("reward_uuid")
        if not isinstance(reference, str) or not reference or len(reference) > 100:
            raise IssueRefused(f"no reward_uuid in the answer: {str(answer)[:200]}")
        return reference

    def cancel(self, account: Account, issue_id: str, reference: str | None) -> None:
        payload = {
            "operator_id": _hub88_operator_id(),
            "reward_uuid": reference or hub88_reward_uuid(issue_id),
        }
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


class SlotegratorFreeRounds:
    """Slotegrator GIS ``/freespins/bets``, ``/set``, ``/get`` and ``/cancel`` (above). The
    merchant id is ``AGGREGATOR_OPERATOR_ID``; ``player_name`` is the player id (no name of
    ours leaves the casino): both our assumption."""

    def issue(self, account: Account, grant: RemoteGrant) -> str:
        params = {
            "player_id": str(grant.player_id),
            "player_name": str(grant.player_id),
            "currency": grant.currency,
            "quantity": str(grant.spins),
            "valid_from": str(int(time.time())),
            "valid_until": str(int(grant.expires_at.timestamp())),
            "freespin_id": grant.issue_id,
            "game_uuid": grant.game_external_id,
            "total_bet_id": self._total_bet_id(account, grant),
        }
        response = self._send(account, "POST", "freespins/set", params)
        if response.status_code >= 400:
            if self._exists(account, grant):
                return grant.issue_id
            _answer(response)  # raises IssueRefused with the aggregator's reason
        return grant.issue_id

    def cancel(self, account: Account, issue_id: str, reference: str | None) -> None:
        response = self._send(account, "POST", "freespins/cancel", {"freespin_id": issue_id})
        if response.status_code >= 400:
            _answer(response)

    def _total_bet_id(self, account: Account, grant: RemoteGrant) -> str:
        query = {"game_uuid": grant.game_external_id, "currency": grant.currency}
        answer = _answer(self._send(account, "GET", "freespins/bets", query))
        value = Decimal(grant.spin_value_minor).scaleb(-exponent(grant.currency))
        for bet in answer.get("total_bets") or []:
            if not isinstance(bet, dict) or isinstance(bet.get("amount"), bool):
                continue
            try:
                if Decimal(str(bet.get("amount"))) == value and bet.get("bet_id") is not None:
                    return str(bet["bet_id"])
            except ArithmeticError:
                continue
        raise IssueRefused(f"the game offers no free-spin total bet of {value} {grant.currency}")

    def _exists(self, account: Account, grant: RemoteGrant) -> bool:
        try:
            response = self._send(account, "GET", "freespins/get",
                                  {"freespin_id": grant.issue_id})  # fmt: skip
            found = _answer(response)
        except (IssueRefused, IssueUnavailable):
            return False
        return found.get("freespin_id") == grant.issue_id and found.get("player_id") in (
            grant.player_id, str(grant.player_id))  # fmt: skip

    @staticmethod
    def _send(
        account: Account, method: str, path: str, params: dict[str, str]
    ) -> requests.Response:
        headers = {
            "X-Merchant-Id": _operator_id(),
            "X-Timestamp": str(int(time.time())),
            "X-Nonce": secrets.token_hex(16),
        }
        headers["X-Sign"] = slotegrator_signature(account.secret, params, headers)
        url = f"{account.api_url}/{path}"
        if method == "GET":
            return _request(method, url, headers=headers, params=params)
        return _request(method, url, headers=headers, data=params)


#: protocol -> its free-rounds client; a provider of another protocol has no outbound API.
CLIENTS: dict[str, FreeRoundsClient] = {
    "softswiss": SoftSwissFreeRounds(),
    "hub88": Hub88FreeRounds(),
    "slotegrator": SlotegratorFreeRounds(),
}


def client_for(row: Provider) -> FreeRoundsClient | None:
    """The outbound client when the provider is an aggregator with an API to call."""
    if not row.api_url:
        return None
    return CLIENTS.get(row.protocol)
