"""Pre-trained model directories: written whole, read back whole, checked."""

import json
import os
import sys

import h5py
import keras
import numpy as np
import pytest

import keras_bert_app as kba
from keras_bert_app import names
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.text_config import TextConfig
from tests.helpers import encoder_batch, h5_arrays, tiny_config


def write_vocab(path):
    tokens = list(names.SPECIAL_TOKENS) + [f"w{i}" for i in range(92)]
    path.write_text("\n".join(tokens) + "\n")
    return str(path)


def saved_model_dir(tmp_path, next_sentence_prediction=True, name="model"):
    """(directory, pretrainer) for a tiny pretrainer saved whole."""
    vocab = write_vocab(tmp_path / f"{name}_vocab.txt")
    keras.utils.set_random_seed(3)
    pretrainer = BertPretrainer(BertEncoder(tiny_config()),
                                next_sentence_prediction=next_sentence_prediction)
    save_model_dir(str(tmp_path / name), pretrainer, vocab,
                   TextConfig.for_vocab(vocab, do_lower_case=False))
    return tmp_path / name, pretrainer


def read_task_config(model_dir):
    return json.loads((model_dir / names.TASK_CONFIG_FILE).read_text())


def write_task_config(model_dir, values):
    (model_dir / names.TASK_CONFIG_FILE).write_text(json.dumps(values))


def assert_same_weights(expected, actual):
    assert len(expected.weights) == len(actual.weights)
    for e, a in zip(expected.weights, actual.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(e),
                                      keras.ops.convert_to_numpy(a), err_msg=e.path)


def test_round_trip(tmp_path):
    model_dir, pretrainer = saved_model_dir(tmp_path)
    for name in (names.BERT_CONFIG_FILE, names.VOCAB_FILE, names.TEXT_CONFIG_FILE,
                 names.TASK_CONFIG_FILE, names.WEIGHTS_FILE):
        assert (model_dir / name).is_file()
    assert not [n for n in os.listdir(model_dir) if "partial" in n]
    encoder = kba.load_encoder(str(model_dir))
    assert encoder.config == tiny_config()
    batch = encoder_batch()
    np.testing.assert_array_equal(np.asarray(encoder(batch)[names.POOLED_OUTPUT]),
                                  np.asarray(pretrainer.encoder(batch)[names.POOLED_OUTPUT]))
    preprocessor = kba.load_preprocessor(str(model_dir), seq_length=16)
    assert preprocessor.text_config.do_lower_case is False


@pytest.mark.parametrize("next_sentence_prediction, heads", [
    (True, ["masked_lm", "next_sentence"]), (False, ["masked_lm"])])
def test_the_task_config_records_the_heads_and_load_restores_them(
        tmp_path, next_sentence_prediction, heads):
    model_dir, pretrainer = saved_model_dir(tmp_path, next_sentence_prediction)
    assert read_task_config(model_dir) == {"task": "pretraining", "heads": heads}
    loaded = kba.load_pretrainer(str(model_dir))
    assert loaded.next_sentence_prediction is next_sentence_prediction
    assert_same_weights(pretrainer, loaded)


@pytest.mark.parametrize("saved_with_nsp, recorded_heads", [
    (True, ["masked_lm"]), (False, ["masked_lm", "next_sentence"])])
def test_a_task_config_that_contradicts_the_weights_is_an_error(
        tmp_path, saved_with_nsp, recorded_heads):
    model_dir, _ = saved_model_dir(tmp_path, saved_with_nsp)
    write_task_config(model_dir, {"task": "pretraining", "heads": recorded_heads})
    with pytest.raises(ValueError, match=r"task_config\.json lists the heads .* but "
                       r".*model\.weights\.h5 (holds|has no) next_sentence head"):
        kba.load_pretrainer(str(model_dir))


def test_a_fine_tuned_task_is_not_loaded_as_a_pretrainer(tmp_path):
    model_dir, _ = saved_model_dir(tmp_path)
    write_task_config(model_dir, {"task": "classification", "heads": ["classifier"],
                                  "label_names": ["neg", "pos"], "max_seq_length": 128,
                                  "problem_type": "single_label",
                                  "text_inputs": ["text_a"]})
    with pytest.raises(ValueError, match="task='classification'; load_pretrainer reads "
                       "pre-trained model directories"):
        kba.load_pretrainer(str(model_dir))


