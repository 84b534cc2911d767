"""Text-in classifier SavedModels: raw strings in, answers out, in a serving process.

Three tiny fine-tuned classifier directories (single-label, multi-label, and
sentence-pair regression) are exported once for the module; a process that has TensorFlow
and TF Text's ops but no Keras and none of our code (tf_only_check.py) loads them,
eagerly and as TF Serving does (TF1 session, saver restore), and answers the requests
below. Its answers must be the Keras model's.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export import (check_serving_ops, core_op_types, export_classifier,
                                   next_version_dir, saved_model_op_types,
                                   write_warmup_requests)
from keras_bert_app.export.serving_layout import WARMUP_PAIRS, WARMUP_TEXTS
from keras_bert_app.export.tf_serving_ops import TF_TEXT_2_12_1_OPS
from keras_bert_app.model_dir import (load_classifier, read_task_config,
                                      save_classifier_dir, save_model_dir)
from keras_bert_app.models import BertClassifier, BertEncoder, BertPretrainer
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
from keras_bert_app.text.text_config import TextConfig
from tests.export.tf_only_check import run_check
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEQ_LENGTH = 24
TEXTS = ["A gripping, beautifully acted film.", "dull", "Héllo wörld — naïve café!",
         "ROMEO: But soft, what light through yonder window breaks?", "",
         "unaffable " * 30, "你好，世界", "to be or not to be, that is the question"]
OTHER_TEXTS = TEXTS[3:] + TEXTS[:3]
MEGABYTE = "word " * 200_000
BAD_UTF8 = [b"caf\xc3", b"\xff\xfe", b"ok \xe9t\xe9"]

# name: (num_classes, multi_label, label names, text inputs). Each problem type once
# (exports are slow); the pair task is the regression one, as STS-B is.
TASKS = {
    "single": (3, False, ["negative", "neutral", "positive"], [names.TEXT_A]),
    "multi": (3, True, ["sports", "politics", "science"], [names.TEXT_A]),
    "regression": (1, False, None, list(names.TEXT_INPUTS)),
}

# The warm-up examples each export holds.
WARMUP = {"single": WARMUP_TEXTS, "multi": TEXTS[:2], "regression": WARMUP_PAIRS}


def text_inputs(task, texts, others=None):
    inputs = {names.TEXT_A: list(texts)}
    if len(TASKS[task][3]) == 2:
        inputs[names.TEXT_B] = list(others if others is not None else texts)
    return inputs


def build_classifier_dir(root, task, seed):
    num_classes, multi_label, labels, inputs = TASKS[task]
    keras.utils.set_random_seed(seed)
    # Weights 50x the usual scale: logits that differ between texts (at 0.02 a random
    # encoder gives every text nearly the same pooled output).
    classifier = BertClassifier(BertEncoder(tiny_config(vocab_size=927,
                                                        initializer_range=1.0)),
                                num_classes=num_classes, multi_label=multi_label,
                                preprocessor=BertTextPreprocessor(
                                    SHAKESPEARE_VOCAB, sequence_length=SEQ_LENGTH))
    if multi_label:
        set_thresholds_between_texts(classifier, never=1)
    path = os.path.join(root, task)
    save_classifier_dir(path, classifier, SHAKESPEARE_VOCAB,
                        TextConfig.for_vocab(SHAKESPEARE_VOCAB, do_lower_case=True),
                        TaskConfig.for_classifier(classifier, labels, SEQ_LENGTH, inputs))
    return path


def set_thresholds_between_texts(classifier, never):
    """Biases that make the multi-label answers for TEXTS differ: each label's logit
    crosses 0 in the middle of the widest gap between the texts' logits, far from the
    0.5 probability threshold; label `never` is never chosen."""
    dense = classifier.get_layer("logits")
    dense.bias.assign(np.zeros(dense.bias.shape, "float32"))
    logits = np.asarray(classifier(classifier.preprocessor(tf.constant(TEXTS))))
    bias = []
    for column in logits.T:
        ordered = np.sort(column)
        widest = int(np.argmax(np.diff(ordered)))
        assert ordered[widest + 1] - ordered[widest] > 0.1
        bias.append(-(ordered[widest] + ordered[widest + 1]) / 2)
    bias[never] = -4.0 - logits[:, never].max()
    dense.bias.assign(np.array(bias, "float32"))


def keras_answer(task, classifier, inputs):
    """What the serving signature must answer, from the Keras model's logits."""
    segments = tuple(tf.constant(inputs[k], tf.string) for k in TASKS[task][3])
    encoder_inputs = classifier.preprocessor(segments if len(segments) == 2 else segments[0])
    logits = np.asarray(classifier(encoder_inputs), np.float64)
    labels = TASKS[task][2]
    if task == "regression":
        return {names.SCORE: logits[:, 0]}
    if TASKS[task][1]:
        probabilities = 1 / (1 + np.exp(-logits))
        return {names.PROBABILITIES: probabilities,
                names.LABEL: [",".join(l for l, p in zip(labels, row) if p > 0.5).encode()
                              for row in probabilities]}
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    ids = probabilities.argmax(-1)
    return {names.PROBABILITIES: probabilities, names.LABEL_ID: ids,
            names.LABEL: [labels[i].encode() for i in ids]}


