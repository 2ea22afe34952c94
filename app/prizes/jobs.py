"""Jobs of jackpots and tournaments: plain ids in, own transaction, idempotent."""

from __future__ import annotations

from typing import Any

from app.core.queues import job


@job
def award_jackpot(win_id: int) -> dict[str, Any]:
    """Pay a jackpot win (enqueued after the winning bet commits; a rerun pays nothing more)."""
    from app.prizes import jackpots

    win = jackpots.award(win_id)
    return {"win_id": win.id, "status": win.status, "amount": win.amount}


@job
def jackpots_periodic() -> dict[str, int]:
    """Pending wins, contribution rollup, must-drop checks, amount broadcast."""
    from app.prizes import jackpots

    return jackpots.run_periodic()


@job
def settle_tournaments() -> list[int]:
    """Settle every tournament that has ended (a rerun pays nothing twice)."""
    from app.prizes import tournaments

    return tournaments.settle_due()


@job
def refresh_tournament_boards() -> int:
    """Repair the Redis leaderboards of running tournaments from PostgreSQL (writes only what
    a mirror write lost, e.g. while Redis was unreachable)."""
    from app.prizes import tournament_board

    return tournament_board.refresh_running()


@job
def run_lottery_draws() -> list[int]:
    """Draw every lottery draw whose time has come (a rerun pays nothing twice)."""
    from app.prizes import lottery

    return lottery.draw_due()
