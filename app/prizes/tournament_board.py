"""Live tournament leaderboards: a Redis sorted set per tournament, PostgreSQL is the truth.

Invariants:
* Redis is only a copy of ``tournament_participants``. It is written after the score's
  transaction commits (``on_commit``) with the **absolute** values read in that transaction
  (``UPDATE ... RETURNING``), never with an increment, so a replayed or late write cannot drift.
* Each participant's entry carries a version that every score update strictly increases:
  ``(bets, won, -wagered)`` — a bet adds one to ``bets``, a win adds a positive amount to
  ``won``, and a refund/rollback of a bet (the only other update) takes a positive amount off
  ``wagered``. A write applies only when it is newer than the stored entry (optimistic
  ``WATCH``/``MULTI`` on the participant's key), so out-of-order writes keep the newest.
  A new kind of score update must keep this property (``test_board_versions_only_grow``).
* Order = ``ordering()`` exactly: score descending, then ``score_at`` ascending,
  then participant id ascending. The sorted-set score is the participant's score (minor units,
  or the multiplier times 10 000), exact as a double while ``|score| <= 2**53``; the member is
  ``complement(score_at in µs, 17 digits) + complement(participant id, 19 digits) + ":" + user id``.
  ``ZREVRANGE`` orders equal scores by member bytes descending, i.e. ``score_at`` ascending,
  then id ascending. The user id suffix never decides (the id part is unique).
* A board is served from Redis only while the sorted set holds the sentinel member ``!ready``
  (score ``-inf``, below every real entry, so ranks are unaffected), added by a full rebuild
  from PostgreSQL under a short lock (``SET NX PX``, fenced by its token). Readiness lives in
  the same key as the data, so they vanish together: a missing board (Redis restarted,
  flushed, expired) triggers a rebuild. A score beyond ``2**53`` adds ``!pg`` and the board is
  answered from PostgreSQL; any Redis error answers from PostgreSQL.
* A mirror write that fails (Redis unreachable) removes ``!ready``; if that fails too, the
  process remembers the tournament and removes ``!ready`` before its next Redis use (read or
  write), and ``refresh_running()`` (job, every 60 s) re-applies PostgreSQL's rows to every
  ready board (versioned, so it writes only what Redis missed). A write lost while Redis was
  unreachable is therefore served by no reader of that process and by no one at all once the
  job has run after Redis came back.
* Per-participant keys (``:u:<user id>``: version, score, member) expire at the same instant
  as the set (``EXPIREAT ends_at + 1 day``, rewritten for every participant by a rebuild);
  Redis must not evict keys on its own (``maxmemory-policy noeviction``, which RQ needs too).
  A reader seeing one player twice treats the board as damaged and rebuilds it.
* Only upcoming and running tournaments are read from Redis; settlement, cancellation,
  deletion and staff edits (a new end moves the expiry) drop the board.
* Keys share the hash tag ``{<tournament id>}`` (one cluster slot per board).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError, WatchError
from sqlalchemy import func, or_, select

from app.core.base import utcnow
from app.core.extensions import db, redis_store
from app.prizes.models import Tournament, TournamentParticipant

log = logging.getLogger(__name__)

#: Largest |score| a double holds exactly (every integer up to 2**53 is representable).
MAX_EXACT_SCORE = 2**53
_T_WIDTH, _ID_WIDTH = 17, 19
_T_MAX, _ID_MAX = 10**_T_WIDTH - 1, 10**_ID_WIDTH - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Keys outlive the tournament by this much (reads switch to PostgreSQL at ``ends_at``).
GRACE = timedelta(days=1)
LOCK_MS = 10_000
BATCH = 500
#: Sentinel members (score -inf; a real member starts with a digit).
READY, PG_ONLY = "!ready", "!pg"
SENTINELS = {READY.encode(), PG_ONLY.encode()}


@dataclass(frozen=True, slots=True)
class Entry:
    """One participant's score state as committed in PostgreSQL."""

    participant_id: int
    user_id: int
    score: int
    score_at: datetime
    bets: int
    won: int
    wagered: int

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.bets, self.won, -self.wagered)

    @property
    def member(self) -> str:
        micros = (self.score_at - _EPOCH) // timedelta(microseconds=1)
        if not 0 <= micros <= _T_MAX or not 0 < self.participant_id <= _ID_MAX:
            raise ValueError("score_at or participant id outside the board's encoding")
        return (
            f"{_T_MAX - micros:0{_T_WIDTH}d}{_ID_MAX - self.participant_id:0{_ID_WIDTH}d}"
            f":{self.user_id}"
        )

    def stored(self) -> str:
        return f"{self.bets}:{self.won}:{self.wagered}|{self.score}|{self.member}"


