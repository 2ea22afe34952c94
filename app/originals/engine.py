"""Provably fair outcomes: HMAC-SHA256(server_seed, "client_seed:nonce") turned into game results.

Invariants (what a player or a test lab can check with nothing but the published rules):
* The server seed is 32 random bytes from ``secrets`` written as 64 hex characters; before any
  round uses it, only ``sha256(server_seed)`` (hex of the seed's ASCII text) is shown.
* Round ``nonce`` of a seed pair uses the byte stream
  ``HMAC-SHA256(key=server_seed, msg=f"{client_seed}:{nonce}")`` followed, only if more bytes are
  needed, by ``HMAC-SHA256(server_seed, f"{client_seed}:{nonce}:{i}")`` for i = 1, 2, ...
* The stream is read as big-endian unsigned 32-bit words. A uniform integer in ``[0, n)`` takes
  the next word ``w`` and answers ``w % n`` unless ``w`` falls in the incomplete last bucket
  (``w >= 2**32 - 2**32 % n``), in which case the word is skipped: no modulo bias.
* Everything here is pure: same inputs, same outcome, on any machine.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator

WORD_BYTES = 4
_WORD_SPACE = 2**32


def new_server_seed() -> str:
    return secrets.token_hex(32)


def new_client_seed() -> str:
    return secrets.token_hex(8)


def seed_hash(server_seed: str) -> str:
    """The commitment shown before play: hex SHA-256 of the seed's text."""
    return hashlib.sha256(server_seed.encode("utf-8")).hexdigest()


def round_digest(server_seed: str, client_seed: str, nonce: int, cursor: int = 0) -> bytes:
    """Block ``cursor`` of a round's byte stream (block 0 is the published formula)."""
    message = f"{client_seed}:{nonce}" if cursor == 0 else f"{client_seed}:{nonce}:{cursor}"
    return hmac.new(server_seed.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()


def words(server_seed: str, client_seed: str, nonce: int) -> Iterator[int]:
    """The round's endless stream of 32-bit words."""
    cursor = 0
    while True:
        block = round_digest(server_seed, client_seed, nonce, cursor)
        for i in range(0, len(block), WORD_BYTES):
            yield int.from_bytes(block[i : i + WORD_BYTES], "big")
        cursor += 1


def uniform(stream: Iterator[int], n: int) -> int:
    """An unbiased integer in ``[0, n)`` drawn from ``stream`` by rejection."""
    if not 0 < n <= _WORD_SPACE:
        raise ValueError("n must be in 1..2**32")
    limit = _WORD_SPACE - _WORD_SPACE % n
    for word in stream:
        if word < limit:
            return word % n
    raise RuntimeError("the word stream ended")  # pragma: no cover - the stream is endless


class RoundRandom:
    """The random draws of one round, in the order the game asks for them."""

    def __init__(self, server_seed: str, client_seed: str, nonce: int) -> None:
        if nonce < 0:
            raise ValueError("nonce must not be negative")
        self.hex = round_digest(server_seed, client_seed, nonce).hex()
        self._stream = words(server_seed, client_seed, nonce)

    def integer(self, n: int) -> int:
        return uniform(self._stream, n)
