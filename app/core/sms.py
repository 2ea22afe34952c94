"""Outgoing SMS: ``send_sms(to, template, context)`` renders ``templates/sms/<template>.txt``
and hands the text to the backend chosen by ``SMS_BACKEND``.

Invariants:
* ``file`` (development and tests, the default outside production) writes one message per file
  in ``SMS_DIR`` and logs it: nothing leaves the machine. Production refuses it at start unless
  ``SMS_FILE_IN_PRODUCTION`` holds the acknowledgement phrase (``app.core.config``).
* ``twilio`` POSTs to Twilio's Messages resource
  (``/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``, ``From`` or
  ``MessagingServiceSid``, ``Body``) with HTTP basic auth (account SID, auth token) through the
  outbound guard (``app.core.outbound``: no redirects, no internal addresses, timeouts).
* Any failure (not configured, unreachable, an error answer) raises :class:`SmsError` with a
  message free of secrets; the caller decides (the identity services answer 503).
* A message to a user goes only if their preferences let SMS carry its category
  (``app.core.preferences``: codes are ``security``, always sent).
* The text is in the recipient's language: the user's stored one (``app.core.i18n``), else
  (a code to a number with no account yet) the request's.
* Callers send after their transaction committed (a code row must exist before its text
  leaves) and pass plain values, never model objects.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flask import current_app, render_template

from app.core import i18n, outbound, preferences
from app.core.base import utcnow

log = logging.getLogger(__name__)

#: Twilio's Messages resource (API version 2010-04-01), relative to ``TWILIO_API_BASE``.
TWILIO_MESSAGES_PATH = "/2010-04-01/Accounts/{sid}/Messages.json"


class SmsError(Exception):
    """The message was not accepted for delivery."""


@dataclass(frozen=True)
class SentSms:
    #: The backend's id for the message (Twilio's ``SM...`` SID, the file name).
    id: str
    to: str
    body: str


class SmsBackend(Protocol):
    def send(self, to: str, body: str) -> str: ...


class FileBackend:
    """Writes each message to ``SMS_DIR`` as JSON (development and tests: no SMS network)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def send(self, to: str, body: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = utcnow()
        name = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        path = self.directory / f"{name}.json"
        path.write_text(json.dumps({"to": to, "body": body, "created_at": now.isoformat()}))
        log.info("sms written to %s -> %s", path, to)
        return name


class TwilioBackend:
    """Twilio's Programmable Messaging REST API (``POST .../Messages.json``)."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.sid = cfg["TWILIO_ACCOUNT_SID"]
        self.token = cfg["TWILIO_AUTH_TOKEN"]
        self.sender = cfg["TWILIO_FROM"]
        self.service = cfg["TWILIO_MESSAGING_SERVICE_SID"]
        self.base = cfg["TWILIO_API_BASE"]
        self.timeout = float(cfg["SMS_TIMEOUT"])

    def send(self, to: str, body: str) -> str:
        if not self.sid or not self.token or not (self.sender or self.service):
            raise SmsError("SMS is not configured (TWILIO_ACCOUNT_SID, _AUTH_TOKEN, _FROM)")
        form = {"To": to, "Body": body}
        if self.service:
            form["MessagingServiceSid"] = self.service
        else:
            form["From"] = self.sender
        url = self.base + TWILIO_MESSAGES_PATH.format(sid=self.sid)
        try:
            response = outbound.post(
                url,
                data=form,
                auth=(self.sid, self.token),
                timeout=(min(self.timeout, 5.0), self.timeout),
                headers={"Accept": "application/json"},
            )
        except outbound.OutboundError as exc:
            raise SmsError(f"the SMS provider could not be reached: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 201 or not isinstance(answer, dict) or not answer.get("sid"):
            code = answer.get("code") if isinstance(answer, dict) else None
            raise SmsError(
                f"the SMS provider refused the message (HTTP {response.status_code}, code {code})"
            )
        return str(answer["sid"])


def backend() -> SmsBackend:
    cfg = current_app.config
    if cfg["SMS_BACKEND"] == "twilio":
        return TwilioBackend(cfg)
    return FileBackend(cfg["SMS_DIR"])


def render(template: str, context: Mapping[str, Any], language: str | None = None) -> str:
    """The text of ``templates/sms/<template>.txt`` (surrounding whitespace trimmed), in
    ``language`` (default: the request's)."""
    if language is None:
        return render_template(f"sms/{template}.txt", **context).strip()
    with i18n.force_locale(language):
        return render_template(f"sms/{template}.txt", **context).strip()


def send_sms(
    to: str,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    user_id: int | None = None,
    category: str = "security",
) -> SentSms | None:
    """Render and send one SMS now; ``None`` when the recipient turned this category off.

    Raises :class:`SmsError` when the backend does not accept it."""
    if not preferences.allowed(user_id, category, "sms"):
        log.info("sms %r not sent: user %s turned %s SMS off", template, user_id, category)
        return None
    language = i18n.language_of_user(user_id) if user_id is not None else None
    body = render(template, context or {}, language)
    message_id = backend().send(to, body)
    return SentSms(id=message_id, to=to, body=body)
