"""CRM segments: a small condition language over player facts, parsed, never evaluated.

Language (case-insensitive keywords)::

    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := NOT factor | "(" expr ")" | comparison
    comparison := FIELD op value | FIELD IN "(" value ("," value)* ")"
    op         := = | != | > | >= | < | <=
    value      := number | 'text' | "text"

Fields are a fixed whitelist (``FIELDS``); each compiles to a SQLAlchemy expression with the
value as a bound parameter, so no input ever becomes SQL text. Money fields are compared in
the player's own currency, exactly (integer minor units per currency exponent). Anything
else — unknown names, functions, operators, semicolons, comments, unbalanced parentheses,
type mismatches, too long or too deep — is a ``VALIDATION_ERROR`` naming the position.

Segments only ever select players (role Player).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, false, func, not_, or_, select, true

from app.compliance import responsible_gaming as rg
from app.core import audit, mail, notifications, outbox
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.core.money import CURRENCY_EXPONENTS
from app.identity.models import PLAYER, User
from app.messaging.models import CrmBroadcast, CrmSegment
from app.payments.models import PaymentTransaction
from app.play.models import GameRound
from app.wallet.models import Wallet

MAX_LENGTH = 1000
MAX_DEPTH = 16
MAX_COMPARISONS = 40
WINDOW = timedelta(days=30)

#: name -> kind: "text" (= != IN), "days" (whole days since a timestamp), "money"
FIELDS = {
    "country": "text",
    "status": "text",
    "kyc_status": "text",
    "currency": "text",
    "last_login_days": "days",
    "registered_days": "days",
    "balance": "money",
    "bonus_balance": "money",
    "deposits_30d": "money",
    "bets_30d": "money",
}
OPS = ("=", "!=", ">", ">=", "<", "<=")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)(?![\w.])
      | (?P<str>'[^'\\]{0,200}'|"[^"\\]{0,200}")
      | (?P<op>!=|>=|<=|=|>|<)
      | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]{0,40})
    )""",
    re.VERBOSE,
)
KEYWORDS = {"AND", "OR", "NOT", "IN"}


class SegmentSyntaxError(ValidationError):
    def __init__(self, message: str, position: int | None = None) -> None:
        where = "" if position is None else f" (at character {position + 1})"
        super().__init__(
            f"Invalid condition: {message}{where}",
            errors=[{"field": "condition", "message": f"{message}{where}"}],
        )


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str  # one of OPS or "in"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or" | "not"
    items: tuple[Any, ...]


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise SegmentSyntaxError(f"at most {MAX_LENGTH} characters")
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            start = len(text) - len(text[pos:].lstrip())
            raise SegmentSyntaxError(f"unexpected {text[start : start + 10]!r}", start)
        kind = m.lastgroup or ""
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "word" and raw.upper() in KEYWORDS:
            kind, raw = "kw", raw.upper()
        tokens.append(Token(kind, raw, start))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.i, self.comparisons = tokens, 0, 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind
            if tok is None:
                raise SegmentSyntaxError(f"expected {want} at the end")
            raise SegmentSyntaxError(f"expected {want}, found {tok.text!r}", tok.pos)
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == kind and (text is None or tok.text == text)

    def parse(self):
        if not self.tokens:
            raise SegmentSyntaxError("the condition is empty")
        node = self.expr(0)
        tok = self.peek()
        if tok is not None:
            raise SegmentSyntaxError(f"unexpected {tok.text!r}", tok.pos)
        return node

    def expr(self, depth: int):
        if depth > MAX_DEPTH:
            raise SegmentSyntaxError("nested too deeply")
        items = [self.term(depth)]
        while self.at("kw", "OR"):
            self.i += 1
            items.append(self.term(depth))
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def term(self, depth: int):
        items = [self.factor(depth)]
        while self.at("kw", "AND"):
            self.i += 1
            items.append(self.factor(depth))
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def factor(self, depth: int):
        if self.at("kw", "NOT"):
            self.i += 1
            return BoolOp("not", (self.factor(depth + 1),))
        if self.at("lp"):
            self.i += 1
            node = self.expr(depth + 1)
            self.take("rp")
            return node
        return self.comparison()

    def value(self, kind: str) -> Any:
        tok = self.peek()
        if tok is None:
            raise SegmentSyntaxError("expected a value at the end")
        if tok.kind == "str":
            if kind != "text":
                raise SegmentSyntaxError("this field compares with a number", tok.pos)
            self.i += 1
            return tok.text[1:-1]
        if tok.kind == "num":
            if kind == "text":
                raise SegmentSyntaxError("this field compares with quoted text", tok.pos)
            if kind == "days" and "." in tok.text:
                raise SegmentSyntaxError("days are whole numbers", tok.pos)
            self.i += 1
            return Decimal(tok.text)
        raise SegmentSyntaxError(f"expected a value, found {tok.text!r}", tok.pos)

    def comparison(self) -> Comparison:
        tok = self.take("word")
        name = tok.text.lower()
        kind = FIELDS.get(name)
        if kind is None:
            raise SegmentSyntaxError(
                f"unknown field {tok.text!r}; fields: {', '.join(sorted(FIELDS))}", tok.pos
            )
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise SegmentSyntaxError(f"at most {MAX_COMPARISONS} comparisons")
        if self.at("kw", "IN"):
            self.i += 1
            if kind != "text":
                raise SegmentSyntaxError("IN works on text fields", tok.pos)
            self.take("lp")
            values = [self.value(kind)]
            while self.at("comma"):
                self.i += 1
                values.append(self.value(kind))
            self.take("rp")
            return Comparison(name, "in", tuple(values))
        op = self.take("op").text
        if kind == "text" and op not in ("=", "!="):
            raise SegmentSyntaxError("text fields compare with = and != only", tok.pos)
        return Comparison(name, op, (self.value(kind),))


