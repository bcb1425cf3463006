"""Fixtures for the transformers round trips.

transformers 4.57.6 cannot share the project's environment (it needs huggingface_hub<1.0), so the
`tx_env` fixture creates the second environment with `python -m tensorferry.converters.mapgen setup`
(idempotent: a ready environment is reused, a half-made one is rebuilt) and the tests call
`tx_helper.py` inside it.  tensorferry's own conversions run here, in the project environment.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("tx_helper.py")

# A broad sample: encoders, decoders, encoder-decoders, a BatchNorm CNN, vision transformers,
# speech.  (id, model_type, PT class, TF class, Flax class); the generator covers the rest.
CASES = [
    ("bert-mlm", "bert", "BertForMaskedLM", "TFBertForMaskedLM", "FlaxBertForMaskedLM"),
    ("bert-base", "bert", "BertModel", "TFBertModel", "FlaxBertModel"),
    ("gpt2-lm", "gpt2", "GPT2LMHeadModel", "TFGPT2LMHeadModel", "FlaxGPT2LMHeadModel"),
    ("t5-cg", "t5", "T5ForConditionalGeneration", "TFT5ForConditionalGeneration", None),
    ("bart-cg", "bart", "BartForConditionalGeneration", "TFBartForConditionalGeneration",
     "FlaxBartForConditionalGeneration"),
    ("vit-cls", "vit", "ViTForImageClassification", "TFViTForImageClassification", "FlaxViTForImageClassification"),
    ("resnet-cls", "resnet", "ResNetForImageClassification", "TFResNetForImageClassification",
     "FlaxResNetForImageClassification"),
    ("wav2vec2-ctc", "wav2vec2", "Wav2Vec2ForCTC", "TFWav2Vec2ForCTC", "FlaxWav2Vec2ForCTC"),
    ("roberta-sc", "roberta", "RobertaForSequenceClassification", "TFRobertaForSequenceClassification",
     "FlaxRobertaForSequenceClassification"),
    ("distilbert-qa", "distilbert", "DistilBertForQuestionAnswering", "TFDistilBertForQuestionAnswering",
     "FlaxDistilBertForQuestionAnswering"),
    ("electra-tc", "electra", "ElectraForTokenClassification", "TFElectraForTokenClassification",
     "FlaxElectraForTokenClassification"),
]
CASE_IDS = [c[0] for c in CASES]


def case_dicts() -> list[dict]:
    return [dict(zip(("id", "model_type", "pt", "tf", "flax"), c)) for c in CASES]


@pytest.fixture(scope="session")
def tx_python() -> Path:
    """The transformers 4.57.6 environment's python, created on first use (several minutes once)."""
    from tensorferry.converters.mapgen import env

    return env.setup(quiet=True)


def run_helper(tx_python: Path, command: str, spec: dict, tmp: Path, timeout: int = 900) -> dict:
    """Run ``tx_helper.py COMMAND`` in the second environment; its last stdout line is JSON."""
    from tensorferry.converters.mapgen import env

    spec_file = tmp / f"{command}-spec.json"
    spec_file.write_text(json.dumps(spec))
    p = env.run_in_env([str(HELPER), command, str(spec_file)], capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise AssertionError(f"tx_helper {command} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def tiny_models(tx_python: Path, tmp_path_factory) -> Path:
    """Tiny PT models of every case plus transformers' own ``from_pt`` TF/Flax files, under one root."""
    root = tmp_path_factory.mktemp("tx-models")
    made = run_helper(tx_python, "make", {"root": str(root), "cases": case_dicts()}, root)
    assert set(made) == set(CASE_IDS)
    return root


@pytest.fixture(scope="session")
def converted(tiny_models: Path, tmp_path_factory) -> Path:
    """tensorferry's TF and Flax conversions of each tiny PT model (project environment, public API)."""
    from tensorferry.converters.convert import convert

    out = tmp_path_factory.mktemp("tf-converted")
    for case in case_dicts():
        to = [fw for fw in ("tf", "flax") if case[fw]]
        convert(tiny_models / case["id"] / "pt", out / case["id"], to=to)
    return out


@pytest.fixture(scope="session")
def loaded(tx_python: Path, tiny_models: Path, converted: Path, tmp_path_factory) -> dict:
    """What transformers' TF/Flax classes say when they load tensorferry's files."""
    tmp = tmp_path_factory.mktemp("tx-check")
    return run_helper(tx_python, "check", {"root": str(tiny_models), "converted": str(converted),
                                           "cases": case_dicts()}, tmp)


def pytest_report_header(config) -> str:
    return f"transformers round trips: {len(CASES)} architectures; helper python from {sys.executable}"
