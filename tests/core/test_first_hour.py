"""A newcomer's first hour: ``/`` says where to go, two test runs on one machine keep apart."""

from __future__ import annotations

import os

import pytest

from tests import conftest


def test_the_root_answers_json_with_the_links(client):
    r = client.get("/")
    assert r.status_code == 200
    body = r.get_json()
    assert body["name"] == "JackpotX"
    assert body["links"]["api_docs"] == "/api/docs"
    assert body["links"]["admin"] == "/admin"
    assert body["links"]["health"] == "/health"


def test_a_browser_gets_a_page_with_the_links(client):
    r = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    for href in ("/api/docs", "/admin", "/health"):
        assert f'href="{href}"' in html


def test_a_run_without_a_suffix_gets_a_database_of_its_own(monkeypatch):
    monkeypatch.delenv("JX_TEST_DB_SUFFIX", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert conftest._worker_suffix() == f"{conftest.RUN_ID}_main"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert conftest._worker_suffix() == f"{conftest.RUN_ID}_gw1"
    monkeypatch.setenv("JX_TEST_DB_SUFFIX", "emb")
    assert conftest._worker_suffix() == "emb"


def test_a_redis_db_in_use_is_not_claimed(monkeypatch):
    redis = pytest.importorskip("redis")
    if not conftest._redis_ok():
        pytest.skip("needs a Redis server")
    base = conftest.REDIS_URL.rsplit("/", 1)[0]
    empty = [n for n in conftest.AUTO_REDIS_DBS if not redis.Redis.from_url(f"{base}/{n}").dbsize()]
    if len(empty) < 2 or f"{base}/{empty[-1]}" == conftest.REDIS_URL:
        pytest.skip("no two free Redis dbs on this machine")
    first, second = empty[-1], empty[-2]
    conns = [redis.Redis.from_url(f"{base}/{n}") for n in (first, second)]
    monkeypatch.setattr(conftest, "AUTO_REDIS_DBS", [first, second])
    try:
        conns[0].set("someone:else", 1)  # a run given TEST_REDIS_URL uses it: left alone
        assert conftest._claim_redis_db() == f"{base}/{second}"
        owner = conns[1].get(conftest.REDIS_OWNER_KEY).decode()
        assert owner == f"{conftest.RUN_ID}:{os.getpid()}"
        conns[1].set(conftest.REDIS_OWNER_KEY, "p1:999999999")  # a run that is gone
        conns[0].flushdb()
        conns[0].set(conftest.REDIS_OWNER_KEY, f"p2:{os.getppid()}")  # a live one
        assert conftest._claim_redis_db() == f"{base}/{second}"
    finally:
        for c in conns:
            c.flushdb()
