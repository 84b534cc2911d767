"""Feature extraction: Google's `extract_features.py` contract and sentence
embeddings that equal sentence-transformers' recipe on the real all-MiniLM-L6-v2.

A tiny 2-layer model directory serves the file-format and error tests (fast); the
converted MiniLM directory and Hugging Face's own model (torch) serve the numeric
comparisons.
"""

import csv
import json
import os
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app.feature_extraction import FeatureExtractor, pool
from keras_bert_app.feature_files import extract_features, read_examples
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import SHAKESPEARE_VOCAB, require_minilm, run_pipeline, tiny_config
from tests.text.reference_tokenizer import FullTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SST2_SAMPLE = os.path.join(REPO, "demo_data", "sst2_sample.tsv")
MAX_SEQ_LENGTH = 128  # the comparison's truncation (sentence-transformers uses 256)
TINY_SEQ_LENGTH = 12  # short enough that the pair below is truncated
LINES = ["But soft, what light through yonder window breaks?",
         "To be or not to be ||| that is the question, whether tis nobler in the mind",
         "",
         "ROMEO: Héllo, naïve café!",
         "Good night, good night! Parting is such sweet sorrow"]


def sst2_sentences(count):
    with open(SST2_SAMPLE, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [row[0].strip() for row in rows[:count]]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    keras.utils.set_random_seed(1)
    path = str(tmp_path_factory.mktemp("tiny"))
    encoder = BertEncoder(tiny_config(vocab_size=927, max_position_embeddings=128))
    save_model_dir(path, BertPretrainer(encoder), SHAKESPEARE_VOCAB,
                   TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    return path


@pytest.fixture(scope="module")
def tiny_extractor(tiny_dir):
    return FeatureExtractor.from_model_dir(tiny_dir, max_seq_length=TINY_SEQ_LENGTH)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """(our converted model directory, Hugging Face tokenizer, HF model) of MiniLM."""
    from keras_bert_app.checkpoints.convert import convert_checkpoint

    source = require_minilm()
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    torch.set_num_threads(2)
    path = str(tmp_path_factory.mktemp("minilm"))
    convert_checkpoint("hf", source, path)
    return (path, transformers.AutoTokenizer.from_pretrained(source),
            transformers.AutoModel.from_pretrained(source).eval())


def hugging_face_outputs(tokenizer, model, texts, pairs=None):
    """sentence-transformers' recipe with plain `transformers`: the model's last
    hidden state, mean over the attention mask (clamped at 1e-9), L2-normalised (F.
    normalize); plus the CLS vector and every hidden state, on the same truncation."""
    import torch

    with torch.no_grad():
        encoded = tokenizer(texts, pairs, padding=True, truncation=True,
                            max_length=MAX_SEQ_LENGTH, return_tensors="pt")
        out = model(**encoded, output_hidden_states=True)
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        mean = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return {"mean_normalized": torch.nn.functional.normalize(mean, p=2, dim=1).numpy(),
                "cls": out.last_hidden_state[:, 0].numpy(),
                "hidden_states": [h.numpy() for h in out.hidden_states],
                "lengths": encoded["attention_mask"].sum(1).numpy(),
                "tokens": [tokenizer.convert_ids_to_tokens(ids[m.bool()])
                           for ids, m in zip(encoded["input_ids"],
                                             encoded["attention_mask"])]}


@pytest.fixture(scope="module")
def compared(minilm):
    """SST-2 sentences (short and long, in file order: not sorted by length) plus
    four joined ones longer than MAX_SEQ_LENGTH pieces, embedded both ways."""
    path, tokenizer, model = minilm
    sentences = sst2_sentences(60)
    texts = sentences[:24] + [" ".join(sentences[i:i + 12]) for i in (24, 36)] + \
        sentences[48:] + [" ".join(sentences[:14]), " ".join(sentences[30:44])]
    extractor = FeatureExtractor.from_model_dir(path, max_seq_length=MAX_SEQ_LENGTH)
    return dict(texts=texts, extractor=extractor,
                ours_mean=extractor.embed(texts, "mean", True, batch_size=8),
                ours_cls=extractor.embed(texts, "cls", False, batch_size=8),
                hf=hugging_face_outputs(tokenizer, model, texts))


def test_mean_normalized_embeddings_equal_sentence_transformers_recipe(compared):
    hf = compared["hf"]
    assert (hf["lengths"] == MAX_SEQ_LENGTH).sum() == 4  # the long ones are truncated
    assert len(set(hf["lengths"].tolist())) >= 15  # and the others of many lengths
    np.testing.assert_allclose(compared["ours_mean"], hf["mean_normalized"], rtol=0,
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(compared["ours_mean"], axis=1), 1, atol=1e-6)


def test_cls_pooling_is_the_first_tokens_last_layer_vector(compared):
    np.testing.assert_allclose(compared["ours_cls"], compared["hf"]["cls"], rtol=0,
                               atol=1e-5)


def test_token_features_are_the_hidden_states_of_each_layer(compared, minilm):
    _, tokenizer, model = minilm
    texts_a = compared["texts"][:3] + ["Is this the real life?"]
    texts_b = [None, None, None, "Is this just fantasy?"]
    examples = list(zip(texts_a, texts_b))
    layers = (-1, -2, 0)
    ours = list(compared["extractor"].token_features(examples, layers, batch_size=3))
    for i, (tokens, values) in enumerate(ours):
        text_b = [texts_b[i]] if texts_b[i] else None
        hf = hugging_face_outputs(tokenizer, model, [texts_a[i]], text_b)
        assert tokens == hf["tokens"][0]
        for j, layer in enumerate(layers):
            expected = hf["hidden_states"][layer if layer < 0 else layer + 1][0]
            np.testing.assert_allclose(values[j], expected, rtol=0, atol=1e-5)


def google_tokens(tokenizer, text_a, text_b, seq_length):
    """Google's convert_examples_to_features: its truncation and special tokens."""
    a, b = tokenizer.tokenize(text_a), tokenizer.tokenize(text_b) if text_b else []
    if b:
        while len(a) + len(b) > seq_length - 3:
            (a if len(a) > len(b) else b).pop()
        return ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
    return ["[CLS]"] + a[:seq_length - 2] + ["[SEP]"]


def test_the_pipeline_writes_googles_json_lines(tmp_path, tiny_dir, tiny_extractor):
    input_file = write_lines(tmp_path / "input.txt", LINES)
    output = tmp_path / "out" / "features.jsonl"
    result = run_pipeline("extract_features", f"--init_model_dir={tiny_dir}",
                          f"--input_file={input_file}", f"--output_file={output}",
                          "--layers=-1,0", f"--max_seq_length={TINY_SEQ_LENGTH}",
                          "--batch_size=2")
    assert f"of 5 examples (1 pairs) to {output}" in result.stdout
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    reference = FullTokenizer(SHAKESPEARE_VOCAB)
    examples = read_examples(input_file)
    expected = list(tiny_extractor.token_features(examples, (-1, 0), batch_size=5))
    assert [line["linex_index"] for line in lines] == list(range(len(LINES)))
    for line, example, (tokens, values) in zip(lines, examples, expected):
        assert list(line) == ["linex_index", "features"]
        assert [f["token"] for f in line["features"]] == google_tokens(
            reference, example.text_a, example.text_b, TINY_SEQ_LENGTH) == tokens
        for t, feature in enumerate(line["features"]):
            assert list(feature) == ["token", "layers"]
            assert [list(layer) for layer in feature["layers"]] == [["index", "values"]] * 2
            assert [layer["index"] for layer in feature["layers"]] == [-1, 0]
            for j, layer in enumerate(feature["layers"]):
                # Google's round(x, 6); another batching pads differently (1 ulp).
                assert all(v == round(v, 6) for v in layer["values"])
                np.testing.assert_allclose(layer["values"], values[j, t], rtol=0,
                                           atol=1.5e-6)
    assert len(lines[1]["features"]) == TINY_SEQ_LENGTH  # the pair, truncated
    assert os.listdir(output.parent) == ["features.jsonl"]  # no partial file left


def test_the_pipeline_writes_embeddings_in_input_order(tmp_path, tiny_dir, tiny_extractor):
    input_file = write_lines(tmp_path / "input.txt", LINES)
    output = tmp_path / "embeddings.npy"
    result = run_pipeline("extract_features", f"--init_model_dir={tiny_dir}",
                          f"--input_file={input_file}", f"--output_file={output}",
                          "--pooling=mean", "--normalize", "--batch_size=2",
                          f"--max_seq_length={TINY_SEQ_LENGTH}")
    assert (f"Wrote mean-pooled normalized embeddings of 5 examples (1 pairs), float32 "
            f"[5, 32], to {output}") in result.stdout
    vectors = np.load(output)
    assert vectors.dtype == np.float32 and vectors.shape == (len(LINES), 32)
    for vector, example in zip(vectors, read_examples(input_file)):
        # Each line alone, straight through the preprocessor and the encoder.
        texts = [t for t in example if t is not None]
        inputs = tiny_extractor.preprocessor.pack([tf.constant([t]) for t in texts])
        hidden = np.asarray(tiny_extractor.encoder(inputs)["sequence_output"])[0]
        mean = hidden[np.asarray(inputs["input_mask"])[0] == 1].mean(axis=0)
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), rtol=0, atol=1e-5)
    assert len({tuple(v.round(4)) for v in vectors}) == len(LINES)
    # JSON lines: the same vectors, Google's rounding.
    jsonl = tmp_path / "embeddings.jsonl"
    summary = extract_features(input_file, jsonl, tiny_dir, pooling="mean", normalize=True,
                               max_seq_length=TINY_SEQ_LENGTH, progress=False)
    assert summary["format"] == "jsonl" and summary["examples"] == len(LINES)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [list(r) for r in rows] == [["linex_index", "embedding"]] * len(LINES)
    assert [r["linex_index"] for r in rows] == list(range(len(LINES)))
    np.testing.assert_allclose([r["embedding"] for r in rows], vectors, rtol=0, atol=6e-7)


