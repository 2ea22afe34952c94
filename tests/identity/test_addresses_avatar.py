"""Profile (issue 17): several postal addresses with one default, and a profile picture that is
validated, re-encoded without metadata, served from /media/avatars/, exported and erased."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from PIL import Image

from app.core import uploads
from app.core.extensions import db
from app.identity import avatars, gdpr
from app.identity.models import User, UserAddress
from tests.payments_helpers import elf_bytes, jpeg_bytes, png_bytes

HOME = {"label": "Home", "line1": "1 Main Street", "city": "Valletta", "country": "mt"}
WORK = {"line1": "2 Office Road", "city": "Berlin", "postal_code": "10115", "country": "DE"}


def add(client, headers, body):
    return client.post("/api/user/addresses", headers=headers, json=body)


def listed(client, headers):
    return client.get("/api/user/addresses", headers=headers).json["data"]


def test_addresses_keep_one_default(client, factory, token_for):
    headers = token_for(factory.player())
    first = add(client, headers, HOME)
    assert first.status_code == 201, first.json
    assert first.json["data"]["is_default"] is True
    assert first.json["data"]["country"] == "MT"
    second = add(client, headers, WORK).json["data"]
    assert second["is_default"] is False
    made = client.put(
        f"/api/user/addresses/{second['id']}", headers=headers, json={"is_default": True}
    )
    assert made.status_code == 200, made.json
    rows = listed(client, headers)
    assert [(r["id"], r["is_default"]) for r in rows] == [
        (second["id"], True),
        (first.json["data"]["id"], False),
    ]
    changed = client.put(
        f"/api/user/addresses/{first.json['data']['id']}", headers=headers, json={"city": "Mdina"}
    )
    assert changed.json["data"]["city"] == "Mdina"
    assert changed.json["data"]["is_default"] is False
    # Deleting the default promotes the remaining one.
    assert client.delete(f"/api/user/addresses/{second['id']}", headers=headers).status_code == 204
    assert [(r["city"], r["is_default"]) for r in listed(client, headers)] == [("Mdina", True)]


def test_a_player_cannot_reach_another_players_address(client, factory, token_for):
    owner = token_for(factory.player())
    row = add(client, owner, HOME).json["data"]
    other = token_for(factory.player())
    url = f"/api/user/addresses/{row['id']}"
    assert client.put(url, headers=other, json={"city": "Rome"}).status_code == 404
    assert client.delete(url, headers=other).status_code == 404
    assert listed(client, other) == []
    assert listed(client, owner)[0]["city"] == "Valletta"


@pytest.mark.parametrize(
    "body",
    [
        {**HOME, "country": "XX"},
        {**HOME, "country": "M"},
        {**HOME, "country": "\x00\x00"},
        {**HOME, "line1": ""},
        {**HOME, "line1": "   "},
        {**HOME, "line1": "a\x00b"},
        {**HOME, "city": "x" * 101},
        {"line1": "1 Main Street", "country": "MT"},
        {**HOME, "line1": 5},
    ],
)
def test_bad_addresses_are_refused(client, factory, token_for, body):
    headers = token_for(factory.player())
    answer = add(client, headers, body)
    assert answer.status_code in (400, 422), answer.json
    assert listed(client, headers) == []


def test_at_most_ten_addresses(client, factory, token_for):
    headers = token_for(factory.player())
    for n in range(10):
        assert add(client, headers, {**WORK, "line1": f"{n} Road"}).status_code == 201
    assert add(client, headers, WORK).status_code == 409


def exif_jpeg() -> bytes:
    img = Image.effect_noise((800, 600), 64).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0131] = "secret-software"  # Software
    exif[0x8825] = {2: (35.0, 54.0, 0.0)}  # GPS IFD: a latitude
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, comment=b"my home")
    return buf.getvalue()


def upload(client, headers, data: bytes, name: str = "me.jpg"):
    return client.put(
        "/api/user/avatar",
        headers=headers,
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_the_avatar_is_reencoded_without_metadata_and_served(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    original = exif_jpeg()
    assert b"SpyCam" in original
    answer = upload(client, headers, original)
    assert answer.status_code == 200, answer.json
    url = answer.json["data"]["avatar_url"]
    assert url.startswith("/media/avatars/")
    assert url.endswith(".png")
    served = client.get(url)
    assert served.status_code == 200
    assert served.mimetype == "image/png"
    body = served.get_data()
    assert b"SpyCam" not in body
    assert b"secret-software" not in body
    assert b"my home" not in body
    with Image.open(io.BytesIO(body)) as img:
        assert img.format == "PNG"
        assert max(img.size) == 512
        assert not img.getexif()
        assert "exif" not in img.info
        assert "icc_profile" not in img.info
    # Replacing it removes the old file once committed.
    old = avatars.file_of(url.rsplit("/", 1)[1])
    again = upload(client, headers, png_bytes((64, 48))).json["data"]["avatar_url"]
    assert again != url
    assert not old.exists()
    assert client.get(url).status_code == 404
    assert client.delete("/api/user/avatar", headers=headers).status_code == 200
    assert client.get(again).status_code == 404
    assert client.delete("/api/user/avatar", headers=headers).status_code == 404


@pytest.mark.parametrize(
    "data",
    [
        elf_bytes(),
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        png_bytes()[:40],
        b"",
        b"\x00" * 100,
    ],
)
def test_bad_pictures_are_refused_and_change_nothing(client, factory, token_for, data):
    player = factory.player()
    headers = token_for(player)
    answer = upload(client, headers, data)
    assert answer.status_code in (400, 413, 415, 422), answer.json
    db.session.expire_all()
    assert db.session.get(User, player.id).avatar_url is None


def test_too_large_or_too_wide_pictures_are_refused(app, client, factory, token_for):
    headers = token_for(factory.player())
    app.config["AVATAR_MAX_BYTES"] = 20_000
    try:
        assert upload(client, headers, jpeg_bytes((800, 600))).status_code == 413
    finally:
        app.config.pop("AVATAR_MAX_BYTES")
    assert upload(client, headers, png_bytes((4097, 10))).status_code == 400
    assert upload(client, headers, b"no file", name="").status_code in (400, 415, 422)
    missing = client.put(
        "/api/user/avatar", headers=headers, data={}, content_type="multipart/form-data"
    )
    assert missing.status_code == 400
    assert missing.json["errors"][0]["field"] == "file"


def test_media_names_are_ours_only(client):
    for name in ("../../etc/passwd", "x.png", "a" * 32 + ".svg", "%2e%2e%2fsecret"):
        assert client.get(f"/media/avatars/{name}").status_code == 404


def test_export_holds_addresses_and_erasure_wipes_them_and_the_picture(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    add(client, headers, HOME)
    url = upload(client, headers, jpeg_bytes()).json["data"]["avatar_url"]
    exported = client.get("/api/user/data-export", headers=headers).json["data"]
    assert [r["city"] for r in exported["tables"]["user_addresses"]] == ["Valletta"]
    assert exported["tables"]["users"][0]["avatar_url"] == url
    stored = uploads.path_of(f"avatars/{url.rsplit('/', 1)[1]}")
    assert stored.exists()
    request = client.post("/api/user/erasure-request", json={}, headers=headers).json["data"]
    admin = token_for(factory.staff("admin"))
    done = client.post(
        f"/api/admin/erasure-requests/{request['id']}/approve", json={}, headers=admin
    )
    assert done.status_code == 200, done.json
    db.session.expire_all()
    assert db.session.get(User, player.id).avatar_url is None
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(UserAddress)
            .where(UserAddress.user_id == player.id)
        )
        == 0
    )
    assert not stored.exists()
    assert client.get(url).status_code == 404
    assert "user_addresses" in gdpr.EXPORTED
