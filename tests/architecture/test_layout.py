"""The floor plan holds: no import cycles, no imports hidden in functions, hooks in order.

The layer rules themselves are import-linter contracts (``pyproject.toml``, ``make lint``);
these tests cover what a contract cannot say.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

from app.affiliates import referral_rewards
from app.bonus import free_spins, loyalty, promotions
from app.compliance import reality_check, responsible_gaming, risk
from app.core import mail
from app.identity import accounts, users, verification
from app.payments import hooks as payment_hooks
from app.play import events as play_events
from app.play import guard as play_guard
from app.play import seams
from app.prizes import jackpots, tournaments
from app.wallet import ledger

APP = Path(__file__).resolve().parents[2] / "app"

#: Function-level imports of app modules allowed only where wiring must stay lazy: the app
#: factory (importing ``app`` must not import every blueprint) and the Socket.IO init (its
#: handlers register on the shared server when it is bound).
LAZY_WIRING = {APP / "__init__.py", APP / "realtime" / "__init__.py"}


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def test_no_module_of_app_imports_itself_through_others():
    graph = grimp.build_graph("app", cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [{"a.x", "a.y"}]


def _function_level_app_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    lines: list[int] = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if (
                isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "app"
            ) or (
                isinstance(node, ast.Import)
                and any(a.name.split(".")[0] == "app" for a in node.names)
            ):
                lines.append(node.lineno)
    return lines


def test_no_app_import_hides_inside_a_function_outside_the_lazy_wiring():
    hidden = {
        str(path.relative_to(APP.parent)): lines
        for path in sorted(APP.rglob("*.py"))
        if path not in LAZY_WIRING and (lines := _function_level_app_imports(path))
    }
    assert hidden == {}


def test_a_bet_runs_its_hooks_in_the_documented_order(app):
    # app.hooks is the one list of what runs on the money path; create_app installs it once.
    assert play_guard._bet_checks == [responsible_gaming.bet_guard, promotions.check_bet]
    assert play_guard._play_checks == [responsible_gaming.launch_guard]
    assert play_events._listeners == [promotions.on_play, jackpots.on_play]
    assert play_events._after_commit == [loyalty.on_play, tournaments.on_play]


def test_payments_registration_and_reads_are_wired_by_app_hooks(app):
    assert list(payment_hooks.deposit_checks) == [
        responsible_gaming.check_deposit_allowed,
        verification.check_deposit,
    ]
    assert list(payment_hooks.deposit_credited) == [promotions.on_deposit_credited]
    assert list(payment_hooks.deposit_completed) == [
        risk.on_deposit_completed,
        referral_rewards.on_deposit_completed,
    ]
    assert list(payment_hooks.withdrawal_forfeits) == [promotions.forfeit_for_withdrawal]
    assert list(payment_hooks.withdrawal_checks) == [
        promotions.check_withdrawal,
        verification.check_withdrawal,
    ]
    assert list(payment_hooks.withdrawal_requested) == [risk.on_withdrawal_requested]
    assert list(payment_hooks.refusal_flags) == [risk.flag]
    assert seams.free_rounds() is free_spins
    assert seams.jackpots() is jackpots
    assert list(accounts.player_created) == [ledger.get_or_create_wallet]
    assert mail._consent_of is users.has_marketing_consent
    assert reality_check._net_result_source is responsible_gaming.session_results
