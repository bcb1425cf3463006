"""Pure helpers of the generator: tensor fingerprints, op search and index generalisation.

No transformers import here, so these run (and are doctested) in the project environment too.

>>> import numpy as np
>>> w = np.arange(24, dtype=np.float32).reshape(4, 6)
>>> find_op(w, w.T.reshape(3, 2, 4))
'T|split(0,3)'
>>> generalise([("a.0.w", "x/a_._0/w", None), ("a.1.w", "x/a_._1/w", None)])
[('a.{0}.w', 'x/a_._{0}/w', None)]
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re

import numpy as np

from ...ops import parse


def fingerprint(arr: np.ndarray) -> str | None:
    """A digest of the sorted values: the same for any transpose/reshape of a tensor; None for ints."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return None
    return hashlib.sha1(np.sort(arr.astype(np.float32).ravel()).tobytes()).hexdigest()


def reshape_op(src: tuple[int, ...], dst: tuple[int, ...]) -> str | None:
    """Op steps that reshape ``src`` into ``dst`` (squeeze, merge, split, unsqueeze), or None.

    >>> reshape_op((6, 4), (2, 3, 4))
    'split(0,2)'
    >>> reshape_op((1, 8), (8,))
    'squeeze(0)'
    """
    if math.prod(src) != math.prod(dst):
        return None
    if tuple(src) == tuple(dst):
        return ""
    steps: list[str] = []
    shape = list(src)
    for i in reversed(range(len(shape))):  # drop size-1 axes, last first so indices hold
        if shape[i] == 1:
            steps.append(f"squeeze({i})")
            del shape[i]
    target = [d for d in dst if d != 1]
    axis, j = 0, 0
    while j < len(target):
        # Grow the source run and the target run until their products meet.
        k, p = axis + 1, shape[axis]
        m, q = j + 1, target[j]
        while p != q:
            if p < q:
                p *= shape[k]
                k += 1
            else:
                q *= target[m]
                m += 1
        for _ in range(k - axis - 1):
            steps.append(f"merge({axis})")
        for n in range(j, m - 1):
            steps.append(f"split({axis + n - j},{target[n]})")
        shape[axis:k] = target[j:m]
        axis += m - j
        j = m
    for i, d in enumerate(dst):  # put back the size-1 axes of the target
        if d == 1:
            steps.append(f"unsqueeze({i})")
    return "|".join(steps)


def _transposes(ndim: int) -> list[str]:
    # The layouts transformers uses first (so the recorded op reads like its own code), then the rest.
    # Conv kernels before T: for a 1x1 kernel both reproduce the data, but only the conv
    # permutation is right for the 3x3 kernel at the same place in a real checkpoint.
    first = [""] + {4: ["perm(2,3,1,0)"], 3: ["perm(2,1,0)"], 5: ["perm(2,3,4,1,0)"]}.get(ndim, []) + ["T"]
    rest = [f"perm({','.join(map(str, p))})" for p in itertools.permutations(range(ndim))] if ndim <= 5 else []
    return list(dict.fromkeys(first + rest))


def find_op(pt: np.ndarray, native: np.ndarray) -> str | None:
    """The simplest op with ``op.apply(pt) == native`` bit for bit, or None.

    Pure transposes are tried before any reshape: a (1, n) classifier and its (n, 1) kernel are a
    transpose, not a squeeze/unsqueeze, even though both reproduce the data.
    """
    candidates = [(t, False) for t in _transposes(pt.ndim)] + [(t, True) for t in _transposes(pt.ndim)]
    for t, reshape in candidates:
        shape = parse(t).shape(pt.shape)
        r = reshape_op(shape, native.shape) if reshape else ("" if shape == native.shape else None)
        if r is None:
            continue
        text = "|".join(s for s in (t, r) if s) or "identity"
        op = parse(text)
        if op.shape(pt.shape) == native.shape and np.array_equal(op.apply(pt), native):
            return text
    return None


# Joins the native names of one PyTorch key that feeds several framework weights (copies) while
# `generalise` treats them as one string; Keras and Flax names never contain a space.
COPY_SEP = " "


