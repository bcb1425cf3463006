"""The architectures the transformers round-trip tests sample (imported by conftest and tests)."""
from __future__ import annotations

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
    # One tied PyTorch tensor feeds two TF weights (map entries with `tf_copies`).
    ("mobilebert-mlm", "mobilebert", "MobileBertForMaskedLM", "TFMobileBertForMaskedLM", None),
    ("mobilebert-pt", "mobilebert", "MobileBertForPreTraining", "TFMobileBertForPreTraining", None),
    ("s2t-cg", "speech_to_text", "Speech2TextForConditionalGeneration", "TFSpeech2TextForConditionalGeneration",
     None),
    ("xglm-clm", "xglm", "XGLMForCausalLM", "TFXGLMForCausalLM", "FlaxXGLMForCausalLM"),
    # TF-only `predictions/decoder/bias`, filled from `predictions.bias` (a copy; see build.FROM_BIN).
    ("albert-mlm", "albert", "AlbertForMaskedLM", "TFAlbertForMaskedLM", "FlaxAlbertForMaskedLM"),
]
CASE_IDS = [c[0] for c in CASES]


def case_dicts() -> list[dict]:
    return [dict(zip(("id", "model_type", "pt", "tf", "flax"), c)) for c in CASES]
