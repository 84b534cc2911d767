"""The preprocessing SavedModel meets TF Hub's interface in a clean process.

The SavedModel is written by the real binary (`python -m pipelines.export_savedmodel`)
and checked by a separate Python process that imports only tensorflow and
tensorflow_text, against what our in-process preprocessor computes.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export import build_preprocessor
from keras_bert_app.text.preprocessor import load_preprocessor
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import ragged_to_lists, require_minilm

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Héllo, wörld! 你好",
         "unaffable " * 40, ""]

CHECKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # registers the ops; nothing else is imported
    path, out, resave = sys.argv[1], sys.argv[2], sys.argv[3]
    texts = json.loads(sys.argv[4])
    m = tf.saved_model.load(path)
    result = {}
    full = m(tf.constant(texts))
    result["call"] = {k: v.numpy().tolist() for k, v in full.items()}
    tokens = m.tokenize(tf.constant(texts))
    result["tokenize_rank"] = tokens.shape.rank
    result["tokenize_dtype"] = tokens.dtype.name
    result["tokenize"] = tokens.to_list()
    result["special"] = {k: int(v) for k, v in m.tokenize.get_special_tokens_dict().items()}
    pair = m.bert_pack_inputs([tokens, tokens[::-1]], seq_length=24)
    result["pair"] = {k: v.numpy().tolist() for k, v in pair.items()}
    flat = m.bert_pack_inputs([tokens.merge_dims(-2, -1)], seq_length=tf.constant(10))
    result["flat"] = flat["input_word_ids"].numpy().tolist()
    serve = m.signatures["serving_default"]
    result["serve_inputs"] = sorted(serve.structured_input_signature[1])
    result["serve"] = {k: v.numpy().tolist() for k, v in serve(text=tf.constant(texts)).items()}
    # Bad input through the serving signature: defined output, no crash.
    bad = serve(text=tf.constant([b"caf\\xc3", b"\\xff\\xfe", b"ok"]))
    result["bad_utf8"] = bad["input_word_ids"].numpy().tolist()
    result["empty_batch"] = list(serve(text=tf.constant([], tf.string))["input_mask"].shape)
    long = serve(text=tf.constant(["word " * 200_000]))
    result["megabyte_mask_sum"] = int(long["input_mask"].numpy().sum())
    tf.saved_model.save(m, resave)
    again = tf.saved_model.load(resave)
    result["resaved"] = again(tf.constant(texts))["input_word_ids"].numpy().tolist()
    result["modules"] = sorted(k for k in sys.modules if k.startswith("keras_bert_app"))
    with open(out, "w") as f:
        json.dump(result, f)
""")


def run_checker(export_path, tmp_path):
    out = tmp_path / "result.json"
    # Run from a scratch directory; the checker asserts that no module of ours was
    # imported (PYTHONPATH stays: under Bazel it is how tensorflow is found).
    proc = subprocess.run(
        [sys.executable, "-c", CHECKER, str(export_path), str(out),
         str(tmp_path / "resaved"), json.dumps(TEXTS)],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def export(tmp_path, *flags):
    path = tmp_path / "preprocessing"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.export_savedmodel", "--export_type=preprocessing",
         f"--export_path={path}", *flags],
        capture_output=True, text=True, timeout=600,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def vocab_file():
    return os.path.join(require_minilm(), "vocab.txt")


def test_exported_preprocessing_meets_the_interface(tmp_path, vocab_file):
    path = export(tmp_path, f"--vocab_file={vocab_file}", "--do_lower_case=true",
                  "--default_seq_length=32")
    result = run_checker(path, tmp_path)
    ours = build_preprocessor(vocab_file=vocab_file, do_lower_case=True,
                              default_seq_length=32)
    expected = {k: v.numpy().tolist() for k, v in ours(tf.constant(TEXTS)).items()}

    assert result["call"] == expected == result["serve"]
    assert result["serve_inputs"] == [names.SERVING_TEXT_INPUT]
    assert result["tokenize_rank"] == 3 and result["tokenize_dtype"] == "int32"
    assert result["tokenize"] == ragged_to_lists(ours.tokenize(tf.constant(TEXTS)))
    assert result["special"] == {"vocab_size": 30522, "start_of_sequence_id": 101,
                                 "end_of_segment_id": 102, "padding_id": 0, "mask_id": 103}
    pair = result["pair"]
    assert np.array(pair[names.INPUT_TYPE_IDS]).max() == 1
    assert all(len(row) == 24 for row in pair[names.INPUT_WORD_IDS])
    assert all(len(row) == 10 for row in result["flat"])
    assert result["resaved"] == expected[names.INPUT_WORD_IDS]
    assert result["modules"] == []  # the model runs without our package

    # Bad input: undecodable bytes are dropped, an empty batch is empty, 1 MB works.
    assert result["bad_utf8"][0][:3] == [101] + ours.tokenizer.tokenize(
        tf.constant(["caf"])).flat_values.numpy().tolist()[:1] + [102]
    assert result["bad_utf8"][1][:2] == [101, 102]
    assert result["empty_batch"] == [0, 32]
    assert result["megabyte_mask_sum"] == 32

    # The vocabulary is an asset and no path of this machine is stored.
    assert (path / "assets" / "vocab.txt").read_bytes() == open(vocab_file, "rb").read()
    graph = (path / "saved_model.pb").read_bytes()
    for machine_path in (str(tmp_path), os.path.dirname(vocab_file), os.getcwd()):
        assert machine_path.encode() not in graph


def test_export_from_a_model_directory(tmp_path, vocab_file):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / names.VOCAB_FILE).write_bytes(open(vocab_file, "rb").read())
    TextConfig.for_vocab(vocab_file, do_lower_case=True).to_json_file(
        model_dir / names.TEXT_CONFIG_FILE)
    path = export(tmp_path, f"--init_model_dir={model_dir}")
    result = run_checker(path, tmp_path)
    ours = load_preprocessor(str(model_dir), seq_length=128)
    expected = ours(tf.constant(TEXTS))[names.INPUT_WORD_IDS].numpy().tolist()
    assert result["call"][names.INPUT_WORD_IDS] == expected
    assert len(expected[0]) == 128


def test_contradicting_casing_and_missing_files_are_clear_errors(tmp_path, vocab_file):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="vocab.txt is missing"):
        load_preprocessor(str(model_dir))
    (model_dir / names.VOCAB_FILE).write_bytes(open(vocab_file, "rb").read())
    TextConfig.for_vocab(vocab_file, do_lower_case=True).to_json_file(
        model_dir / names.TEXT_CONFIG_FILE)
    with pytest.raises(ValueError, match="do_lower_case=False contradicts"):
        build_preprocessor(init_model_dir=str(model_dir), do_lower_case=False)
    with pytest.raises(ValueError, match="needs a model directory, or a vocabulary file"):
        build_preprocessor(vocab_file=vocab_file)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