@dataclass(frozen=True, slots=True)
class Stored:
    version: tuple[int, int, int]
    score: int
    member: str

    @classmethod
    def parse(cls, raw: bytes | str) -> Stored:
        text = raw.decode() if isinstance(raw, bytes) else raw
        version, score, member = text.split("|")
        bets, won, wagered = (int(x) for x in version.split(":"))
        return cls((bets, won, -wagered), int(score), member)


@dataclass(frozen=True, slots=True)
class Board:
    """``top``: (user id, score) best first; ``me``: (rank, score) of the caller, if ranked."""

    top: list[tuple[int, int]]
    me: tuple[int, int] | None
    source: str


def user_of(member: bytes | str) -> int:
    text = member.decode() if isinstance(member, bytes) else member
    return int(text.rsplit(":", 1)[1])


def entry_of(row: Any) -> Entry:
    return Entry(
        row.id, row.user_id, row.score, row.score_at, row.bets or 0, row.won or 0, row.wagered or 0
    )


def _key(tid: int, suffix: str = "") -> str:
    return f"jx:tboard:{{{tid}}}{suffix}"


def _user_key(tid: int, user_id: int) -> str:
    return _key(tid, f":u:{user_id}")


def _expire_at(ends_at: datetime) -> int:
    return int((ends_at + GRACE).timestamp())


# --------------------------------------------------------------------------- writes


#: Boards this process failed to write and could not mark unready (Redis unreachable).
_dirty: set[int] = set()


def _mark_dirty_boards(redis: Any) -> None:
    for tid in list(_dirty):
        redis.zrem(_key(tid), READY)
        _dirty.discard(tid)


def mirror(tournament_id: int, ends_at: datetime, entries: Sequence[Entry]) -> None:
    """After commit: copy the participants' committed scores into the board (newest wins)."""
    redis = redis_store.client()
    try:
        _mark_dirty_boards(redis)
        _upsert(redis, tournament_id, _expire_at(ends_at), entries)
    except RedisError:
        log.warning("tournament board %s: mirror write failed", tournament_id, exc_info=True)
        try:
            redis.zrem(_key(tournament_id), READY)
        except RedisError:
            _dirty.add(tournament_id)


def refresh_running() -> int:
    """Job: re-apply PostgreSQL's rows to the ready board of every running tournament (only
    what Redis missed is written); returns how many boards were checked."""
    redis = redis_store.client()
    now = utcnow()
    running = db.session.execute(
        select(Tournament.id, Tournament.ends_at).where(
            Tournament.status == "scheduled", Tournament.ends_at > now
        )
    ).all()
    checked = 0
    _mark_dirty_boards(redis)
    for tid, ends_at in running:
        if redis.zscore(_key(tid), READY) is None:
            continue  # not built (or being rebuilt): the next read builds it from PostgreSQL
        entries = _entries(tid)
        _upsert(redis, tid, _expire_at(ends_at), entries)
        checked += 1
        # One member per participant plus the sentinel, unless a per-player key was lost and
        # left an orphan member (or someone enrolled meanwhile): then rebuild from scratch.
        if redis.zcard(_key(tid)) != len(entries) + 1 and redis.zscore(_key(tid), PG_ONLY) is None:
            drop(tid)
    return checked


