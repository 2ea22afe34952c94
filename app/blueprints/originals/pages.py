"""Studio pages: launch (from the casino's launch URL), the game page, rules, fairness."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from app.core.errors import AppError, NotFound
from app.core.security import allow_embedding
from app.originals import studio as service
from app.originals.games import GAMES

bp = Blueprint("originals", __name__, url_prefix="/originals")
# The player app frames these pages when GAME_EMBED_ORIGINS names it (default: no framing).
bp.after_request(allow_embedding)


@bp.get("/launch/<game_code>")
def launch(game_code: str):
    """Where the casino's launch URL points: authenticate the session, then open the game."""
    # The casino fills ``demo={demo}`` in its launch URL template; ``mode=demo`` also works.
    demo = request.args.get("mode") == "demo" or request.args.get("demo", "").lower() in {
        "1",
        "true",
        "yes",
    }
    try:
        token = service.launch(
            game_code,
            casino_token=request.args.get("token"),
            demo=demo,
            currency=request.args.get("currency"),
        )
    except AppError as exc:
        return render_template("originals/error.html", error=exc), exc.status
    # 303: the casino's token leaves the address bar; the page URL carries only our own token.
    return redirect(url_for("originals.play", token=token), code=303)


@bp.get("/play/<token>")
def play(token: str):
    try:
        state = service.session_state(token)
    except AppError as exc:
        return render_template("originals/error.html", error=exc), exc.status
    template = (
        "originals/dice.html" if state["game"]["code"] == "jxo-dice" else "originals/slot.html"
    )
    response = render_template(template, state=state, token=token)
    return response, 200, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@bp.get("/games/<game_code>")
def game_info(game_code: str):
    """Public rules, paytable, reel strips and RTP of a game."""
    game = GAMES.get(game_code)
    if game is None:
        raise NotFound("Unknown game")
    return render_template("originals/rules.html", game=game, info=game.describe())


@bp.get("/fairness")
def fairness():
    """How outcomes are made, and a form that recomputes any of them."""
    return render_template("originals/fairness.html", games=GAMES.values())


@bp.app_template_filter("jxo_percent")
def _percent(value: str) -> str:
    """``"96.19140625%"`` → ``"96.19%"`` for the player (the exact figure stays in a title and
    on the rules page)."""
    try:
        return f"{float(str(value).rstrip('%')):.2f}%"
    except ValueError:
        return str(value)