def assert_answer(expected, outputs):
    assert sorted(outputs) == sorted(expected)
    for key, value in expected.items():
        if key == names.LABEL:
            assert outputs[key].tolist() == value
        elif key == names.LABEL_ID:
            assert outputs[key].dtype == np.int32
            np.testing.assert_array_equal(outputs[key], value)
        else:
            assert outputs[key].dtype == np.float32
            np.testing.assert_allclose(outputs[key], value, rtol=0, atol=1e-5)


def export_with_pipeline(model_dir, export_base):
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.export_savedmodel", "--export_type=classifier",
         f"--init_model_dir={model_dir}", f"--export_path={export_base}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("classifier_export"))
    dirs, versions, classifiers = {}, {}, {}
    for seed, task in enumerate(TASKS):
        dirs[task] = build_classifier_dir(root, task, seed)
        classifiers[task] = load_classifier(dirs[task])
        if task == "multi":  # a classifier object and its task, own warm-up texts
            versions[task] = export_classifier(
                os.path.join(root, "export", task), classifier=classifiers[task],
                task_config=read_task_config(dirs[task]), warmup_texts=WARMUP["multi"])
        else:
            versions[task] = export_classifier(os.path.join(root, "export", task),
                                               model_dir=dirs[task])
    base = os.path.join(root, "export", "single")
    os.makedirs(os.path.join(base, "not_a_version"))  # clutter TF Serving ignores
    pipeline_stdout = export_with_pipeline(dirs["single"], base)

    cases = []
    for task in TASKS:
        cases += [
            {"id": f"{task}/texts", "inputs": text_inputs(task, TEXTS, OTHER_TEXTS)},
            {"id": f"{task}/batch0", "inputs": text_inputs(task, [])},
        ]
    for task in ("single", "regression"):
        cases += [
            {"id": f"{task}/empty", "inputs": text_inputs(task, ["", ""], ["", "x"])},
            {"id": f"{task}/megabyte", "inputs": text_inputs(task, [MEGABYTE])},
            {"id": f"{task}/bad_utf8", "inputs": text_inputs(task, BAD_UTF8)},
        ]
    cases.append({"id": "regression/mismatched",
                  "inputs": text_inputs("regression", TEXTS[:2], TEXTS[:3])})
    cases.append({"id": "single_v2/texts", "inputs": text_inputs("single", TEXTS)})
    for case in cases:
        case.update(model=case["id"].split("/")[0], call="serving_default")
    models = dict(versions, single_v2=os.path.join(base, "2"))
    check = run_check({"models": models, "cases": cases, "warmup": list(TASKS),
                       "describe": list(TASKS)}, root)
    return dict(dirs=dirs, versions=versions, classifiers=classifiers, check=check,
                cases={c["id"]: c for c in cases}, base=base,
                pipeline_stdout=pipeline_stdout)


def answers(exported, case_id):
    """The eager and the TF-Serving-style (session) answers of a case."""
    result = exported["check"]["cases"][case_id]
    return result["eager"], result["session"]


def test_the_serving_process_has_no_keras_and_no_tf_text_2_20_ops(exported):
    check = exported["check"]
    assert check["modules"] == []
    assert "_fast_wordpiece_tokenizer.so" in check["text_op_libraries"]
    assert "_trimmer_ops.so" not in check["text_op_libraries"]


