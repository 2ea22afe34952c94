"""The player page shows staff the verification state of the e-mail and every phone number."""

from __future__ import annotations

from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity.models import UserPhone


def test_the_player_page_shows_phone_and_email_verification(signed_in, player):
    with atomic():
        db.session.add(
            UserPhone(
                user_id=player.id, number="+35699123456", is_primary=True, verified_at=utcnow()
            )
        )
        db.session.add(UserPhone(user_id=player.id, number="+447400123456"))
    client, _staff = signed_in("support")
    page = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    panel = page[page.index('id="player-contact"') :]
    panel = panel[: panel.index("player-logins")]
    assert "+35699123456" in panel
    assert "+447400123456" in panel
    verified_row = panel[panel.index("+35699123456") : panel.index("+447400123456")]
    assert "primary" in verified_row
    assert "badge-verified" in verified_row
    assert "badge-unverified" in panel[panel.index("+447400123456") :]
