"""Staff notes on player accounts.

Invariants: notes are append-only (no edit, no delete: what staff knew stays on record); each
note is written with its audit row (``players.note.add``) in one transaction; only players
carry notes; a note is 1 to 2,000 characters of text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.core import audit
from app.core.db import atomic
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.identity.models import PLAYER, PlayerNote, User

MAX_NOTE = 2000


def _player(player_id: int) -> User:
    user = db.session.get(User, player_id)
    if user is None or user.role_id != PLAYER:
        raise NotFound("Player not found")
    return user


def add_note(player_id: int, body: str | None, *, actor: User) -> PlayerNote:
    text = (body or "").strip()
    if not text:
        raise ValidationError.field("body", "Write the note")
    if len(text) > MAX_NOTE:
        raise ValidationError.field("body", f"Keep the note under {MAX_NOTE} characters")
    with atomic():
        player = _player(player_id)
        note = PlayerNote(user_id=player.id, author_id=actor.id, body=text)
        db.session.add(note)
        db.session.flush()
        audit.record(
            "players.note.add",
            actor=actor,
            target_type="user",
            target_id=player.id,
            after={"note_id": note.id, "body": text},
        )
    return note


def notes_of(player_id: int, *, page: int = 1, limit: int = 20) -> tuple[list[PlayerNote], int]:
    """Newest first, with the total."""
    _player(player_id)
    total = db.session.scalar(
        select(func.count(PlayerNote.id)).where(PlayerNote.user_id == player_id)
    )
    rows = db.session.scalars(
        select(PlayerNote)
        .where(PlayerNote.user_id == player_id)
        .order_by(PlayerNote.created_at.desc(), PlayerNote.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    ).all()
    return list(rows), int(total or 0)


def note_json(note: PlayerNote, authors: dict[int, str]) -> dict[str, Any]:
    return {
        "id": note.id,
        "user_id": note.user_id,
        "author_id": note.author_id,
        "author": authors.get(note.author_id),
        "body": note.body,
        "created_at": note.created_at.isoformat(),
    }


def authors_of(notes: list[PlayerNote]) -> dict[int, str]:
    ids = {n.author_id for n in notes}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
