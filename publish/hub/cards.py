"""Model card parsing: YAML metadata between `---` lines, then a Markdown body.

>>> split_card("---\\nlicense: mit\\ntags: [a]\\n---\\n# Hi\\n")
({'license': 'mit', 'tags': ['a']}, '# Hi\\n')
"""
from __future__ import annotations

import re
from typing import Any

import yaml

FRONT_RE = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)


class CardError(ValueError):
    """The YAML metadata block cannot be parsed or is not a mapping."""


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """Return (metadata, body); raise CardError on invalid YAML."""
    m = FRONT_RE.match(text)
    if not m:
        return {}, text
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        raise CardError(f"Invalid YAML in model card metadata: {e}") from None
    if not isinstance(meta, dict):
        raise CardError("Model card metadata must be a YAML mapping")
    return meta, text[m.end():]


def card_data(text: str) -> dict[str, Any]:
    """Metadata only, `{}` when the card has none or it is invalid (the repo stays readable)."""
    try:
        return _jsonable(split_card(text)[0])
    except CardError:
        return {}


def card_tags(meta: dict[str, Any]) -> list[str]:
    """Tags as the Hub derives them: the card's tags, library and license."""
    tags = meta.get("tags") or []
    tags = [str(t) for t in (tags if isinstance(tags, list) else [tags])]
    if meta.get("library_name"):
        tags.append(str(meta["library_name"]))
    if meta.get("license"):
        tags.append(f"license:{meta['license']}")
    return list(dict.fromkeys(tags))


def _jsonable(value: Any) -> Any:
    # YAML gives dates and other non-JSON types; the client only needs their text.
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
