"""The transactional outbox: nothing committed is lost while Redis is down."""

from __future__ import annotations

import json
import time

import pytest
import redis

from app.core import outbox
from app.core.bus import subscribe
from app.core.db import atomic
from app.core.events import publish
from app.core.extensions import db
from app.core.models import OutboxMessage
from app.realtime.emitter import QueueEmitter, channel_for

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def pushed():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


@pytest.fixture
def redis_down(app):
    """Socket.IO emits of this process go to a Redis that refuses connections."""
    if not app.config["REDIS_URL"]:
        pytest.skip("needs a Redis server (the embedded emitter cannot fail)")
    real = app.extensions["jx_emitter"]
    app.extensions["jx_emitter"] = QueueEmitter(DEAD_REDIS, channel_for(app))

    def restore() -> None:
        app.extensions["jx_emitter"] = real

    yield restore
    restore()


@pytest.fixture
def channel(app):
    """A subscriber on the real Socket.IO channel: what every gunicorn server would hear."""
    if not app.config["REDIS_URL"]:
        pytest.skip("needs a Redis server")
    pubsub = redis.Redis.from_url(app.config["REDIS_URL"]).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel_for(app))
    time.sleep(0.05)

    def heard(expected: int, timeout: float = 5) -> list[dict]:
        out, deadline = [], time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                body = json.loads(message["data"])
                if body.get("method") == "emit":
                    out.append(body)
        return out

    yield heard
    pubsub.close()


def _pending() -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            db.select(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None))
            .order_by(OutboxMessage.id)
        )
    )


def test_a_durable_event_is_delivered_right_after_commit(factory, pushed, channel):
    player = factory.player()
    with atomic():
        publish("balance.update", {"balance": "10.00"}, room=f"user:{player.id}", durable=True)
        assert pushed == []
    assert [(e.name, e.data) for e in pushed] == [("balance.update", {"balance": "10.00"})]
    assert _pending() == []
    (message,) = channel(1)
    assert message["event"] == "balance.update"
    assert message["room"] == f"user:{player.id}"


def test_a_rolled_back_transaction_leaves_no_outbox_row(factory):
    player = factory.player()
    with pytest.raises(RuntimeError), atomic():
        publish("balance.update", {"balance": "1.00"}, room=f"user:{player.id}", durable=True)
        raise RuntimeError("the bet was refused")
    assert db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)) == 0


def test_events_committed_while_redis_is_down_are_kept_and_drain_in_order_after_restart(
    factory, redis_down, channel
):
    player = factory.player()
    room = f"user:{player.id}"
    for balance in ("10.00", "8.00", "12.50"):
        with atomic():
            publish("balance.update", {"balance": balance}, room=room, durable=True)

    pending = _pending()
    assert [row.payload["balance"] for row in pending] == ["10.00", "8.00", "12.50"]
    assert pending[0].attempts >= 1
    assert "ConnectionError" in pending[0].last_error
    # The periodic relay fails loudly (RQ keeps it as failed) and loses nothing.
    from app.core.jobs import relay_outbox

    with pytest.raises(RuntimeError, match="outbox relay stopped"):
        relay_outbox()
    assert len(_pending()) == 3
    assert outbox.status()["pending"] == 3

    redis_down()  # Redis is back
    report = relay_outbox()
    assert report["delivered"] == 3
    assert _pending() == []
    heard = channel(3)
    assert [m["data"][0]["balance"] for m in heard] == ["10.00", "8.00", "12.50"]
    assert {m["room"] for m in heard} == {room}


def test_a_durable_job_is_enqueued_once_redis_takes_it(factory, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from app.core import notifications, queues

    player = factory.player()
    real_enqueue = queues.enqueue
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RedisConnectionError("Connection refused")
        return real_enqueue(*args, **kwargs)

    monkeypatch.setattr(queues, "enqueue", flaky)
    with atomic():
        outbox.add_job(
            "app.core.jobs.send_notification",
            player.id,
            "withdrawal",
            "Paid",
            "Your withdrawal was paid",
            None,
            "wd-1-paid",
            queue="notifications",
        )
    assert len(_pending()) == 1
    assert notifications.unread_count(player.id) == 0

    assert outbox.drain().delivered == 1
    assert notifications.unread_count(player.id) == 1
    # The job's own socket event was published while Redis still counted as down (the
    # breaker opened at the failure): it was parked in the outbox, the next relay sends it.
    assert [row.kind for row in _pending()] == ["event"]
    assert outbox.drain().delivered == 1
    assert _pending() == []
    # A re-delivery (crash between enqueue and mark) would not notify twice.
    assert outbox.drain().delivered == 0
    assert notifications.unread_count(player.id) == 1


def test_outbox_rows_need_a_transaction(app):
    with pytest.raises(RuntimeError, match="atomic"):
        outbox.add_event("x", {})


def test_outbox_refuses_what_json_cannot_carry(app):
    with pytest.raises(ValueError, match="JSON"), atomic():
        outbox.add_event("x", {"when": object()})
