"""What provider callbacks ask of the domains above play: free rounds and reported jackpots.

Play does not import bonus or prizes. ``app.hooks`` installs the free-spins contract
(``app.bonus.free_spins``, a ``FreeRounds``) and the jackpots (``app.prizes.jackpots``, a
``Jackpots``): modules, so their functions are looked up at each call. Both run inside the
callback's transaction, under the player's wallet lock that the callback already holds.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.core.errors import Conflict
from app.wallet.ledger import LockedWallet


class FreeRoundRefused(Exception):
    """Mapped by the callback actions to their protocol error code. ``review``: the refusal is
    one staff must look at (``flag_for_review`` with it, after the callback's rollback)."""

    def __init__(self, code: str, message: str, *, review: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.review = review


class JackpotBusy(Conflict):
    """The pool's current cycle has a drawn win awaiting payout: retry in a moment."""


class FreeRounds(Protocol):
    """A free round is a stakeless round the operator pays for; each step raises
    ``FreeRoundRefused`` to refuse (the callback then moves nothing)."""

    def consume(
        self,
        *,
        provider_id: int,
        user_id: int,
        game_id: int | None,
        currency: str,
        free_round_id: str,
        round_ext: str,
        transaction_id: str,
    ) -> object: ...

    def free_round(self, provider_id: int, round_ext: str) -> Any | None: ...

    def pay_win(
        self,
        fsr: Any,
        *,
        amount: int,
        currency: str,
        source: str,
        transaction_id: str,
        claim_id: int,
        locked: LockedWallet,
    ) -> None: ...

    def win_reversed(
        self,
        fsr: Any,
        *,
        amount: int,
        currency: str,
        source: str,
        transaction_id: str,
        reverses: str,
        claim_id: int,
        locked: LockedWallet,
    ) -> None: ...

    def flag_for_review(self, user_id: int, review: dict[str, Any]) -> None: ...

    def bet_reversed(self, provider_id: int, bet_transaction_id: str) -> None: ...

    def round_ended(self, provider_id: int, round_ext: str) -> None: ...

    def grant_owner(self, provider_id: int, grant_ref: str) -> tuple[int, str] | None:
        """(player id, currency) of the provider's grant ``grant_ref`` (our issue id or the
        aggregator's reference), or None."""
        ...

    def settle_grant(
        self,
        provider_id: int,
        grant_ref: str,
        *,
        amount: int,
        currency: str,
        played: bool,
        source: str,
        transaction_id: str,
        claim_id: int,
        locked: LockedWallet,
    ) -> None:
        """The aggregator's report of a whole grant: its total win, once; the grant ends."""
        ...


class Jackpots(Protocol):
    def pay_reported(
        self,
        pool_id: int,
        *,
        provider_id: int,
        user_id: int,
        currency: str,
        amount: int,
        game_id: int | None,
        game_round_id: int,
        round_stake: int,
        evidence: dict[str, Any],
    ) -> Any:
        """Pays a jackpot the provider reports as hit in a round; raises ``JackpotBusy``
        (retry) or an ``AppError`` (refused)."""
        ...


_free_rounds: FreeRounds | None = None
_jackpots: Jackpots | None = None


def install(*, free_rounds: FreeRounds, jackpots: Jackpots) -> None:
    global _free_rounds, _jackpots
    _free_rounds, _jackpots = free_rounds, jackpots


def free_rounds() -> FreeRounds:
    if _free_rounds is None:
        raise RuntimeError("no free-rounds contract installed (app.hooks.install)")
    return _free_rounds


def jackpots() -> Jackpots:
    if _jackpots is None:
        raise RuntimeError("no jackpots installed (app.hooks.install)")
    return _jackpots
