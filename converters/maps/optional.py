"""Optional and framework-less PyTorch tensors of a transformers map: config conditions, instances.

An entry's ``enabled_by`` lists the config settings (any of) that create it; an entry without a
native name in a framework is rebuilt from its ``computed`` spec or, lacking one, is unrecoverable.

>>> tensors = [{"pt": "bn.running_mean", "flax": "bn/mean"},
...            {"pt": "bn.num_batches_tracked", "flax": None, "computed": {"fn": "zeros", "params": {"shape": []}}}]
>>> missing_tensors(tensors, "flax", {"bn.running_mean"}, {})
([('bn.num_batches_tracked', {'fn': 'zeros', 'params': {'shape': []}})], [])
"""
from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\\\{(\d+)\\\}")


def template_regex(template: str) -> str:
    """A regex matching a template's instances, placeholder ``{i}`` captured as group ``gi``.

    >>> re.fullmatch(template_regex("a.{0}.b.{0}"), "a.3.b.3") is not None
    True
    """
    seen: set[str] = set()

    def group(m: re.Match) -> str:
        i = m.group(1)
        if i in seen:
            return f"(?P=g{i})"
        seen.add(i)
        return f"(?P<g{i}>\\d+)"

    return _PLACEHOLDER.sub(group, re.escape(template))


def enabled_text(entry: dict) -> str | None:
    """The config settings that create an optional tensor, in words, or None for an always-present one.

    >>> enabled_text({"enabled_by": [{"embedding_size": 16}, {"a": True, "b": 2}]})
    'embedding_size=16 (or a=True, b=2)'
    """
    conds = entry.get("enabled_by") or []
    if isinstance(conds, dict):
        conds = [conds]
    texts = [", ".join(f"{k}={v}" for k, v in c.items()) for c in conds]
    if not texts:
        return None
    return texts[0] + (f" (or {'; '.join(texts[1:])})" if texts[1:] else "")


def applies(entry: dict, config: dict) -> bool:
    """Whether ``config`` switches on an optional tensor (always true for one with no ``enabled_by``)."""
    conds = entry.get("enabled_by") or []
    if isinstance(conds, dict):
        conds = [conds]
    # An option recorded as a size (embedding_size=16) is on whenever the config sets that field at all.
    return not conds or any(all(k in config and (config[k] == v or not isinstance(v, (bool, str))) for k, v in c.items())
                            for c in conds)



def missing_tensors(tensors: list[dict], framework: str, present: set[str], config: dict) -> tuple[list[tuple[str, dict]], list[str]]:
    """([(name, computed spec)], [unrecoverable names]) of the PyTorch tensors a ``framework`` file lacks.

    ``present``: the canonical names read from the file.  A tensor counts when its module is there
    (a sibling tensor is in ``present``), PyTorch saves it, the config switches it on, and the file
    lacks it.  With a ``computed`` spec it is rebuilt from the config; else it is unrecoverable.
    """
    parents: dict[str, set[tuple[str, ...]]] = {}
    found: list[tuple[str, dict]] = []
    lost: list[str] = []
    for e in tensors:
        if e.get(framework) or e.get("tied_to") or e.get("saved") is False or not applies(e, config):
            continue
        template = e["pt"]
        parent = template.rsplit(".", 1)[0] if "." in template else ""
        # A module made only of such tensors (Marian's embed_positions) is known by its parent's presence.
        carried = any(x["pt"].startswith(parent + ".") and x.get(framework) for x in tensors)
        anchor = parent if carried or "." not in parent else parent.rsplit(".", 1)[0]
        for name in _instances(template, anchor, present, parents):
            if name in present:
                continue
            if "computed" in e:
                found.append((name, e["computed"]))
            else:
                lost.append(name)
    return found, lost


def _instances(template: str, parent: str, present: set[str], cache: dict) -> list[str]:
    """The names ``template`` takes where its module (``parent``) has tensors in ``present``."""
    if "{" not in parent:
        there = not parent or any(n.startswith(parent + ".") for n in present)
        return [template] if there and "{" not in template else []
    if parent not in cache:
        rx = re.compile(template_regex(parent) + r"\.")
        vals = set()
        for n in present:
            m = rx.match(n)
            if m:
                d = {int(k[1:]): v for k, v in m.groupdict().items()}
                vals.add(tuple(d.get(i, "0") for i in range(max(d) + 1)))
        cache[parent] = vals
    try:
        return sorted({template.format(*v) for v in cache[parent]})
    except IndexError:  # a placeholder only the leaf has: no way to know its instances
        return []
