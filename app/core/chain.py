"""The keys of the audit chain and the ledger MACs, and the signed checkpoints that anchor
both outside the database (docs/security.md, "The keyed, anchored chain").

Invariants:
* Every MAC is HMAC-SHA256 with ``AUDIT_CHAIN_KEY``, a key the database never holds: whoever
  can write the database but not read the application's environment cannot produce a row
  that verifies. Each MAC names its key by ``key_id`` (12 hex of a hash of the key), so
  rotation keeps old rows verifiable (``AUDIT_CHAIN_PREVIOUS_KEYS``).
* A checkpoint is a JSON file in ``AUDIT_CHECKPOINT_DIR`` (count, last id and head hash of
  each chain, the time), signed with the same key; written to a temporary name and renamed,
  so a reader never sees half a file. A file whose signature fails is an error, never
  skipped: the newest checkpoint is the one verification trusts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app

from app.core.base import utcnow

CHECKPOINT_VERSION = 1
_PREFIX = "jx-checkpoint-"


def key_id(key: str) -> str:
    """A short public name of a key (never the key): which key signed a row."""
    return hashlib.sha256(b"jackpotx chain key id\x00" + key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Keyring:
    current_id: str
    keys: dict[str, bytes]

    def mac(self, message: str, kid: str | None = None) -> str:
        return hmac.new(self.keys[kid or self.current_id], message.encode(), "sha256").hexdigest()

    def matches(self, kid: str, message: str, digest: str) -> bool | None:
        """True/False: the MAC checks out or not; None: ``kid`` is no key we know."""
        if kid not in self.keys:
            return None
        return hmac.compare_digest(self.mac(message, kid), digest)


def keyring() -> Keyring:
    """The configured keys (cached per configuration)."""
    cfg = current_app.config
    raw = (cfg["AUDIT_CHAIN_KEY"], tuple(cfg.get("AUDIT_CHAIN_PREVIOUS_KEYS") or ()))
    cache: dict[Any, Keyring] = current_app.extensions.setdefault("jx_chain_keyring", {})
    ring = cache.get(raw)
    if ring is None:
        keys = {key_id(k): k.encode() for k in raw[1]}
        keys[key_id(raw[0])] = raw[0].encode()
        ring = cache[raw] = Keyring(key_id(raw[0]), keys)
    return ring


# --- checkpoints ----------------------------------------------------------------------------


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be trusted (bad signature, unknown key, unreadable)."""


def _directory() -> Path:
    return Path(current_app.config["AUDIT_CHECKPOINT_DIR"])


def _signed_text(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def write_checkpoint(sections: dict[str, Any]) -> Path:
    """Sign ``sections`` (each chain's count/head) with the current key and write the file."""
    ring = keyring()
    now = utcnow()
    body = {
        "version": CHECKPOINT_VERSION,
        "created_at": now.isoformat(),
        "key_id": ring.current_id,
        **sections,
    }
    signed = {**body, "signature": ring.mac(_signed_text(body))}
    directory = _directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(signed, sort_keys=True, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint whose signature checks out, or :class:`CheckpointError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        signature = data.pop("signature")
        kid = data["key_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path.name}: unreadable ({type(exc).__name__})") from None
    verdict = keyring().matches(kid, _signed_text(data), str(signature))
    if verdict is None:
        raise CheckpointError(f"{path.name}: signed with unknown key {kid}")
    if not verdict:
        raise CheckpointError(f"{path.name}: signature does not match (file altered)")
    data["file"] = path.name
    return data


def checkpoint_files() -> list[Path]:
    directory = _directory()
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{_PREFIX}*.json"))


def latest_checkpoint() -> dict[str, Any] | None:
    """The newest checkpoint (signature checked), or None when there is none yet."""
    files = checkpoint_files()
    return read_checkpoint(files[-1]) if files else None