@pytest.mark.parametrize("task", list(TASKS))
def test_serving_default_takes_strings_and_returns_the_task_answer(exported, task):
    info = exported["check"]["describe"][task]
    signature = info["signatures"]["serving_default"]
    assert signature["inputs"] == {name: ["string", [None]] for name in TASKS[task][3]}
    expected = {"single": [names.LABEL, names.LABEL_ID, names.PROBABILITIES],
                "multi": [names.LABEL, names.PROBABILITIES],
                "regression": [names.SCORE]}[task]
    assert signature["outputs"] == expected
    assert info["max_seq_length"].tolist() == SEQ_LENGTH
    if TASKS[task][2] is not None:
        assert info["label_names"].tolist() == [n.encode() for n in TASKS[task][2]]


@pytest.mark.parametrize("task", list(TASKS))
def test_answers_equal_the_keras_model(exported, task):
    case = exported["cases"][f"{task}/texts"]
    expected = keras_answer(task, exported["classifiers"][task], case["inputs"])
    for answer in answers(exported, f"{task}/texts"):
        assert "outputs" in answer, answer
        assert_answer(expected, answer["outputs"])
    if task == "multi":  # the fixture's head gives several kinds of answers
        assert len(set(expected[names.LABEL])) >= 2


@pytest.mark.parametrize("case_id", ["single/empty", "regression/empty",
                                     "single/megabyte", "regression/megabyte",
                                     "single/bad_utf8", "regression/bad_utf8"])
def test_empty_huge_and_undecodable_texts_get_the_keras_answer(exported, case_id):
    task = case_id.split("/")[0]
    case = exported["cases"][case_id]
    expected = keras_answer(task, exported["classifiers"][task], case["inputs"])
    for answer in answers(exported, case_id):
        assert "outputs" in answer, answer
        assert_answer(expected, answer["outputs"])


@pytest.mark.parametrize("task", list(TASKS))
def test_an_empty_batch_gets_empty_answers(exported, task):
    classes = TASKS[task][0]
    for answer in answers(exported, f"{task}/batch0"):
        shapes = {k: list(v.shape) for k, v in answer["outputs"].items()}
        expected = {names.SCORE: [0]} if task == "regression" else {
            names.PROBABILITIES: [0, classes], names.LABEL: [0],
            **({} if TASKS[task][1] else {names.LABEL_ID: [0]})}
        assert shapes == expected


def test_text_a_and_text_b_of_different_lengths_are_an_invalid_argument(exported):
    for answer in answers(exported, "regression/mismatched"):
        assert answer["error"] == "InvalidArgumentError", answer
        assert "text_a and text_b must have the same number of rows" in answer["message"]


@pytest.mark.parametrize("task", list(TASKS))
def test_warmup_requests_are_prediction_logs_that_replay(exported, task):
    records = exported["check"]["warmup"][task]
    examples = WARMUP[task]
    assert len(records) == len(examples) + 1  # each example, then all of them
    assert [r["inputs"] for r in records] == (
        [{k: [1] for k in TASKS[task][3]}] * len(examples)
        + [{k: [len(examples)] for k in TASKS[task][3]}])
    assert {r["signature"] for r in records} == {"serving_default"}
    # The batch of all examples, replayed, answers what the Keras model answers.
    columns = list(zip(*examples)) if len(TASKS[task][3]) == 2 else [examples]
    expected = keras_answer(task, exported["classifiers"][task],
                            text_inputs(task, *columns))
    assert_answer(expected, records[-1]["outputs"])


def test_exports_use_only_core_ops_and_tf_text_2_12_1_ops(exported):
    allowed = core_op_types() | TF_TEXT_2_12_1_OPS
    for task, version_dir in exported["versions"].items():
        assert check_serving_ops(version_dir) == ["FastWordpieceTokenizeWithOffsets"]
        used = set().union(*saved_model_op_types(version_dir).values())
        assert used <= allowed, (task, sorted(used - allowed))


def test_each_weight_is_saved_once(exported):
    # Float variables of the checkpoint: the classifier's weights, not a second copy
    # of them saved through the Keras objects.
    for task, version_dir in exported["versions"].items():
        reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables",
                                                       "variables"))
        shapes = reader.get_variable_to_shape_map()
        floats = sum(int(np.prod(shapes[name])) for name, dtype in
                     reader.get_variable_to_dtype_map().items() if dtype == tf.float32)
        assert floats == exported["classifiers"][task].count_params(), task


