"""Aggregators' game-list formats, mapped onto our game fields.

One mapping function per format, in ``FORMATS``. A format knows how to find the items in a
downloaded list (``unwrap``: a bare array, or the envelope the aggregator answers with) and how
to turn one item into the fields ``games.import_games`` applies (``external_id``, ``name``,
``category``, ``type``, ``rtp``, ``has_demo``, ``thumbnail``, ``banner``, ``status``,
``min_bet``/``max_bet``, ``volatility``).

Invariants:
* A mapping function is pure: it reads one item and returns a new dict, or raises
  ``ValidationError`` with the reason; the importer reports it with the item's index and imports
  the others.
* A field the list does not carry is left out of the mapped dict, so a re-import never wipes
  what staff set by hand (``has_demo``, limits, a thumbnail of our own).
* The id a format maps to ``external_id`` is the one the same aggregator's wallet protocol sends
  back (Hub88 ``game_code``, Slotegrator ``game_uuid``, Evolution ``table.id``...), so callbacks
  find the imported game.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.errors import ValidationError

Item = dict[str, Any]


class NotAGameList(ValidationError):
    """The payload holds no list of games in this format (not one bad item: nothing to import)."""


@dataclass(frozen=True)
class GameListFormat:
    name: str
    #: Where the items are: the list itself, or one of these keys of an envelope object.
    envelope_keys: tuple[str, ...]
    map_item: Callable[[Any], Item]


def _object(item: Any) -> Item:
    if not isinstance(item, dict):
        raise ValidationError("each game must be an object")
    return item


def _text(item: Item, key: str, *, required: bool = False) -> str | None:
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{key} is required")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValidationError(f"{key} must be text")
    return str(value).strip()


def _flag(item: Item, key: str) -> bool | None:
    """Aggregators send booleans as true/false, 1/0 or "1"/"0"."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise ValidationError(f"{key} must be a boolean")


def _kind(*labels: str | None) -> str:
    """Our coarse game type from an aggregator's category/type labels."""
    text = " ".join(label.lower() for label in labels if label)
    for needle, kind in (
        ("live", "live"),
        ("slot", "slot"),
        ("roulette", "table"),
        ("blackjack", "table"),
        ("baccarat", "table"),
        ("poker", "table"),
        ("table", "table"),
        ("card", "table"),
        ("crash", "instant"),
        ("instant", "instant"),
        ("lottery", "lottery"),
        ("keno", "lottery"),
        ("bingo", "lottery"),
        ("scratch", "instant"),
    ):
        if needle in text:
            return kind
    return "other"


def _drop_none(data: Item) -> Item:
    return {key: value for key, value in data.items() if value is not None}


def _status(enabled: bool | None, when_off: str = "inactive") -> str | None:
    if enabled is None:
        return None
    return "active" if enabled else when_off


def _listed(item: Item, id_key: str, name_key: str, category_key: str, *label_keys: str) -> Item:
    """The fields every listed game has: its id and name (required), its category and our
    type from the category and the ``label_keys``' labels. Read in the order an item's first
    fault is reported: category, id, name, labels."""
    category = _text(item, category_key)
    listed = {
        "external_id": _text(item, id_key, required=True),
        "name": _text(item, name_key, required=True),
        "category": category,
    }
    return {**listed, "type": _kind(category, *(_text(item, k) for k in label_keys))}


# --- formats ---------------------------------------------------------------------------------


def map_native(item: Any) -> Item:
    """Our own shape: the item is already our fields."""
    return _object(item)


def map_hub88(item: Any) -> Item:
    """Hub88 ``/operator/generic/v2/game/list`` item: ``game_code``, ``name``, ``category``,
    ``url_thumb``, ``url_background``, ``product``, ``platforms``, ``enabled``, ``rtp``..."""
    item = _object(item)
    return _drop_none(
        {
            **_listed(item, "game_code", "name", "category"),
            "rtp": item.get("rtp"),
            "thumbnail": _text(item, "url_thumb"),
            "banner_url": _text(item, "url_background"),
            "status": _status(_flag(item, "enabled")),
        }
    )


