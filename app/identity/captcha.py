"""Registration captcha: random text drawn distorted by the ``captcha`` library, kept in Redis.

Invariants:
* The answer lives only server-side (Redis, ``CAPTCHA_TTL`` seconds); the client gets an id and
  an SVG whose only content is the rendered image, so the text is not in the markup.
* A challenge is spent by the first attempt, right or wrong (``GETDEL``): no guessing twice.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from captcha.image import ImageCaptcha
from flask import current_app

from app.core.extensions import redis_store

PREFIX = "jx:captcha:"
#: No look-alikes (0/O, 1/I/L, 5/S, 2/Z, 8/B).
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
LENGTH = 5
WIDTH, HEIGHT = 180, 60


@dataclass(frozen=True)
class Challenge:
    id: str
    svg: str


def _svg(text: str) -> str:
    png = ImageCaptcha(width=WIDTH, height=HEIGHT).generate(text).getvalue()
    data = base64.b64encode(png).decode()
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="captcha">'
        f'<image width="{WIDTH}" height="{HEIGHT}" href="data:image/png;base64,{data}"/></svg>'
    )


def new_challenge() -> Challenge:
    text = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    challenge_id = "captcha_" + secrets.token_urlsafe(16)
    redis_store.client().set(PREFIX + challenge_id, text, ex=current_app.config["CAPTCHA_TTL"])
    return Challenge(id=challenge_id, svg=_svg(text))


def check(challenge_id: str | None, answer: str | None) -> bool:
    """True iff ``answer`` solves a live challenge; the challenge is gone afterwards either way."""
    if not challenge_id or not answer:
        return False
    stored = redis_store.client().getdel(PREFIX + challenge_id)
    if stored is None:
        return False
    expected = stored.decode() if isinstance(stored, bytes) else str(stored)
    return secrets.compare_digest(expected.upper(), answer.strip().upper())