@pytest.mark.parametrize("fields,message", [
    ({"problem_type": "binary"}, "problem_type='binary'"),
    ({"text_inputs": ["text_b"]}, "text_inputs"),
    ({"label_names": ["only"]}, "at least two"),
    ({"problem_type": "regression"}, "has none"),
    ({"heads": ["classifier", "masked_lm"]}, "one head"),
])
def test_a_classifier_task_config_is_checked_when_read(tmp_path, fields, message):
    model_dir, _ = saved_model_dir(tmp_path)
    write_task_config(model_dir, {"task": "classification", "heads": ["classifier"],
                                  "label_names": ["neg", "pos"], "max_seq_length": 128,
                                  "problem_type": "single_label",
                                  "text_inputs": ["text_a"], **fields})
    with pytest.raises(ValueError, match=message):
        kba.load_classifier(str(model_dir))


@pytest.mark.parametrize("values, message", [
    ({"task": "pretraining"}, "task and heads required"),
    ({"task": "pretraining", "heads": ["masked_lm"], "dropout": 0.1}, "dropout"),
    ({"task": "pretraining", "heads": "masked_lm"}, "heads='masked_lm' must be a list"),
    ({"task": "pretraining", "heads": ["next_sentence"]}, "pre-training has 'masked_lm'"),
    ({"task": "pretraining", "heads": ["masked_lm", "span"]}, "pre-training has"),
    ({"task": "", "heads": ["masked_lm"]}, "task='' must be a non-empty string"),
    ({"task": "classification", "heads": ["classifier"], "max_seq_length": 0},
     "max_seq_length=0 must be a positive integer"),
    (["pretraining"], "expected a JSON object"),
])
def test_a_malformed_task_config_is_an_error_naming_the_file(tmp_path, values, message):
    model_dir, _ = saved_model_dir(tmp_path)
    write_task_config(model_dir, values)
    with pytest.raises(ValueError, match=names.TASK_CONFIG_FILE) as error:
        kba.load_pretrainer(str(model_dir))
    assert message in str(error.value)


def test_task_config_holds_what_fine_tuned_directories_record(tmp_path):
    config = TaskConfig(task="classification", heads=["classifier"],
                        label_names=["entailment", "not_entailment"], max_seq_length=128,
                        problem_type="single_label", text_inputs=["text_a", "text_b"])
    config.to_json_file(tmp_path / "task_config.json")
    assert json.loads((tmp_path / "task_config.json").read_text()) == {
        "task": "classification", "heads": ["classifier"],
        "label_names": ["entailment", "not_entailment"], "max_seq_length": 128,
        "problem_type": "single_label", "text_inputs": ["text_a", "text_b"]}
    assert TaskConfig.from_json_file(tmp_path / "task_config.json") == config


@pytest.mark.parametrize("next_sentence_prediction", [True, False])
def test_a_directory_without_task_config_has_its_heads_read_from_the_weights(
        tmp_path, next_sentence_prediction):
    # As written before task_config.json existed.
    model_dir, pretrainer = saved_model_dir(tmp_path, next_sentence_prediction)
    (model_dir / names.TASK_CONFIG_FILE).unlink()
    loaded = kba.load_pretrainer(str(model_dir))
    assert loaded.next_sentence_prediction is next_sentence_prediction
    assert_same_weights(pretrainer, loaded)


def test_the_heads_are_read_from_variable_shapes_not_from_layer_names(tmp_path):
    model_dir, _ = saved_model_dir(tmp_path, next_sentence_prediction=False)
    (model_dir / names.TASK_CONFIG_FILE).unlink()
    with h5py.File(model_dir / names.WEIGHTS_FILE, "a") as f:
        # A Dense layer that is not a 2-way head on the hidden size: not the NSP head,
        # whatever its name.
        f["layers"].create_group("dense").create_group("vars").create_dataset(
            "0", data=np.zeros((32, 3), "float32"))
    assert not kba.load_pretrainer(str(model_dir)).next_sentence_prediction


def test_weights_with_two_candidate_heads_are_refused(tmp_path):
    model_dir, _ = saved_model_dir(tmp_path, next_sentence_prediction=True)
    (model_dir / names.TASK_CONFIG_FILE).unlink()
    with h5py.File(model_dir / names.WEIGHTS_FILE, "a") as f:
        f.copy(f["layers"]["dense"], f["layers"], name="another_dense")
    with pytest.raises(ValueError, match="has 2 layers shaped like the next_sentence head"):
        kba.load_pretrainer(str(model_dir))


