"""The SMS seam (issue 17): Twilio's Messages API called for real over HTTP against a local
server that checks each request as Twilio does; the development file backend; production
refusing the file backend unless acknowledged."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from app.core import sms
from app.core.config import SMS_FILE_IN_PRODUCTION_ACK, ConfigError, load_config
from tests.identity.sms_helpers import messages_to
from tests.prodenv import PRODUCTION_ENV

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-for-tests"
SENDER = "+15005550006"


class FakeTwilio:
    """A local HTTP server speaking the Messages resource: checks the path, basic auth, the
    form encoding and fields, and answers 201 with a message SID (or Twilio's error JSON)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.hang = threading.Event()  # set: answer; clear: keep the client waiting
        self.hang.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                return

            def _answer(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                owner.hang.wait(timeout=10)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                owner.received.append(
                    {"path": self.path, "headers": dict(self.headers), "form": form}
                )
                expected = f"/2010-04-01/Accounts/{SID}/Messages.json"
                if self.path != expected:
                    return self._answer(404, {"code": 20404, "message": "Not found"})
                auth = self.headers.get("Authorization", "")
                good = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
                if auth != good:
                    return self._answer(
                        401, {"code": 20003, "message": "Authenticate", "status": 401}
                    )
                if not self.headers.get("Content-Type", "").startswith(
                    "application/x-www-form-urlencoded"
                ):
                    return self._answer(400, {"code": 20001, "message": "Bad encoding"})
                if not re.fullmatch(r"\+[1-9]\d{6,14}", form.get("To", "")):
                    return self._answer(400, {"code": 21211, "message": "Invalid 'To'"})
                if not form.get("Body"):
                    return self._answer(400, {"code": 21602, "message": "Body is required"})
                if not (form.get("From") or form.get("MessagingServiceSid")):
                    return self._answer(400, {"code": 21603, "message": "'From' is required"})
                return self._answer(
                    201,
                    {
                        "sid": "SM" + f"{len(owner.received):032x}",
                        "status": "queued",
                        "to": form["To"],
                        "body": form["Body"],
                        "account_sid": SID,
                    },
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio(app, monkeypatch) -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    for key, value in {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_API_BASE": server.base,
        "SMS_TIMEOUT": 2.0,
    }.items():
        monkeypatch.setitem(app.config, key, value)
    yield server
    server.close()


def test_twilio_gets_a_form_post_with_basic_auth_and_answers_a_message_sid(app, twilio):
    with app.test_request_context():
        sent = sms.send_sms("+35699123456", "phone_verification", {"code": "123456", "minutes": 10})
    assert sent is not None
    assert sent.id.startswith("SM")
    (request,) = twilio.received
    assert request["form"] == {"To": "+35699123456", "From": SENDER, "Body": sent.body}
    assert "123456" in sent.body
    assert request["headers"]["Authorization"].startswith("Basic ")


def test_a_messaging_service_replaces_the_sender(app, twilio, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_MESSAGING_SERVICE_SID", "MG" + "a" * 32)
    with app.test_request_context():
        sms.send_sms("+35699123456", "login_code", {"code": "654321", "minutes": 10})
    form = twilio.received[-1]["form"]
    assert form["MessagingServiceSid"] == "MG" + "a" * 32
    assert "From" not in form


def test_a_wrong_auth_token_is_an_sms_error_without_the_secret(app, twilio, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", "stolen-or-rotated")
    with app.test_request_context(), pytest.raises(sms.SmsError) as caught:
        sms.send_sms("+35699123456", "login_code", {"code": "654321", "minutes": 10})
    assert "401" in str(caught.value)
    assert "stolen" not in str(caught.value)


def test_missing_credentials_never_call_out(app, twilio, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_ACCOUNT_SID", "")
    with app.test_request_context(), pytest.raises(sms.SmsError, match="not configured"):
        sms.send_sms("+35699123456", "login_code", {"code": "1", "minutes": 1})
    assert twilio.received == []


def test_a_provider_that_does_not_answer_times_out(app, twilio, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_TIMEOUT", 0.3)
    twilio.hang.clear()
    try:
        with app.test_request_context(), pytest.raises(sms.SmsError):
            sms.send_sms("+35699123456", "login_code", {"code": "1", "minutes": 1})
    finally:
        twilio.hang.set()


def test_the_outbound_guard_refuses_an_internal_provider_url(app, twilio, monkeypatch):
    monkeypatch.setitem(app.config, "TWILIO_API_BASE", "http://10.0.0.1:8080")
    with app.test_request_context(), pytest.raises(sms.SmsError, match="could not be reached"):
        sms.send_sms("+35699123456", "login_code", {"code": "1", "minutes": 1})
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_LOOPBACK", False)
    monkeypatch.setitem(app.config, "TWILIO_API_BASE", twilio.base)
    with app.test_request_context(), pytest.raises(sms.SmsError):
        sms.send_sms("+35699123456", "login_code", {"code": "1", "minutes": 1})
    assert twilio.received == []


def test_adding_a_phone_goes_through_twilio_and_its_refusal_answers_503(
    app, client, factory, token_for, twilio, monkeypatch
):
    player = factory.player()
    answer = client.post(
        "/api/user/phones", json={"number": "+35699123456"}, headers=token_for(player)
    )
    assert answer.status_code == 201, answer.json
    assert twilio.received[-1]["form"]["To"] == "+35699123456"
    assert re.search(r"\b\d{6}\b", twilio.received[-1]["form"]["Body"])
    assert messages_to("+35699123456") == []  # nothing went to the file backend
    monkeypatch.setitem(app.config, "TWILIO_AUTH_TOKEN", "wrong")
    refused = client.post(
        "/api/user/phones", json={"number": "+447400123456"}, headers=token_for(player)
    )
    assert refused.status_code == 503
    assert refused.json["code"] == "SERVICE_UNAVAILABLE"
    assert "wrong" not in json.dumps(refused.json)


def test_the_development_backend_writes_the_rendered_template(app):
    with app.test_request_context():
        sent = sms.send_sms("+35699123456", "signup_code", {"code": "246802", "minutes": 10})
    (message,) = messages_to("+35699123456")
    assert message["body"] == sent.body
    assert "246802" in message["body"]


PRODUCTION = PRODUCTION_ENV


def test_production_sends_through_twilio_and_refuses_the_file_backend_unless_acknowledged():
    assert load_config(PRODUCTION)["SMS_BACKEND"] == "twilio"
    with pytest.raises(ConfigError, match="SMS_BACKEND=file"):
        load_config({**PRODUCTION, "SMS_BACKEND": "file"})
    with pytest.raises(ConfigError, match="SMS_BACKEND=file"):
        load_config({**PRODUCTION, "SMS_BACKEND": "file", "SMS_FILE_IN_PRODUCTION": "yes"})
    acknowledged = load_config(
        {**PRODUCTION, "SMS_BACKEND": "file", "SMS_FILE_IN_PRODUCTION": SMS_FILE_IN_PRODUCTION_ACK}
    )
    assert acknowledged["SMS_BACKEND"] == "file"
    assert load_config({})["SMS_BACKEND"] == "file"  # development
    with pytest.raises(ConfigError, match="SMS_BACKEND must be one of"):
        load_config({"SMS_BACKEND": "carrier-pigeon"})
