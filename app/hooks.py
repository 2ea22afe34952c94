"""Every hook on the money path, in the order it runs. Reading this file tells what a bet does.

Lower domains expose extension points (``app.play.guard``, ``app.play.events``,
``app.play.seams``, ``app.payments.hooks``, ``app.identity.accounts``,
``app.compliance.reality_check``, ``app.core.mail``); the domains that fill them never
register themselves (not at import, not from a blueprint). ``create_app`` calls
:func:`install` once; every registration is idempotent, so building several apps in one
process (tests) installs each hook once.

A bet callback (``app.play.callbacks``), for a player with no special state:

1. **Before any money moves** (``app.play.guard``), each check may refuse and writes nothing:
   account status (built in), then
   responsible-gaming limits, exclusions and session time (``compliance.responsible_gaming``),
   then the bonus maximum bet (``bonus.promotions.check_bet``).
2. **Inside the wallet transaction**, after the ledger posting (``app.play.events``), in order:
   bonus wagering (``bonus.promotions.on_play``), jackpot contributions
   (``prizes.jackpots.on_play``). What they write commits or rolls back with the money; a
   replayed callback reaches none of them.
   A bet naming a free round, a win or rollback of one, and the end of a stakeless round go
   to the free-spins contract (``bonus.free_spins``), and a ``jackpot_win`` to the jackpot
   payer (``prizes.jackpots.pay_reported``), both installed on ``app.play.seams``.
3. **After commit**: loyalty points and their level-up notice (``bonus.loyalty.on_play``, an
   after-commit ``play_events`` listener: its own transaction, in commit order, idempotent by
   the claim id, inline or from a per-process queue per ``PLAY_AFTER_COMMIT``; the periodic
   ``bonus.jobs.sweep_loyalty`` redoes what a crash lost), then tournament scores
   (``prizes.tournaments.on_play``, the same way: idempotent by tournament, claim and kind,
   by the claim's time; ``prizes.jobs.sweep_tournament_scores`` and settlement catch up what
   was not done); then (``app.core.db.on_commit``
   callbacks queued by the steps above) the ``balance.update`` event and other events
   through the bus (``app.core.bus``) to the real-time layer, Redis tournament-board
   mirrors, notifications, enqueued jobs.

Payments (``app.payments.hooks``): creating a deposit passes the responsible-gaming deposit
checks; crediting it runs the bonus deposit offers, then AML checks; a withdrawal request
forfeits what the player gave up, runs the bonus wagering check, then AML checks; a refused
webhook raises a flag for staff. Registration opens the player's wallet in the same
transaction. Reality checks read each player's session net result from responsible gaming;
marketing mail asks identity for consent.
"""

from __future__ import annotations

from app.affiliates import referral_rewards
from app.bonus import free_spins, loyalty, promotions
from app.compliance import reality_check, responsible_gaming, risk
from app.core import i18n, mail, metrics
from app.identity import accounts, archive, closure, gdpr, users, verification
from app.payments import hooks as payment_hooks
from app.payments import withdrawals
from app.play import events as play_events
from app.play import guard as play_guard
from app.play import seams as play_seams
from app.prizes import jackpots, tournaments
from app.wallet import ledger


def install() -> None:
    # 1. Before money moves: who may play and stake.
    # Each reads what it needs through a probe the callback merges into its session lookup.
    play_guard.register_bet_check(responsible_gaming.bet_guard, probe=responsible_gaming.bet_probe)
    play_guard.register_play_check(responsible_gaming.launch_guard)
    play_guard.register_bet_check(promotions.check_bet, probe=promotions.max_bet_probe)

    # 2. Inside the bet/win/refund transaction, after the wallet posting.
    # A ``wanted`` probe, answered with the bet's round upsert, skips a listener with nothing
    # to do for this bet (no bonus wagered, no pool, no running tournament in the currency).
    play_events.register(promotions.on_play, wanted=promotions.wanted)
    play_events.register(jackpots.on_play, wanted=jackpots.wanted)

    # 3. After the callback committed, in commit order, idempotent by claim id (no money moves
    # there): loyalty points and their level-up notice; tournament scores (by the claim's
    # time, once per tournament, claim and kind). ``loyalty.sweep`` and ``tournaments.sweep``
    # redo what a process that died between commit and this step did not; settlement scores
    # whatever is left before the end first.
    play_events.register(loyalty.on_play, after_commit=True, batch=loyalty.on_play_batch)
    play_events.register(tournaments.on_play, after_commit=True, batch=tournaments.on_play_batch)

    # Inside a callback, for what play cannot decide alone: free rounds, reported jackpots.
    play_seams.install(free_rounds=free_spins, jackpots=jackpots)

    # Payments. Creating a deposit (player row locked): exclusions and deposit limits.
    payment_hooks.deposit_checks.register(responsible_gaming.check_deposit_allowed)
    # An unverified e-mail blocks what the operator says (``unverified_email_blocks``).
    payment_hooks.deposit_checks.register(verification.check_deposit)
    # Crediting it (wallet row locked), then once it is recorded as completed.
    payment_hooks.deposit_credited.register(promotions.on_deposit_credited)
    payment_hooks.deposit_completed.register(risk.on_deposit_completed)
    # A referred player's first qualifying deposit earns a referring player their reward.
    payment_hooks.deposit_completed.register(referral_rewards.on_deposit_completed)
    # A withdrawal request: forfeits first (a refused request forfeits nothing), then checks,
    # then, once the funds are held, AML checks.
    payment_hooks.withdrawal_forfeits.register(promotions.forfeit_for_withdrawal)
    payment_hooks.withdrawal_checks.register(promotions.check_withdrawal)
    payment_hooks.withdrawal_checks.register(verification.check_withdrawal)
    payment_hooks.withdrawal_requested.register(risk.on_withdrawal_requested)
    # A refused webhook staff should review (late success, amount mismatch).
    payment_hooks.refusal_flags.register(risk.flag)

    # Registration, inside its transaction: every player has a wallet from the first second.
    accounts.player_created.register(ledger.get_or_create_wallet)
    # GDPR erasure: refused while the player holds money or a withdrawal is open.
    gdpr.erasure_checks.register(ledger.check_erasable)
    gdpr.erasure_checks.register(withdrawals.check_erasable)
    gdpr.erased.register(archive.erase_for)
    # A closed account never reopens while its player is self-excluded.
    closure.reopen_checks.register(responsible_gaming.check_reopen_allowed)

    # Reads: the session net result a reality check reports; marketing consent for mail.
    reality_check.register_net_result_source(responsible_gaming.session_results)
    mail.set_marketing_consent_lookup(users.has_marketing_consent)
    # The language notifications and SMS are written in: the user's stored one.
    i18n.set_user_language_lookup(users.stored_language)

    # Figures (GET /metrics): this process's after-commit play queue, read (never changed).
    metrics.sampled_gauge(
        "jackpotx_after_commit_queue_depth",
        "After-commit play events waiting in the per-process queues (summed over processes)",
        _after_commit_depth,
    )
    metrics.sampled_gauge(
        "jackpotx_after_commit_dropped",
        "After-commit play events left to the sweeps because a queue was full (since start)",
        _after_commit_dropped,
    )


def _after_commit_depth() -> float:
    return float(sum(d.queue.qsize() for d in play_events._drainers.values()))


def _after_commit_dropped() -> float:
    return float(sum(d.dropped for d in play_events._drainers.values()))
