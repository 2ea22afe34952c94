"""Notification preferences per channel and category (issue 17): stored, readable and
changeable through the API, honoured by the mail outbox, the SMS seam and in-app
notifications; security, account and responsible-gaming messages cannot be turned off."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core import mail, notifications, sms
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog, Notification, NotificationPreference, OutboxEmail
from app.identity import accounts
from tests.identity.sms_helpers import messages_to

URL = "/api/user/notification-preferences"


def _prefs(answer) -> dict:
    return {c["category"]: c for c in answer.json["data"]}


def test_everything_is_on_by_default_and_the_mandatory_categories_say_so(
    client, factory, token_for
):
    player = factory.player()
    answer = client.get(URL, headers=token_for(player))
    assert answer.status_code == 200
    prefs = _prefs(answer)
    assert set(prefs) == {"security", "account", "responsible_gaming", "rewards", "marketing"}
    assert {c for c, p in prefs.items() if p["mandatory"]} == {
        "security",
        "account",
        "responsible_gaming",
    }
    for pref in prefs.values():
        assert pref["channels"] == {"email": True, "sms": True, "push": True, "in_app": True}


def test_a_player_turns_optional_channels_off_and_it_is_stored_and_audited(
    client, factory, token_for
):
    player = factory.player()
    answer = client.put(
        URL,
        json={
            "preferences": {"marketing": {"sms": False, "email": False}, "rewards": {"push": False}}
        },
        headers=token_for(player),
    )
    assert answer.status_code == 200, answer.json
    prefs = _prefs(client.get(URL, headers=token_for(player)))
    assert prefs["marketing"]["channels"] == {
        "email": False,
        "sms": False,
        "push": True,
        "in_app": True,
    }
    assert prefs["rewards"]["channels"]["push"] is False
    assert db.session.scalar(
        sa.select(sa.func.count()).where(AuditLog.action == "user.notification_preferences")
    )
    back_on = client.put(
        URL, json={"preferences": {"marketing": {"sms": True}}}, headers=token_for(player)
    )
    assert _prefs(back_on)["marketing"]["channels"]["sms"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"preferences": {"security": {"email": False}}},
        {"preferences": {"account": {"sms": False}}},
        {"preferences": {"responsible_gaming": {"in_app": False}}},
        {"preferences": {"rewards": {"email": False}, "security": {"sms": False}}},
        {"preferences": {"gossip": {"email": False}}},
        {"preferences": {"marketing": {"pigeon": False}}},
        {"preferences": {"marketing": {"email": "no"}}},
        {"preferences": {"marketing": {"email": 0}}},
        {"preferences": {"marketing": {}}},
        {"preferences": {}},
        {"preferences": "off"},
    ],
)
def test_mandatory_categories_and_nonsense_are_refused_and_change_nothing(
    client, factory, token_for, body
):
    player = factory.player()
    answer = client.put(URL, json=body, headers=token_for(player))
    assert answer.status_code in (400, 422), answer.json
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationPreference)) == 0


def _set(player, changes):
    from app.core import preferences

    with atomic():
        preferences.update(player.id, changes, actor=player)


def test_in_app_notifications_honour_the_preference_but_mandatory_ones_always_arrive(factory):
    player = factory.player()
    _set(player, {"rewards": {"in_app": False}, "marketing": {"in_app": False}})
    with atomic():
        assert notifications.notify(player.id, "loyalty", "Level", "You reached Gold") is None
        assert notifications.notify(player.id, "jackpot_win", "Jackpot", "You won") is None
        assert notifications.notify(player.id, "bonus_granted", "Bonus", "A bonus") is None
        assert notifications.notify(player.id, "promotion", "Promo", "Hi") is None
        kept = notifications.notify(player.id, "reality_check", "Reality check", "1 hour")
        support = notifications.notify(player.id, "support_reply", "Re: help", "Answer")
    assert kept is not None
    assert support is not None
    types = set(
        db.session.scalars(sa.select(Notification.type).where(Notification.user_id == player.id))
    )
    assert types == {"reality_check", "support_reply"}


def test_mail_honours_the_preference_but_security_mail_always_goes(factory):
    player = factory.player(marketing_consent=True)
    _set(player, {"marketing": {"email": False}, "rewards": {"email": False}})
    with atomic():
        promo = mail.queue_email(
            to=player.email, subject="Promo", body="Hi", template="crm_broadcast", user_id=player.id
        )
        reward = mail.queue_email(
            to=player.email, subject="Bonus", body="Hi", template="bonus", user_id=player.id,
            category="rewards",
        )  # fmt: skip
        accounts.issue_reset_token(player)
    assert promo is None
    assert reward is None
    templates = set(
        db.session.scalars(sa.select(OutboxEmail.template).where(OutboxEmail.user_id == player.id))
    )
    assert templates == {"password_reset"}


def test_sms_honours_the_preference_but_codes_always_go(app, factory):
    player = factory.player()
    _set(player, {"marketing": {"sms": False}})
    with app.test_request_context():
        assert (
            sms.send_sms(
                "+35699123456",
                "signup_code",
                {"code": "1", "minutes": 1},
                user_id=player.id,
                category="marketing",
            )
            is None
        )
        assert sms.send_sms(
            "+35699123456", "login_code", {"code": "123456", "minutes": 1}, user_id=player.id
        )
    (message,) = messages_to("+35699123456")
    assert "123456" in message["body"]
