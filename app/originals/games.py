"""The JxOriginals games: rules, paytables and the mapping from a round's randomness to a result.

Invariants:
* Stakes and wins are integer minor units; multipliers are exact (integers or fractions), and a
  win is ``floor(stake * multiplier)`` so rounding never pays more than the published rule.
* A game's ``settle`` is a pure function of (parameters, stake, RoundRandom): the verify endpoint
  and the live play call the same code.
* ``Slot.exact_rtp()`` is computed from the reel strips and the paytable over every stop
  combination; the published figure (``Slot.rtp_percent``) is asserted against it in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from itertools import product
from typing import Any

from app.originals.engine import RoundRandom


class GameRuleError(ValueError):
    """Bet parameters the game's rules do not allow (mapped to VALIDATION_ERROR)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Result:
    #: Payout multiplier applied to the stake (0 for a loss), exact.
    multiplier: Fraction
    #: What the player sees and the verify endpoint recomputes (JSON-safe).
    detail: dict[str, Any]

    def payout(self, stake: int) -> int:
        return (stake * self.multiplier.numerator) // self.multiplier.denominator


def _decimal(value: Fraction, places: int) -> str:
    """A fraction shown with ``places`` decimals, rounded down (display only)."""
    scaled = value.numerator * 10**places // value.denominator
    return f"{Decimal(scaled).scaleb(-places):.{places}f}"


class Dice:
    """Roll under: a roll of 0.00-99.99, the player wins when roll < target.

    Multiplier = (1 - house_edge) * 100 / target, so P(win) * multiplier = 0.99 for every target.
    """

    code = "jxo-dice"
    name = "JxOriginals Dice"
    category = "dice"
    house_edge = Fraction(1, 100)
    #: Rolls are hundredths: 10,000 equally likely values.
    outcomes = 10_000
    min_target = Decimal("1.00")
    max_target = Decimal("98.00")
    rtp_percent = Decimal("99.00")

    def parse_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        value = raw.get("target")
        try:
            target = Decimal(str(value)) if value is not None and value != "" else None
        except InvalidOperation:
            target = None
        if target is None or not target.is_finite() or isinstance(value, bool):
            raise GameRuleError("target", "target must be a number between 1.00 and 98.00")
        if not self.min_target <= target <= self.max_target:
            raise GameRuleError("target", "target must be between 1.00 and 98.00")
        if target != target.quantize(Decimal("0.01")):
            raise GameRuleError("target", "target has at most two decimals")
        return {"target": f"{target:.2f}"}

    def multiplier(self, target: str) -> Fraction:
        hundredths = int(Decimal(target) * 100)
        return (1 - self.house_edge) * Fraction(self.outcomes, hundredths)

    def roll(self, rnd: RoundRandom) -> int:
        """The roll in hundredths, 0-9999."""
        return rnd.integer(self.outcomes)

    @staticmethod
    def format_roll(roll: int) -> str:
        return f"{Decimal(roll) / 100:.2f}"

    def settle(self, params: dict[str, Any], rnd: RoundRandom) -> Result:
        roll = self.roll(rnd)
        target_hundredths = int(Decimal(params["target"]) * 100)
        win = roll < target_hundredths
        mult = self.multiplier(params["target"])
        return Result(
            multiplier=mult if win else Fraction(0),
            detail={
                "roll": self.format_roll(roll),
                "target": params["target"],
                "win": win,
                "multiplier": _decimal(mult, 4),
            },
        )

    def describe(self) -> dict[str, Any]:
        return {
            "rules": "Pick a target; the roll (0.00-99.99) must land under it.",
            "multiplier": "0.99 x 100 / target",
            "rtp": f"{self.rtp_percent}%",
            "target_range": [f"{self.min_target}", f"{self.max_target}"],
        }


SYMBOLS = {
    "7": "SEVEN",
    "B": "BAR",
    "L": "BELL",
    "P": "PLUM",
    "O": "ORANGE",
    "M": "LEMON",
    "C": "CHERRY",
}


