"""Images of announcements and banners, served from ``/media/content/<name>``.

Invariants: validated like every untrusted upload (``core.uploads``: type from the bytes and a
decoder agreeing, JPEG/PNG/WebP only, never SVG, fully decoded, at most
``CONTENT_IMAGE_MAX_BYTES`` and 4096 px a side); stored under ``UPLOAD_DIR/content`` with a
random name; the replaced file is removed once the change committed (audited
``content.image``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import current_app

from app.content.editing import get_item
from app.content.models import ContentItem
from app.core import audit, uploads
from app.core.db import atomic, on_commit
from app.core.errors import NotFound, ValidationError

FOLDER = "content"
URL_PREFIX = "/media/content/"
MAX_SIDE = 4096
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|webp)$")


def max_bytes() -> int:
    return int(current_app.config["CONTENT_IMAGE_MAX_BYTES"])


def set_image(item_id: int, data: bytes, *, actor: Any) -> ContentItem:
    with atomic():
        item = get_item(item_id)  # 404 before the file is looked at or stored
        if item.kind not in ("announcement", "banner"):
            raise ValidationError.field("file", "Only announcements and banners have an image")
    checked = uploads.inspect(data, allowed=uploads.IMAGE_TYPES, limit=max_bytes())
    if (checked.width or 0) > MAX_SIDE or (checked.height or 0) > MAX_SIDE:
        raise ValidationError.field("file", f"At most {MAX_SIDE} pixels a side")
    stored = uploads.store(checked, FOLDER)
    url = URL_PREFIX + stored.rsplit("/", 1)[1]
    try:
        with atomic():
            item = get_item(item_id)
            before = item.image_url
            item.image_url = url
            audit.record(
                "content.image",
                actor=actor,
                target_type="content_item",
                target_id=item.id,
                before={"image_url": before},
                after={"image_url": url, "sha256": checked.sha256},
            )
            if before and before.startswith(URL_PREFIX) and NAME.match(before[len(URL_PREFIX) :]):
                old = f"{FOLDER}/{before[len(URL_PREFIX) :]}"
                on_commit(lambda: uploads.remove(old))
    except Exception:
        uploads.remove(stored)
        raise
    return item


def file_of(name: str) -> Path:
    if not NAME.match(name):
        raise NotFound("No such image")
    path = uploads.path_of(f"{FOLDER}/{name}")
    if not path.is_file():
        raise NotFound("No such image")
    return path
