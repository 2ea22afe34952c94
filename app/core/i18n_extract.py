"""The Python extractor of ``babel.cfg``: literal arguments of the gettext and error keyword
calls (read from the syntax tree), plus the default ``message`` of each error class
(``class KycRequired(AppError): status, code, message = 400, "...", "..."``).

Domain code raises ``ValidationError("...")``, ``NotFound("...")`` ...: those calls are
Babel keywords (``KEYWORDS``), so a literal message is extracted without a ``_()`` around it;
the API's error handler looks it up when it answers (``app.core.i18n.translate_message``). A
message built with an f-string cannot be a msgid and stays English (docs/i18n.md).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from app.core.opsettings import label

#: The error classes whose first argument is a message (``field``: the second).
ERROR_KEYWORDS = (
    "AppError",
    "ValidationError",
    "AuthenticationError",
    "TokenExpired",
    "AccessDenied",
    "NotFound",
    "Conflict",
    "InsufficientBalance",
    "KycRequired",
    "EmailNotVerified",
    "LimitExceeded",
    "SelfExcluded",
    "RateLimited",
    "MaintenanceMode",
    "ServiceUnavailable",
)

#: marshmallow/WTForms validators whose ``error=`` is a message shown to the caller.
VALIDATORS = frozenset(
    {"Length", "Range", "Regexp", "OneOf", "NoneOf", "Email", "URL", "Equal", "ContainsOnly"}
)

#: Keyword arguments that are texts shown as they are (the console's charts and figures).
KEYWORD_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "Chart": ("title", "value_label", "caption"),
    "money_chart": ("value_label", "caption"),
    "daily_chart": ("value_label",),
    "Kpi": ("hint",),
    # The generic console form page (console/engagement/form_page.html shows them translated).
    "render_template": ("title", "submit_label", "back_label", "intro"),
}

#: Every keyword, in pybabel's ``-k`` syntax (``name:argument``).
KEYWORDS: dict[str, Any] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "lazy_gettext": None,
    "_l": None,
    "N_": None,
    "field": (2,),
    "envelope": (3,),
    "flash": None,
    "Msg": None,
    "NavItem": (2,),
    "Kpi": (2,),
    "money_chart": None,
    "daily_chart": None,
    **dict.fromkeys(ERROR_KEYWORDS),
}


def _class_messages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef) or not node.bases:
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
                continue
            target, value = stmt.targets[0], stmt.value
            pairs: list[tuple[ast.expr, ast.expr]]
            if isinstance(target, ast.Name) and target.id == "message":
                pairs = [(target, value)]
            elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                pairs = list(zip(target.elts, value.elts, strict=False))
            else:
                continue
            for name, const in pairs:
                if (
                    isinstance(name, ast.Name)
                    and name.id == "message"
                    and isinstance(const, ast.Constant)
                    and isinstance(const.value, str)
                ):
                    yield stmt.lineno, const.value


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _string(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    """``BAD_CREDENTIALS = "..."`` at module level: a message named once, raised often."""
    out = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id.isupper()
        ):
            text = _string(stmt.value)
            if text:
                out[stmt.targets[0].id] = text
    return out


def _setting_texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """The operator settings' labels and descriptions: ``Spec("key", "type", "description",
    ...)`` in ``app.core.opsettings`` (the console's settings page shows both translated)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == "Spec" and len(node.args) >= 3:
            key, description = _string(node.args[0]), _string(node.args[2])
            if key:
                yield node.lineno, label(key)
            if description:
                yield node.lineno, description


def _keyword_calls(tree: ast.Module, keywords: Mapping[str, Any]) -> Iterator[tuple[int, Any]]:
    """Literal arguments of keyword calls (or a module constant holding one). An f-string, a
    ``", ".join(...)`` or another variable is no msgid and is skipped (Babel's tokenizer would
    pick up fragments of them)."""
    constants = _module_constants(tree)

    def literal(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return _string(node)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name in VALIDATORS or name in KEYWORD_ARGUMENTS:
            wanted = KEYWORD_ARGUMENTS.get(name or "", ("error",))
            for keyword in node.keywords:
                text = _string(keyword.value) if keyword.arg in wanted else None
                if text:
                    yield node.lineno, text
        if name is None or name not in keywords:
            continue
        if name in ERROR_KEYWORDS and node.args and isinstance(node.args[0], ast.Dict):
            # marshmallow's ValidationError({"field": ["message"]})
            for value in ast.walk(node.args[0]):
                text = _string(value) if isinstance(value, ast.Constant) else None
                if text and not any(text == _string(k) for k in node.args[0].keys if k):
                    yield node.lineno, text
            continue
        spec = keywords[name] or (1,)
        texts = [literal(node.args[i - 1]) if len(node.args) >= i else None for i in spec]
        if any(text is None for text in texts) or not texts[0]:
            continue
        yield node.lineno, (texts[0] if len(texts) == 1 else tuple(texts))


def extract(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any] | Collection[str],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[tuple[int, str | None, Any, list[str]]]:
    tree = ast.parse(fileobj.read())
    for lineno, message in _keyword_calls(tree, KEYWORDS):
        # A plural (singular, plural) is matched against ngettext's spec; a single text
        # is already the message.
        yield lineno, ("ngettext" if isinstance(message, tuple) else None), message, []
    for lineno, message in _class_messages(tree):
        yield lineno, None, message, []
    for lineno, message in _setting_texts(tree):
        yield lineno, None, message, []


ROOT = Path(__file__).resolve().parents[2]
#: The catalogues kept (English is the source language: its texts are the msgids).
LANGUAGES = ("de",)


def extract_catalog(root: Path = ROOT) -> Catalog:
    """Every translatable text of the code now (what ``pybabel extract -F babel.cfg`` finds)."""
    with (root / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    catalog = Catalog(project="JackpotX", msgid_bugs_address="", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update_catalogs(root: Path = ROOT) -> list[tuple[str, int, int]]:
    """Merge the code's texts into each ``.po`` (new ones empty, changed ones fuzzy, gone
    ones obsolete) and write ``messages.pot``; answers (language, texts, untranslated)."""
    template = extract_catalog(root)
    with (root / "app" / "translations" / "messages.pot").open("wb") as handle:
        write_po(handle, template, width=100, sort_output=True, include_lineno=False)
    out = []
    for language in LANGUAGES:
        po = root / "app" / "translations" / language / "LC_MESSAGES" / "messages.po"
        if po.exists():
            with po.open("rb") as handle:
                catalog = read_po(handle)
        else:
            po.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=language, project="JackpotX", charset="utf-8", fuzzy=False)
        created = catalog.creation_date
        catalog.update(template, update_header_comment=False)
        # The header's date would change on every run: a merge conflict for nothing.
        catalog.creation_date = created
        with po.open("wb") as handle:
            # No line numbers: a change elsewhere in a file does not touch the catalogue.
            write_po(
                handle,
                catalog,
                width=100,
                sort_output=True,
                ignore_obsolete=True,
                include_lineno=False,
            )
        missing = sum(1 for m in catalog if m.id and (not m.string or m.fuzzy))
        out.append((po.parent.parent.name, len([m for m in catalog if m.id]), missing))
    return out


if __name__ == "__main__":  # `make messages`
    for language, total, missing in update_catalogs():
        sys.stdout.write(f"{language}: {total} texts, {missing} to translate or review\n")
