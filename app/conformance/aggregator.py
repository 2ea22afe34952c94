"""The aggregator's own API as the runner plays it: a local HTTP listener (stdlib, in a thread)
that receives the free-rounds calls JackpotX makes through ``Provider.api_url``
(``app.play.aggregator_api``), records them and answers as the aggregator would: SoftSwiss
``/freespins/issue`` and ``/cancel`` with ``{}``, Hub88 ``/freebet/rewards/create`` with the
reward it names (signed with the runner's aggregator key, as Hub88 signs), Slotegrator
``GET /freespins/bets`` with the game's total bets (``GIS_TOTAL_BETS``) and ``/freespins/set``
with ``{}``."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from app.conformance.base import Credentials
from app.core.crypto import rsa_sign
from app.play.callbacks.adapters.hub88 import SIGNATURE_HEADER as HUB88_SIGNATURE

#: Where the Hub88 Operator API lives under its host (``api_url`` names it, as in production).
HUB88_BASE = "/operator/generic/v2"

#: The free-spin total bets the runner's Slotegrator offers for every game (``bet_id`` ->
#: amount in major units); JackpotX must pick the one of the grant's spin value.
GIS_TOTAL_BETS = {0: 0.5, 1: 1.0, 2: 2.0}


@dataclass(frozen=True)
class ApiCall:
    path: str
    headers: dict[str, str]
    body: bytes
    #: What the listener answered (Hub88: the new reward).
    answer: dict[str, Any]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def route(self) -> str:
        """The path without its query."""
        return urlsplit(self.path).path

    def params(self) -> dict[str, str]:
        """A form body's fields, or a GET's query."""
        text = self.body.decode("utf-8", "replace") or urlsplit(self.path).query
        return dict(parse_qsl(text, keep_blank_values=True))


class AggregatorApi:
    def __init__(self, protocol: str, creds: Credentials) -> None:
        self.protocol = protocol
        self.creds = creds
        self.calls: list[ApiCall] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = api._answer(self.path, body)
                data = json.dumps(answer).encode()
                with api._lock:
                    api.calls.append(ApiCall(self.path, dict(self.headers.items()), body, answer))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if api.protocol == "hub88" and api.creds.private_key:
                    self.send_header(HUB88_SIGNATURE, rsa_sign(api.creds.private_key, data))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        base = f"http://127.0.0.1:{self._server.server_address[1]}"
        return base + HUB88_BASE if self.protocol == "hub88" else base

    def _answer(self, path: str, body: bytes) -> dict[str, Any]:
        if self.protocol == "hub88" and path.endswith("/freebet/rewards/create"):
            try:
                sent = json.loads(body)
            except ValueError:
                sent = {}
            # Hub88 answers the reward it created, under the operator's reward_uuid.
            named = sent.get("reward_uuid") if isinstance(sent, dict) else None
            return {**(sent if isinstance(sent, dict) else {}),
                    "reward_uuid": named or str(uuid.uuid4())}  # fmt: skip
        if self.protocol == "slotegrator" and urlsplit(path).path == "/freespins/bets":
            bets = [{"bet_id": k, "amount": v} for k, v in GIS_TOTAL_BETS.items()]
            return {"denominations": ["0.01"], "total_bets": bets}
        return {}

    def calls_to(self, suffix: str) -> list[ApiCall]:
        with self._lock:
            return [c for c in self.calls if c.route.endswith(suffix)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
