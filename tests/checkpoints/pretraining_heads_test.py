"""Converted pre-training heads reproduce `transformers.BertForPreTraining`.

The real MiniLM encoder has no heads, so the reference is a `BertForPreTraining` with
MiniLM's encoder and heads drawn at random (fixed seed) far from their initial values
(LayerNorm, biases and the NSP layer included), so a missing, swapped or transposed
piece changes the logits. It is saved by `save_pretrained` (safetensors, what users
download) and, independently of our name tables, as a Google TF1 checkpoint with
Google's names and layouts (`modeling.py`); both conversions must give
`prediction_logits` and `seq_relationship_logits` on real sentence pairs.
"""

import os
import re
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_"))

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import keras_bert_app as kba
from keras_bert_app import names
from keras_bert_app.checkpoints import convert_checkpoint
from tests.checkpoints.checkpoint_files import write_tf1_checkpoint
from tests.helpers import require_minilm, shared_data_dir

SEQ_LENGTH = 64
TOLERANCE = 1e-4


def real_pairs(minilm, limit=12):
    """Sentence pairs of MRPC (../shared/data), else consecutive prose lines of the
    wheel's own README."""
    data = shared_data_dir()
    pairs = []
    for name in ("mrpc/dev.tsv", "glue/MRPC/train.tsv"):
        path = os.path.join(data or "", name)
        if data is not None and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:  # columns: label, ids, #1, #2
                pairs += [tuple(row.rstrip("\r\n").split("\t")[3:5])
                          for row in list(f)[1:]]
    if not pairs:
        with open(os.path.join(minilm, "README.md"), encoding="utf-8") as f:
            prose = [line.strip() for line in f if len(line.split()) >= 6
                     and line[0].isalpha()]
        pairs = list(zip(prose[0::2], prose[1::2]))
    first, second = zip(*pairs[:limit])
    return list(first), list(second)


def google_weights(model):
    """A `BertForPreTraining`'s weights under Google's TF1 names and layouts: Linear
    weights `[out, in]` become kernels `[in, out]`; the NSP `output_weights` stay
    `[2, hidden]` (Google multiplies with `transpose_b=True`); the MLM decoder is
    the word-embedding table (tied), its bias `cls/predictions/output_bias`."""
    out = {}
    for key, tensor in model.state_dict().items():
        value = tensor.detach().numpy().astype(np.float32)
        if key.startswith("cls.predictions.decoder") or key.endswith("position_ids"):
            continue
        name = re.sub(r"\.layer\.(\d+)\.", r".layer_\1.", key).replace(".", "/")
        if key == "cls.predictions.bias":
            name = "cls/predictions/output_bias"
        elif key.startswith("cls.seq_relationship."):
            name = "cls/seq_relationship/output_" + ("weights" if key.endswith("weight")
                                                      else "bias")
        elif "LayerNorm" in key:
            name = name.replace("/weight", "/gamma").replace("/bias", "/beta")
        elif "_embeddings" in key:
            name = name[:-len("/weight")]
        elif key.endswith(".weight"):
            name, value = name[:-len("/weight")] + "/kernel", value.T
        out[name] = value
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(HF directory, Google TF1 directory, encoder inputs, torch logits)."""
    minilm = require_minilm()
    torch.manual_seed(0)
    model = transformers.BertForPreTraining.from_pretrained(minilm).eval()
    with torch.no_grad():
        for key, parameter in model.cls.named_parameters():
            if "decoder" in key:
                continue  # the word embeddings (tied), loaded from MiniLM
            if key.endswith("dense.weight"):
                parameter.normal_(0.0, 0.1)
            elif "LayerNorm.weight" in key:
                parameter.uniform_(0.5, 1.5)
            else:  # biases, and the NSP layer
                parameter.normal_(0.0, 1.0)
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    hf_dir = str(tmp_path_factory.mktemp("for_pretraining"))
    model.save_pretrained(hf_dir, safe_serialization=True)
    for name in (names.VOCAB_FILE, "tokenizer_config.json"):
        shutil.copy(os.path.join(minilm, name), hf_dir)

    google_dir = str(tmp_path_factory.mktemp("google"))
    write_tf1_checkpoint(os.path.join(google_dir, "bert_model.ckpt"), google_weights(model))
    kba.BertConfig.from_json_file(os.path.join(minilm, "config.json")).to_json_file(
        os.path.join(google_dir, names.BERT_CONFIG_FILE))
    shutil.copy(os.path.join(minilm, names.VOCAB_FILE), google_dir)

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
    first, second = real_pairs(minilm)
    encoded = tokenizer(first, second, padding="max_length", truncation=True,
                        max_length=SEQ_LENGTH, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**encoded)
    inputs = {names.INPUT_WORD_IDS: encoded["input_ids"].numpy().astype("int32"),
              names.INPUT_MASK: encoded["attention_mask"].numpy().astype("int32"),
              names.INPUT_TYPE_IDS: encoded["token_type_ids"].numpy().astype("int32")}
    return hf_dir, google_dir, inputs, {
        names.MLM_LOGITS: outputs.prediction_logits.numpy(),
        names.NSP_LOGITS: outputs.seq_relationship_logits.numpy()}


def converted_logits(model_dir, inputs):
    """Our pretrainer's logits at every position (as `prediction_logits`)."""
    pretrainer = kba.load_pretrainer(model_dir)
    batch = inputs[names.INPUT_WORD_IDS].shape[0]
    positions = np.tile(np.arange(SEQ_LENGTH, dtype="int32"), (batch, 1))
    outputs = pretrainer({**inputs, names.MASKED_LM_POSITIONS: positions})
    return {k: np.asarray(v) for k, v in outputs.items()}


def assert_matches(model_dir, reference, label):
    _, _, inputs, expected = reference
    actual = converted_logits(model_dir, inputs)
    real = inputs[names.INPUT_MASK].astype(bool)
    mlm_diff = np.abs(actual[names.MLM_LOGITS] - expected[names.MLM_LOGITS])[real]
    nsp_diff = np.abs(actual[names.NSP_LOGITS] - expected[names.NSP_LOGITS])
    print(f"\n{label} vs transformers.BertForPreTraining: max |diff| prediction_logits "
          f"{mlm_diff.max():.2e} (values up to {np.abs(expected[names.MLM_LOGITS]).max():.1f}), "
          f"seq_relationship_logits {nsp_diff.max():.2e} over {real.shape[0]} pairs")
    # The reference is not degenerate: both NSP classes are predicted somewhere and
    # the two logits differ well beyond the tolerance.
    assert np.ptp(expected[names.NSP_LOGITS][:, 0] - expected[names.NSP_LOGITS][:, 1]) > 0.1
    assert mlm_diff.max() <= TOLERANCE and nsp_diff.max() <= TOLERANCE


def test_hugging_face_heads_reproduce_bert_for_pretraining(reference, tmp_path):
    report = convert_checkpoint("hf", reference[0], str(tmp_path / "model"))
    assert report.missing == []
    assert_matches(str(tmp_path / "model"), reference, "hf")


def test_google_tf1_heads_reproduce_bert_for_pretraining(reference, tmp_path):
    report = convert_checkpoint("tf1", reference[1], str(tmp_path / "model"),
                                do_lower_case=True)
    assert (len(report.loaded), report.missing, report.unused) == (110, [], [])
    assert_matches(str(tmp_path / "model"), reference, "tf1")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