def test_a_weights_file_that_is_not_hdf5_is_an_error_naming_it(tmp_path):
    model_dir, _ = saved_model_dir(tmp_path)
    (model_dir / names.WEIGHTS_FILE).write_text("not weights")
    with pytest.raises(ValueError, match=r"model\.weights\.h5 is not a Keras weights file"):
        kba.load_pretrainer(str(model_dir))


def test_missing_files_and_a_foreign_vocabulary_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bert_config.json is missing"):
        kba.load_encoder(str(tmp_path))
    vocab = write_vocab(tmp_path / "a.txt")
    other = tmp_path / "b.txt"
    other.write_text("\n".join(list(names.SPECIAL_TOKENS) + ["x"]) + "\n")
    with pytest.raises(ValueError, match="is not the vocabulary these text settings"):
        save_model_dir(str(tmp_path / "model"), BertPretrainer(BertEncoder(tiny_config())),
                       str(other), TextConfig.for_vocab(vocab, do_lower_case=True))


SQUAD_SETTINGS = {"version_2_with_negative": True, "doc_stride": 128,
                  "max_query_length": 64, "max_answer_length": 30, "n_best_size": 20,
                  "null_score_diff_threshold": -1.5}


def test_a_squad_task_config_round_trips_its_settings(tmp_path):
    task = TaskConfig(task=names.SQUAD_TASK, heads=[names.SPAN_HEAD], max_seq_length=384,
                      settings=SQUAD_SETTINGS)
    task.to_json_file(tmp_path / "task_config.json")
    assert TaskConfig.from_json_file(tmp_path / "task_config.json") == task


@pytest.mark.parametrize("change,message", [
    ({"settings": {**SQUAD_SETTINGS, "doc_stride": 0}}, "doc_stride=0 must be a positive"),
    ({"settings": {k: v for k, v in SQUAD_SETTINGS.items() if k != "n_best_size"}},
     "records exactly"),
    ({"settings": {**SQUAD_SETTINGS, "version_2_with_negative": 1}}, "true or false"),
    ({"max_seq_length": None}, "records its max_seq_length"),
    ({"heads": ["classifier"]}, "the one head 'span_labeler'"),
])
def test_a_squad_task_config_refuses_incomplete_settings(change, message):
    values = dict(task=names.SQUAD_TASK, heads=[names.SPAN_HEAD], max_seq_length=384,
                  settings=SQUAD_SETTINGS)
    with pytest.raises(ValueError, match=message):
        TaskConfig(**{**values, **change})


def test_settings_belong_to_squad_and_ner_models_only():
    with pytest.raises(ValueError, match="settings are recorded for SQuAD and NER models"):
        TaskConfig(task=names.PRETRAINING_TASK, heads=[names.MASKED_LM_HEAD],
                   settings=SQUAD_SETTINGS)


NER_TASK = dict(task=names.NER_TASK, heads=[names.TAGGER_HEAD], max_seq_length=32,
                label_names=["O", "B-PER", "I-PER"], settings={"doc_stride": 8})
CHOICE_TASK = dict(task=names.MULTIPLE_CHOICE_TASK, heads=[names.CHOICE_HEAD],
                   max_seq_length=32)


@pytest.mark.parametrize("change,message", [
    (dict(label_names=None), "a NER model has at least two tags"),
    (dict(settings={}), "a NER model records exactly"),
    (dict(settings={"doc_stride": 0}), "doc_stride=0 must be a positive integer"),
    (dict(settings={"doc_stride": 8, "strict_iob2": "yes"}),
     "strict_iob2='yes' must be true or false"),
    (dict(settings={"doc_stride": 8, "strict": True}), "a NER model records exactly"),
    (dict(heads=[names.CLASSIFIER_HEAD]), "A NER model has the one head"),
    (dict(max_seq_length=None), "A NER model records its max_seq_length"),
])
def test_a_ner_task_config_refuses_what_a_tagger_cannot_use(change, message):
    with pytest.raises(ValueError, match=message):
        TaskConfig(**dict(NER_TASK, **change))


