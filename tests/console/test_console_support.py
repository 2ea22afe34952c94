"""The support inbox and CRM pages of the console: unread counts, assignment, replies,
closing, hiding (audited); segments with a live count and broadcasts queued to them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.core.models import AuditLog
from app.messaging import chat
from app.messaging.models import CrmBroadcast, CrmSegment, SupportMessage, SupportTicket
from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)

HX = {"HX-Request": "true"}


def test_the_inbox_shows_unread_counts_and_the_menu_badge(signed_in, factory):
    waiting = chat.send(factory.player(username="ada_chat"), "Hello?")
    chat.send(factory.player(username="bo_chat"), "Hi")
    support, _ = signed_in("support")
    page = support.get("/admin/support").get_data(as_text=True)
    assert f'id="support-row-{waiting.ticket_id}"' in page
    assert 'data-unread="1"' in page
    assert "ada_chat" in page
    assert "Live chat" in page
    nav = page[page.index("<nav") : page.index("</nav>")]
    assert 'href="/admin/support"' in nav
    assert '<span class="nav-count"' in nav
    assert ">2<" in nav

    only_tickets = support.get("/admin/support?channel=ticket").get_data(as_text=True)
    assert f'id="support-row-{waiting.ticket_id}"' not in only_tickets


def test_reply_assign_close_from_the_conversation(signed_in, factory):
    player = factory.player()
    line = chat.send(player, "My bonus vanished")
    support, staff = signed_in("support")
    page = support.get(f"/admin/support/{line.ticket_id}").get_data(as_text=True)
    assert "My bonus vanished" in page
    assert "data-marks-read" in page
    assert support.post(f"/admin/support/{line.ticket_id}/read").status_code == 204
    assert chat.unread_for_staff([line.ticket_id]) == {}

    empty = support.post(
        f"/admin/support/{line.ticket_id}/reply", data={"message": " "}, headers=HX
    )
    assert empty.status_code == 400
    assert "Write a message" in empty.get_data(as_text=True)
    sent = support.post(
        f"/admin/support/{line.ticket_id}/reply", data={"message": "Restored it"}, headers=HX
    )
    assert sent.status_code == 200
    assert "Restored it" in sent.get_data(as_text=True)
    assert (
        support.post(f"/admin/support/{line.ticket_id}/assign", data={"staff_id": "me"}).status_code
        == 302
    )
    db.session.expire_all()
    ticket = db.session.get(SupportTicket, line.ticket_id)
    assert (ticket.status, ticket.assigned_to_id) == ("answered", staff.user.id)
    support.post(f"/admin/support/{line.ticket_id}/close")
    db.session.expire_all()
    assert db.session.get(SupportTicket, line.ticket_id).status == "closed"
    closed = support.get(f"/admin/support/{line.ticket_id}").get_data(as_text=True)
    assert 'id="support-reply-form"' not in closed
    actions = db.session.scalars(
        select(AuditLog.action).where(AuditLog.target_id == str(line.ticket_id))
    ).all()
    assert {"support.reply", "support.assign", "support.close"} <= set(actions)


def test_hiding_needs_a_reason_and_is_audited(signed_in, factory):
    line = chat.send(factory.player(), "call me on +356 9999 9999")
    support, _ = signed_in("support")
    support.post(f"/admin/support/messages/{line.id}/hide", data={"reason": ""})
    assert db.session.get(SupportMessage, line.id).hidden_at is None
    support.post(f"/admin/support/messages/{line.id}/hide", data={"reason": "Phone number"})
    db.session.expire_all()
    assert db.session.get(SupportMessage, line.id).hidden_at is not None
    page = support.get(f"/admin/support/{line.ticket_id}").get_data(as_text=True)
    assert "hidden from the player" in page


def test_agents_have_no_support_inbox_and_support_has_no_crm(signed_in):
    agent, _ = signed_in("agent")
    assert agent.get("/admin/support").status_code == 403
    support, _ = signed_in("support")
    assert support.get("/admin/crm/segments").status_code == 403
    assert support.post("/admin/crm/segments/new", data={}).status_code == 403


def test_crm_segment_preview_save_and_broadcast(signed_in, factory):
    factory.player(country="MT")
    factory.player(country="MT")
    factory.player(country="DE")
    manager, _ = signed_in("manager")
    preview = manager.get("/admin/crm/segments?condition=country+%3D+%27MT%27")
    assert "<strong>2</strong> players match now" in preview.get_data(as_text=True)
    broken = manager.get("/admin/crm/segments?condition=country+%3D%3D+1").get_data(as_text=True)
    assert 'id="preview-result"' in broken
    assert "field-error" in broken

    refused = manager.post("/admin/crm/segments/new", data={"name": "Bad", "condition": "nope >"})
    assert refused.status_code == 400
    assert db.session.scalars(select(CrmSegment)).all() == []
    saved = manager.post(
        "/admin/crm/segments/new", data={"name": "Malta", "condition": "country = 'MT'"}
    )
    assert saved.status_code == 302
    segment = db.session.scalars(select(CrmSegment)).one()
    assert segment.last_count == 2
    listed = manager.get("/admin/crm/segments").get_data(as_text=True)
    assert f'id="segment-row-{segment.id}"' in listed

    queued = manager.post(
        "/admin/crm/broadcasts/new",
        data={"segment_id": str(segment.id), "title": "Weekend", "message": "Free spins"},
    )
    assert queued.status_code == 302
    broadcast = db.session.scalars(select(CrmBroadcast)).one()
    assert (broadcast.segment_id, broadcast.title) == (segment.id, "Weekend")
    page = manager.get("/admin/crm/broadcasts").get_data(as_text=True)
    assert f'id="broadcast-row-{broadcast.id}"' in page
    assert "Malta" in page


@pytest.mark.browser
def test_a_chat_line_appears_live_and_staff_answer_from_the_browser(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    factory,
):
    from selenium.webdriver.common.by import By

    agent = make_staff("support")
    player = factory.player(username="live_chatter")
    db.session.commit()
    _sign_in(browser, live_server, agent.user.username, agent.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "nav .nav"))
    browser.get(f"{live_server}/admin/support")
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "live-toasts").get_attribute("data-live") == "connected",
    )
    line = chat.send(player, "Is anyone there?")  # committed: pushed to the admin room
    row = f"#support-row-{line.ticket_id}"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row))  # the panel refreshed
    _shot(browser, "40-support-inbox-live")
    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    box = _wait(browser, lambda d: d.find_element(By.ID, "reply-message"))
    box.send_keys("Yes, how can I help?")
    browser.find_element(By.CSS_SELECTOR, "#support-reply-form button[type=submit]").click()
    _wait(
        browser, lambda d: "Yes, how can I help?" in d.find_element(By.ID, "support-messages").text
    )
    _shot(browser, "41-support-conversation")
    db.session.remove()
    bodies = db.session.scalars(
        select(SupportMessage.body).where(SupportMessage.ticket_id == line.ticket_id)
    ).all()
    assert bodies == ["Is anyone there?", "Yes, how can I help?"]
    assert chat.unread_for_staff([line.ticket_id]) == {}
    assert _console_errors(browser) == []
