"""The runner's drivers speak the whole outcome vocabulary, and bodies carry raw amounts."""

from __future__ import annotations

import json

import pytest

from app.conformance.base import OUTCOMES, RawJSON, encode
from app.conformance.runner import DRIVERS, scenarios_for


@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_every_driver_maps_every_outcome_to_its_own_codes(protocol):
    codes = DRIVERS[protocol].codes
    assert set(codes) == set(OUTCOMES)
    assert all(codes[outcome] for outcome in OUTCOMES)
    assert not set(codes["ok"]) & {c for o in OUTCOMES if o not in ("ok", "rollback_unknown")
                                   for c in codes[o]}  # fmt: skip


@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_every_protocol_has_at_least_forty_five_scenarios_in_every_group(protocol):
    scenarios = scenarios_for(protocol)
    assert len(scenarios) >= 45
    assert {s.group for s in scenarios} >= {
        "happy", "idempotency", "concurrency", "security", "player", "edge",
    }  # fmt: skip
    assert len({s.name for s in scenarios}) == len(scenarios)


def test_raw_amounts_are_written_as_literal_json_tokens():
    body = encode({"amount": RawJSON("1e309"), "note": "__raw_0__", "id": "ставка"})
    assert body == '{"amount": 1e309, "note": "__raw_0__", "id": "ставка"}'.encode()
    assert json.loads(body, parse_float=str)["amount"] == "1e309"
