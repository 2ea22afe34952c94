"""Game images uploaded by staff (thumbnail, banner), served from ``/media/games/<name>``.

Invariants:
* Validated like any untrusted upload (``core.uploads``): the type comes from the bytes and a
  decoder must agree (JPEG, PNG or WebP only, never SVG: it could carry script), the image is
  fully decoded, at most ``GAME_IMAGE_MAX_BYTES`` and 4096 px a side.
* Stored under ``UPLOAD_DIR/games`` with a random name we chose; the game's URL changes with
  the file, so caches never serve an old picture under a new one. The replaced file of ours is
  removed after the change committed. The change is the game update (audited ``game.update``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import current_app

from app.core import uploads
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.play import games
from app.play.models import Game

FOLDER = "games"
URL_PREFIX = "/media/games/"
KINDS = {"thumbnail": "thumbnail_url", "banner": "banner_url"}
MAX_SIDE = 4096
#: The names we give stored game images (a random hex name and our extension).
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|webp)$")


def set_image(game_id: int, kind: str, data: bytes, *, actor: Any) -> Game:
    if kind not in KINDS:
        raise ValidationError.field("kind", f"One of: {', '.join(KINDS)}")
    limit = int(current_app.config.get("GAME_IMAGE_MAX_BYTES", 2 * 1024 * 1024))
    checked = uploads.inspect(data, allowed=uploads.IMAGE_TYPES, limit=limit)
    if (checked.width or 0) > MAX_SIDE or (checked.height or 0) > MAX_SIDE:
        raise ValidationError.field("file", f"At most {MAX_SIDE} pixels a side")
    stored = uploads.store(checked, FOLDER)
    url = URL_PREFIX + stored.rsplit("/", 1)[1]
    try:
        before = _current(game_id, KINDS[kind])
        game = games.update_game(game_id, {KINDS[kind]: url}, actor=actor)
    except Exception:
        uploads.remove(stored)
        raise
    if before and before.startswith(URL_PREFIX) and NAME.match(before[len(URL_PREFIX) :]):
        uploads.remove(f"{FOLDER}/{before[len(URL_PREFIX) :]}")
    return game


def _current(game_id: int, column: str) -> str | None:
    game = db.session.get(Game, game_id)
    if game is None:
        raise NotFound("No such game")
    return getattr(game, column)


def file_of(name: str) -> Path:
    """The stored image called ``name`` (404 for any other name or a missing file)."""
    if not NAME.match(name):
        raise NotFound("No such image")
    path = uploads.path_of(f"{FOLDER}/{name}")
    if not path.is_file():
        raise NotFound("No such image")
    return path
