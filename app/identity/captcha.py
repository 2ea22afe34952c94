"""Registration captcha: random text drawn distorted by the ``captcha`` library, kept in Redis.

Invariants:
* The answer lives only server-side (Redis, ``CAPTCHA_TTL`` seconds); the client gets an id and
  an SVG whose only content is the rendered image, so the text is not in the markup.
* A challenge is spent by its first right answer (one registration per challenge) or by its
  ``MAX_TRIES``-th wrong one: a person who misreads one glyph types again, a guesser gets three
  tries out of 25^5 per challenge.
* Drawn for people: no look-alike glyphs, characters side by side (never overlapping), milder
  rotation and warp than the library's defaults.
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
WIDTH, HEIGHT = 200, 64
MAX_TRIES = 3


class _ReadableCaptcha(ImageCaptcha):
    #: The library shifts each glyph back into the previous one by up to 25 % of a glyph.
    word_offset_dx = 0.0
    #: ... and inserts a space before a glyph half the time (read as a character, and it
    #: pushes the last glyph off the image).
    word_space_probability = 1.0
    character_rotate = (-15, 15)
    character_warp_dx = (0.05, 0.15)
    character_warp_dy = (0.05, 0.15)


@dataclass(frozen=True)
class Challenge:
    id: str
    svg: str


def _svg(text: str) -> str:
    image = _ReadableCaptcha(width=WIDTH, height=HEIGHT, font_sizes=(40, 44)).generate(text)
    png = image.getvalue()
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
    """True iff ``answer`` solves a live challenge (which is then spent); a wrong answer
    leaves it for another try, up to ``MAX_TRIES`` in all."""
    if not challenge_id or not answer:
        return False
    client = redis_store.client()
    key, tries_key = PREFIX + challenge_id, PREFIX + "tries:" + challenge_id
    with client.pipeline() as pipe:
        pipe.incr(tries_key)
        pipe.expire(tries_key, current_app.config["CAPTCHA_TTL"])
        pipe.get(key)
        tries, _set, stored = pipe.execute()
    if stored is None or tries > MAX_TRIES:
        client.delete(key)
        return False
    expected = stored.decode() if isinstance(stored, bytes) else str(stored)
    if secrets.compare_digest(expected.upper(), answer.strip().upper()):
        # Spent by the first right answer: two racing registrations cannot both delete it.
        return bool(client.delete(key))
    if tries >= MAX_TRIES:
        client.delete(key)
    return False
