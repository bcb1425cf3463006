"""Record what transformers 4.57.6 itself does with every tensor of one model_type.

Runs inside the transformers environment.  For each (PT, TF, Flax) class triple it builds the tiny
PyTorch model, gives every floating tensor its own random values, lets transformers convert it
(``from_pt=True`` + ``save_pretrained``), reads the files transformers wrote, and matches each TF /
Flax tensor to its PyTorch source by the sorted-value fingerprint; the op is then searched and checked
bit for bit.  So the map is what transformers does, not what we believe it does.
"""
from __future__ import annotations

import gc
import re
import tempfile
import traceback
from pathlib import Path

import numpy as np

from .detect import detect_computed
from .match import COPY_SEP, find_op, fingerprint, generalise, primary_rank


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, path))
        else:
            out[path] = np.asarray(v)
    return out


def _read_h5(path: Path) -> tuple[list[str], list[str], dict[str, tuple[list[str], np.ndarray]]]:
    """(layer_names attr, root groups, {full weight name without ':0': (groups holding it, value)}).

    One weight can sit in several groups: a head layer that reuses the embeddings (BERT's
    ``mlm___cls``) lists them again, and transformers' loader looks for them in both.
    """
    import h5py

    weights: dict[str, tuple[list[str], np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        layers = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        groups = list(f.keys())
        for g in groups:
            for n in f[g].attrs.get("weight_names", []):
                n = n.decode() if isinstance(n, bytes) else n
                entry = weights.setdefault(n.removesuffix(":0"), ([], np.asarray(f[g][n])))
                entry[0].append(g)
    return layers, groups, weights


def _match(pt_arrays: dict[str, np.ndarray], by_print: dict[str, list[str]], canonical: set[str],
           native: dict[str, np.ndarray]) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """PT key -> [(native name, op), …] and the native names no PT tensor explains.

    Usually one native name per key.  Several when transformers fills separate framework weights
    from one (tied) PyTorch tensor, e.g. XGLM's ``model/embed_tokens/weight`` and ``lm_head/kernel``
    both from ``model.embed_tokens.weight``; the primary (the one read back) comes first.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    orphans: list[str] = []
    for name, value in native.items():
        keys = by_print.get(fingerprint(value) or "", [])
        # A tied group shares one fingerprint: the key transformers keeps in the file is the source.
        keys = sorted(keys, key=lambda k: (k not in canonical, k in found))
        op = None
        for key in keys:
            op = find_op(pt_arrays[key], value)
            if op is not None:
                break
        if op is None:
            orphans.append(name)
        else:
            found.setdefault(key, []).append((name, op))
    for key, targets in found.items():
        targets.sort(key=lambda t: primary_rank(key, t[0], t[1]))
    return found, orphans


def _record_tf(cls, pt_dir: Path, work: Path, pt_arrays: dict, by_print: dict, canonical: set) -> tuple[dict, dict]:
    import tf_keras

    tf_keras.backend.clear_session()  # else Keras numbers the second model `tf_x_model_1`
    tf_model, info = cls.from_pretrained(pt_dir, from_pt=True, output_loading_info=True)
    tf_model.save_pretrained(work / "tf")
    layers, groups, weights = _read_h5(work / "tf" / "tf_model.h5")
    firsts = [n.split("/")[0] for n in weights if "/" in n]
    model_name = max(set(firsts), key=firsts.count) if firsts else tf_model.name
    native, group_of, bare = {}, {}, []
    for n, (g, v) in weights.items():
        # transformers drops the first component whatever it is (a few weights, e.g. BART's
        # `model.shared/...`, do not start with the model name); one-component names stay whole.
        short = n.split("/", 1)[1] if "/" in n else n
        if "/" not in n:
            bare.append(short)
        native[short] = v
        if g != [short.split("/")[0]]:  # the writer must put this one in other/more h5 groups
            group_of[short] = g
    found, orphans = _match(pt_arrays, by_print, canonical, native)
    out = {"class": cls.__name__, "model_name": model_name, "layers": layers, "h5_groups": groups,
           "only": sorted(orphans), "load_missing": sorted(info.get("missing_keys", [])),
           "load_unexpected": sorted(info.get("unexpected_keys", []))}
    if group_of:
        out["groups"] = group_of
    if bare:
        out["bare"] = bare
    return out, found


def _record_flax(cls, pt_dir: Path, work: Path, pt_arrays: dict, by_print: dict, canonical: set) -> tuple[dict, dict]:
    from flax.serialization import msgpack_restore

    fmodel = cls.from_pretrained(pt_dir, from_pt=True)
    fmodel.save_pretrained(work / "flax")
    tree = _flatten(msgpack_restore((work / "flax" / "flax_model.msgpack").read_bytes()))
    found, orphans = _match(pt_arrays, by_print, canonical, tree)
    return {"class": cls.__name__, "only": sorted(orphans),
            "batch_stats": any(p.startswith("batch_stats/") for p in tree)}, found


# Buffer names whose values come from training (not rebuildable from the config).
TRAINED_BUFFERS = (".running_mean", ".running_var")


def record_class(model_type: str, pt_name: str, tf_name: str | None, flax_name: str | None,
                 work: Path, config=None) -> dict:
    """The map entry of one architecture (see docs/transformers.md for the format).

    ``config``: a variant of the tiny config (default: the tiny config itself).
    """
    import torch
    import transformers
    from safetensors.numpy import load_file

    from .build import FROM_BIN, tiny_config

    config = config if config is not None else tiny_config(model_type, pt_name)
    torch.manual_seed(0)
    model = getattr(transformers, pt_name)(config).eval()
    # The values a fresh model holds: what a computed tensor must reproduce (before the noise below).
    fresh = {k: v.detach().cpu().clone().numpy() for k, v in model.state_dict().items()}
    fresh.update({k: v.detach().cpu().clone().numpy() for k, v in model.named_buffers() if k not in fresh})
    gen = torch.Generator().manual_seed(1)
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for t in state.values():
            if t.is_floating_point():  # distinct values per tensor make the fingerprint a unique id
                t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t.dtype))
    pt_dir = work / "pt"
    model.save_pretrained(pt_dir, safe_serialization=True)
    canonical = set(load_file(str(pt_dir / "model.safetensors")))
    if model_type in FROM_BIN:  # transformers converts the tied keys only a .bin still carries
        pt_dir = work / "pt-bin"
        model.save_pretrained(pt_dir, safe_serialization=False)
    pt_arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    param_names = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    ptrs: dict[tuple, list[str]] = {}
    for k, v in model.state_dict().items():
        ptrs.setdefault((v.data_ptr(), tuple(v.shape), v.dtype), []).append(k)
    tied = {k: next(x for x in ks if x in canonical) for ks in ptrs.values() if len(ks) > 1
            and any(x in canonical for x in ks) for k in ks if k not in canonical}
    by_print: dict[str, list[str]] = {}
    for k, v in pt_arrays.items():
        fp = fingerprint(v)
        if fp:
            by_print.setdefault(fp, []).append(k)

    arch: dict = {"pt": {"class": pt_name}}
    tf_found: dict[str, list[tuple[str, str]]] = {}
    flax_found: dict[str, list[tuple[str, str]]] = {}
    errors: dict[str, str] = {}
    for framework, cls_name, recorder in (("tf", tf_name, _record_tf), ("flax", flax_name, _record_flax)):
        if not cls_name:
            continue
        try:  # one framework failing must not lose the other
            arch[framework], found = recorder(getattr(transformers, cls_name), pt_dir, work, pt_arrays,
                                              by_print, canonical)
            (tf_found if framework == "tf" else flax_found).update(found)
        except Exception as exc:
            errors[framework] = _reason(exc)
            traceback.print_exc()
    tf_name = tf_name if "tf" in arch else None
    flax_name = flax_name if "flax" in arch else None
    if errors:
        arch["errors"] = errors
    if not tf_name and not flax_name:
        raise RuntimeError("; ".join(f"{k}: {v}" for k, v in errors.items()) or "no TF or Flax class")

    rows = []
    notes = {}
    ops = {}
    for k in pt_arrays:
        tf_t, fx_t = tf_found.get(k, []), flax_found.get(k, [])
        # Several native names of one key (copies) travel through `generalise` as one joined string.
        rows.append((k, COPY_SEP.join(n for n, _ in tf_t) or None, COPY_SEP.join(n for n, _ in fx_t) or None))
        ops[k] = (tf_t[0][1] if tf_t else None, fx_t[0][1] if fx_t else None)
        if k in tied:
            notes[k] = ("tied", tied[k])
        elif k not in param_names:
            notes[k] = ("buffer", None)
    # Buffers that PyTorch no longer saves (position_ids, …) still sit in older checkpoints.
    unsaved = set()
    for k, _ in model.named_buffers():
        if k not in pt_arrays:
            rows.append((k, None, None))
            notes[k] = ("buffer", None)
            ops[k] = (None, None)
            unsaved.add(k)
    settings = config.to_dict()
    # Only what training never changes can be rebuilt from the config (a zero-initialised bias cannot).
    trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    # BatchNorm statistics are buffers, but training sets them: never a formula of the config.
    trainable |= {k for k in pt_arrays if k.endswith(TRAINED_BUFFERS)}
    tensors = []
    for pt_t, tf_t, fx_t in generalise(rows):
        example = pt_t.format(*(["0"] * 8)) if "{" in pt_t else pt_t
        src = next(r for r in rows if r[0] == example or _same(pt_t, r[0]))
        e: dict = {"pt": pt_t}
        if tf_name:
            e.update(_native_fields("tf", tf_t, tf_found.get(src[0], []), arch["tf"]))
        if flax_name:
            e.update(_native_fields("flax", fx_t, flax_found.get(src[0], []), arch["flax"]))
        note = notes.get(src[0])
        if note and note[0] == "tied":
            e["tied_to"] = _generalise_like(note[1], src[0], pt_t)
            e["note"] = "tied parameter, stored once"
        elif note:
            e["note"] = "buffer" + ("" if (e.get("tf") or e.get("flax")) else ", PyTorch only")
        elif (tf_name and e.get("tf") is None) or (flax_name and e.get("flax") is None):
            missing = [f for f in ("tf", "flax") if f in e and e[f] is None]
            e["note"] = f"no {'/'.join(missing)} counterpart in transformers"
        if src[0] in unsaved:
            e["saved"] = False  # PyTorch does not write it: never written back either
        elif src[0] not in trainable and not e.get("tied_to") and (
                (tf_name and e.get("tf") is None) or (flax_name and e.get("flax") is None)):
            spec = detect_computed(fresh[src[0]], settings)
            if spec is not None:
                e["computed"] = spec
        tensors.append(e)
    arch["pt"]["canonical_keys"] = len(canonical)
    # transformers' own list of PyTorch keys it drops without a warning (regexes).
    arch["pt"]["ignore_unexpected"] = list(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])
    arch["tensors"] = tensors
    _check_ops(tensors, ops)
    return arch


def _native_fields(fw: str, template: str | None, found: list[tuple[str, str]], info: dict) -> dict:
    """The ``tf``/``tf_op``/``tf_groups``/``tf_bare`` fields of one entry (same for ``flax``).

    ``template`` is the generalised native name, copies joined by COPY_SEP; ``found`` the literal
    (name, op) pairs of the example row, primary first.  Copies go to ``{fw}_copies``, e.g.
    ``_native_fields("tf", "a/w b/k", [("a/w", "identity"), ("b/k", "T")], {})`` ->
    ``{"tf": "a/w", "tf_op": "identity", "tf_copies": [{"tf": "b/k", "tf_op": "T"}]}``.
    """
    if template is None:
        return {fw: None}
    parts: list[dict] = []
    for name_t, (name, op) in zip(template.split(COPY_SEP), found):
        part = {fw: name_t, f"{fw}_op": op}
        groups = info.get("groups", {}).get(name)
        if groups:
            part[f"{fw}_groups"] = groups
        if name in info.get("bare", []):
            part[f"{fw}_bare"] = True  # written without the model-name component
        parts.append(part)
    out = parts[0]
    if parts[1:]:
        out[f"{fw}_copies"] = parts[1:]
    return out


def _same(template: str, key: str) -> bool:
    import re

    rx = re.escape(template)
    rx = re.sub(r"\\\{\d+\\\}", r"\\d+", rx)
    return re.fullmatch(rx, key) is not None


def _generalise_like(target: str, key: str, template: str) -> str:
    # Tied targets keep indices literal unless the key's own indices appear in the same place.
    return target


def _check_ops(tensors: list[dict], ops: dict) -> None:
    for e in tensors:
        for f in ("tf_op", "flax_op"):
            if f in e and e[f] is None:
                raise ValueError(f"{e['pt']}: no op reproduces transformers' {f[:-3]} tensor")


def record_family(model_type: str, classes: list[tuple[str, str | None, str | None]]) -> tuple[dict, dict[str, str], list]:
    """({PT class: architecture map}, {class: failure reason}, [option variant records]) for one model_type.

    Every class is recorded from the tiny config; the base class then from each option variant
    (``build.option_flips`` that really add PyTorch tensors), and the tensors only a variant has are
    merged into every class's map with the config change that creates them (``enabled_by``).
    """
    archs: dict = {}
    failures: dict[str, str] = {}
    for pt_name, tf_name, flax_name in classes:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                archs[pt_name] = record_class(model_type, pt_name, tf_name, flax_name, Path(tmp))
            except Exception as exc:  # one class failing must not lose the family
                failures[pt_name] = _reason(exc)
                traceback.print_exc()
        gc.collect()
    base = next((c for c in classes if c[0] in archs), None)
    variants = _record_variants(model_type, base, archs) if base else []
    return archs, failures, variants


def _state_keys(pt_name: str, config) -> set[str]:
    import transformers

    model = getattr(transformers, pt_name)(config)
    return set(model.state_dict()) | {k for k, _ in model.named_buffers()}


def _record_variants(model_type: str, base: tuple, archs: dict) -> list[dict]:
    from .build import option_flips, tiny_config, variant_config

    import transformers

    pt_name = base[0]
    prefix = getattr(transformers, pt_name).base_model_prefix
    base_keys = _state_keys(pt_name, tiny_config(model_type, pt_name))
    useful: list[tuple[dict, set[str]]] = []
    causes: list[tuple[dict, set[str]]] = []  # every option that adds tensors (several may add the same)
    covered: set[str] = set()
    for changes in option_flips(model_type, tiny_config(model_type, pt_name)):
        try:  # PyTorch alone says whether the option adds tensors: cheap, no TF/Flax build
            new = _state_keys(pt_name, variant_config(model_type, pt_name, changes)) - base_keys
        except Exception:
            continue
        if new:
            causes.append((changes, new))
        if new and not new <= covered:
            useful.append((changes, new))
            covered |= new
    if not useful:
        return []
    # One combined variant when the options get along (one TF/Flax build instead of many).
    groups: list[list[tuple[dict, set[str]]]] = [useful]
    combined: dict = {}
    for changes, _ in useful:
        combined.update(changes)
    try:
        ok = covered <= _state_keys(pt_name, variant_config(model_type, pt_name, combined))
    except Exception:
        ok = False
    if not ok or len(useful) == 1:
        groups = [[u] for u in useful]
    log: list[dict] = []
    for group in groups:
        changes = {k: v for ch, _ in group for k, v in ch.items()}
        entry = {"config": changes, "adds": 0}
        arch = None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                arch = record_class(model_type, *base, Path(tmp), variant_config(model_type, pt_name, changes))
            except Exception as exc:
                entry["error"] = _reason(exc)
                # What PyTorch creates under it, so a conversion error can name the setting exactly.
                entry["pt_keys"] = sorted({re.sub(r"\.\d+\.", ".{n}.", k) for _, keys in group for k in keys})
        if (arch is None or arch.get("errors")) and len(group) > 1:
            groups += [[u] for u in group]  # a framework refuses one option: record each alone
            entry["split"] = True
        elif arch is not None:
            entry["errors"] = arch.get("errors", {})
            added = _merge_variant(archs[pt_name], arch, group, causes)
            entry["adds"] = len(added)
            for other, other_arch in archs.items():
                if other != pt_name:
                    _transplant(archs[pt_name], other_arch, added, prefix)
        log.append(entry)
        gc.collect()
    return log


def _merge_variant(base: dict, variant: dict, group: list[tuple[dict, set[str]]],
                   causes: list[tuple[dict, set[str]]]) -> list[dict]:
    """Add the variant's tensors the base map lacks, each with the config changes creating it (any of)."""
    known = {e["pt"] for e in base["tensors"]}
    added = []
    for e in variant["tensors"]:
        if e["pt"] in known:
            continue
        found = [ch for ch, keys in causes if any(_same(e["pt"], k) for k in keys)]
        e = dict(e)
        e["enabled_by"] = found or [{k: v for ch, _ in group for k, v in ch.items()}]
        for fw in ("tf", "flax"):
            if fw in base and fw not in variant:  # the framework's class refuses this option
                e[fw] = None
                e[f"{fw}_unsupported"] = "transformers' class fails to build with it: " + variant.get(
                    "errors", {}).get(fw, "")
            elif fw in variant and e.get(fw) is None and not e.get("tied_to") and "computed" not in e:
                # The class builds but ignores the option: a file for it would compute something else.
                e[f"{fw}_unsupported"] = f"transformers' {variant[fw]['class']} ignores it (no such weight)"
        base["tensors"].append(e)
        added.append(e)
    for fw in ("tf", "flax"):
        if fw in base and fw in variant:
            base[fw]["only"] = sorted(set(base[fw]["only"]) | set(variant[fw]["only"]))
    return added


def _transplant(base: dict, other: dict, added: list[dict], prefix: str) -> None:
    """Give a head class the base class's variant-only tensors, under the head's own names.

    Whether the head puts ``prefix`` (the base_model_prefix) before PyTorch keys and Flax paths is
    learnt from the tensors both classes share, e.g. ELECTRA's ``embeddings_project.weight`` becomes
    ``electra.embeddings_project.weight`` in the heads (TF names are the same in every class).
    """
    theirs = {e["pt"]: e for e in other["tensors"]}
    votes: dict[tuple[str, str], int] = {}
    for e in base["tensors"]:
        for p_pt, p_fx in ((prefix + ".", prefix + "/"), ("", "")):
            o = theirs.get(p_pt + e["pt"])
            if o is None:
                continue
            fx_ok = not (e.get("flax") and o.get("flax")) or o["flax"] == p_fx + e["flax"]
            key = (p_pt, p_fx if fx_ok else "?")
            votes[key] = votes.get(key, 0) + 1
    if not votes:
        return
    p_pt, p_fx = max(votes, key=votes.get)
    for e in added:
        t = dict(e, pt=p_pt + e["pt"])
        if t["pt"] in theirs:
            continue
        if t.get("tied_to"):
            t["tied_to"] = p_pt + t["tied_to"]
        for fw in ("tf", "flax"):
            if fw not in other:
                for f in (fw, f"{fw}_op", f"{fw}_copies", f"{fw}_unsupported"):
                    t.pop(f, None)
            elif fw == "flax" and t.get("flax"):
                if p_fx == "?":
                    t["flax"], t["flax_unsupported"] = None, "its Flax name in this class is unknown"
                else:
                    t["flax"] = p_fx + t["flax"]
        other["tensors"].append(t)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