def parse(text: str):
    """The syntax tree of ``text``, or ``SegmentSyntaxError``."""
    return _Parser(tokenize(text or "")).parse()


# --- compiling to SQL ------------------------------------------------------------------------


def _facts():
    """One row per player with every field the language knows (bound into a subquery)."""
    since = utcnow() - WINDOW
    deposits = (
        select(
            PaymentTransaction.user_id.label("uid"),
            PaymentTransaction.currency.label("cur"),
            func.sum(PaymentTransaction.amount_minor).label("total"),
        )
        .where(
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
            PaymentTransaction.created_at >= since,
        )
        .group_by(PaymentTransaction.user_id, PaymentTransaction.currency)
        .subquery()
    )
    bets = (
        select(
            GameRound.user_id.label("uid"),
            GameRound.currency.label("cur"),
            func.sum(GameRound.total_bet - GameRound.total_refund).label("total"),
        )
        .where(GameRound.created_at >= since)
        .group_by(GameRound.user_id, GameRound.currency)
        .subquery()
    )
    return (
        select(
            User.id.label("id"),
            User.country.label("country"),
            User.status.label("status"),
            User.kyc_status.label("kyc_status"),
            User.currency.label("currency"),
            User.last_login_at.label("last_login_at"),
            User.created_at.label("created_at"),
            func.coalesce(Wallet.balance, 0).label("balance"),
            func.coalesce(Wallet.bonus_balance, 0).label("bonus_balance"),
            func.coalesce(deposits.c.total, 0).label("deposits_30d"),
            func.coalesce(bets.c.total, 0).label("bets_30d"),
        )
        .outerjoin(Wallet, and_(Wallet.user_id == User.id, Wallet.currency == User.currency))
        .outerjoin(deposits, and_(deposits.c.uid == User.id, deposits.c.cur == User.currency))
        .outerjoin(bets, and_(bets.c.uid == User.id, bets.c.cur == User.currency))
        .where(User.role_id == PLAYER)
        .subquery("facts")
    )


def _int_compare(col, op: str, value: Decimal):
    """``col op value`` for an integer column, exact for any decimal value."""
    lo, hi = math.floor(value), math.ceil(value)
    whole = lo == hi
    return {
        ">=": col >= hi,
        ">": col > lo,
        "<=": col <= lo,
        "<": col < hi,
        "=": col == lo if whole else false(),
        "!=": col != lo if whole else true(),
    }[op]


def _money(col, currency_col, op: str, value: Decimal):
    by_exponent: dict[int, list[str]] = {}
    for cur, exp in CURRENCY_EXPONENTS.items():
        by_exponent.setdefault(exp, []).append(cur)
    return or_(
        *(
            and_(currency_col.in_(curs), _int_compare(col, op, value.scaleb(exp)))
            for exp, curs in sorted(by_exponent.items())
        )
    )


def _days(col, op: str, n: int):
    # days = whole days elapsed since ``col``; never (NULL) counts as infinitely long ago.
    now = utcnow()

    def ago(k: int):
        return now - timedelta(days=k)

    never = col.is_(None)
    return {
        ">=": or_(never, col <= ago(n)),
        ">": or_(never, col <= ago(n + 1)),
        "<": and_(~never, col > ago(n)),
        "<=": and_(~never, col > ago(n + 1)),
        "=": and_(~never, col <= ago(n), col > ago(n + 1)),
        "!=": or_(never, col > ago(n), col <= ago(n + 1)),
    }[op]


def _compile(node, facts):
    if isinstance(node, BoolOp):
        parts = [_compile(item, facts) for item in node.items]
        if node.op == "not":
            return not_(parts[0])
        return and_(*parts) if node.op == "and" else or_(*parts)
    kind = FIELDS[node.field]
    if kind == "text":
        col = facts.c[node.field]
        values = [str(v).upper() if node.field in ("country", "currency") else str(v)
                  for v in node.values]  # fmt: skip
        # Never NULL (so NOT stays two-valued): a missing value equals nothing.
        if node.op == "in":
            return and_(col.is_not(None), col.in_(values))
        if node.op == "=":
            return and_(col.is_not(None), col == values[0])
        return or_(col.is_(None), col != values[0])
    if kind == "days":
        column = "last_login_at" if node.field == "last_login_days" else "created_at"
        n = int(node.values[0])
        if n < 0:
            return false() if node.op in ("<", "<=", "=") else true()
        return _days(facts.c[column], node.op, n)
    return _money(facts.c[node.field], facts.c.currency, node.op, node.values[0])


