"""Content for the player app: CMS pages, FAQ, announcements and banners (published only).

Pages and the FAQ are public. Announcements and banners are public for the ``all`` audience;
a signed-in player (bearer token) also gets those of their CRM segments and loyalty level.
The language comes from ``?lang=`` or ``Accept-Language``; a missing version falls back to the
operator's ``content_fallback_language``.
"""

from __future__ import annotations

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.content import reading
from app.content.models import BANNER_POSITIONS
from app.core.schemas import envelope_of
from app.identity.auth import login_optional

blp = Blueprint(
    "content", __name__, url_prefix="/api/content", description="Pages, FAQ, announcements"
)

_LANG = {
    "description": "Language code (en, de, pt-br); default: the Accept-Language header",
    "example": "en",
}


class LangArgs(Schema):
    lang = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"),
        metadata=_LANG,
    )


class FaqArgs(LangArgs):
    category = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class BannerArgs(LangArgs):
    position = fields.String(load_default=None, validate=validate.OneOf(BANNER_POSITIONS))


class ContentSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    language = fields.String(required=True)
    title = fields.String(required=True, metadata={"description": "Plain text"})
    body = fields.String(
        required=True, metadata={"description": "Sanitised HTML (no script, handlers or URLs "
                                 "other than http, https and mailto)"}
    )  # fmt: skip
    published_at = fields.String(required=True)
    slug = fields.String()
    category = fields.String(allow_none=True)
    sort_order = fields.Integer()
    position = fields.String()
    image_url = fields.String(allow_none=True)
    starts_at = fields.String(allow_none=True)
    ends_at = fields.String(allow_none=True)


def _accept():
    return request.accept_languages if request.headers.get("Accept-Language") else None


@blp.route("/pages/<string:slug>")
class Page(MethodView):
    @blp.arguments(LangArgs, location="query")
    @blp.response(200, envelope_of(ContentSchema))
    def get(self, args, slug: str):
        """A published CMS page in the reader's language (404 when none is published)."""
        return {"data": reading.page(slug, args["lang"], _accept())}


@blp.route("/faq")
class Faq(MethodView):
    @blp.arguments(FaqArgs, location="query")
    @blp.response(200, envelope_of(ContentSchema, many=True))
    def get(self, args):
        """Published FAQ entries, by category and order."""
        return {"data": reading.faq(args["lang"], _accept(), args["category"])}


@blp.route("/announcements")
class Announcements(MethodView):
    @login_optional
    @blp.arguments(LangArgs, location="query")
    @blp.response(200, envelope_of(ContentSchema, many=True))
    def get(self, args):
        """Announcements in their window for the caller's audience (a token adds segment and
        VIP ones)."""
        return {"data": reading.announcements(g.get("user"), args["lang"], _accept())}


@blp.route("/banners")
class Banners(MethodView):
    @login_optional
    @blp.arguments(BannerArgs, location="query")
    @blp.response(200, envelope_of(ContentSchema, many=True))
    def get(self, args):
        """Banners in their window for the caller's audience, optionally of one position."""
        user = g.get("user")
        return {"data": reading.banners(user, args["position"], args["lang"], _accept())}