def _entries(tournament_id: int) -> list[Entry]:
    p = TournamentParticipant
    rows = db.session.execute(
        select(p.id, p.user_id, p.score, p.score_at, p.bets, p.won, p.wagered).where(
            p.tournament_id == tournament_id
        )
    ).all()
    return [entry_of(row) for row in rows]


def _upsert(
    redis: Any, tid: int, expire_at: int, entries: Sequence[Entry], refresh: bool = False
) -> None:
    """Write each entry unless the stored one is at least as new and on the board
    (``refresh``: rewrite the newer of the two anyway, with the new expiry)."""
    zkey = _key(tid)
    for start in range(0, len(entries), BATCH):
        batch = entries[start : start + BATCH]
        ukeys = [_user_key(tid, e.user_id) for e in batch]
        with redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*ukeys)
                    raw = pipe.mget(ukeys)
                    stored = [None if r is None else Stored.parse(r) for r in raw]
                    present = pipe.zmscore(zkey, [s.member if s else "-" for s in stored])
                    pipe.multi()
                    oversized = False
                    for entry, ukey, old, old_raw, on_board in zip(
                        batch, ukeys, stored, raw, present, strict=True
                    ):
                        if old is not None and old.version >= entry.version:
                            if on_board is not None and not refresh:
                                continue  # already newer or equal: a replay or a late write
                            # Keep the newer stored entry (and put it back if the board lost it).
                            best_member, best_score, value = old.member, old.score, old_raw
                        else:
                            best_member, best_score = entry.member, entry.score
                            value = entry.stored()
                        if old is not None and old.member != best_member:
                            pipe.zrem(zkey, old.member)
                        if abs(best_score) > MAX_EXACT_SCORE:
                            oversized = True
                            pipe.zrem(zkey, best_member)
                        else:
                            pipe.zadd(zkey, {best_member: best_score})
                        pipe.set(ukey, value, exat=expire_at)
                    if oversized:
                        pipe.zadd(zkey, {PG_ONLY: float("-inf")})
                    pipe.expireat(zkey, expire_at)
                    pipe.execute()
                    break
                except WatchError:
                    continue


def drop(tournament_id: int) -> None:
    """After commit of a settlement, cancellation, deletion or edit: forget the board."""
    try:
        redis_store.client().delete(_key(tournament_id))
    except RedisError:
        log.warning("tournament board %s: drop failed", tournament_id, exc_info=True)


def rebuild(tournament_id: int, ends_at: datetime) -> bool:
    """Rebuild the board from PostgreSQL under a short lock; False when another process holds
    the lock (the caller answers from PostgreSQL meanwhile)."""
    redis = redis_store.client()
    zkey, lock = _key(tournament_id), _key(tournament_id, ":lock")
    token = secrets.token_hex(16)
    if not redis.set(lock, token, nx=True, px=LOCK_MS):
        return False
    try:
        # Delete first, read PostgreSQL second: a commit missing from the read mirrors itself
        # after this delete, into the new board (versions keep the newest of the two).
        redis.delete(zkey)
        entries = _entries(tournament_id)
        expire_at = _expire_at(ends_at)
        if any(abs(e.score) > MAX_EXACT_SCORE for e in entries):
            state = PG_ONLY
        else:
            _upsert(redis, tournament_id, expire_at, entries, refresh=True)
            state = READY
        # Fenced: only the lock's holder may declare the board complete (a rebuild that
        # outlived its lock must not vouch for a board another rebuild is refilling).
        with redis.pipeline() as pipe:
            try:
                pipe.watch(lock)
                if pipe.get(lock) != token.encode():
                    return False
                pipe.multi()
                pipe.zadd(zkey, {state: float("-inf")})
                pipe.expireat(zkey, expire_at)
                pipe.execute()
            except WatchError:
                return False
        return True
    finally:
        _release(redis, lock, token)


def _release(redis: Any, lock: str, token: str) -> None:
    with redis.pipeline() as pipe:
        try:
            pipe.watch(lock)
            if pipe.get(lock) == token.encode():
                pipe.multi()
                pipe.delete(lock)
                pipe.execute()
        except WatchError:
            pass


