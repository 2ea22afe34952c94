"""Staff upload a game's thumbnail or banner: validated as an image by its bytes and a full
decode, stored under a name we choose, served from /media/games/, audited as a game update."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from app.core import uploads
from app.core.extensions import db
from app.core.models import AuditLog
from app.play import games
from app.play.models import Game
from tests.moneykit import make_provider
from tests.payments_helpers import jpeg_bytes, pdf_bytes, png_bytes


@pytest.fixture
def catalog():
    make_provider("studio", name="Studio One")
    games.import_games(
        "studio",
        [
            {"external_id": "wolf", "name": "Wolf Gold", "category": "slots"},
            {"external_id": "dice", "name": "Dice Duel", "category": "dice"},
        ],
    )
    return {g.external_id: g.id for g in db.session.scalars(sa.select(Game))}


def _upload(client, headers, game_id, data, kind="thumbnail", name="x.png"):
    return client.post(
        f"/api/admin/games/{game_id}/image",
        headers=headers,
        data={"kind": kind, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_staff_upload_a_thumbnail_and_the_catalog_links_it(client, factory, token_for, catalog):
    headers = token_for(factory.staff("manager"))
    image = png_bytes((300, 200))
    r = _upload(client, headers, catalog["wolf"], image)
    assert r.status_code == 200, r.json
    url = r.json["data"]["thumbnail"]
    assert url.startswith("/media/games/")
    assert url.endswith(".png")
    served = client.get(url)
    assert served.status_code == 200
    assert served.data == image
    assert served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    listed = client.get("/api/games?search=wolf").json["data"][0]
    assert listed["thumbnail"] == url
    audit = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "game.update").order_by(AuditLog.id.desc())
    ).first()
    assert audit.after["thumbnail"] == url

    # A new banner, then a new thumbnail: the replaced file of ours is gone.
    banner = _upload(client, headers, catalog["wolf"], jpeg_bytes(), kind="banner", name="b.jpg")
    assert banner.json["data"]["banner"].endswith(".jpg")
    again = _upload(client, headers, catalog["wolf"], png_bytes((10, 10), "blue"))
    assert again.json["data"]["thumbnail"] != url
    assert client.get(url).status_code == 404
    assert not (uploads.upload_root() / "games" / url.rsplit("/", 1)[1]).exists()


def test_anything_but_an_intact_raster_image_is_refused(client, factory, token_for, catalog):
    headers = token_for(factory.staff("admin"))
    game_id = catalog["dice"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    for data, name in ((svg, "x.svg"), (pdf_bytes(), "x.png"), (b"GIF89a" + b"\0" * 64, "x.gif")):
        r = _upload(client, headers, game_id, data, name=name)
        assert r.status_code == 415, (name, r.json)
    truncated = png_bytes((200, 200))[:-40]
    assert _upload(client, headers, game_id, truncated).status_code == 400
    assert _upload(client, headers, game_id, png_bytes(), kind="icon").status_code == 400
    assert _upload(client, headers, game_id, png_bytes((4097, 10))).status_code == 400
    assert _upload(client, headers, 999_999, png_bytes()).status_code == 404
    db.session.expire_all()
    assert db.session.get(Game, game_id).thumbnail_url is None


def test_size_permission_and_names_are_enforced(
    app, client, factory, token_for, catalog, monkeypatch
):
    monkeypatch.setitem(app.config, "GAME_IMAGE_MAX_BYTES", 1024)
    headers = token_for(factory.staff("admin"))
    assert _upload(client, headers, catalog["wolf"], jpeg_bytes()).status_code == 413
    support = token_for(factory.staff("support"))
    assert _upload(client, support, catalog["wolf"], png_bytes()).status_code == 403
    assert client.get("/media/games/..%2F..%2Fsecret.png").status_code == 404
    assert client.get("/media/games/kyc.png").status_code == 404
    assert client.get("/media/games/" + "a" * 32 + ".png").status_code == 404