def test_a_multiple_choice_task_config_has_no_labels_or_settings():
    with pytest.raises(ValueError, match="has no label names"):
        TaskConfig(**CHOICE_TASK, label_names=["a", "b"])
    with pytest.raises(ValueError, match="settings are recorded for SQuAD and NER"):
        TaskConfig(**CHOICE_TASK, settings={"doc_stride": 8})


@pytest.mark.parametrize("fields,model_class", [
    (NER_TASK, kba.models.BertTokenClassifier),
    (CHOICE_TASK, kba.models.BertMultipleChoice),
    (dict(task=names.SQUAD_TASK, heads=[names.SPAN_HEAD], max_seq_length=128,
          settings=SQUAD_SETTINGS), kba.models.BertSpanLabeler),
])
def test_task_directories_round_trip_their_model_and_task(tmp_path, fields, model_class):
    from keras_bert_app.model_dir import load_task_model, save_task_dir

    task = TaskConfig(**fields)
    keras.utils.set_random_seed(3)
    encoder = BertEncoder(tiny_config())
    model = (model_class(encoder, num_classes=3) if task.task == names.NER_TASK
             else model_class(encoder))
    vocab = write_vocab(tmp_path / "vocab.txt")
    save_task_dir(tmp_path / "model", model, vocab,
                  TextConfig.for_vocab(vocab, do_lower_case=True), task)
    loaded, recorded = load_task_model(tmp_path / "model", task.task)
    assert type(loaded) is model_class and recorded == task
    assert_same_weights(model, loaded)
    # The encoder alone (what --export_type=encoder takes) from the same directory.
    assert_same_weights(model.encoder, kba.load_encoder(str(tmp_path / "model")))
    other = names.NER_TASK if task.task != names.NER_TASK else names.SQUAD_TASK
    with pytest.raises(ValueError, match=f"task={task.task!r}; a .* model directory has "
                                         f"task {other!r}"):
        load_task_model(tmp_path / "model", other)
    with pytest.raises(ValueError, match="does not describe this"):
        save_task_dir(tmp_path / "other", model, vocab,
                      TextConfig.for_vocab(vocab, do_lower_case=True),
                      TaskConfig(**dict(NER_TASK, label_names=["O", "B-X"])))



def test_a_classifier_directory_holds_float32_weights_alone_from_any_classifier(tmp_path):
    from keras_bert_app.model_dir import (float32_classifier, load_classifier,
                                          save_classifier_dir)
    from keras_bert_app.models import BertClassifier

    vocab = write_vocab(tmp_path / "vocab.txt")
    text = TextConfig.for_vocab(vocab, do_lower_case=False)
    keras.utils.set_random_seed(5)
    trained = BertClassifier(BertEncoder(tiny_config(), dtype="mixed_float16"),
                             num_classes=3)
    trained.compile(keras.optimizers.Adam(1e-3))
    trained.optimizer.build(trained.trainable_variables)  # optimizer state exists
    task = TaskConfig(task=names.CLASSIFICATION_TASK, heads=[names.CLASSIFIER_HEAD],
                      label_names=("a", "b", "c"), max_seq_length=16,
                      problem_type=names.SINGLE_LABEL, text_inputs=names.TEXT_INPUTS[:1])
    plain = float32_classifier(trained)  # what a fine-tuning run ends with: saved as is
    save_classifier_dir(str(tmp_path / "from_trained"), trained, vocab, text, task)
    save_classifier_dir(str(tmp_path / "from_plain"), plain, vocab, text, task)
    from_trained = h5_arrays(tmp_path / "from_trained" / names.WEIGHTS_FILE)
    from_plain = h5_arrays(tmp_path / "from_plain" / names.WEIGHTS_FILE)
    assert sorted(from_trained) == sorted(from_plain)
    assert not [k for k in from_trained if "optimizer" in k]
    for key, value in from_trained.items():
        assert value.dtype == np.float32 or value.dtype.kind != "f", key
        np.testing.assert_array_equal(value, from_plain[key], err_msg=key)
    loaded = load_classifier(str(tmp_path / "from_plain"), with_preprocessor=False)
    assert_same_weights(plain, loaded)


