"""Text-in multiple-choice SavedModels: context, question and choices in, each
choice's probability out, in a serving process, equal to what `run_multiple_choice`
writes to predictions.tsv.

A tiny multiple-choice directory is exported once for the module. A process with
TensorFlow and TF Text's ops but no Keras and none of our code (tf_only_check.py)
loads it eagerly and as TF Serving does, and answers. The expected probabilities
come from the library path `run_multiple_choice --do_predict` takes
(`MultipleChoiceData.predict`).
"""

import os
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.data.multiple_choice_data import MultipleChoiceExample
from keras_bert_app.export import check_serving_ops, core_op_types, saved_model_op_types
from keras_bert_app.export.multiple_choice import (CHOICES, WARMUP_QUESTIONS,
                                                   export_multiple_choice)
from keras_bert_app.export.tf_serving_ops import TF_TEXT_2_12_1_OPS
from keras_bert_app.model_dir import save_model_dir, save_task_dir
from keras_bert_app.models import BertEncoder, BertMultipleChoice, BertPretrainer
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.training.multiple_choice_inputs import MultipleChoiceData
from tests.export.tf_only_check import run_check
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEQ_LENGTH = 24


def examples():
    """Real speeches as contexts (one far longer than SEQ_LENGTH, one with multi-byte
    characters), 2 to 5 choices, with and without a question."""
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        speeches = [s.strip() for s in f.read().split("\n\n") if s.strip()][:40]
    result = []
    for i in range(12):
        words = speeches[i].split()
        context = speeches[i] if i != 4 else "Ünïcödé ÇAFÉ 東京 😀 " + speeches[i]
        choices = tuple(" ".join(words[j:j + 2 + j % 3]) or "nothing"
                        for j in range(2 + i % 4))
        question = "" if i % 3 == 0 else " ".join(words[-3:]) + "?"
        result.append(MultipleChoiceExample(context=context, question=question,
                                            choices=choices, label=None, line=i + 1))
    return result


def request(exs):
    width = max(len(e.choices) for e in exs)
    return {names.CONTEXT: [e.context for e in exs],
            names.QUESTION: [e.question for e in exs],
            CHOICES: np.array([list(e.choices) + [""] * (width - len(e.choices))
                               for e in exs], dtype=object)}


def pipeline_probabilities(model_dir, model, exs):
    """What run_multiple_choice --do_predict writes: float32 [n, max choices]."""
    data = MultipleChoiceData(types.SimpleNamespace(max_seq_length=SEQ_LENGTH), None,
                              [], exs)
    data.set_text(os.path.join(model_dir, names.VOCAB_FILE),
                  TextConfig.from_json_file(os.path.join(model_dir,
                                                         names.TEXT_CONFIG_FILE)),
                  SEQ_LENGTH)
    return data.predict(model, exs, batch_size=3)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("multiple_choice_export"))
    keras.utils.set_random_seed(0)
    # Weights 50x the usual scale: probabilities far from uniform, that differ
    # between choices and questions.
    model = BertMultipleChoice(BertEncoder(tiny_config(vocab_size=927,
                                                       initializer_range=1.0)))
    model_dir = os.path.join(root, "model")
    save_task_dir(model_dir, model, SHAKESPEARE_VOCAB,
                  TextConfig.for_vocab(SHAKESPEARE_VOCAB, True),
                  TaskConfig(task=names.MULTIPLE_CHOICE_TASK, heads=[names.CHOICE_HEAD],
                             max_seq_length=SEQ_LENGTH))
    exs = examples()
    base = os.path.join(root, "export")
    version_dir = export_multiple_choice(base, model_dir)
    cases = [
        {"id": "all", "inputs": request(exs)},
        {"id": "one", "inputs": request(exs[5:6])},
        {"id": "batch0", "inputs": {names.CONTEXT: [], names.QUESTION: [],
                                    CHOICES: np.zeros([0, 4], object)}},
        {"id": "no_choice", "inputs": {names.CONTEXT: ["a", "b"], names.QUESTION: ["", ""],
                                       CHOICES: np.array([["", ""], ["x", ""]], object)}},
        {"id": "mismatched", "inputs": {names.CONTEXT: ["a", "b"], names.QUESTION: ["", ""],
                                        CHOICES: np.array([["x", "y"]], object)}},
    ]
    for case in cases:
        case.update(model="mc", call="serving_default")
    check = run_check({"models": {"mc": version_dir}, "cases": cases, "warmup": ["mc"],
                       "describe": ["mc"]}, root)
    return dict(model_dir=model_dir, model=model, examples=exs, version_dir=version_dir,
                base=base, check=check,
                expected=pipeline_probabilities(model_dir, model, exs))


def answers(exported, case_id):
    """The eager and the TF-Serving-style (session) answers of a case."""
    case = exported["check"]["cases"][case_id]
    return case["eager"], case["session"]


