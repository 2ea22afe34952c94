"""The player's profile picture: ``PUT /api/user/avatar``, served from ``/media/avatars/<name>``.

Invariants:
* Validated like any untrusted upload (``core.uploads.inspect``: type from the bytes, a decoder
  must agree, JPEG/PNG/WebP only, fully decoded, pixel budget), at most ``AVATAR_MAX_BYTES``
  and ``MAX_SIDE`` pixels a side.
* Re-encoded with Pillow before it is stored: the pixels only (EXIF orientation applied, then
  every metadata block dropped: GPS position, camera serial, comments, ICC), scaled down to
  ``STORED_SIDE`` and saved as PNG under a random name. What the player sent is never served.
* The URL changes with the file; the replaced file is removed after the change committed, and
  erasure removes the current one (``gdpr`` pseudonymisation clears ``avatar_url``).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

from flask import current_app
from PIL import Image, ImageOps

from app.core import audit, uploads
from app.core.db import atomic, lock_existing, on_commit
from app.core.errors import NotFound, ValidationError
from app.identity.models import User

FOLDER = "avatars"
URL_PREFIX = "/media/avatars/"
MAX_SIDE = 4096
STORED_SIDE = 512
#: The names we give stored avatars (a random hex name and our extension).
NAME = re.compile(r"^[0-9a-f]{32}\.png$")


def max_bytes() -> int:
    return int(current_app.config.get("AVATAR_MAX_BYTES", 2 * 1024 * 1024))


def reencode(data: bytes) -> uploads.CheckedFile:
    """Check ``data`` and return a clean PNG of its pixels (no metadata), at most
    ``STORED_SIDE`` a side."""
    checked = uploads.inspect(data, allowed=uploads.IMAGE_TYPES, limit=max_bytes())
    if (checked.width or 0) > MAX_SIDE or (checked.height or 0) > MAX_SIDE:
        raise ValidationError.field("file", f"At most {MAX_SIDE} pixels a side")
    with Image.open(io.BytesIO(checked.data)) as img:
        upright = ImageOps.exif_transpose(img)
        mode = "RGBA" if "A" in upright.getbands() or "transparency" in img.info else "RGB"
        pixels = upright.convert(mode)
    pixels.thumbnail((STORED_SIDE, STORED_SIDE))
    # A fresh image carries no info dict: nothing of the original's metadata is copied.
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=True)
    body = out.getvalue()
    return uploads.CheckedFile(
        data=body,
        mime_type="image/png",
        extension="png",
        sha256=hashlib.sha256(body).hexdigest(),
        width=clean.width,
        height=clean.height,
    )


def _ours(url: str | None) -> str | None:
    if url and url.startswith(URL_PREFIX) and NAME.match(url[len(URL_PREFIX) :]):
        return f"{FOLDER}/{url[len(URL_PREFIX) :]}"
    return None


def forget_file(url: str | None) -> None:
    """Remove the stored file behind ``url`` once the caller's transaction commits."""
    stored = _ours(url)
    if stored is not None:
        on_commit(lambda: uploads.remove(stored))


def set_avatar(user: User, data: bytes, *, actor: Any = None) -> User:
    clean = reencode(data)
    stored = uploads.store(clean, FOLDER)
    try:
        with atomic():
            user = lock_existing(User, User.id == user.id)
            before = user.avatar_url
            user.avatar_url = URL_PREFIX + stored.rsplit("/", 1)[1]
            forget_file(before)
            audit.record(
                "user.avatar.set",
                actor=actor or user,
                target_type="user",
                target_id=user.id,
                before={"avatar_url": before},
                after={"avatar_url": user.avatar_url, "sha256": clean.sha256},
            )
    except Exception:
        uploads.remove(stored)
        raise
    return user


def remove_avatar(user: User, *, actor: Any = None) -> User:
    with atomic():
        user = lock_existing(User, User.id == user.id)
        before = user.avatar_url
        if before is None:
            raise NotFound("There is no profile picture")
        user.avatar_url = None
        forget_file(before)
        audit.record(
            "user.avatar.remove",
            actor=actor or user,
            target_type="user",
            target_id=user.id,
            before={"avatar_url": before},
        )
    return user


def file_of(name: str) -> Path:
    """The stored avatar called ``name`` (404 for any other name or a missing file)."""
    if not NAME.match(name):
        raise NotFound("No such image")
    path = uploads.path_of(f"{FOLDER}/{name}")
    if not path.is_file():
        raise NotFound("No such image")
    return path
