"""Model card parsing: YAML metadata between `---` lines, then a Markdown body.

>>> split_card("---\\nlicense: mit\\ntags: [a]\\n---\\n# Hi\\n")
({'license': 'mit', 'tags': ['a']}, '# Hi\\n')
"""
from __future__ import annotations

import re
from typing import Any

import yaml

FRONT_RE = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)
# Cards are untrusted: the metadata block is parsed on every repo_info, so it is kept small, and
# aliases that expand to millions of nodes (a "billion laughs" card) are refused.
META_LIMIT = 64 << 10
NODE_LIMIT = 100_000
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~4x faster, bounded nesting


class CardError(ValueError):
    """The YAML metadata block cannot be parsed or is not a mapping."""


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """Return (JSON-able metadata, body); raise CardError on invalid, too large or too deep YAML."""
    m = FRONT_RE.match(text)
    if not m:
        return {}, text
    if len(m.group(1)) > META_LIMIT:
        raise CardError(f"Model card metadata is larger than {META_LIMIT} bytes")
    try:
        meta = yaml.load(m.group(1), Loader=Loader) or {}
        if not isinstance(meta, dict):
            raise CardError("Model card metadata must be a YAML mapping")
        return _jsonable(meta, [NODE_LIMIT]), text[m.end():]
    except yaml.YAMLError as e:
        raise CardError(f"Invalid YAML in model card metadata: {e}") from None
    except RecursionError:
        raise CardError("Model card metadata is nested too deeply") from None


def card_data(text: str) -> dict[str, Any]:
    """Metadata only, `{}` when the card has none or it is invalid (the repo stays readable)."""
    try:
        return split_card(text)[0]
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


def _jsonable(value: Any, budget: list[int]) -> Any:
    # YAML gives dates and other non-JSON types; the client only needs their text. `budget` counts
    # nodes as expanded: an alias repeated a million times costs a million.
    budget[0] -= 1
    if budget[0] < 0:
        raise CardError(f"Model card metadata expands to more than {NODE_LIMIT} values")
    if isinstance(value, dict):
        return {str(k): _jsonable(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, budget) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