class Slot:
    """Three reels of 32 stops, one centre payline, pays left to right.

    Paytable (multiples of the stake): three of a kind pays its line; otherwise cherries count
    from the left reel: three cherries 20, two 5, one 2. Nothing else pays.
    """

    code = "jxo-slot"
    name = "JxOriginals Fruit Slot"
    category = "slots"
    #: Reel strips, one letter per stop (see ``SYMBOLS``); published on the game page.
    strips = (
        "7OPBMCLOCPMCOBLPMOCCMPLOBMCCPOLM",
        "7OPBCMLOMPCMOBLPCOMMCPLOBCMMPOLC",
        "7POBMMLOCPMCOBLMCPOMCCLOBPMCOMLC",
    )
    three_of_a_kind = {
        "SEVEN": 200,
        "BAR": 50,
        "BELL": 20,
        "PLUM": 14,
        "ORANGE": 10,
        "LEMON": 8,
        "CHERRY": 20,
    }
    #: Leading cherries (reel 1, reels 1-2) when the line is not three of a kind.
    cherries = {2: 5, 1: 2}
    #: Exact RTP is 985/1024 (asserted against ``exact_rtp()`` in the tests).
    rtp_percent = Decimal("96.19140625")

    def parse_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        return {}

    def reels(self) -> list[list[str]]:
        return [[SYMBOLS[c] for c in strip] for strip in self.strips]

    def line_multiplier(self, line: Sequence[str]) -> int:
        a, b, c = line
        if a == b == c:
            return self.three_of_a_kind[a]
        leading = 0
        for symbol in line:
            if symbol != "CHERRY":
                break
            leading += 1
        return self.cherries.get(leading, 0)

    def settle(self, params: dict[str, Any], rnd: RoundRandom) -> Result:
        reels = self.reels()
        stops = [rnd.integer(len(reel)) for reel in reels]
        # What the window shows: the stop above, the payline stop, the stop below, per reel.
        window = [
            [reel[(stop - 1) % len(reel)], reel[stop], reel[(stop + 1) % len(reel)]]
            for reel, stop in zip(reels, stops, strict=True)
        ]
        line = [column[1] for column in window]
        mult = self.line_multiplier(line)
        return Result(
            multiplier=Fraction(mult),
            detail={"stops": stops, "line": line, "window": window, "multiplier": str(mult)},
        )

    def exact_rtp(self) -> Fraction:
        """Expected return per unit staked, over every one of the 32**3 equally likely lines."""
        reels = self.reels()
        total = sum(self.line_multiplier(line) for line in product(*reels))
        combos = 1
        for reel in reels:
            combos *= len(reel)
        return Fraction(total, combos)

    def describe(self) -> dict[str, Any]:
        paytable = [
            {"combination": f"{s} {s} {s}", "pays": m} for s, m in self.three_of_a_kind.items()
        ]
        paytable += [
            {"combination": "CHERRY CHERRY any", "pays": self.cherries[2]},
            {"combination": "CHERRY any any", "pays": self.cherries[1]},
        ]
        return {
            "rules": "One centre payline, three reels; pays left to right in stake multiples.",
            "paytable": paytable,
            "strips": [[SYMBOLS[c] for c in strip] for strip in self.strips],
            "rtp": f"{self.rtp_percent}%",
        }


GAMES: dict[str, Dice | Slot] = {game.code: game for game in (Dice(), Slot())}


def get_game(code: str) -> Dice | Slot:
    try:
        return GAMES[code]
    except KeyError:
        raise GameRuleError("game", f"unknown game {code!r}") from None


def outcome(
    game_code: str, params: dict[str, Any], server_seed: str, client_seed: str, nonce: int
) -> tuple[str, Result]:
    """The round's HMAC (hex) and its result: what play and verify both call."""
    game = get_game(game_code)
    rnd = RoundRandom(server_seed, client_seed, nonce)
    return rnd.hex, game.settle(params, rnd)