# --------------------------------------------------------------------------- reads


def read(
    tournament_id: int,
    ends_at: datetime,
    user_id: int | None,
    limit: int,
    rebuild_missing: bool = True,
) -> Board | None:
    """Top ``limit`` and the caller's rank from Redis; ``None`` → answer from PostgreSQL.
    ``rebuild_missing=False`` (the live push, which runs after a bet's commit inside the
    provider's callback): never pay for a rebuild, answer from PostgreSQL instead."""
    redis = redis_store.client()
    try:
        _mark_dirty_boards(redis)
        for _ in range(3):
            board = _read_once(redis, tournament_id, user_id, limit)
            if board == "missing":
                if not rebuild_missing or not rebuild(tournament_id, ends_at):
                    return None
                continue
            if board == "pg":
                return None
            if isinstance(board, Board):
                return board
        return None
    except RedisError:
        log.warning("tournament board %s: Redis unavailable, PostgreSQL answers", tournament_id)
        return None


def _read_once(redis: Any, tid: int, user_id: int | None, limit: int) -> Board | str | None:
    """One consistent snapshot: WATCH the caller's key, then state + top + rank in MULTI."""
    zkey = _key(tid)
    ukey = _user_key(tid, user_id) if user_id is not None else None
    with redis.pipeline() as pipe:
        try:
            raw = None
            if ukey:
                pipe.watch(ukey)
                raw = pipe.get(ukey)
            mine = Stored.parse(raw) if raw is not None else None
            pipe.multi()
            pipe.zmscore(zkey, [READY, PG_ONLY])
            pipe.zrevrange(zkey, 0, limit - 1, withscores=True)
            if mine is not None:
                pipe.zrevrank(zkey, mine.member)
                pipe.zscore(zkey, mine.member)
            result = pipe.execute()
        except WatchError:
            return None  # the caller's entry moved meanwhile: read again
    (ready, pg_only), top = result[0], result[1]
    if pg_only is not None:
        return "pg"
    if ready is None:
        return "missing"
    top = [(user_of(m), int(s)) for m, s in top if m not in SENTINELS]
    if len({uid for uid, _ in top}) != len(top):
        return "missing"  # one player twice: a per-player key was lost; rebuild
    me = None
    if mine is not None:
        rank, score = result[2], result[3]
        if rank is None:
            return "missing"  # a key without its member: the board is damaged, rebuild
        me = (rank + 1, int(score))
    return Board(top, me, "redis")


def postgres(tournament_id: int, user_id: int | None, limit: int) -> Board:
    """The same board computed by PostgreSQL (the truth; used whenever Redis cannot answer)."""
    top = [(p.user_id, p.score) for p in leaderboard(tournament_id, limit)]
    me = None
    if user_id is not None:
        mine = position(tournament_id, user_id)
        if mine is not None:
            me = (mine[0], mine[1].score)
    return Board(top, me, "postgres")


def ordering():
    p = TournamentParticipant
    return (p.score.desc(), p.score_at.asc(), p.id.asc())


def leaderboard(tournament_id: int, limit: int = 10) -> list[TournamentParticipant]:
    p = TournamentParticipant
    return list(
        db.session.scalars(
            select(p).where(p.tournament_id == tournament_id).order_by(*ordering()).limit(limit)
        )
    )


def position(tournament_id: int, user_id: int) -> tuple[int, TournamentParticipant] | None:
    p = TournamentParticipant
    me = db.session.scalar(select(p).where(p.tournament_id == tournament_id, p.user_id == user_id))
    if me is None:
        return None
    ahead = db.session.execute(
        select(func.count(p.id)).where(
            p.tournament_id == tournament_id,
            or_(
                p.score > me.score,
                (p.score == me.score) & (p.score_at < me.score_at),
                (p.score == me.score) & (p.score_at == me.score_at) & (p.id < me.id),
            ),
        )
    ).scalar_one()
    return ahead + 1, me
