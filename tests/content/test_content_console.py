"""The console's content pages (test client): list, create, edit, draft, preview, publish,
unpublish, image; permissions and CSRF."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from app.content.models import ContentItem
from app.core.extensions import db
from tests.console.conftest import csrf_token_of, login

SCRIPT = '<h2>Rules</h2><p onclick="steal()">Play fair</p><script>window.pwned=1</script>'


@pytest.fixture
def editor(signed_in):
    client, _staff = signed_in("manager")
    return client


def _new_page(client, slug="house-rules"):
    r = client.post(
        "/admin/content/new?kind=page",
        data={"kind": "page", "name": "House rules", "slug": slug, "audience": "all"},
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    return int(re.search(r"/admin/content/(\d+)", r.headers["Location"]).group(1))


def test_a_manager_writes_publishes_and_unpublishes_a_page(editor, client):
    item_id = _new_page(editor)
    r = editor.post(
        f"/admin/content/{item_id}/versions/en", data={"title": "House rules", "body": SCRIPT}
    )
    assert r.status_code == 302
    preview = editor.get(r.headers["Location"]).get_data(as_text=True)
    assert "<h2>Rules</h2>" in preview
    assert "window.pwned" not in preview
    assert "onclick" not in preview
    r = editor.post(f"/admin/content/{item_id}/versions/en/publish", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert 'id="version-row-en"' in r.get_data(as_text=True)
    api = client.get("/api/content/pages/house-rules").get_json()["data"]
    assert api["body"] == "<h2>Rules</h2><p>Play fair</p>"
    r = editor.post(f"/admin/content/{item_id}/versions/en/unpublish")
    assert r.status_code == 302
    assert client.get("/api/content/pages/house-rules").status_code == 404


def test_the_list_filters_by_kind_and_shows_languages(editor):
    item_id = _new_page(editor, "listed")
    editor.post(f"/admin/content/{item_id}/versions/de", data={"title": "Regeln", "body": ""})
    page = editor.get("/admin/content?kind=page").get_data(as_text=True)
    assert f'id="content-row-{item_id}"' in page
    assert ">de</span>" in page
    assert f'id="content-row-{item_id}"' not in editor.get("/admin/content?kind=faq").get_data(
        as_text=True
    )


def test_bad_settings_are_shown_next_to_the_field_and_nothing_is_created(editor):
    before = db.session.query(ContentItem).count()
    r = editor.post(
        "/admin/content/new?kind=banner",
        data={"kind": "banner", "name": "Promo", "audience": "all", "sort_order": "abc"},
    )
    assert r.status_code == 400
    assert "field-error" in r.get_data(as_text=True)
    assert db.session.query(ContentItem).count() == before


def test_an_unknown_language_code_is_refused_and_a_missing_version_is_404(editor):
    item_id = _new_page(editor, "langs")
    r = editor.post(f"/admin/content/{item_id}/language", data={"language": "not a code"})
    assert r.status_code == 302
    assert r.headers["Location"].endswith(f"/admin/content/{item_id}")
    assert editor.get(f"/admin/content/{item_id}/versions/fr/preview").status_code == 404
    assert editor.get(f"/admin/content/{item_id}/versions/x%3Cscript%3E/preview").status_code == 404


def test_a_banner_image_upload_goes_through_the_upload_checks(editor):
    r = editor.post(
        "/admin/content/new?kind=banner",
        data={"kind": "banner", "name": "Top", "position": "home_top", "audience": "all"},
    )
    item_id = int(r.headers["Location"].rsplit("/", 1)[1])
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    r = editor.post(
        f"/admin/content/{item_id}/image",
        data={"file": (io.BytesIO(b"GIF89a not really"), "x.png")},
        content_type="multipart/form-data",
    )
    assert db.session.get(ContentItem, item_id).image_url is None
    r = editor.post(
        f"/admin/content/{item_id}/image",
        data={"file": (io.BytesIO(out.getvalue()), "x.png")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(ContentItem, item_id).image_url.startswith("/media/content/")


@pytest.mark.parametrize("role", ["support", "agent"])
def test_staff_without_the_permission_get_403(signed_in, role):
    client, _ = signed_in(role)
    assert client.get("/admin/content").status_code == 403
    assert client.post("/admin/content/new?kind=page", data={}).status_code == 403


def test_a_post_without_the_csrf_token_changes_nothing(csrf_enforced, new_client, make_staff):
    client = new_client()
    login(client, make_staff("admin"))
    before = db.session.query(ContentItem).count()
    r = client.post(
        "/admin/content/new?kind=faq", data={"kind": "faq", "name": "x", "audience": "all"}
    )
    assert r.status_code == 400
    assert db.session.query(ContentItem).count() == before
    page = client.get("/admin/content/new?kind=faq").get_data(as_text=True)
    r = client.post(
        "/admin/content/new?kind=faq",
        data={"kind": "faq", "name": "x", "audience": "all", "csrf_token": csrf_token_of(page)},
    )
    assert r.status_code == 302


def test_a_faq_entry_with_an_order_and_a_later_edit_of_it(editor):
    r = editor.post(
        "/admin/content/new?kind=faq",
        data={"kind": "faq", "name": "Deposits", "category": "payments", "sort_order": "3",
              "audience": "all"},
    )  # fmt: skip
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    item_id = int(r.headers["Location"].rsplit("/", 1)[1])
    assert db.session.get(ContentItem, item_id).sort_order == 3
    form = editor.get(f"/admin/content/{item_id}").get_data(as_text=True)
    assert 'value="3"' in form
    r = editor.post(
        f"/admin/content/{item_id}",
        data={"kind": "faq", "name": "Deposits", "category": "payments", "sort_order": "-2",
              "audience": "all"},
    )  # fmt: skip
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(ContentItem, item_id).sort_order == -2
    r = editor.post(
        f"/admin/content/{item_id}",
        data={"kind": "faq", "name": "Deposits", "sort_order": "0.001", "audience": "all"},
    )
    assert r.status_code == 400
