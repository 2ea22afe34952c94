"""Untrusted file uploads (KYC documents, game images): decide what a file is from its bytes,
prove it by decoding it, and store it outside the web root under a name we choose.

Invariants:
* The client's filename and Content-Type are never trusted: the type comes from the magic
  bytes (``filetype``) and must agree with what a decoder (Pillow, or the PDF structure) says.
* Images are fully decoded (``verify`` and ``load``): truncated or corrupt files are refused,
  and decompression bombs are refused by a pixel budget.
* PDFs are parsed (``pypdf``): they must open, not be encrypted, have 1 to
  ``KYC_PDF_MAX_PAGES`` pages, and carry no active content (JavaScript, launch / import /
  submit actions, embedded files, rich media, XFA forms) anywhere in their object graph.
  Any parser failure is a 400 "damaged", never a 500.
* Stored files get a random name with an extension we picked, mode 0600, under ``UPLOAD_DIR``
  (not a static folder); the sha256 is recorded so a file can be proven unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

import filetype
import pypdf
from flask import current_app
from PIL import Image
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, PdfObject

from app.core.errors import AppError, ValidationError

#: What a KYC document may be, by detected MIME type → extension we store it with.
ALLOWED_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/pdf": "pdf",
}
_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
#: A 50-megapixel phone photo is fine; a 30000x30000 PNG bomb is not.
MAX_PIXELS = 60_000_000
#: Objects of a PDF's graph we walk looking for active content; a scanned ID has a few dozen.
MAX_PDF_OBJECTS = 20_000
#: Dictionary keys that carry or trigger active content: JavaScript, embedded files, rich
#: media (Flash/3D), XFA forms (scriptable), additional actions (page open/close triggers).
_PDF_ACTIVE_KEYS = frozenset(
    {"/JS", "/JavaScript", "/EmbeddedFiles", "/EmbeddedFile", "/EF", "/RichMedia",
     "/RichMediaContent", "/XFA", "/AA"}
)  # fmt: skip
#: Action types (``/S``) and object types (``/Type``, ``/Subtype``) that do the same.
_PDF_ACTIVE_NAMES = frozenset(
    {"/JavaScript", "/Launch", "/ImportData", "/SubmitForm", "/GoToE", "/RichMediaExecute",
     "/Rendition", "/EmbeddedFile", "/FileAttachment", "/RichMedia", "/Sound", "/Movie"}
)  # fmt: skip


class FileTooLarge(AppError):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", "The file is too large"


class UnsupportedFileType(AppError):
    status, code, message = 415, "UNSUPPORTED_MEDIA_TYPE", "This file type is not accepted"


@dataclass(frozen=True)
class CheckedFile:
    data: bytes
    mime_type: str
    extension: str
    sha256: str
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


def max_bytes() -> int:
    return int(current_app.config.get("KYC_MAX_FILE_BYTES", 8 * 1024 * 1024))


def check_size(size: int) -> None:
    if size <= 0:
        raise ValidationError.field("file", "The file is empty")
    if size > max_bytes():
        raise FileTooLarge(f"The file is larger than {max_bytes() // (1024 * 1024)} MiB")


#: What a picture (a game's thumbnail or banner) may be: images only.
IMAGE_TYPES = {mime: ext for mime, ext in ALLOWED_TYPES.items() if mime.startswith("image/")}


def inspect(
    data: bytes, *, allowed: dict[str, str] | None = None, limit: int | None = None
) -> CheckedFile:
    """Identify and validate ``data``; raise unless it is an accepted, intact document
    (``allowed``: MIME type → extension, default KYC's; ``limit``: bytes, default KYC's)."""
    allowed = ALLOWED_TYPES if allowed is None else allowed
    if limit is None:
        check_size(len(data))
    elif not data:
        raise ValidationError.field("file", "The file is empty")
    elif len(data) > limit:
        raise FileTooLarge(f"The file is larger than {limit // 1024} KiB")
    kind = filetype.guess(data)
    mime = kind.mime if kind is not None else None
    if mime not in allowed:
        names = ", ".join(sorted(ext.upper() for ext in allowed.values()))
        raise UnsupportedFileType(f"Only these file types are accepted: {names}")
    width = height = None
    if mime == "application/pdf":
        _check_pdf(data)
    else:
        width, height = _check_image(data, _PIL_FORMATS[mime])
    return CheckedFile(
        data=data,
        mime_type=mime,
        extension=allowed[mime],
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
    )


def _check_image(data: bytes, expected_format: str) -> tuple[int, int]:
    damaged = ValidationError.field("file", "The image is damaged or incomplete")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format != expected_format:
                    raise UnsupportedFileType("The image content does not match its type")
                if img.width * img.height > MAX_PIXELS:
                    raise ValidationError.field("file", "The image has too many pixels")
                img.verify()
            # verify() does not decode pixel data; load() does, and fails on a truncated file.
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return img.width, img.height
    except (UnsupportedFileType, ValidationError):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ValidationError.field("file", "The image has too many pixels") from None
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError):
        raise damaged from None


class _Refused(Exception):
    """A reason to refuse a PDF, raised inside the guarded parse."""


def max_pdf_pages() -> int:
    return int(current_app.config.get("KYC_PDF_MAX_PAGES", 50))


def _check_pdf(data: bytes) -> None:
    if not data.startswith(b"%PDF-"):
        raise UnsupportedFileType("The document is not a PDF")
    # A complete PDF ends with %%EOF (allowing trailing whitespace); truncated uploads do not.
    if b"%%EOF" not in data[-1024:]:
        raise ValidationError.field("file", "The PDF is damaged or incomplete")
    pages_limit = max_pdf_pages()
    try:
        # The size is already bounded (KYC_MAX_FILE_BYTES); pypdf bounds stream decompression
        # itself. Its warnings (a repaired xref) are noise here: the verdict is below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                raise _Refused("A password-protected PDF is not accepted")
            pages = len(reader.pages)
            if pages < 1:
                raise _Refused("The PDF has no pages")
            if pages > pages_limit:
                raise _Refused(f"The PDF has more than {pages_limit} pages")
            _refuse_active_content(reader.trailer)
    except _Refused as exc:
        raise ValidationError.field("file", str(exc)) from None
    except Exception:  # pypdf errors, KeyError, ValueError, RecursionError...: all a 400
        raise ValidationError.field("file", "The PDF is damaged or incomplete") from None


def _refuse_active_content(trailer: DictionaryObject) -> None:
    """Walk every object reachable from the trailer (iteratively: no recursion to exhaust)
    and refuse JavaScript, launch-like actions and embedded files wherever they hide."""
    seen: set[tuple[int, int]] = set()
    stack: list[PdfObject] = [trailer]
    walked = 0
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if ref in seen:
                continue
            seen.add(ref)
            resolved = obj.get_object()
            if resolved is None:
                continue
            obj = resolved
        walked += 1
        if walked > MAX_PDF_OBJECTS:
            raise _Refused("The PDF is too complex")
        if isinstance(obj, DictionaryObject):
            if _PDF_ACTIVE_KEYS.intersection(obj.keys()):
                raise _Refused("A PDF with scripts, actions or attached files is not accepted")
            for key in ("/S", "/Type", "/Subtype"):
                value = dict.get(obj, key)
                if isinstance(value, IndirectObject):
                    value = value.get_object()
                if isinstance(value, str) and value in _PDF_ACTIVE_NAMES:
                    raise _Refused("A PDF with scripts, actions or attached files is not accepted")
            stack.extend(dict.values(obj))
        elif isinstance(obj, ArrayObject):
            stack.extend(list.__iter__(obj))


def upload_root() -> Path:
    root = Path(current_app.config["UPLOAD_DIR"]).resolve()
    static = Path(current_app.static_folder or "").resolve()
    if static == root or static in root.parents:
        raise RuntimeError("UPLOAD_DIR must not be inside the static web root")
    return root


def store(checked: CheckedFile, folder: str) -> str:
    """Write the file under a random name; return its path relative to ``UPLOAD_DIR``."""
    directory = upload_root() / folder
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    relative = f"{folder}/{secrets.token_hex(16)}.{checked.extension}"
    path = upload_root() / relative
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(checked.data)
    return relative


def path_of(relative: str) -> Path:
    root = upload_root()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValidationError("Invalid stored file path")
    return path


def remove(relative: str) -> None:
    with contextlib.suppress(OSError):
        path_of(relative).unlink(missing_ok=True)
