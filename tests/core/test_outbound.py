"""Outbound calls to staff-set URLs (gateway ``api_endpoint``, provider ``api_url``): host
allow-list, no private/loopback/link-local/reserved address after DNS resolution, no port
oracle in the errors (issue 21, SSRF)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.core import outbound
from app.core.errors import ValidationError

REFUSED_URLS = [
    "http://10.0.0.7/api",
    "http://192.168.1.1:8080/",
    "http://172.16.0.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://100.64.0.1/",  # shared address space (CGNAT)
    "http://0.0.0.0:5432/",
    "http://240.0.0.1/",  # reserved
    "http://224.0.0.1/",  # multicast
    "http://[fd00::1]/",  # unique local
    "http://[fe80::1]/",  # link-local
    "http://[::ffff:10.0.0.1]/",  # IPv4-mapped private
    "http://127.0.0.1:6379/",  # loopback, while not allowed
    "http://[::1]/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:pw@example.com/",
    "http:///nohost",
]


@pytest.fixture
def no_loopback(app, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_LOOPBACK", False)


@pytest.fixture
def server():
    """A local HTTP server answering ``status`` (200 by default) to every POST."""

    class Handler(BaseHTTPRequestHandler):
        status = 200
        hits: list[str] = []

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            Handler.hits.append(self.path)
            self.send_response(Handler.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.handler = Handler  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_private_and_odd_urls_are_refused_before_any_connection(app, no_loopback, url):
    with pytest.raises(outbound.OutboundRefused):
        outbound.post(url, data=b"x", timeout=2)


def test_a_name_resolving_to_a_private_address_is_refused_at_connect(app, no_loopback, monkeypatch):
    """DNS is checked on the address actually connected to (no rebinding between check and
    connect), and one private answer among public ones is enough to refuse."""
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    connected = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: connected.append(addr))
    with pytest.raises(outbound.OutboundRefused):
        outbound.post("https://gateway.example.com/v1/x", data=b"x", timeout=2)
    assert calls == ["gateway.example.com"]
    assert connected == []


def test_loopback_only_with_the_explicit_setting(app, monkeypatch, server):
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_LOOPBACK", False)
    with pytest.raises(outbound.OutboundRefused):
        outbound.post(url, data=b"{}", timeout=5)
    monkeypatch.setattr(socket, "getaddrinfo", _only_loopback(socket.getaddrinfo))
    with pytest.raises(outbound.OutboundRefused):  # a name for 127.0.0.1 is refused too
        outbound.post(f"http://localhost:{server.server_address[1]}/hook", data=b"{}", timeout=5)
    assert server.handler.hits == []
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_LOOPBACK", True)
    assert outbound.post(url, data=b"{}", timeout=5).status_code == 200
    assert server.handler.hits == ["/hook"]


def _only_loopback(real):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    return resolve


def test_no_port_oracle_closed_port_and_error_answers_read_the_same(app, monkeypatch, server):
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_LOOPBACK", True)
    messages = set()
    with pytest.raises(outbound.OutboundError) as closed:
        outbound.post(f"http://127.0.0.1:{_closed_port()}/x", data=b"x", timeout=2)
    messages.add((type(closed.value), str(closed.value)))
    server.handler.status = 500
    with pytest.raises(outbound.OutboundError) as open_port:
        outbound.post(
            f"http://127.0.0.1:{server.server_address[1]}/x",
            data=b"x",
            timeout=2,
            raise_for_status=True,
        )
    messages.add((type(open_port.value), str(open_port.value)))
    with pytest.raises(outbound.OutboundError) as unknown:
        outbound.post("http://no-such-host.invalid/x", data=b"x", timeout=2)
    messages.add((type(unknown.value), str(unknown.value)))
    assert messages == {(outbound.OutboundError, outbound.UNREACHABLE)}


def test_the_host_allow_list(app, monkeypatch, server):
    assert outbound.host_allowed("api.stripe.com", ["api.stripe.com"])
    assert outbound.host_allowed("eu.hub88.io", ["*.hub88.io"])
    assert not outbound.host_allowed("hub88.io", ["*.hub88.io"])
    assert not outbound.host_allowed("evilhub88.io", ["*.hub88.io"])
    assert not outbound.host_allowed("api.stripe.com.evil.net", ["api.stripe.com"])
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_LOOPBACK", True)
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOWED_HOSTS", ["api.stripe.com"])
    with pytest.raises(outbound.OutboundRefused):
        outbound.post(f"http://127.0.0.1:{server.server_address[1]}/x", data=b"x", timeout=2)
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOWED_HOSTS", ["127.0.0.1"])
    assert outbound.post(f"http://127.0.0.1:{server.server_address[1]}/x", timeout=2).ok


def test_settings_from_the_environment():
    from app.core.config import load_config

    cfg = load_config({"OUTBOUND_ALLOWED_HOSTS": "api.stripe.com, *.hub88.io"})
    assert cfg["OUTBOUND_ALLOWED_HOSTS"] == ["api.stripe.com", "*.hub88.io"]
    assert cfg["OUTBOUND_ALLOW_LOOPBACK"] is False
    assert load_config({"OUTBOUND_ALLOW_LOOPBACK": "true"})["OUTBOUND_ALLOW_LOOPBACK"] is True


def test_staff_cannot_save_an_internal_gateway_endpoint_or_provider_url(
    client, factory, token_for, no_loopback
):
    admin = factory.staff("admin")
    headers = token_for(admin)
    from tests.payments.test_gateways import GUIDE_BODY

    body = {**GUIDE_BODY, "code": "ssrf-gw", "api_endpoint": "http://169.254.169.254"}
    response = client.post("/api/admin/payment-gateways", json=body, headers=headers)
    assert response.status_code == 400, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == ["api_endpoint"]

    from app.play import games

    with pytest.raises(ValidationError) as refused:
        games._api_url("http://10.0.0.8:8080")
    assert refused.value.errors[0]["field"] == "api_url"


def test_a_stripe_deposit_to_an_internal_endpoint_sends_nothing(app, no_loopback, monkeypatch):
    from app.payments.gateways.base import GatewayConfig, PaymentRequest
    from app.payments.gateways.stripe import StripeAdapter

    sent = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: sent.append(addr))
    adapter = StripeAdapter(
        GatewayConfig("stripe", None, "sk_secret", "whsec", "http://127.0.0.1:2375", {})
    )
    request = PaymentRequest(
        transaction_id="p1", amount_minor=100, currency="EUR", user_id=1, description=None
    )
    with pytest.raises(outbound.OutboundRefused):
        adapter.create_deposit(request)
    assert sent == []
