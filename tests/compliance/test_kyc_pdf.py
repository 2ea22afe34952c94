"""A KYC PDF is parsed before it is accepted (issue 21): a shell that only starts with %PDF-
and ends with %%EOF, an encrypted file, no pages, too many pages, scripts, launch actions and
attached files are a 400 naming the file; a parser failure is never a 500."""

from __future__ import annotations

import io
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    StreamObject,
    TextStringObject,
)
from sqlalchemy import select

from app.compliance.models import KycDocument
from app.core.extensions import db
from app.core.uploads import inspect
from tests.compliance.test_kyc import upload
from tests.payments_helpers import pdf_bytes


def _written(writer: PdfWriter) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _one_page() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    return writer


def _action(kind: str, **extra) -> DictionaryObject:
    action = DictionaryObject({NameObject("/S"): NameObject(kind)})
    for key, value in extra.items():
        action[NameObject(f"/{key}")] = value
    return action


def js_on_open() -> bytes:
    writer = _one_page()
    writer.root_object[NameObject("/OpenAction")] = _action(
        "/JavaScript", JS=TextStringObject("app.alert('pwned')")
    )
    return _written(writer)


def launch_on_a_link() -> bytes:
    # A link annotation on the page whose action launches a program.
    writer = _one_page()
    annot = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([]),
            NameObject("/A"): _action("/Launch", F=TextStringObject("cmd.exe")),
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annot)])
    return _written(writer)


def attached_file() -> bytes:
    writer = _one_page()
    writer.add_attachment("invoice.exe", b"MZ\x90\x00 not really a program")
    return _written(writer)


def encrypted() -> bytes:
    writer = _one_page()
    writer.encrypt("", algorithm="RC4-128")  # even an empty password: refused
    return _written(writer)


def no_pages() -> bytes:
    return _written(PdfWriter())


def only_the_magic_and_eof() -> bytes:
    return b"%PDF-1.7\n" + b"this is not a PDF at all, only its first and last line\n" + b"%%EOF\n"


def compressed_js_in_an_object_stream() -> bytes:
    # The JavaScript hides in a page's additional actions (opened page), written compressed.
    writer = _one_page()
    writer.pages[0][NameObject("/AA")] = DictionaryObject(
        {NameObject("/O"): _action("/JavaScript", JS=TextStringObject("this.exportDataObject()"))}
    )
    writer.compress_identical_objects()
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


REFUSED = {
    "magic_and_eof_only": (only_the_magic_and_eof, "damaged"),
    "no_pages": (no_pages, "no pages"),
    "encrypted": (encrypted, "password-protected"),
    "javascript": (js_on_open, "scripts"),
    "launch": (launch_on_a_link, "scripts"),
    "attachment": (attached_file, "attached files"),
    "page_open_action": (compressed_js_in_an_object_stream, "scripts"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_pdf_that_does_not_parse_clean_is_refused_and_nothing_is_stored(
    client, factory, token_for, case
):
    build, words = REFUSED[case]
    player = factory.player()
    response = upload(client, token_for(player), build(), "proof_of_address", "bill.pdf")
    assert response.status_code == 400, (case, response.json)
    assert response.json["code"] == "VALIDATION_ERROR"
    assert response.json["errors"][0]["field"] == "file"
    assert words in response.json["errors"][0]["message"], response.json
    assert db.session.scalar(select(KycDocument).where(KycDocument.user_id == player.id)) is None


def test_a_clean_pdf_is_accepted_up_to_the_page_bound(app, client, factory, token_for):
    app.config["KYC_PDF_MAX_PAGES"] = 3
    try:
        player = factory.player()
        ok = upload(client, token_for(player), pdf_bytes(3), "proof_of_address", "b.pdf")
        assert ok.status_code == 201, ok.json
        over = upload(client, token_for(player), pdf_bytes(4), "proof_of_address", "b.pdf")
        assert over.status_code == 400
        assert "more than 3 pages" in over.json["errors"][0]["message"]
    finally:
        app.config["KYC_PDF_MAX_PAGES"] = 50


def test_a_benign_open_action_is_fine(app):
    # "Open at page 1" is an ordinary GoTo action, not active content.
    writer = _one_page()
    writer.root_object[NameObject("/OpenAction")] = ArrayObject(
        [writer.pages[0].indirect_reference, NameObject("/Fit")]
    )
    with app.app_context():
        assert inspect(_written(writer)).mime_type == "application/pdf"


def test_a_deflate_bomb_in_a_content_stream_is_not_decoded(app):
    # Content streams are never decompressed to accept a document: 64 MiB of zeros cost
    # nothing but their compressed bytes.
    writer = _one_page()
    bomb = StreamObject()
    bomb.set_data(b"")
    bomb._data = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    bomb[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer.pages[0][NameObject("/Contents")] = writer._add_object(bomb)
    data = _written(writer)
    assert len(data) < 100_000
    with app.app_context():
        assert inspect(data).mime_type == "application/pdf"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=0, max_value=4000),
    junk=st.binary(min_size=0, max_size=64),
)
def test_a_mangled_pdf_is_a_400_never_a_500(app, cut, junk):
    from app.core.errors import AppError

    data = pdf_bytes(2)
    cut %= len(data)
    mangled = data[:cut] + junk + data[cut + len(junk) :]
    status = 201
    with app.app_context():
        try:
            inspect(mangled)
        except AppError as exc:
            status = exc.status
    assert status in (201, 400, 415)