def map_slotegrator(item: Any) -> Item:
    """Slotegrator GIS ``/games`` item: ``uuid``, ``name``, ``image``, ``type``, ``provider``,
    ``technology``, ``has_lobby``, ``is_mobile``, ``has_freespins``... Only playable games are
    listed, so an imported one is active."""
    item = _object(item)
    return _drop_none(
        {
            **_listed(item, "uuid", "name", "type"),
            "rtp": item.get("rtp"),
            "thumbnail": _text(item, "image"),
            "status": "active",
        }
    )


def map_softswiss(item: Any) -> Item:
    """SoftSwiss-style item: ``identifier``, ``title``, ``provider``/``producer``,
    ``category``, ``payout`` (RTP), ``volatility_rating``, ``has_freespins``, ``devices``,
    optional ``image`` and ``demo``."""
    item = _object(item)
    return _drop_none(
        {
            **_listed(item, "identifier", "title", "category"),
            "rtp": item.get("payout"),
            "volatility": _text(item, "volatility_rating"),
            "thumbnail": _text(item, "image"),
            "has_demo": _flag(item, "demo"),
        }
    )


def map_evolution(item: Any) -> Item:
    """Evolution-style lobby table: ``id`` (or ``tableId``), ``name``, ``gameType``, ``open``,
    ``betLimits`` per currency (``{"EUR": {"min", "max"}}``, decimal units),
    ``videoSnapshot.thumbnails`` (``S``/``M``/``L``/``XL``). A closed table is in maintenance;
    limits are taken in EUR, the catalog's currency, when listed."""
    item = _object(item)
    external = _text(item, "id") or _text(item, "tableId", required=True)
    game_type = _text(item, "gameType")
    data: Item = {
        "external_id": external,
        "name": _text(item, "name", required=True),
        "category": "live",
        "type": "live",
        "status": _status(_flag(item, "open"), when_off="maintenance"),
        "has_demo": False,
        "description": game_type,
    }
    limits = item.get("betLimits")
    if limits is not None:
        if not isinstance(limits, dict):
            raise ValidationError("betLimits must be an object of currencies")
        eur = limits.get("EUR")
        if isinstance(eur, dict):
            data["min_bet"] = eur.get("min")
            data["max_bet"] = eur.get("max")
    snapshot = item.get("videoSnapshot")
    thumbnails = snapshot.get("thumbnails") if isinstance(snapshot, dict) else None
    if isinstance(thumbnails, dict):
        data["thumbnail"] = next(
            (str(thumbnails[size]) for size in ("L", "M", "XL", "S") if thumbnails.get(size)),
            None,
        )
    return _drop_none(data)


def map_pragmatic(item: Any) -> Item:
    """Pragmatic Play ``getCasinoGames`` item: ``gameID`` (the ``symbol``), ``gameName``,
    ``gameTypeID``, ``typeDescription``, ``technology``, ``platform``,
    ``demoGameAvailable``, ``frbAvailable``..."""
    item = _object(item)
    return _drop_none(
        {
            **_listed(item, "gameID", "gameName", "typeDescription", "gameTypeID"),
            "has_demo": _flag(item, "demoGameAvailable"),
        }
    )


FORMATS: dict[str, GameListFormat] = {
    f.name: f
    for f in (
        GameListFormat("native", (), map_native),
        GameListFormat("hub88", ("games", "data"), map_hub88),
        GameListFormat("softswiss", ("games", "data"), map_softswiss),
        GameListFormat("slotegrator", ("items",), map_slotegrator),
        GameListFormat("evolution", ("tables",), map_evolution),
        GameListFormat("pragmatic", ("gameList",), map_pragmatic),
    )
}


def get_format(name: str) -> GameListFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValidationError.field("format", f"One of: {', '.join(FORMATS)}") from None


def unwrap(fmt: GameListFormat, payload: Any) -> list[Any]:
    """The items of a list as downloaded: a bare array, or the array (or, for Evolution's
    lobby state, the object keyed by table id) under the format's envelope key."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in fmt.envelope_keys:
            inner = payload.get(key)
            if isinstance(inner, list):
                return inner
            if isinstance(inner, dict):
                # Keyed by id (Evolution's ``tables``): the key is the id when the item has none.
                return [
                    {"id": key_id, **value} if isinstance(value, dict) else value
                    for key_id, value in inner.items()
                ]
    where = " or ".join(f'{{"{k}": [...]}}' for k in fmt.envelope_keys)
    raise NotAGameList.field(
        "games", f"A JSON array of games{' or ' + where if where else ''} is required"
    )
