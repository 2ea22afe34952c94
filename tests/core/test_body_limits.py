"""Request body limits per route (issue 21): a route may say how large its body may be
(``app.core.security.body_limit``); profile edits get a small one and ``preferences`` is
bounded by its schema, the KYC upload a large one; every other route keeps the default."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from app.blueprints.api.identity_common import PROFILE_MAX_BODY_BYTES


def _noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((side, side), 80).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("path", ["/api/user/profile", "/api/user/profile/update"])
def test_five_mib_of_preferences_is_a_413_and_changes_nothing(client, factory, token_for, path):
    player = factory.player()
    headers = token_for(player)
    body = json.dumps({"preferences": {"blob": "x" * (5 * 1024 * 1024)}})
    response = client.put(path, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 413
    assert response.get_json()["code"] == "PAYLOAD_TOO_LARGE"
    # Just over the route's limit is refused too (the API default would take 256 KiB).
    over = json.dumps({"preferences": {"blob": "x" * PROFILE_MAX_BODY_BYTES}})
    response = client.put(path, data=over, content_type="application/json", headers=headers)
    assert response.status_code == 413
    me = client.get("/api/user/profile", headers=headers).get_json()["data"]
    assert not (me.get("preferences") or {}).get("blob")


@pytest.mark.parametrize(
    ("preferences", "words"),
    [
        ({"blob": "x" * 5000}, "bytes of preferences"),
        ({f"k{i}": i for i in range(101)}, "keys"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "levels of nesting"),
        ({"a": [[[[1]]]]}, "levels of nesting"),
        ({"k" * 65: 1}, "characters"),
    ],
    ids=["size", "keys", "depth", "depth-lists", "key-length"],
)
def test_preferences_are_bounded_by_their_schema(client, factory, token_for, preferences, words):
    player = factory.player()
    response = client.put(
        "/api/user/profile", json={"preferences": preferences}, headers=token_for(player)
    )
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["errors"][0]
    assert error["field"].startswith("preferences")
    assert words in error["message"]


def test_ordinary_preferences_and_profile_edits_still_work(client, factory, token_for):
    player = factory.player()
    prefs = {"theme": "dark", "notifications": {"email": True, "sms": False}, "fav": [1, 2, 3]}
    response = client.put(
        "/api/user/profile",
        json={"preferences": prefs, "city": "Valletta"},
        headers=token_for(player),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["preferences"] == prefs


def test_a_json_kyc_upload_keeps_its_larger_limit(app, client, factory, token_for):
    # A 1 MiB scan as base64 JSON is above the API's JSON default (256 KiB): still accepted.
    png = _noise_png(620)
    assert len(png) > app.config["API_MAX_JSON_BYTES"]
    encoded = base64.b64encode(png).decode()
    response = client.post(
        "/api/kyc/upload",
        headers=token_for(factory.player()),
        json={"type": "selfie", "file": encoded, "filename": "me.png"},
    )
    assert response.status_code == 201, response.get_json()


def test_the_kyc_upload_limit_follows_the_file_limit(app, client, factory, token_for, monkeypatch):
    monkeypatch.setitem(app.config, "KYC_MAX_FILE_BYTES", 64 * 1024)
    body = json.dumps({"type": "selfie", "file": "A" * (200 * 1024)})
    response = client.post(
        "/api/kyc/upload",
        data=body,
        content_type="application/json",
        headers=token_for(factory.player()),
    )
    assert response.status_code == 413


def test_other_routes_keep_the_api_default(app, client):
    limit = app.config["API_MAX_JSON_BYTES"]
    small_enough = json.dumps({"username": "a" * (PROFILE_MAX_BODY_BYTES * 2), "password": "x"})
    assert client.post(
        "/api/auth/login", data=small_enough, content_type="application/json"
    ).status_code in (400, 401)
    too_big = '{"username": "' + "a" * limit + '"}'
    response = client.post("/api/auth/login", data=too_big, content_type="application/json")
    assert response.status_code == 413
