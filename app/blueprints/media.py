"""``GET /media/games/<name>``: game images staff uploaded (``app.play.media``); content
images; players' profile pictures (``app.identity.avatars``)."""

from __future__ import annotations

from flask import Blueprint, Response

from app.content import media as content_media
from app.identity import avatars
from app.play import media

bp = Blueprint("media", __name__)

_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@bp.get("/media/games/<name>")
def game_image(name: str):
    # The name is ours (random hex + the extension we chose from the decoded type); the file
    # changes name when replaced, so it may be cached for good.
    path = media.file_of(name)
    response = Response(path.read_bytes(), mimetype=_TYPES[name.rsplit(".", 1)[1]])
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    return response


@bp.get("/media/content/<name>")
def content_image(name: str):
    # Announcement and banner images (``app.content.media``): named and cached like game images.
    path = content_media.file_of(name)
    response = Response(path.read_bytes(), mimetype=_TYPES[name.rsplit(".", 1)[1]])
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    return response


@bp.get("/media/avatars/<name>")
def avatar(name: str):
    # Profile pictures: re-encoded PNGs under a random name that changes with the picture.
    path = avatars.file_of(name)
    response = Response(path.read_bytes(), mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