def test_a_weights_file_written_from_the_model_is_linked_not_written_again(tmp_path):
    """A fine-tuning run's best file is the final model's weights: the directory
    takes that file (a hard link) instead of ~0.3 s of writing the same bytes."""
    from keras_bert_app.model_dir import (load_classifier, load_task_model,
                                          save_classifier_dir, save_task_dir)
    from keras_bert_app.models import BertClassifier, BertTokenClassifier

    vocab = write_vocab(tmp_path / "vocab.txt")
    text = TextConfig.for_vocab(vocab, do_lower_case=False)
    keras.utils.set_random_seed(6)
    classifier = BertClassifier(BertEncoder(tiny_config()), num_classes=3)
    best = tmp_path / "best-4.weights.h5"
    classifier.save_weights(str(best))
    task = TaskConfig(task=names.CLASSIFICATION_TASK, heads=[names.CLASSIFIER_HEAD],
                      label_names=("a", "b", "c"), max_seq_length=16,
                      problem_type=names.SINGLE_LABEL, text_inputs=names.TEXT_INPUTS[:1])
    save_classifier_dir(str(tmp_path / "linked"), classifier, vocab, text, task,
                        weights_file=str(best))
    assert os.path.samefile(tmp_path / "linked" / names.WEIGHTS_FILE, best)
    assert not [n for n in os.listdir(tmp_path / "linked") if n.startswith(".partial")]
    assert_same_weights(classifier, load_classifier(str(tmp_path / "linked"),
                                                    with_preprocessor=False))
    os.remove(best)  # a better checkpoint replaces the best file: the directory keeps it
    assert_same_weights(classifier, load_classifier(str(tmp_path / "linked"),
                                                    with_preprocessor=False))

    tagger = BertTokenClassifier(BertEncoder(tiny_config()), num_classes=3)
    tagger_best = tmp_path / "tagger.weights.h5"
    tagger.save_weights(str(tagger_best))
    save_task_dir(tmp_path / "tagger", tagger, vocab, text, TaskConfig(**NER_TASK),
                  weights_file=str(tagger_best))
    assert os.path.samefile(tmp_path / "tagger" / names.WEIGHTS_FILE, tagger_best)
    assert_same_weights(tagger, load_task_model(tmp_path / "tagger", names.NER_TASK)[0])

    # Only for a plain float32 model: a file of a model with optimizer state or
    # another precision is not what the directory holds.
    tagger.compile(keras.optimizers.Adam(1e-3))
    tagger.optimizer.build(tagger.trainable_variables)
    with pytest.raises(ValueError, match="weights_file is for a plain float32"):
        save_task_dir(tmp_path / "refused", tagger, vocab, text, TaskConfig(**NER_TASK),
                      weights_file=str(tagger_best))
    classifier.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="weights_file is for a plain float32"):
        save_classifier_dir(str(tmp_path / "refused"), classifier, vocab, text, task,
                            weights_file=str(best))
    # Without one, a compiled model is copied: the directory has no optimizer state.
    save_task_dir(tmp_path / "compiled", tagger, vocab, text, TaskConfig(**NER_TASK))
    assert not [k for k in h5_arrays(tmp_path / "compiled" / names.WEIGHTS_FILE)
                if "optimizer" in k]


def test_a_classifier_file_of_another_head_is_an_error_naming_the_file(tmp_path):
    """The load builds the classifier without drawing values (its weights all come
    from the file): a file that cannot fill them is an error, not zeros."""
    from keras_bert_app.model_dir import load_classifier, save_classifier_dir
    from keras_bert_app.models import BertClassifier

    vocab = write_vocab(tmp_path / "vocab.txt")
    task = TaskConfig(task=names.CLASSIFICATION_TASK, heads=[names.CLASSIFIER_HEAD],
                      label_names=("a", "b", "c"), max_seq_length=16,
                      problem_type=names.SINGLE_LABEL, text_inputs=names.TEXT_INPUTS[:1])
    save_classifier_dir(str(tmp_path / "three"), BertClassifier(
        BertEncoder(tiny_config()), num_classes=3), vocab,
        TextConfig.for_vocab(vocab, do_lower_case=False), task)
    task_file = tmp_path / "three" / names.TASK_CONFIG_FILE
    values = json.loads(task_file.read_text())
    values["label_names"] = ["a", "b"]
    task_file.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"model\.weights\.h5 does not hold the weights "
                                         "of the classifier"):
        load_classifier(str(tmp_path / "three"), with_preprocessor=False)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
