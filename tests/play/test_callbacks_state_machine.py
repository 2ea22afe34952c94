"""A provider gone mad: random bets, wins, refunds, rollbacks, duplicates and reorders.

A model of the player's cash and bonus runs next to the real endpoint; after every step the
wallet must equal the model, its ledger legs must sum to its balances, and nothing is negative.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.core.extensions import db
from app.play.callbacks.actions import win_split
from app.wallet.models import LedgerEntry, Wallet
from tests.moneykit import open_table

STEPS = {"n": 0}
MIN_TOTAL_STEPS = 2000


def _machine(client, factory):
    class ProviderChaos(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            cash = 20_00
            bonus = 10_00
            self.t = open_table(client, factory, cash=cash, bonus=bonus)
            self.cash, self.bonus = cash, bonus
            self.n = 0
            self.rounds: dict[str, dict] = {}
            #: tx id -> {"kind", "amount", "cash", "bonus", "round", "reversed"}
            self.txs: dict[str, dict] = {}
            self.tombstones: set[str] = set()
            #: requests answered ok, with their answer: (method name, args, kwargs, answer)
            self.answered: list[tuple[str, tuple, dict, dict]] = []

        def _id(self, prefix: str) -> str:
            self.n += 1
            return f"{prefix}{self.n}"

        def _send(self, method: str, *args, **kwargs) -> dict:
            STEPS["n"] += 1
            answer = getattr(self.t, method)(*args, **kwargs)
            if answer["status"] == "ok":
                self.answered.append((method, args, kwargs, answer))
            return answer

        # --- rules ------------------------------------------------------------------------

        @rule(amount=st.integers(min_value=0, max_value=1500), new_round=st.booleans())
        def bet(self, amount: int, new_round: bool) -> None:
            open_rounds = [r for r, s in self.rounds.items() if s["status"] == "open"]
            round_id = self._id("r") if new_round or not open_rounds else open_rounds[-1]
            tx = self._id("b")
            answer = self._send("bet", tx, f"{amount / 100:.2f}", round_id=round_id)
            if amount > self.cash + self.bonus:
                assert answer["code"] == "INSUFFICIENT_FUNDS", answer
                return
            assert answer["status"] == "ok", answer
            cash_part = min(self.cash, amount)
            bonus_part = amount - cash_part
            self.cash -= cash_part
            self.bonus -= bonus_part
            rnd = self.rounds.setdefault(round_id, {"status": "open", "cash": 0, "bonus": 0})
            rnd["cash"] += cash_part
            rnd["bonus"] += bonus_part
            self.txs[tx] = {
                "kind": "bet",
                "amount": amount,
                "cash": cash_part,
                "bonus": bonus_part,
                "round": round_id,
                "reversed": False,
            }

        @precondition(lambda self: self.rounds)
        @rule(data=st.data(), amount=st.integers(min_value=0, max_value=4000))
        def win(self, data, amount: int) -> None:
            round_id = data.draw(st.sampled_from(sorted(self.rounds)))
            tx = self._id("w")
            answer = self._send("win", tx, f"{amount / 100:.2f}", round_id=round_id)
            assert answer["status"] == "ok", answer
            rnd = self.rounds[round_id]
            cash_part, bonus_part = win_split(amount, rnd["cash"], rnd["bonus"])
            self.cash += cash_part
            self.bonus += bonus_part
            self.txs[tx] = {
                "kind": "win",
                "amount": amount,
                "cash": cash_part,
                "bonus": bonus_part,
                "round": round_id,
                "reversed": False,
            }

        @precondition(lambda self: any(t["kind"] == "bet" for t in self.txs.values()))
        @rule(data=st.data(), action=st.sampled_from(["refund", "rollback"]))
        def reverse_bet(self, data, action: str) -> None:
            ref = data.draw(
                st.sampled_from(sorted(k for k, v in self.txs.items() if v["kind"] == "bet"))
            )
            answer = self._send(action, self._id("x"), ref)
            assert answer["status"] == "ok", answer
            bet = self.txs[ref]
            if not bet["reversed"]:
                bet["reversed"] = True
                self.cash += bet["cash"]
                self.bonus += bet["bonus"]

        @precondition(lambda self: any(t["kind"] == "win" for t in self.txs.values()))
        @rule(data=st.data())
        def rollback_win(self, data) -> None:
            ref = data.draw(
                st.sampled_from(sorted(k for k, v in self.txs.items() if v["kind"] == "win"))
            )
            win = self.txs[ref]
            answer = self._send("rollback", self._id("x"), ref)
            if win["reversed"] or win["amount"] == 0:
                assert answer["status"] == "ok", answer
                return
            if win["cash"] > self.cash or win["bonus"] > self.bonus:
                assert answer["code"] == "INSUFFICIENT_FUNDS", answer
                return
            assert answer["status"] == "ok", answer
            win["reversed"] = True
            self.cash -= win["cash"]
            self.bonus -= win["bonus"]

        @rule(action=st.sampled_from(["refund", "rollback"]))
        def reverse_unknown_then_it_arrives(self, action: str) -> None:
            ghost = self._id("g")
            assert self._send(action, self._id("x"), ghost)["status"] == "ok"
            open_rounds = [r for r, s in self.rounds.items() if s["status"] == "open"]
            round_id = open_rounds[-1] if open_rounds else self._id("r")
            late = self._send("bet", ghost, "0.01", round_id=round_id)
            assert late["code"] == "DUPLICATE_MISMATCH", late

        @precondition(lambda self: any(s["status"] == "open" for s in self.rounds.values()))
        @rule(data=st.data())
        def end_round_then_bet(self, data) -> None:
            round_id = data.draw(
                st.sampled_from(sorted(r for r, s in self.rounds.items() if s["status"] == "open"))
            )
            assert self._send("end_round", round_id, transaction_id=self._id("e"))["status"] == "ok"
            self.rounds[round_id]["status"] = "closed"
            late = self._send("bet", self._id("b"), "0.01", round_id=round_id)
            assert late["code"] == "ROUND_CLOSED", late

        @precondition(lambda self: self.answered)
        @rule(data=st.data())
        def duplicate(self, data) -> None:
            method, args, kwargs, first = data.draw(st.sampled_from(self.answered))
            again = self._send(method, *args, **kwargs)
            assert again == first

        @precondition(lambda self: any(a[0] in ("bet", "win") for a in self.answered))
        @rule(data=st.data())
        def duplicate_with_other_amount(self, data) -> None:
            method, args, kwargs, _first = data.draw(
                st.sampled_from([a for a in self.answered if a[0] in ("bet", "win")])
            )
            tx, amount = args[0], args[1]
            other = f"{float(amount) + 0.01:.2f}"
            answer = self._send(method, tx, other, **kwargs)
            assert answer["code"] == "DUPLICATE_MISMATCH", answer

        # --- invariants -------------------------------------------------------------------

        @invariant()
        def ledger_equals_balance_and_model(self) -> None:
            db.session.expire_all()
            w = db.session.scalar(sa.select(Wallet).where(Wallet.user_id == self.t.user_id))
            legs = dict(
                db.session.execute(
                    sa.select(LedgerEntry.account, sa.func.sum(LedgerEntry.amount))
                    .where(LedgerEntry.wallet_id == w.id)
                    .group_by(LedgerEntry.account)
                ).all()
            )
            assert (w.balance, w.bonus_balance) == (self.cash, self.bonus)
            assert (legs.get("cash", 0), legs.get("bonus", 0)) == (w.balance, w.bonus_balance)
            assert w.balance >= 0
            assert w.bonus_balance >= 0

    return ProviderChaos


# ~20 s: the suite's longest test. Bounded (50 derandomized runs of 40 steps) so it costs the
# same every run; raise max_examples locally to search harder.
@pytest.mark.slow
def test_random_provider_traffic_keeps_ledger_equal_to_balance(app, committed_db, client, factory):
    # Real commits: thousands of savepoints in one test transaction would overflow
    # PostgreSQL's subtransaction cache and slow every query down.
    db.session.remove()
    STEPS["n"] = 0
    name = db.engine.url.database
    if db.engine.dialect.name == "postgresql":
        # Durability of a throw-away test database is irrelevant; thousands of fsyncs are not.
        with db.engine.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
            conn.commit()
        db.engine.dispose()
    machine = _machine(client, factory)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=50,
            derandomize=True,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(f"state machine: {STEPS['n']} callbacks")  # noqa: T201 - shown with -s
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" RESET synchronous_commit'))
            conn.commit()
        db.engine.dispose()
    assert STEPS["n"] >= MIN_TOTAL_STEPS, f"only {STEPS['n']} callbacks exercised"
    from tests.moneykit import reconcile_clean

    reconcile_clean()