def matching(condition: str):
    """``SELECT id`` of the players the condition selects."""
    facts = _facts()
    return select(facts.c.id).where(_compile(parse(condition), facts))


def in_segment(segment_id: int, user_id: int) -> bool:
    """Whether the player is one the segment's condition selects right now."""
    segment = db.session.get(CrmSegment, segment_id)
    if segment is None:
        return False
    facts = _facts()
    query = select(facts.c.id).where(
        _compile(parse(segment.condition), facts), facts.c.id == user_id
    )
    return db.session.scalar(select(query.exists())) is True


def count(condition: str) -> int:
    return db.session.execute(
        select(func.count()).select_from(matching(condition).subquery())
    ).scalar_one()


def user_ids(condition: str) -> list[int]:
    return list(db.session.scalars(matching(condition).order_by("id")))


# --- segments --------------------------------------------------------------------------------


def create_segment(name: str, condition: str, description: str | None, actor: Any) -> CrmSegment:
    n = count(condition)  # parses (and refuses) before anything is stored
    with atomic():
        seg = CrmSegment(
            name=name.strip(),
            description=description,
            condition=condition.strip(),
            last_count=n,
            last_counted_at=utcnow(),
            created_by_id=getattr(actor, "id", None),
        )
        db.session.add(seg)
        db.session.flush()  # the id goes into the audit row
        audit.record("crm.segment.create", actor=actor, target_type="crm_segment",
                     target_id=seg.id, after={"name": seg.name, "condition": seg.condition,
                                              "count": n})  # fmt: skip
    return seg


def list_segments() -> list[CrmSegment]:
    return list(db.session.scalars(select(CrmSegment).order_by(CrmSegment.id.desc())))


def get_segment(segment_id: int) -> CrmSegment:
    seg = db.session.get(CrmSegment, segment_id)
    if seg is None:
        raise NotFound("Segment not found")
    return seg


def recount(segment_id: int) -> CrmSegment:
    with atomic():
        seg = get_segment(segment_id)
        seg.last_count = count(seg.condition)
        seg.last_counted_at = utcnow()
    return seg


# --- broadcasts ------------------------------------------------------------------------------

BATCH = 200


def create_broadcast(
    segment_id: int, title: str, message: str, send_email: bool, actor: Any
) -> CrmBroadcast:
    """Store the broadcast and queue its fan-out (durable: survives a Redis outage)."""
    seg = get_segment(segment_id)
    with atomic():
        row = CrmBroadcast(
            segment_id=seg.id,
            title=title.strip(),
            message=message.strip(),
            send_email=send_email,
            status="queued",
            recipients=0,
            skipped_no_consent=0,
            skipped_excluded=0,
            created_by_id=getattr(actor, "id", None),
        )
        db.session.add(row)
        db.session.flush()  # the job is given the id
        audit.record("crm.broadcast.create", actor=actor, target_type="crm_broadcast",
                     target_id=row.id, after={"segment": seg.id, "title": row.title,
                                              "email": send_email})  # fmt: skip
        outbox.add_job("app.messaging.jobs.fan_out_broadcast", row.id)
    return row


def fan_out(broadcast_id: int) -> dict[str, int]:
    """Deliver a broadcast to the segment's players who opted in and are not excluded.

    Idempotent: each player's notification carries a dedupe key, and the e-mail is queued
    only with a notification that was new, so a rerun (or a crash halfway) sends nothing
    twice."""
    row = db.session.get(CrmBroadcast, broadcast_id)
    if row is None:
        return {}
    seg = get_segment(row.segment_id)
    ids = user_ids(seg.condition)
    sent = no_consent = excluded = 0
    for start in range(0, len(ids), BATCH):
        with atomic():
            users = db.session.scalars(select(User).where(User.id.in_(ids[start : start + BATCH])))
            for user in users:
                if not user.marketing_consent:
                    no_consent += 1
                    continue
                if rg.is_excluded(user.id):
                    excluded += 1
                    continue
                fresh = notifications.notify(
                    user.id, "promotion", row.title, row.message,
                    data={"broadcast_id": row.id}, dedupe_key=f"broadcast:{row.id}:{user.id}",
                )  # fmt: skip
                if fresh is not None and row.send_email and user.email:
                    mail.queue_email(to=user.email, subject=row.title, body=row.message,
                                     template="crm_broadcast", user_id=user.id)  # fmt: skip
                sent += 1
    with atomic():
        row = db.session.get_one(CrmBroadcast, broadcast_id)
        row.status, row.finished_at = "done", utcnow()
        row.recipients, row.skipped_no_consent, row.skipped_excluded = sent, no_consent, excluded
    return {"recipients": sent, "skipped_no_consent": no_consent, "skipped_excluded": excluded}


def get_broadcast(broadcast_id: int) -> CrmBroadcast:
    row = db.session.get(CrmBroadcast, broadcast_id)
    if row is None:
        raise NotFound("Broadcast not found")
    return row
