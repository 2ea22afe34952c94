"""Live events of a request in the production profile (``EVENTS_AFTER_COMMIT=background``): the
answer does not wait for Redis; the process's publisher sends them in commit order, many per
round trip, and parks them in the outbox when Redis cannot take them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core import bus, events
from app.core.breaker import redis_breaker
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import OutboxMessage
from app.realtime.emitter import QueueEmitter

pytestmark = pytest.mark.usefixtures("committed_db")


@pytest.fixture
def background(app, monkeypatch):
    monkeypatch.setitem(app.config, "EVENTS_AFTER_COMMIT", "background")
    if not app.config["REDIS_URL"]:
        pytest.skip("the publisher sends to Redis (embedded mode delivers in-process)")
    return app


def _publish_in_a_request(app, names: list[str]) -> None:
    with app.test_request_context("/api/x"):
        for name in names:
            with atomic():
                events.publish(name, {"name": name}, room="user:1")


def test_events_of_requests_arrive_in_commit_order_from_the_publisher(background):
    got: list[str] = []
    unsubscribe = bus.subscribe(lambda event: got.append(event.name))
    try:
        _publish_in_a_request(background, [f"test.e{i}" for i in range(60)])
        assert events.drain(5.0)
    finally:
        unsubscribe()
    assert got == [f"test.e{i}" for i in range(60)]


def test_outside_a_request_events_are_delivered_before_atomic_returns(background):
    got: list[str] = []
    unsubscribe = bus.subscribe(lambda event: got.append(event.name))
    try:
        with background.app_context(), atomic():  # a job or a command
            events.publish("test.job", {}, room="user:1")
        assert got == ["test.job"]
    finally:
        unsubscribe()


def test_redis_unreachable_parks_the_whole_batch_in_the_outbox_in_order(background):
    # A Redis nobody listens on (a real refused connection, not a stub).
    dead = QueueEmitter("redis://127.0.0.1:1/0", "jackpotx-test-dead")
    live = background.extensions["jx_emitter"]
    background.extensions["jx_emitter"] = dead
    redis_breaker.succeeded()
    try:
        _publish_in_a_request(background, ["test.p1", "test.p2", "test.p3"])
        assert events.drain(10.0)
    finally:
        background.extensions["jx_emitter"] = live
        redis_breaker.succeeded()
    with background.app_context():
        names = db.session.scalars(
            sa.select(OutboxMessage.name)
            .where(OutboxMessage.name.like("test.p%"))
            .order_by(OutboxMessage.id)
        ).all()
    assert names == ["test.p1", "test.p2", "test.p3"]
