"""Runs the scenarios of one protocol against a base URL and reports them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from app.conformance.base import Driver, Outcome
from app.conformance.evolution import EvolutionDriver
from app.conformance.fixtures import Setup, prepare
from app.conformance.hub88 import Hub88Driver
from app.conformance.native import NativeDriver
from app.conformance.pragmatic import PragmaticDriver
from app.conformance.scenarios import SCENARIOS, Context
from app.conformance.slotegrator import SlotegratorDriver
from app.conformance.softswiss import SoftSwissDriver

#: protocol -> its driver. A protocol without one here cannot be tested yet.
DRIVERS: dict[str, type[Driver]] = {
    "native": NativeDriver,
    "hub88": Hub88Driver,
    "pragmatic": PragmaticDriver,
    "softswiss": SoftSwissDriver,
    "slotegrator": SlotegratorDriver,
    "evolution": EvolutionDriver,
}


@dataclass
class Report:
    protocol: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]


def scenarios_for(protocol: str) -> list:
    skipped = DRIVERS[protocol].not_applicable
    return [
        s
        for s in SCENARIOS
        if (not s.protocols or protocol in s.protocols) and s.name not in skipped
    ]


def run(
    protocol: str,
    base_url: str,
    *,
    echo: Callable[[str], None] = print,
    only: str | None = None,
) -> Report:
    """Set up the fixtures, run every scenario of ``protocol`` (or those whose name contains
    ``only``), print one line each and a summary."""
    started = time.monotonic()
    setup = prepare(protocol)
    report = Report(protocol)
    with requests.Session() as http, _closing(setup):
        driver = DRIVERS[protocol](base_url, setup.creds, http)
        ctx = Context(driver, setup)
        for scenario in scenarios_for(protocol):
            if only and only not in f"{scenario.group}.{scenario.name}":
                continue
            driver.log.clear()
            try:
                scenario.run(ctx)
                passed, detail = True, ""
            except AssertionError as exc:
                passed, detail = False, str(exc) or type(exc).__name__
            except requests.RequestException as exc:
                passed, detail = False, f"no answer: {exc}"
            outcome = Outcome(scenario, passed, detail, list(driver.log))
            report.outcomes.append(outcome)
            echo(_line(outcome))
    report.seconds = time.monotonic() - started
    total, failed = len(report.outcomes), len(report.failed)
    echo(
        f"{protocol}: {total - failed} passed, {failed} failed of {total} scenarios "
        f"against {base_url} in {report.seconds:.1f}s (run {setup.run_id})"
    )
    return report


@contextmanager
def _closing(setup: Setup) -> Iterator[None]:
    try:
        yield
    finally:
        setup.close()


def _line(outcome: Outcome) -> str:
    s = outcome.scenario
    verdict = "PASS" if outcome.passed else "FAIL"
    text = f"{verdict} {s.group}.{s.name}"
    if outcome.detail:
        text += f": {outcome.detail}"
    # The exchange that decided: for a failure the last one, else the scenario's main call.
    replies = outcome.replies
    if replies:
        money = [r for r in replies if r.call != "balance"] or replies
        decisive = replies[-1] if not outcome.passed else money[-1]
        text += f" | {decisive.brief()}"
    return text
