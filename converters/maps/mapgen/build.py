"""Which transformers classes exist per model_type, and how to build their tiny configs (data tables).

Runs only inside the transformers 4.57.6 environment.  Quirks are table rows, not code paths:
``SHRINK`` applies to every config that has the attribute, ``OVERRIDES`` fixes single model types,
``NOT_BUILDABLE`` names the model types that need more than their own config, with the reason,
``FROM_BIN`` the model types recorded from a ``pytorch_model.bin`` (tied keys kept), e.g.
``"albert" in FROM_BIN``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

# Applied to any config that has the attribute: small enough to build in a second, with at least
# two list entries everywhere so list indices can be generalised into `{0}` placeholders.
SHRINK: dict[str, object] = {
    "hidden_size": 32, "d_model": 32, "n_embd": 32, "dim": 32, "embed_dim": 32, "d_embed": 32,
    "embedding_size": 32, "projection_dim": 32, "hidden_dim": 37,
    "num_hidden_layers": 2, "n_layer": 2, "n_layers": 2, "num_layers": 2,
    "encoder_layers": 2, "decoder_layers": 2, "num_decoder_layers": 2,
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4, "num_heads": 4,
    "encoder_attention_heads": 4, "decoder_attention_heads": 4,
    "intermediate_size": 37, "d_ff": 37, "d_inner": 37, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37,
    "ffn_dim": 37, "n_inner": 37, "d_kv": 8,
    "max_position_embeddings": 64, "n_positions": 64,
}

# In OVERRIDES: leave this attribute at its default (the config refuses or derives it).
KEEP = "<keep default>"

# Per model_type: what SHRINK gets wrong or leaves too big (vision/speech stacks, sub-configs).
OVERRIDES: dict[str, dict[str, object]] = {
    "vit": {"image_size": 32, "patch_size": 8},
    "deit": {"image_size": 32, "patch_size": 8},
    "vit_mae": {"image_size": 32, "patch_size": 8, "decoder_hidden_size": 32, "decoder_num_hidden_layers": 2,
                "decoder_num_attention_heads": 4, "decoder_intermediate_size": 37},
    "beit": {"image_size": 32, "patch_size": 8},
    "data2vec-vision": {"image_size": 32, "patch_size": 8},
    "resnet": {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 2]},
    "regnet": {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 2], "groups_width": 8},
    "convnext": {"num_stages": 2, "hidden_sizes": [8, 16], "depths": [1, 2]},
    "convnextv2": {"num_stages": 2, "hidden_sizes": [8, 16], "depths": [1, 2]},
    "swin": {"image_size": 32, "patch_size": 4, "embed_dim": 8, "depths": [1, 2], "num_heads": [2, 2],
             "window_size": 2},
    "segformer": {"hidden_sizes": [8, 16], "depths": [1, 2], "num_attention_heads": [1, 2],
                  "sr_ratios": [2, 1], "num_encoder_blocks": 2, "decoder_hidden_size": 16,
                  "patch_sizes": [7, 3], "strides": [4, 2]},
    "mobilevit": {"image_size": 32, "hidden_sizes": [16, 24, 32], "neck_hidden_sizes": [8, 8, 16, 16, 24, 32, 64]},
    "efficientformer": {"depths": [1, 1, 1, 2], "hidden_sizes": [8, 16, 24, 32], "num_meta3d_blocks": 1,
                        "image_size": 32},
    # Flax Wav2Vec2 implements only the stable-layer-norm variant (wav2vec2-large-lv60 style).
    "wav2vec2": {"conv_dim": [8, 8], "conv_stride": [5, 2], "conv_kernel": [10, 3],
                 "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2, "vocab_size": 32,
                 "do_stable_layer_norm": True, "feat_extract_norm": "layer"},
    "hubert": {"conv_dim": [8, 8], "conv_stride": [5, 2], "conv_kernel": [10, 3],
               "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2, "vocab_size": 32},
    "whisper": {"num_mel_bins": 8, "max_source_positions": 32, "max_target_positions": 32, "vocab_size": 120,
                "decoder_start_token_id": 1, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                "suppress_tokens": None, "begin_suppress_tokens": None},
    "speech_to_text": {"num_conv_layers": 2, "conv_channels": 16, "input_feat_per_channel": 8,
                       "max_source_positions": 64, "max_target_positions": 64},
    "clip": {}, "groupvit": {}, "blip": {}, "xglm": {}, "led": {"max_encoder_position_embeddings": 64,
                                                             "max_decoder_position_embeddings": 64,
                                                             "attention_window": [4, 4]},
    "longformer": {"attention_window": [4, 4]},
    "funnel": {"block_sizes": [1, 1], "d_head": 8, "num_decoder_layers": 1, "num_hidden_layers": KEEP},
    "transfo-xl": {"cutoffs": [10, 20], "div_val": 1, "d_head": 8, "vocab_size": 40, "max_position_embeddings": KEEP},
    "xlnet": {"d_head": 8, "max_position_embeddings": KEEP},
    "gemma": {"head_dim": 8, "num_key_value_heads": 4},  # Flax Gemma has no grouped-query attention
    "gptj": {"rotary_dim": 4},
    "mistral": {"num_key_value_heads": 2, "head_dim": 8},
    "gpt_neo": {"attention_types": [[["global", "local"], 1]], "window_size": 8},
    # The MLM head's `dense` is (hidden_size - embedding_size) wide: equal sizes leave it empty.
    "mobilebert": {"embedding_size": 16},
    "esm": {"vocab_size": 33, "pad_token_id": 1, "mask_token_id": 32},
    # TF input signatures read these from the top-level config.
    "cvt": {"embed_dim": [8, 16, 24], "num_heads": [1, 2, 3], "depth": [1, 2, 3], "num_channels": 3, "image_size": 32},
    "blip_vision_model": {"num_channels": 3, "image_size": 32, "patch_size": 8},
    "blip": {"num_channels": 3},
    "layoutlmv3": {"input_size": 32, "patch_size": 8, "coordinate_size": 6, "shape_size": 4},
    "big_bird": {"attention_type": "original_full"},
    "tapas": {},
    "rag": {},
}

# Model types the generator skips, with the reason the README prints.
NOT_BUILDABLE: dict[str, str] = {
    "encoder-decoder": "composite: its layout is that of the encoder and decoder model types chosen at build time",
    "vision-encoder-decoder": "composite: its layout is that of the encoder and decoder model types chosen at build time",
    "speech-encoder-decoder": "composite: its layout is that of the encoder and decoder model types chosen at build time",
    "vision-text-dual-encoder": "composite: its layout is that of the vision and text model types chosen at build time",
    "rag": "needs a retriever and question-encoder/generator sub-models, not buildable from its config alone",
}

# Model types recorded from a `pytorch_model.bin` instead of `model.safetensors`: safetensors drops
# tied duplicates, and transformers' from_pt then leaves a TF weight that PyTorch ties at its
# initialisation; from the .bin (which keeps both keys) it fills that weight, which the map then
# records as a copy (`tf_copies`).  Written files are the same as transformers' from_pt of the .bin.
FROM_BIN: dict[str, str] = {
    "albert": "TF MLM heads' `predictions/decoder/bias` is `predictions.bias` (tied in PyTorch)",
}


@dataclass
class Family:
    """One model_type with the transformers class triples (PT, TF, Flax) that share its config."""

    model_type: str
    classes: list[tuple[str, str | None, str | None]] = field(default_factory=list)


def families() -> dict[str, Family]:
    """Every model_type with a TF or Flax class in transformers, e.g. ``families()["bert"].classes[0]``."""
    import transformers

    out: dict[str, Family] = {}
    for name in dir(transformers):
        for prefix, base in (("TF", "TFPreTrainedModel"), ("Flax", "FlaxPreTrainedModel")):
            if not name.startswith(prefix) or "Pretrained" in name or name.endswith(("PreTrainedModel", "MainLayer")):
                continue
            try:
                cls = getattr(transformers, name)
            except Exception:  # a backend that fails to import drops that class, not the run
                continue
            if not inspect.isclass(cls) or not issubclass(cls, getattr(transformers, base)):
                continue
            config_class = getattr(cls, "config_class", None)
            model_type = getattr(config_class, "model_type", None)
            pt_name = name[len(prefix):]
            if not model_type or not hasattr(transformers, pt_name):
                continue
            fam = out.setdefault(model_type, Family(model_type))
            row = next((r for r in fam.classes if r[0] == pt_name), None)
            if row is None:
                row = (pt_name, None, None)
                fam.classes.append(row)
            i = fam.classes.index(row)
            fam.classes[i] = (pt_name, name, row[2]) if prefix == "TF" else (pt_name, row[1], name)
    for fam in out.values():
        # Base model first: it is the fallback architecture of a map.
        fam.classes.sort(key=lambda r: (not r[0].endswith("Model") or "For" in r[0], r[0]))
    return dict(sorted(out.items()))


def tiny_config(model_type: str, pt_class: str | None = None):
    """The small config for ``model_type``: defaults, then SHRINK where present, then OVERRIDES.

    Sub-model types (``blip_text_model``) are not in AutoConfig: ``pt_class``'s config_class builds them.
    """
    import transformers
    from transformers import AutoConfig

    def build(**kw):
        try:
            return AutoConfig.for_model(model_type, **kw)
        except ValueError:
            if pt_class is None:
                raise
            return getattr(transformers, pt_class).config_class(**kw)

    config = build()
    updates = {k: v for k, v in SHRINK.items() if hasattr(config, k) and _shrinkable(getattr(config, k))}
    updates.update(OVERRIDES.get(model_type, {}))
    updates = {k: v for k, v in updates.items() if v != KEEP}
    # Rebuild rather than setattr: derived attributes (head_dim, layer lists) follow the new sizes.
    config = build(**updates)
    for sub in ("text_config", "vision_config", "audio_config"):
        subconfig = getattr(config, sub, None)
        if subconfig is not None and not isinstance(subconfig, dict):
            for k, v in SHRINK.items():
                if hasattr(subconfig, k) and _shrinkable(getattr(subconfig, k)):
                    setattr(subconfig, k, v)
            if hasattr(subconfig, "image_size"):
                subconfig.image_size, subconfig.patch_size = 32, 8
    return config


def _shrinkable(value: object) -> bool:
    # Lists (per-stage sizes) and None keep their defaults; OVERRIDES handles them.
    return isinstance(value, int) and not isinstance(value, bool)


# Why a class is not covered, in words: (substring of the failure, explanation).  First match wins.
FAILURE_REASONS: list[tuple[str, str]] = [
    ("unexpected keyword argument 'a_max'", "transformers 4.57.6's Flax T5 family calls `jnp.clip(a_max=…)`, "
     "which JAX 0.10 removed: the class cannot be built in the pinned environment"),
    ("Could not infer", "transformers' TF class cannot derive its input signature from the config, so it never builds"),
    ("initializer_range", "transformers' TF class fails to build (reads `config.initializer_range`, which the config lacks)"),
    ("no sequence length limit", "the config rejects a sequence length, and its TF class fails to build"),
    ("transfo-xl", "deprecated in transformers 4.57.6: its TF class raises NotImplementedError"),
    ("NotImplementedError:", "deprecated in transformers 4.57.6: its TF class raises NotImplementedError"),
    ("hidden_size", "transformers' class reads `config.hidden_size`, which this config does not have"),
    ("Dense layer should be defined", "transformers' TF class fails to build from a config (unknown input width)"),
    ("Exception encountered when calling layer", "transformers' TF class fails its build call with a small config"),
]


def explain(failure: str) -> str:
    """A failure message in words for the README, e.g. ``explain("… 'a_max'")``."""
    return next((why for key, why in FAILURE_REASONS if key in failure), failure)


# Config variants --------------------------------------------------------------------------------
# Each architecture is recorded from its tiny config and then from variants that switch on the
# modules that config leaves out, so the merged map knows every optional tensor (and the field
# that creates it).  VARIANTS are the hand-read `if config.…` branches of the modeling code;
# `option_flips` adds a generic enumeration (booleans flipped, zero sizes made 2, ALTERNATIVES).
VARIANTS: dict[str, list[dict[str, object]]] = {
    # ELECTRA-small: the embeddings are narrower than the encoder (`embeddings_project`).
    "electra": [{"embedding_size": 16}],
    # DeBERTa base configs have no token types; checkpoints fine-tuned with them do.
    "deberta": [{"type_vocab_size": 2}, {"embedding_size": 16},
                {"relative_attention": True, "pos_att_type": ["c2p", "p2c"], "max_relative_positions": 8}],
    "deberta-v2": [{"type_vocab_size": 2}, {"embedding_size": 16},
                   {"relative_attention": True, "pos_att_type": ["c2p", "p2c"], "position_buckets": 8,
                    "norm_rel_ebd": "layer_norm", "conv_kernel_size": 3, "share_att_key": False}],
    "roformer": [{"embedding_size": 16}],
    "convbert": [{"embedding_size": 16}],
    "mobilebert": [{"trigram_input": False, "embedding_size": 32}],
    "rembert": [{"input_embedding_size": 16, "output_embedding_size": 24}],
    "xlm": [{"sinusoidal_embeddings": True}, {"n_langs": 2, "use_lang_emb": True}],
    "flaubert": [{"sinusoidal_embeddings": True}, {"n_langs": 2, "use_lang_emb": True}],
    "bert": [{"is_decoder": True, "add_cross_attention": True}],
    "roberta": [{"is_decoder": True, "add_cross_attention": True}],
    "gpt2": [{"add_cross_attention": True}],
    "bart": [{"scale_embedding": True, "add_final_layer_norm": True}],
    "mbart": [{"add_final_layer_norm": False}],
}

# Categorical fields and the values that create other modules (tried when the config has the field).
ALTERNATIVES: dict[str, list[object]] = {
    "position_embedding_type": ["relative_key", "relative_key_query"],
}

# Booleans whose flip changes only run-time behaviour or needs other settings (never new tensors alone).
_NO_FLIP = {"return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_cache",
            "tie_word_embeddings", "tie_encoder_decoder", "is_encoder_decoder", "chunk_size_feed_forward",
            "add_cross_attention", "is_decoder", "pruned_heads", "tf_legacy_loss", "use_bfloat16",
            "return_dict_in_generate", "_attn_implementation_autoset", "gradient_checkpointing"}


def option_flips(model_type: str, config) -> list[dict[str, object]]:
    """Candidate single-option changes of ``config``: the VARIANTS rows, then the generic enumeration.

    Whether one really adds tensors is for the caller to find out (building the PyTorch model).
    """
    out = [dict(v) for v in VARIANTS.get(model_type, [])]
    values = config.to_dict()
    for key, value in sorted(values.items()):
        if key.startswith("_") or key in _NO_FLIP or key.endswith(("_token_id", "_id")):
            continue
        if isinstance(value, bool):
            out.append({key: not value})
        elif isinstance(value, int) and value == 0 and key.endswith(("_size", "_vocab_size", "_dim")):
            out.append({key: 2})
        elif key in ALTERNATIVES and isinstance(value, str):
            out += [{key: alt} for alt in ALTERNATIVES[key] if alt != value]
    seen: list[dict] = []
    for v in out:
        if v not in seen:
            seen.append(v)
    return seen


def variant_config(model_type: str, pt_class: str | None, changes: dict[str, object]):
    """The tiny config with ``changes`` applied (rebuilt, so derived attributes follow)."""
    base = tiny_config(model_type, pt_class)
    if not changes:
        return base
    kw = base.to_dict()
    kw.update(changes)
    for k in ("model_type", "transformers_version", "architectures"):
        kw.pop(k, None)
    return type(base)(**kw)
