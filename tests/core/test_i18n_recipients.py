"""Notifications and SMS are written in the recipient's language, like the e-mails."""

from __future__ import annotations

from flask_babel import refresh

from app.core import notifications, sms
from app.core.db import atomic
from app.core.extensions import db
from app.core.i18n import Msg


def _player(factory, language):
    player = factory.player()
    player.language = language
    db.session.commit()
    return player


def test_a_notification_is_stored_in_the_players_language(factory):
    german, english, unset = (_player(factory, lang) for lang in ("de", "en", None))
    for player in (german, english, unset):
        with atomic():
            notifications.notify(
                player.id,
                "lottery_win",
                "Summer draw",  # a name: stored as it is
                Msg("Your ticket #%(number)s won the draw", number=7),
            )
    texts = {}
    for player in (german, english, unset):
        (row,), _total = notifications.list_for(player.id)
        texts[player.id] = (row.title, row.message)
    assert texts[german.id] == ("Summer draw", "Ihr Los #7 hat die Ziehung gewonnen")
    assert texts[english.id] == ("Summer draw", "Your ticket #7 won the draw")
    # No stored language: the fallback (the first enabled language, English by default).
    assert texts[unset.id] == ("Summer draw", "Your ticket #7 won the draw")


def test_a_value_with_a_percent_sign_or_markup_is_filled_in_as_it_is(factory):
    german = _player(factory, "de")
    with atomic():
        created = notifications.notify(
            german.id,
            "affiliate",
            Msg("Affiliate application declined"),
            Msg("Your affiliate application was declined: %(reason)s", reason="100% <b>no</b>"),
        )
    assert created is not None
    assert created.title == "Affiliate-Antrag abgelehnt"
    assert created.message == "Ihr Affiliate-Antrag wurde abgelehnt: 100% <b>no</b>"


def test_an_sms_to_a_german_player_is_german_and_to_a_new_number_follows_the_request(app, factory):
    german = _player(factory, "de")
    context = {"code": "123456", "minutes": 10}
    with app.test_request_context("/api/auth/otp", headers={"Accept-Language": "en"}):
        sent = sms.send_sms("+35699000001", "signin_code", context, user_id=german.id)
        assert sent is not None
        assert sent.body.startswith("JackpotX: 123456 ist Ihr Anmeldecode.")
        assert "10 Minuten" in sent.body
    with app.test_request_context("/api/auth/otp", headers={"Accept-Language": "de-DE"}):
        refresh()  # the tests share one app context: forget the locale chosen before
        sent = sms.send_sms("+35699000002", "signup_code", context)
        assert sent is not None
        assert sent.body == (
            "JackpotX: 123456 ist Ihr Code zur Kontoeröffnung. Er läuft in 10 Minuten ab."
        )
    with app.test_request_context("/api/auth/otp"):
        refresh()
        sent = sms.send_sms("+35699000003", "signup_code", context)
        assert sent is not None
        assert sent.body.startswith("JackpotX: 123456 is your code to open an account.")
