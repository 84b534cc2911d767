"""Encoder SavedModels with TF Hub's BERT encoder interface, in a serving process.

A tiny pre-trained directory is exported with its masked-LM head (`encoder_with_mlm`,
through the library) and a fine-tuned classifier directory's encoder alone (`encoder`,
through the pipeline binary). tf_only_check.py loads both where neither Keras nor our
package can be imported, and answers must be those of BertEncoder / BertPretrainer.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export import (check_serving_ops, core_op_types, export_encoder,
                                   saved_model_op_types)
from keras_bert_app.export.serving_layout import WARMUP_TEXTS
from keras_bert_app.model_dir import (load_encoder, load_pretrainer, save_classifier_dir,
                                      save_model_dir)
from keras_bert_app.models import BertClassifier, BertEncoder, BertPretrainer
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.preprocessor import load_preprocessor
from keras_bert_app.text.text_config import TextConfig
from tests.export.tf_only_check import run_check
from tests.helpers import SHAKESPEARE_VOCAB, encoder_batch, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = 927
TEXT_CONFIG = TextConfig.for_vocab(SHAKESPEARE_VOCAB, do_lower_case=True)
BATCH = encoder_batch(batch=3, seq=12, vocab=VOCAB)
POSITIONS = np.array([[1, 3, 5], [2, 4, 0], [0, 0, 0]], "int32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("encoder_export"))
    keras.utils.set_random_seed(5)
    pretrained = os.path.join(root, "pretrained")
    save_model_dir(pretrained, BertPretrainer(BertEncoder(tiny_config(vocab_size=VOCAB))),
                   SHAKESPEARE_VOCAB, TEXT_CONFIG)
    classifier = BertClassifier(BertEncoder(tiny_config(vocab_size=VOCAB)), num_classes=2)
    fine_tuned = os.path.join(root, "fine_tuned")
    save_classifier_dir(fine_tuned, classifier, SHAKESPEARE_VOCAB, TEXT_CONFIG,
                        TaskConfig.for_classifier(classifier, ["no", "yes"], 16,
                                                  [names.TEXT_A]))
    with_mlm = export_encoder(os.path.join(root, "with_mlm"), pretrained, with_mlm=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.export_savedmodel", "--export_type=encoder",
         f"--init_model_dir={fine_tuned}", f"--export_path={root}/fine_tuned_encoder"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    encoder_only = os.path.join(root, "fine_tuned_encoder", "1")

    texts = load_preprocessor(pretrained, seq_length=16)(tf.constant(WARMUP_TEXTS))
    preprocessed = {k: v.numpy() for k, v in texts.items()}
    cases = [
        {"id": "call", "model": "with_mlm", "call": "__call__", "inputs": BATCH},
        {"id": "call_training", "model": "with_mlm", "call": "__call__", "inputs": BATCH,
         "training": True},
        {"id": "mlm", "model": "with_mlm", "call": "mlm",
         "inputs": dict(BATCH, **{names.MASKED_LM_POSITIONS: POSITIONS})},
        {"id": "serve", "model": "with_mlm", "call": "serving_default", "inputs": BATCH},
        {"id": "preprocessed", "model": "with_mlm", "call": "__call__",
         "inputs": preprocessed},
        {"id": "batch0", "model": "with_mlm", "call": "serving_default",
         "inputs": {k: np.zeros([0, 8], "int32") for k in names.ENCODER_INPUTS}},
        {"id": "fine_tuned", "model": "encoder_only", "call": "__call__", "inputs": BATCH},
        {"id": "fine_tuned_serve", "model": "encoder_only", "call": "serving_default",
         "inputs": BATCH},
    ]
    models = {"with_mlm": with_mlm, "encoder_only": encoder_only}
    check = run_check({"models": models, "cases": cases, "warmup": list(models),
                       "describe": list(models)}, root)
    return dict(pretrained=pretrained, fine_tuned=fine_tuned, models=models,
                check=check, preprocessed=preprocessed, pipeline_stdout=proc.stdout)


def outputs(exported, case_id, way="eager"):
    answer = exported["check"]["cases"][case_id][way]
    assert "outputs" in answer, answer
    return answer["outputs"]


def encoder_outputs(encoder, inputs):
    result = encoder({k: tf.constant(v) for k, v in inputs.items()})
    return {names.SEQUENCE_OUTPUT: np.asarray(result[names.SEQUENCE_OUTPUT]),
            names.POOLED_OUTPUT: np.asarray(result[names.POOLED_OUTPUT]),
            names.ENCODER_OUTPUTS: [np.asarray(x) for x in result[names.ENCODER_OUTPUTS]]}


def assert_close(expected, actual):
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        if isinstance(value, list):
            assert len(actual[key]) == len(value)
            for e, a in zip(value, actual[key]):
                np.testing.assert_allclose(a, e, rtol=0, atol=1e-5)
        else:
            np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-5)


def test_the_serving_process_has_no_keras(exported):
    assert exported["check"]["modules"] == []


def test_the_root_call_equals_bert_encoder(exported):
    encoder = load_encoder(exported["pretrained"])
    assert_close(encoder_outputs(encoder, BATCH), outputs(exported, "call"))
    # Our preprocessing's outputs are the encoder's inputs: the two compose.
    assert_close(encoder_outputs(encoder, exported["preprocessed"]),
                 outputs(exported, "preprocessed"))


def test_training_true_runs_dropout(exported):
    inference, training = outputs(exported, "call"), outputs(exported, "call_training")
    assert training[names.SEQUENCE_OUTPUT].shape == inference[names.SEQUENCE_OUTPUT].shape
    assert np.abs(training[names.POOLED_OUTPUT] - inference[names.POOLED_OUTPUT]).max() > 1e-3


def test_mlm_equals_bert_pretrainer(exported):
    pretrainer = load_pretrainer(exported["pretrained"])
    inputs = {k: tf.constant(v) for k, v in BATCH.items()}
    expected = encoder_outputs(pretrainer.encoder, BATCH)
    expected[names.MLM_LOGITS] = np.asarray(pretrainer(
        dict(inputs, **{names.MASKED_LM_POSITIONS: tf.constant(POSITIONS)}))[names.MLM_LOGITS])
    assert expected[names.MLM_LOGITS].shape == (3, 3, VOCAB)
    assert_close(expected, outputs(exported, "mlm"))


def test_serving_default_takes_the_three_int32_inputs(exported):
    encoder = load_encoder(exported["pretrained"])
    expected = encoder_outputs(encoder, BATCH)
    del expected[names.ENCODER_OUTPUTS]  # a list: the root call has it, not a signature
    for way in ("eager", "session"):
        assert_close(expected, outputs(exported, "serve", way))
    for model in exported["models"]:
        signature = exported["check"]["describe"][model]["signatures"]["serving_default"]
        assert signature == {
            "inputs": {k: ["int32", [None, None]] for k in names.ENCODER_INPUTS},
            "outputs": [names.POOLED_OUTPUT, names.SEQUENCE_OUTPUT]}
    shapes = {k: list(v.shape) for k, v in outputs(exported, "batch0", "session").items()}
    assert shapes == {names.SEQUENCE_OUTPUT: [0, 8, 32], names.POOLED_OUTPUT: [0, 32]}


def test_the_hub_attributes(exported):
    pretrainer = load_pretrainer(exported["pretrained"])
    trainable = {w.path for w in pretrainer.trainable_weights} - {
        w.path for w in pretrainer.nsp_head.trainable_weights}
    info = exported["check"]["describe"]["with_mlm"]
    assert info["trainable_variables"] == len(trainable)
    assert info["variables"] >= info["trainable_variables"]  # + dropout seed state
    assert info["regularization_losses"] == 0
    assert info["has_mlm"] and not exported["check"]["describe"]["encoder_only"]["has_mlm"]
    assert info["do_lower_case"].tolist() is True and info["vocab_size"] == VOCAB


def test_a_fine_tuned_directory_exports_its_encoder(exported):
    encoder = load_encoder(exported["fine_tuned"])
    assert_close(encoder_outputs(encoder, BATCH), outputs(exported, "fine_tuned"))
    served = outputs(exported, "fine_tuned_serve", "session")
    np.testing.assert_allclose(served[names.POOLED_OUTPUT],
                               encoder_outputs(encoder, BATCH)[names.POOLED_OUTPUT],
                               rtol=0, atol=1e-5)
    stdout = exported["pipeline_stdout"]
    assert exported["models"]["encoder_only"] in stdout
    assert "--model_name=fine_tuned_encoder --model_base_path=" in stdout


def test_warmup_requests_replay(exported):
    for model in exported["models"]:
        records = exported["check"]["warmup"][model]
        assert len(records) == len(WARMUP_TEXTS) + 1
        assert records[-1]["inputs"][names.INPUT_WORD_IDS][0] == len(WARMUP_TEXTS)
        assert records[-1]["outputs"][names.POOLED_OUTPUT].shape == (len(WARMUP_TEXTS), 32)


def test_exports_use_only_core_ops_and_each_weight_once(exported):
    pretrainer = load_pretrainer(exported["pretrained"])
    encoder = load_encoder(exported["fine_tuned"])
    expected_floats = {
        "with_mlm": pretrainer.count_params() - pretrainer.nsp_head.count_params(),
        "encoder_only": encoder.count_params()}
    for model, version_dir in exported["models"].items():
        assert check_serving_ops(version_dir) == []  # no TF Text op at all
        used = set().union(*saved_model_op_types(version_dir).values())
        assert used <= core_op_types(), sorted(used - core_op_types())
        reader = tf.train.load_checkpoint(os.path.join(version_dir, "variables",
                                                       "variables"))
        shapes = reader.get_variable_to_shape_map()
        floats = sum(int(np.prod(shapes[name])) for name, dtype in
                     reader.get_variable_to_dtype_map().items() if dtype == tf.float32)
        assert floats == expected_floats[model], model


def test_encoder_with_mlm_needs_a_pre_trained_directory(exported, tmp_path):
    with pytest.raises(ValueError, match="fine-tuned 'classification' directory"):
        export_encoder(str(tmp_path / "out"), exported["fine_tuned"], with_mlm=True)
    assert not os.path.exists(tmp_path / "out")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
