"""``GET /metrics``: who may scrape, and that the figures an SRE reads move."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core import settings
from app.core.config import ConfigError, load_config
from app.core.db import atomic
from app.core.extensions import db
from app.core.queues import job
from tests.moneykit import open_table
from tests.payments.test_sandbox_in_production import PRODUCTION


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def _scrape(client, **kw) -> str:
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_loopback_may_scrape_other_addresses_need_the_token(app, client, monkeypatch):
    _scrape(client)  # the test client calls from 127.0.0.1, in the default allow-list
    outside = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    refused = client.get("/metrics", **outside)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "ACCESS_DENIED"
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "s3cret-scrape-token")
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer nope"}, **outside).status_code
        == 403
    )
    _scrape(client, headers={"Authorization": "Bearer s3cret-scrape-token"}, **outside)
    monkeypatch.setitem(app.config, "METRICS_ALLOW_IPS", ["203.0.113.0/24"])
    _scrape(client, **outside)
    monkeypatch.setitem(app.config, "METRICS_ALLOW_IPS", [])
    assert client.get("/metrics").status_code == 403
    monkeypatch.setitem(app.config, "METRICS_ENABLED", False)
    assert client.get("/metrics").status_code == 404


def test_a_bad_allow_list_entry_refuses_to_start():
    with pytest.raises(ConfigError, match="METRICS_ALLOW_IPS"):
        load_config({"METRICS_ALLOW_IPS": "10.0.0.0/8,not-an-ip"})
    assert load_config(PRODUCTION)["METRICS_ALLOW_IPS"] == []  # production: token or explicit
    assert load_config({})["METRICS_ALLOW_IPS"] == ["127.0.0.1", "::1"]


def test_maintenance_does_not_hide_the_figures(client):
    with atomic():
        settings.set_maintenance(True, message="upgrade")
    assert client.get("/api/status").get_json()["data"]["maintenance"] is True
    assert "jackpotx_http_requests_total" in _scrape(client)


def test_requests_are_counted_by_route_template_method_and_status(client):
    before = _scrape(client)
    client.get("/api/status")
    client.get("/api/status")
    client.get("/no/such/page/12345")
    after = _scrape(client)
    key = {"route": "/api/status", "method": "GET", "status": "200"}
    assert (
        _value(after, "jackpotx_http_requests_total", **key)
        - _value(before, "jackpotx_http_requests_total", **key)
        == 2
    )
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert _value(after, "jackpotx_http_requests_total", **unmatched) >= 1
    assert "/no/such/page/12345" not in after  # never a raw path as a label
    assert (
        _value(
            after, "jackpotx_http_request_duration_seconds_count", route="/api/status", method="GET"
        )
        >= 2
    )


def test_callbacks_are_counted_by_provider_action_and_verdict(client, factory):
    table = open_table(client, factory)
    before = _scrape(client)
    assert table.call("bet", transaction_id="m1", round_id="r1", amount="1.00")["status"] == "ok"
    table.raw(b'{"action": "bet"}', signature="0" * 64)
    after = _scrape(client)

    def moved(**labels: str) -> float:
        return _value(after, "jackpotx_callbacks_total", **labels) - _value(
            before, "jackpotx_callbacks_total", **labels
        )

    assert moved(provider=table.provider_code, action="bet", verdict="ok") == 1
    assert moved(provider=table.provider_code, action="unparsed", verdict="INVALID_SIGNATURE") == 1


@job
def _metrics_probe_job(fail: bool) -> str:
    if fail:
        raise RuntimeError("boom")
    return "ok"


def test_jobs_are_counted_by_function_and_outcome(app, client):
    name = f"{__name__}._metrics_probe_job"
    before = _scrape(client)
    with app.app_context():
        assert _metrics_probe_job(False) == "ok"
        with pytest.raises(RuntimeError):
            _metrics_probe_job(True)
    after = _scrape(client)
    for outcome in ("success", "failure"):
        assert (
            _value(after, "jackpotx_jobs_total", job=name, outcome=outcome)
            - _value(before, "jackpotx_jobs_total", job=name, outcome=outcome)
            == 1
        )


def test_levels_read_at_scrape_time_are_present(client):
    text = _scrape(client)
    names = {name for name, _labels in _samples(text)}
    assert {
        "jackpotx_outbox_pending",
        "jackpotx_outbox_oldest_pending_seconds",
        "jackpotx_job_queue_depth",
        "jackpotx_rq_worker_jobs",
        "jackpotx_after_commit_queue_depth",
        "jackpotx_after_commit_dropped",
    } <= names
    assert _value(text, "jackpotx_job_queue_depth", queue="default", state="queued") >= 0


def test_multiprocess_mode_sums_the_workers_figures(tmp_path):
    """Two forked workers count into PROMETHEUS_MULTIPROC_DIR; a scrape of either sees both,
    and a dead worker's levels leave the sum (gunicorn's child_exit)."""
    script = textwrap.dedent(
        """
        import os, sys
        from prometheus_client import multiprocess
        from app.core import metrics

        pids = []
        for n in (1, 2):
            pid = os.fork()
            if pid == 0:
                metrics.callback("prov", "bet", "ok")
                metrics.POOL_CHECKED_OUT.set(n)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        body = metrics.render()[0].decode()
        print(body)
        multiprocess.mark_process_dead(pids[0])
        print("AFTER-DEATH")
        print(metrics.render()[0].decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    ).stdout
    first, second = out.split("AFTER-DEATH")
    labels = {"provider": "prov", "action": "bet", "verdict": "ok"}
    assert _value(first, "jackpotx_callbacks_total", **labels) == 2
    assert _value(first, "jackpotx_db_pool_checked_out") == 3
    assert _value(second, "jackpotx_callbacks_total", **labels) == 2  # counts stay
    assert _value(second, "jackpotx_db_pool_checked_out") == 2  # levels of the living only


def test_the_grafana_dashboard_queries_only_figures_the_server_exposes(client):
    """docs/grafana/jackpotx-dashboard.json cannot rot: every metric it queries is in a
    scrape (the lock-wait figures need PostgreSQL: they are checked there)."""
    import json
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "jackpotx-dashboard.json"
    dashboard = json.loads(path.read_text())
    queried = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"jackpotx_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 15
    client.get("/api/status")
    exposed = set()
    for family in text_string_to_metric_families(_scrape(client)):
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
        exposed.update(sample.name for sample in family.samples)
    postgres_only = {"jackpotx_db_lock_waiters", "jackpotx_db_lock_wait_longest_seconds"}
    if db.engine.dialect.name != "postgresql":
        queried -= postgres_only
    assert queried <= exposed, sorted(queried - exposed)