def test_repeated_exports_add_versions_and_the_pipeline_says_how_to_serve(exported):
    base = exported["base"]
    assert sorted(os.listdir(base)) == ["1", "2", "not_a_version"]
    assert exported["versions"]["single"] == os.path.join(base, "1")
    stdout = exported["pipeline_stdout"]
    assert os.path.join(base, "2") in stdout
    assert (f"tensorflow_model_server --rest_api_port=8501 --model_name=single "
            f"--model_base_path={base}") in stdout
    first = exported["check"]["cases"]["single/texts"]["eager"]["outputs"]
    second = exported["check"]["cases"]["single_v2/texts"]["eager"]["outputs"]
    np.testing.assert_array_equal(first[names.PROBABILITIES], second[names.PROBABILITIES])


def saved_model_cli():
    """The `saved_model_cli` script of the environment TensorFlow is installed in:
    beside the interpreter, or (under Bazel, whose interpreter is not the
    virtualenv's) in the `bin/` of the virtualenv that holds `tensorflow`."""
    import shutil

    site_packages = os.path.dirname(os.path.dirname(os.path.abspath(tf.__file__)))
    candidates = [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
                  os.path.join(site_packages, "..", "..", "..", "bin", "saved_model_cli"),
                  shutil.which("saved_model_cli") or ""]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.normpath(path)
    pytest.skip(f"no saved_model_cli in {candidates}")


def test_saved_model_cli_show_lists_the_string_inputs(exported):
    proc = subprocess.run([saved_model_cli(), "show", "--all", "--dir",
                           exported["versions"]["regression"]],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    signature = proc.stdout[proc.stdout.index("signature_def['serving_default']"):]
    for name in names.TEXT_INPUTS:
        assert (f"inputs['{name}'] tensor_info:\n        dtype: DT_STRING\n"
                f"        shape: (-1)") in signature


def test_saved_model_cli_run_answers_as_the_readme_shows(exported):
    # The command of saved_models/README.md: saved_model_cli with TF Text's ops.
    proc = subprocess.run(
        [sys.executable, "-c", "import tensorflow_text; from tensorflow.python.tools."
         "saved_model_cli import main; main()", "run", "--dir",
         exported["versions"]["single"], "--tag_set", "serve", "--signature_def",
         "serving_default", "--input_exprs", f"text_a={TEXTS[:2]!r}"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = keras_answer("single", exported["classifiers"]["single"],
                            text_inputs("single", TEXTS[:2]))
    assert f"Result for output key label:\n{np.array(expected[names.LABEL])}" in proc.stdout


def test_export_refuses_what_it_cannot_serve(tmp_path, exported, monkeypatch):
    pretrained = str(tmp_path / "pretrained")
    save_model_dir(pretrained, BertPretrainer(BertEncoder(tiny_config(vocab_size=927))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    with pytest.raises(ValueError, match="not a fine-tuned classifier directory"):
        export_classifier(str(tmp_path / "out"), model_dir=pretrained)
    classifier = exported["classifiers"]["multi"]
    task = TaskConfig.for_classifier(classifier, ["a,b", "c", "d"], SEQ_LENGTH,
                                     [names.TEXT_A])
    with pytest.raises(ValueError, match=r"label_names \['a,b'\].*separates the labels"):
        export_classifier(str(tmp_path / "out"), classifier=classifier, task_config=task)
    with pytest.raises(ValueError, match="with its task_config"):
        export_classifier(str(tmp_path / "out"), classifier=classifier)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ValueError, match="needs the TensorFlow Keras backend"):
        export_classifier(str(tmp_path / "out"), model_dir=exported["dirs"]["single"])
    assert not os.path.exists(tmp_path / "out")


def test_the_next_version_is_one_more_than_the_highest_integer_directory(tmp_path):
    assert next_version_dir(tmp_path / "new") == str(tmp_path / "new" / "1")
    for name in ("1", "9", "10", ".11.writing-abc", "12.old", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "13").write_text("a file, not a version")
    assert next_version_dir(tmp_path) == str(tmp_path / "11")  # 10 > 9: numeric order
    with pytest.raises(ValueError, match="is a file"):
        next_version_dir(tmp_path / "13")


def test_warmup_files_hold_1_to_1000_requests(tmp_path):
    with pytest.raises(ValueError, match="0 warm-up requests"):
        write_warmup_requests(tmp_path, [])
    with pytest.raises(ValueError, match="1001 warm-up requests"):
        write_warmup_requests(tmp_path, [{names.TEXT_A: ["x"]}] * 1001)
    assert not (tmp_path / "assets.extra").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