def primary_rank(pt_key: str, native: str, op: str) -> tuple[int, bool, str]:
    """Sort key choosing, among the native copies of one PyTorch tensor, the one read back first:
    the name sharing most components with the key, then an identity op, then alphabetical.

    >>> names = [("lm_head/kernel", "T"), ("model/embed_tokens/weight", "identity")]
    >>> min(names, key=lambda t: primary_rank("model.embed_tokens.weight", *t))[0]
    'model/embed_tokens/weight'
    """
    shared = len(set(pt_key.split(".")) & set(native.split("/")))
    return -shared, op != "identity", native


_PT_NUM = re.compile(r"(?:(?<=^)|(?<=\.))(\d+)(?=\.|$)")
# Keras list scopes: `layer_._3` (BERT), `layers.3` (BART, ResNet), `/3/` (Flax), `layers_3`.
_NATIVE_NUM = re.compile(r"(?:(?<=_\._)|(?<=^)|(?<=/)|(?<=_)|(?<=\.))(\d+)(?=/|$|_|\.)")


def _nums(regex: re.Pattern, text: str | None) -> list[re.Match]:
    return list(regex.finditer(text)) if text else []


def _skeleton(regex: re.Pattern, text: str | None) -> str | None:
    return regex.sub("#", text) if text else text


def _fill(text: str, matches: list[re.Match], names: list[str | None]) -> str:
    out, last = [], 0
    for m, name in zip(matches, names):
        out.append(text[last:m.start()])
        out.append(m.group(0) if name is None else name)
        last = m.end()
    return "".join(out) + text[last:]


Row = tuple[str, "str | None", "str | None"]


def generalise(rows: list[Row]) -> list[Row]:
    """Replace list indices by ``{i}`` placeholders where every instance agrees.

    A PT index becomes ``{i}`` only when the TF and Flax names carry the same index at one
    fixed position in every row of its group; anything else stays literal (then a deeper
    checkpoint than the tiny model fails loudly instead of guessing).
    """
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        key = (_skeleton(_PT_NUM, row[0]), _skeleton(_NATIVE_NUM, row[1]), _skeleton(_NATIVE_NUM, row[2]))
        groups.setdefault(key, []).append(row)
    out: list[Row] = []
    seen: dict[str, int] = {}
    for members in groups.values():
        pt_m = [_nums(_PT_NUM, r[0]) for r in members]
        n_pt = len(pt_m[0])
        native_maps = []
        for col in (1, 2):
            ms = [_nums(_NATIVE_NUM, r[col]) for r in members]
            mapping: list[int | None] = []
            for j in range(len(ms[0])):
                # Prefer the same ordinal position, then any PT index that matches in every row.
                order = ([j] if j < n_pt else []) + [i for i in range(n_pt) if i != j]
                hit = next((i for i in order if all(int(m[j].group(0)) == int(p[i].group(0))
                                                     for m, p in zip(ms, pt_m))), None)
                mapping.append(hit)
            native_maps.append((ms, mapping))
        used = set()
        for col, (ms, mapping) in zip((1, 2), native_maps):
            used.update(i for i in mapping if i is not None)
        # A PT index that some non-null native name does not carry must stay literal.
        for col, (ms, mapping) in zip((1, 2), native_maps):
            if members[0][col] is not None:
                used &= {i for i in mapping if i is not None}
        r0 = members[0]
        if r0[1] is None and r0[2] is None:
            used = set(range(n_pt))  # PyTorch-only tensors: any depth is fine
        pt_t = _fill(r0[0], pt_m[0], [f"{{{i}}}" if i in used else None for i in range(n_pt)])
        natives = []
        for col, (ms, mapping) in zip((1, 2), native_maps):
            if r0[col] is None:
                natives.append(None)
                continue
            names = [f"{{{i}}}" if i is not None and i in used else None for i in mapping]
            natives.append(_fill(r0[col], ms[0], names))
        templ = (pt_t, natives[0], natives[1])
        expanded = [_expand(templ, p) for p in pt_m]
        if expanded != members or pt_t in seen:
            out.extend(members)  # the template would not reproduce every row: keep them literal
        else:
            seen[pt_t] = 1
            out.append(templ)
    return out


def _expand(templ: Row, pt_matches: list[re.Match]) -> Row:
    values = [m.group(0) for m in pt_matches]
    return tuple(t.format(*values) if t is not None else None for t in templ)  # type: ignore[return-value]