BAD_INPUTS = {"missing": None, "empty": [" ", ""],
              "two_separators": ["fine", "a ||| b ||| c"], "layer": ["fine"]}


def bad_input(tmp_path, case):
    """(input file, layers, the message expected) of a bad-input case."""
    input_file = str(tmp_path / "input.txt")
    if BAD_INPUTS[case] is not None:
        write_lines(input_file, BAD_INPUTS[case])
    message = {"missing": f"input_file {input_file} does not exist",
               "empty": f"input_file {input_file} has no text",
               "two_separators": f"{input_file}:2: 2 '|||' separators",
               "layer": "layer -3 does not exist in this 2-layer encoder (valid: -2 to 1)"}
    return input_file, "-1,-3" if case == "layer" else "-1", message[case]


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, tiny_dir, case):
    input_file, layers, message = bad_input(tmp_path, case)
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
        extract_features(input_file, str(tmp_path / "out.jsonl"), tiny_dir, layers=layers)
    assert sorted(os.listdir(tmp_path)) == ([] if case == "missing" else ["input.txt"])


@pytest.mark.parametrize("case", ["missing", "layer"])  # FileNotFoundError, ValueError
def test_the_pipeline_reports_bad_input_in_one_line_with_exit_2(tmp_path, tiny_dir, case):
    input_file, layers, message = bad_input(tmp_path, case)
    result = run_pipeline("extract_features", f"--init_model_dir={tiny_dir}",
                          f"--input_file={input_file}",
                          f"--output_file={tmp_path / 'out.jsonl'}", f"--layers={layers}",
                          check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pipelines.extract_features: error: ") and message in last
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ([] if case == "missing" else ["input.txt"])


def test_a_failure_midway_leaves_the_old_output_and_no_partial_file(tmp_path, tiny_dir,
                                                                     monkeypatch):
    input_file = write_lines(tmp_path / "input.txt", LINES)
    output = tmp_path / "features.jsonl"
    output.write_text("the previous run's output\n")
    original = FeatureExtractor._token_features

    def fail_after_one(self, *args):
        yield next(original(self, *args))
        raise RuntimeError("disk full")

    monkeypatch.setattr(FeatureExtractor, "_token_features", fail_after_one)
    with pytest.raises(RuntimeError, match="disk full"):
        extract_features(input_file, output, tiny_dir, layers="-1", progress=False)
    assert output.read_text() == "the previous run's output\n"
    assert sorted(os.listdir(tmp_path)) == ["features.jsonl", "input.txt"]


def test_settings_are_checked_before_the_model_loads(tmp_path, tiny_dir, monkeypatch):
    input_file = write_lines(tmp_path / "input.txt", ["fine"])
    monkeypatch.setattr(FeatureExtractor, "from_model_dir", None)  # must not be reached
    for kwargs, match in [
            (dict(output_file="x.npy"), r"'.npy' is not one of \['.jsonl', '.json'\]"),
            (dict(output_file="x.csv", pooling="mean"), "'.csv' is not one of"),
            (dict(pooling="max"), "pooling='max'; expected one of"),
            (dict(normalize=True), "normalize applies to pooled"),
            (dict(pooling="mean", layers="-2"), "layers are for per-token features"),
            (dict(batch_size=0), "batch_size=0 must be a positive integer"),
            (dict(max_seq_length=129), "Sequence length 129 exceeds max_position"),
            (dict(layers="-1,x"), "'x' is not a layer index")]:
        output_file = str(tmp_path / kwargs.pop("output_file", "out.jsonl"))
        with pytest.raises(ValueError, match=match):
            extract_features(input_file, output_file, tiny_dir, **kwargs)
    with pytest.raises(FileNotFoundError, match="bert_config.json is missing"):
        extract_features(input_file, str(tmp_path / "out.jsonl"), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["input.txt"]


def test_input_lines_follow_googles_reader(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(b"  one  \r\na|||b\nc ||| d e\n\nlast")
    assert read_examples(path) == [("one", None), ("a", "b"), ("c", "d e"), ("", None),
                                   ("last", None)]
    path.write_bytes(b"fine\nq ||| \n")
    with pytest.raises(ValueError, match=r"input.txt:2: empty text on one side"):
        read_examples(path)
    path.write_bytes(b"fine\nfine\ncaf\xc3\n")
    with pytest.raises(ValueError, match=r"input.txt:3: not valid UTF-8"):
        read_examples(path)


def test_pooling_ignores_padding_and_normalizes_without_nan():
    hidden = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                          [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])  # [2, 3, 2]
    mask = tf.constant([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "mean", False), [[2, 3], [0, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "cls", False), [[1, 2], [0, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "mean", True),
                               [[2 / 13 ** 0.5, 3 / 13 ** 0.5], [0, 0]], rtol=1e-6)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
