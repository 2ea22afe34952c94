"""Fixtures of the payments tests: the sandbox gateway, the wire it posts webhooks on, and a
recorder of the events the bus delivers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from app.core.bus import Event, subscribe
from app.payments.gateways import sandbox
from tests.payments_helpers import sandbox_gateway


class Wire:
    """The network between the sandbox 'gateway' and us: records each signed webhook the
    sandbox sends; ``flush`` delivers them over HTTP (test client)."""

    def __init__(self, client):
        self.client = client
        self.outbox: list[tuple[str, bytes, dict]] = []
        self.delivered: list[tuple[str, bytes, dict]] = []

    def __call__(self, url: str, body: bytes, headers: dict) -> int:
        self.outbox.append((urlsplit(url).path, body, dict(headers)))
        return 202

    def post(self, path: str, body: bytes, headers: dict):
        return self.client.post(path, data=body, headers=headers)

    def flush(self):
        responses = []
        while self.outbox:
            item = self.outbox.pop(0)
            self.delivered.append(item)
            responses.append(self.post(*item))
        return responses


@pytest.fixture
def wire(client, monkeypatch):
    w = Wire(client)
    monkeypatch.setattr(sandbox, "http_post", w)
    return w


@pytest.fixture
def gateway(app):
    return sandbox_gateway()


@pytest.fixture
def events():
    seen: list[Event] = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()
