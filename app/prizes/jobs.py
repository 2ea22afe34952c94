"""Jobs of jackpots and tournaments: plain ids in, own transaction, idempotent."""

from __future__ import annotations

from typing import Any

from app.core.queues import job
from app.prizes import jackpots, lottery, tournament_board, tournaments


@job
def award_jackpot(win_id: int) -> dict[str, Any]:
    """Pay a jackpot win (enqueued after the winning bet commits; a rerun pays nothing more)."""
    win = jackpots.award(win_id)
    return {"win_id": win.id, "status": win.status, "amount": win.amount}


@job
def jackpots_periodic() -> dict[str, int]:
    """Pending wins, contribution rollup, must-drop checks, amount broadcast."""
    return jackpots.run_periodic()


@job
def settle_tournaments() -> list[int]:
    """Settle every tournament that has ended (a rerun pays nothing twice)."""
    return tournaments.settle_due()


@job
def sweep_tournament_scores() -> int:
    """Tournament scores of recent claims the after-commit step did not reach (a process that
    died between commit and it); idempotent (periodic)."""
    return tournaments.sweep()


@job
def refresh_tournament_boards() -> int:
    """Repair the Redis leaderboards of running tournaments from PostgreSQL (writes only what
    a mirror write lost, e.g. while Redis was unreachable)."""
    return tournament_board.refresh_running()


@job
def run_lottery_draws() -> list[int]:
    """Draw every lottery draw whose time has come (a rerun pays nothing twice)."""
    return lottery.draw_due()