def test_the_serving_process_has_no_keras_and_none_of_our_code(exported):
    assert exported["check"]["modules"] == []


def test_serving_default_takes_context_question_and_choices(exported):
    info = exported["check"]["describe"]["mc"]
    signature = info["signatures"]["serving_default"]
    assert signature["inputs"] == {names.CONTEXT: ["string", [None]],
                                   names.QUESTION: ["string", [None]],
                                   CHOICES: ["string", [None, None]]}
    assert signature["outputs"] == [names.LABEL_ID, names.PROBABILITIES]
    assert info["max_seq_length"].tolist() == SEQ_LENGTH


def test_probabilities_equal_the_pipelines_with_padding_choices_at_0(exported):
    expected = exported["expected"]
    counts = [len(e.choices) for e in exported["examples"]]
    assert sorted(set(counts)) == [2, 3, 4, 5]
    for answer in answers(exported, "all"):
        out = answer["outputs"]
        assert out[names.PROBABILITIES].dtype == np.float32
        assert out[names.LABEL_ID].dtype == np.int32
        np.testing.assert_allclose(out[names.PROBABILITIES], expected, rtol=0, atol=1e-5)
        for row, count in zip(out[names.PROBABILITIES], counts):
            assert (row[count:] == 0).all()  # "" is padding: exactly 0
        np.testing.assert_array_equal(out[names.LABEL_ID], expected.argmax(axis=1))
    # The examples exercise what they are for: confident, different answers.
    assert len(set(expected.argmax(axis=1).tolist())) >= 3
    assert expected.max() > 0.9


def test_a_question_alone_gets_the_probabilities_it_gets_in_a_padded_batch(exported):
    count = len(exported["examples"][5].choices)
    for answer in answers(exported, "one"):
        np.testing.assert_allclose(answer["outputs"][names.PROBABILITIES][0],
                                   exported["expected"][5][:count], rtol=0, atol=1e-5)


def test_an_empty_batch_and_rows_without_choices(exported):
    for answer in answers(exported, "batch0"):
        shapes = {k: list(v.shape) for k, v in answer["outputs"].items()}
        assert shapes == {names.PROBABILITIES: [0, 4], names.LABEL_ID: [0]}
    for answer in answers(exported, "no_choice"):
        out = answer["outputs"]
        assert out[names.LABEL_ID].tolist() == [-1, 0]
        assert out[names.PROBABILITIES].tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_rows_that_do_not_match_are_an_invalid_argument(exported):
    for answer in answers(exported, "mismatched"):
        assert answer["error"] == "InvalidArgumentError", answer
        assert "context must have one row per row of choices" in answer["message"]


def test_warmup_requests_replay_one_question_each_then_all_padded(exported):
    records = exported["check"]["warmup"]["mc"]
    widths = [len(q[2]) for q in WARMUP_QUESTIONS]
    assert [r["inputs"] for r in records] == [
        {names.CONTEXT: [1], names.QUESTION: [1], CHOICES: [1, w]} for w in widths] + [
        {names.CONTEXT: [2], names.QUESTION: [2], CHOICES: [2, max(widths)]}]
    last = records[-1]["outputs"][names.PROBABILITIES]
    for i, record in enumerate(records[:-1]):
        alone = record["outputs"][names.PROBABILITIES][0]
        np.testing.assert_allclose(last[i, :widths[i]], alone, rtol=0, atol=1e-5)
        assert (last[i, widths[i]:] == 0).all()


def test_the_export_uses_only_serving_ops_and_saves_each_weight_once(exported):
    version_dir = exported["version_dir"]
    assert version_dir == os.path.join(exported["base"], "1")
    assert check_serving_ops(version_dir) == ["FastWordpieceTokenizeWithOffsets"]
    used = set().union(*saved_model_op_types(version_dir).values())
    assert used <= core_op_types() | TF_TEXT_2_12_1_OPS
    reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    shapes = reader.get_variable_to_shape_map()
    floats = sum(int(np.prod(shapes[name])) for name, dtype in
                 reader.get_variable_to_dtype_map().items() if dtype == tf.float32)
    assert floats == exported["model"].count_params()


def test_export_refuses_other_directories_and_leaves_nothing(tmp_path, exported):
    pretrained = str(tmp_path / "pretrained")
    save_model_dir(pretrained, BertPretrainer(BertEncoder(tiny_config(vocab_size=927))),
                   SHAKESPEARE_VOCAB, TextConfig.for_vocab(SHAKESPEARE_VOCAB, True))
    with pytest.raises(ValueError, match="not a fine-tuned multiple-choice directory"):
        export_multiple_choice(str(tmp_path / "out"), pretrained)
    with pytest.raises(ValueError, match="warmup: expected"):
        export_multiple_choice(str(tmp_path / "out"), exported["model_dir"],
                               warmup=[("context", "question", ["a", ""])])
    assert not os.path.exists(tmp_path / "out")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
