"""Text-in sentence-embedder SavedModels: raw strings in, `embedding [batch, H]` out,
in a serving process.

A tiny pre-trained model directory is exported twice for the module (mean pooling,
normalised: the default; and the CLS vector, not normalised); a process that has
TensorFlow and TF Text's ops but no Keras and none of our code (tf_only_check.py)
loads them, eagerly and as TF Serving does (TF1 session, saver restore). Its vectors
must be `pipelines.extract_features`'s.
"""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export import check_serving_ops
from keras_bert_app.export.embedder import export_embedder
from keras_bert_app.export.serving_layout import WARMUP_TEXTS
from keras_bert_app.feature_extraction import EMBEDDING, FeatureExtractor
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig
from tests.export.tf_only_check import run_check
from tests.helpers import SHAKESPEARE_VOCAB, run_pipeline, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = names.SERVING_TEXT_INPUT  # the signature's input
SEQ_LENGTH = 24
HIDDEN = 32
TEXTS = ["A gripping, beautifully acted film.", "dull", "Héllo wörld — naïve café!",
         "ROMEO: But soft, what light through yonder window breaks?",
         "unaffable " * 30, "你好，世界", "to be or not to be, that is the question"]
MEGABYTE = "word " * 200_000
BAD_UTF8 = [b"caf\xc3", b"\xff\xfe", b"ok \xe9t\xe9"]
# name: (pooling, normalize, warm-up texts)
EXPORTS = {"mean": ("mean", True, None), "cls": ("cls", False, TEXTS[:2])}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("embedder_export"))
    keras.utils.set_random_seed(3)
    model_dir = os.path.join(root, "model")
    # Weights 50x the usual scale: vectors that differ clearly between texts.
    save_model_dir(model_dir, BertPretrainer(BertEncoder(
        tiny_config(vocab_size=927, initializer_range=1.0))), SHAKESPEARE_VOCAB,
        TextConfig.for_vocab(SHAKESPEARE_VOCAB, do_lower_case=True))
    versions = {name: export_embedder(os.path.join(root, "export", name), model_dir,
                                      pooling=pooling, normalize=normalize,
                                      max_seq_length=SEQ_LENGTH, warmup_texts=warmup)
                for name, (pooling, normalize, warmup) in EXPORTS.items()}
    # The pipeline's vectors of TEXTS, as a user computes them.
    input_file = os.path.join(root, "texts.txt")
    with open(input_file, "w", encoding="utf-8") as f:
        f.write("\n".join(TEXTS) + "\n")
    pipeline = {}
    for name, (pooling, normalize, _) in EXPORTS.items():
        output = os.path.join(root, f"{name}.npy")
        run_pipeline("extract_features", f"--init_model_dir={model_dir}",
                     f"--input_file={input_file}", f"--output_file={output}",
                     f"--pooling={pooling}", f"--normalize={normalize}",
                     f"--max_seq_length={SEQ_LENGTH}", "--batch_size=3")
        pipeline[name] = np.load(output)

    inputs = {"texts": TEXTS, "batch0": [], "empty": ["", ""], "megabyte": [MEGABYTE],
              "bad_utf8": BAD_UTF8}
    cases = [{"id": f"{name}/{kind}", "model": name, "call": "serving_default",
              "inputs": {TEXT: texts}}
             for name in EXPORTS for kind, texts in inputs.items()]
    check = run_check({"models": versions, "cases": cases, "warmup": list(EXPORTS),
                       "describe": list(EXPORTS)}, root)
    return dict(model_dir=model_dir, versions=versions, check=check, pipeline=pipeline,
                inputs=inputs,
                extractor=FeatureExtractor.from_model_dir(model_dir, SEQ_LENGTH))


def answers(exported, case_id):
    """The eager and the TF-Serving-style (session) answers of a case."""
    result = exported["check"]["cases"][case_id]
    for answer in (result["eager"], result["session"]):
        assert "outputs" in answer, answer
        assert sorted(answer["outputs"]) == [EMBEDDING]
        assert answer["outputs"][EMBEDDING].dtype == np.float32
        yield answer["outputs"][EMBEDDING]


def library(exported, name, texts):
    pooling, normalize, _ = EXPORTS[name]
    return exported["extractor"].embed(texts, pooling, normalize)


def test_the_serving_process_has_no_keras(exported):
    assert exported["check"]["modules"] == []


@pytest.mark.parametrize("name", list(EXPORTS))
def test_serving_default_takes_strings_and_returns_embeddings(exported, name):
    info = exported["check"]["describe"][name]
    assert info["signatures"]["serving_default"]["inputs"] == {TEXT: ["string", [None]]}
    assert info["signatures"]["serving_default"]["outputs"] == [EMBEDDING]
    assert info["max_seq_length"].tolist() == SEQ_LENGTH
    loaded = tf.saved_model.load(exported["versions"][name])
    pooling, normalize, _ = EXPORTS[name]
    assert loaded.pooling.numpy() == pooling.encode()
    assert bool(loaded.normalize.numpy()) is normalize


@pytest.mark.parametrize("name", list(EXPORTS))
def test_vectors_equal_the_pipelines(exported, name):
    expected = exported["pipeline"][name]
    assert expected.shape == (len(TEXTS), HIDDEN)
    for vectors in answers(exported, f"{name}/texts"):
        np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-5)
    norms = np.linalg.norm(expected, axis=1)
    if EXPORTS[name][1]:
        np.testing.assert_allclose(norms, 1, atol=1e-6)
    else:
        assert norms.min() > 1.5  # not normalised
    assert len({tuple(v.round(3)) for v in expected}) == len(TEXTS)


@pytest.mark.parametrize("case_id", [f"{name}/{kind}" for name in EXPORTS
                                     for kind in ("empty", "megabyte", "bad_utf8")])
def test_empty_huge_and_undecodable_texts_get_the_librarys_vectors(exported, case_id):
    name, kind = case_id.split("/")
    texts = exported["inputs"][kind]
    expected = library(exported, name, texts)
    assert np.isfinite(expected).all()
    for vectors in answers(exported, case_id):
        np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_an_empty_batch_gets_an_empty_matrix(exported, name):
    for vectors in answers(exported, f"{name}/batch0"):
        assert vectors.shape == (0, HIDDEN)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_warmup_requests_are_prediction_logs_that_replay(exported, name):
    records = exported["check"]["warmup"][name]
    examples = EXPORTS[name][2] or WARMUP_TEXTS
    assert [r["inputs"] for r in records] == \
        [{TEXT: [1]}] * len(examples) + [{TEXT: [len(examples)]}]
    assert {r["signature"] for r in records} == {"serving_default"}
    np.testing.assert_allclose(records[-1]["outputs"][EMBEDDING],
                               library(exported, name, list(examples)), rtol=0, atol=1e-5)


def test_exports_use_only_core_ops_and_tf_text_2_12_1_ops(exported):
    for version_dir in exported["versions"].values():
        assert check_serving_ops(version_dir) == ["FastWordpieceTokenizeWithOffsets"]


def test_each_weight_is_saved_once(exported):
    for version_dir in exported["versions"].values():
        reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables",
                                                       "variables"))
        shapes = reader.get_variable_to_shape_map()
        floats = sum(int(np.prod(shapes[name])) for name, dtype in
                     reader.get_variable_to_dtype_map().items() if dtype == tf.float32)
        assert floats == exported["extractor"].encoder.count_params()


def test_export_savedmodel_exports_an_embedder(tmp_path, exported):
    with open(os.path.join(REPO, "pipelines", "export_savedmodel.py")) as f:
        if '"embedder"' not in f.read():
            pytest.skip("pipelines/export_savedmodel.py has no --export_type=embedder yet")
    base = str(tmp_path / "served")
    result = run_pipeline("export_savedmodel", "--export_type=embedder",
                          f"--init_model_dir={exported['model_dir']}",
                          f"--export_path={base}", "--pooling=cls", "--nonormalize",
                          f"--max_seq_length={SEQ_LENGTH}")
    assert os.path.join(base, "1") in result.stdout
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    vectors = loaded.signatures["serving_default"](text=tf.constant(TEXTS))[EMBEDDING]
    np.testing.assert_allclose(vectors, library(exported, "cls", TEXTS), rtol=0, atol=1e-5)


def test_export_refuses_what_it_cannot_serve(tmp_path, exported, monkeypatch):
    model_dir, out = exported["model_dir"], str(tmp_path / "out")
    for kwargs, match in [(dict(pooling="max"), "pooling='max'; expected one of"),
                          (dict(normalize="yes"), "normalize='yes' must be True or False"),
                          (dict(warmup_texts=[]), "warmup_texts is empty"),
                          (dict(max_seq_length=65), "Sequence length 65 exceeds")]:
        with pytest.raises(ValueError, match=match):
            export_embedder(out, model_dir, **kwargs)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="needs the TensorFlow Keras backend"):
        export_embedder(out, model_dir)
    assert not os.path.exists(out)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
