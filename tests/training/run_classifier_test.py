"""pipelines.run_classifier end to end on a tiny model: the fine-tuned directory,
eval_results.json and predictions.tsv it writes, resume after a lost checkpoint, the
problem types, and one-line errors that leave nothing behind."""

import json
import os
import sys

import h5py
import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.model_dir import load_classifier
from keras_bert_app.plots import read_tensor
from keras_bert_app.training.checkpointing import has_optimizer_state
from tests.helpers import assert_start_up_logged, run_pipeline, write_tiny_pretrained_dir

GOOD = ["the king is good", "a good lord", "good night sweet prince", "so good", "good"]
BAD = ["the king is dead", "a dead lord", "dead of night, dead prince", "so dead", "dead"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return write_tiny_pretrained_dir(tmp_path_factory.mktemp("pretrained"))


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    return str(path)


def sentiment_files(tmp_path):
    rows = [(t, "pos") for t in GOOD] + [(t, "neg") for t in BAD]
    train = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], rows * 4)
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], rows)
    test = write_tsv(tmp_path / "test.tsv", ["sentence"], [(t,) for t in GOOD + BAD])
    return train, dev, test


def common_flags(pretrained, model_dir):
    return [f"--init_model_dir={pretrained}", f"--model_dir={model_dir}",
            "--max_seq_length=16", "--train_batch_size=4", "--learning_rate=5e-3",
            "--text_a_column=sentence", "--label_column=label"]


def test_fine_tunes_evaluates_predicts_and_ends_as_a_model_directory(pretrained, tmp_path):
    train, dev, test = sentiment_files(tmp_path)
    model_dir = tmp_path / "run"
    result = run_pipeline("run_classifier", *common_flags(pretrained, model_dir),
                          f"--train_file={train}", f"--eval_file={dev}",
                          f"--predict_file={test}", "--do_train", "--do_eval",
                          "--do_predict", "--num_train_epochs=8")
    assert_start_up_logged(result.stdout)
    task = json.loads((model_dir / names.TASK_CONFIG_FILE).read_text())
    # Label names are the training labels as strings, sorted: id 0 = "neg".
    assert task == {"task": "classification", "heads": ["classifier"],
                    "label_names": ["neg", "pos"], "max_seq_length": 16,
                    "problem_type": "single_label", "text_inputs": ["text_a"]}
    results = json.loads((model_dir / names.EVAL_RESULTS_FILE).read_text())
    assert {"accuracy", "f1", "mcc", "loss", "global_step", "best_step"} <= set(results)
    assert results["global_step"] == 80 and results["metric"] == "accuracy"
    assert results["accuracy"] == 1.0
    lines = (model_dir / names.PREDICTIONS_FILE).read_text().splitlines()
    assert lines[0].split("\t") == ["index", "text_a", "prediction", "prob_neg", "prob_pos"]
    predicted = [line.split("\t")[2] for line in lines[1:]]
    assert predicted == ["pos"] * 5 + ["neg"] * 5
    best = json.loads((model_dir / "checkpoints" / "best" / "best.json").read_text())
    assert best["metric"] == "accuracy" and best["step"] == results["best_step"]
    assert os.path.isfile(model_dir / "checkpoints" / "best" / best["weights"])
    assert os.listdir(model_dir / "logs" / "eval")
    # The evaluation of the best step logged its confusion matrix: one count per dev
    # example (rows true, columns predicted, ids of task_config's label_names).
    _, confusion = read_tensor(model_dir / "logs" / "eval", "confusion_matrix",
                                  step=results["best_step"])
    assert confusion.shape == (2, 2) and confusion.sum() == results["eval_examples"]
    assert np.trace(confusion) == round(results["accuracy"] * confusion.sum())
    # The directory loads as the classifier it describes, with its preprocessor.
    classifier = load_classifier(model_dir)
    probabilities = keras.ops.softmax(classifier.predict(GOOD[:2] + BAD[:2], verbose=0))
    assert keras.ops.convert_to_numpy(probabilities).argmax(-1).tolist() == [1, 1, 0, 0]

    # Evaluation alone reads the fine-tuned model_dir and reproduces the numbers.
    again = run_pipeline("run_classifier", f"--model_dir={model_dir}",
                         f"--eval_file={dev}", "--text_a_column=sentence",
                         "--label_column=label", "--do_eval")
    assert "accuracy=1.0000" in again.stdout


def test_resumes_from_the_newest_checkpoint_to_the_same_weights(pretrained, tmp_path):
    train, _, _ = sentiment_files(tmp_path)
    # Steps from epochs (40 rows, batch 4: 8 steps): a resume compares the step count
    # the first run recorded with the one the same flags come to.
    flags = [*common_flags(pretrained, tmp_path / "run"), f"--train_file={train}",
             "--do_train", "--num_train_epochs=0.8", "--save_checkpoints_steps=4",
             "--keep_checkpoint_max=5"]
    run_pipeline("run_classifier", *flags)
    finished = read_weights(tmp_path / "run" / names.WEIGHTS_FILE)
    # A kill after step 4: the last checkpoint and the final files are gone.
    os.remove(tmp_path / "run" / "checkpoints" / "ckpt-8.weights.h5")
    os.remove(tmp_path / "run" / names.WEIGHTS_FILE)
    resumed = run_pipeline("run_classifier", *flags)
    assert "Resuming at step 4 of 8" in resumed.stdout
    resumed_weights = read_weights(tmp_path / "run" / names.WEIGHTS_FILE)
    for name, value in resumed_weights.items():
        np.testing.assert_allclose(value, finished[name], atol=1e-5, err_msg=name)
    # The last checkpoint leaves the optimizer's state out (nothing trains on from a
    # finished run); the finished run, run again, takes its weights and trains nothing.
    checkpoints = tmp_path / "run" / "checkpoints"
    assert has_optimizer_state(checkpoints / "ckpt-4.weights.h5")
    assert not has_optimizer_state(checkpoints / "ckpt-8.weights.h5")
    done = run_pipeline("run_classifier", *flags)
    assert "Resuming at step 8 of 8" in done.stdout
    for name, value in read_weights(tmp_path / "run" / names.WEIGHTS_FILE).items():
        np.testing.assert_array_equal(value, resumed_weights[name], err_msg=name)
    changed = run_pipeline("run_classifier", *flags[:-3], "--num_train_steps=12",
                           "--save_checkpoints_steps=4", check=False)
    assert changed.returncode == 2 and "num_train_steps=8 (now 12)" in changed.stderr


def run_with_scripted_accuracy(pretrained, tmp_path, monkeypatch, accuracies):
    """A 6-step run evaluated at steps 2, 4 and 6, whose evaluations score
    `accuracies`: `(results, model directory, evaluated steps)`."""
    from keras_bert_app.training import fine_tuning
    from keras_bert_app.training.classification import ClassifierRunConfig, run_classifier

    train, dev, _ = sentiment_files(tmp_path)
    scripted = iter(accuracies)
    evaluated = []

    def fake_evaluate(config, data, classifier, step, chief=True):
        evaluated.append(step)
        return {"accuracy": next(scripted), "loss": 1.0 / step}

    monkeypatch.setattr(fine_tuning, "evaluate", fake_evaluate)
    model_dir = tmp_path / "run"
    results = run_classifier(ClassifierRunConfig(
        model_dir=str(model_dir), init_model_dir=pretrained, train_file=train,
        eval_file=dev, text_a_column="sentence", label_column="label", do_train=True,
        do_eval=True, num_train_steps=6, save_checkpoints_steps=2, train_batch_size=4,
        max_seq_length=16, keep_checkpoint_max=5, verbose=0))
    return results, model_dir, evaluated


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_batches_pad_to_their_longest_row_only_without_xla(
        pretrained, tmp_path, monkeypatch, jit_compile):
    """Where a new length compiles nothing, to the batch's longest row; with XLA, to
    the length bucket (a handful of compiled shapes)."""
    from keras_bert_app.training.classification import ClassifierRunConfig, run_classifier
    from keras_bert_app.training.classifier_inputs import ClassifierData

    train, _, _ = sentiment_files(tmp_path)
    padded, train_dataset = [], ClassifierData.train_dataset

    def spy(self, *args, **kwargs):
        padded.append(kwargs.get("pad_to_longest", False))
        return train_dataset(self, *args, **kwargs)

    monkeypatch.setattr(ClassifierData, "train_dataset", spy)
    run_classifier(ClassifierRunConfig(
        model_dir=str(tmp_path / "run"), init_model_dir=pretrained, train_file=train,
        text_a_column="sentence", label_column="label", do_train=True,
        num_train_steps=2, train_batch_size=4, max_seq_length=16, verbose=0,
        jit_compile=jit_compile))
    assert padded == [not jit_compile]


def test_a_tpu_compiles_each_batch_shape_whatever_jit_compile_says():
    from keras_bert_app.training.classification import _compiles_per_shape
    from keras_bert_app.training.distribution import Distribution

    assert not _compiles_per_shape(False, Distribution("default"))
    assert _compiles_per_shape(True, Distribution("mirrored"))
    assert _compiles_per_shape(False, Distribution("tpu"))  # XLA always, on a TPU


def test_the_model_directory_ends_as_the_best_evaluated_checkpoint(
        pretrained, tmp_path, monkeypatch):
    results, model_dir, evaluated = run_with_scripted_accuracy(
        pretrained, tmp_path, monkeypatch, [0.5, 0.9, 0.7])
    assert evaluated == [2, 4, 6]
    assert (results["accuracy"], results["best_step"], results["global_step"]) == (0.9, 4, 6)
    best = os.listdir(model_dir / "checkpoints" / "best")
    assert sorted(best) == ["best-4.weights.h5", "best.json"]  # step 2's file removed
    final = read_weights(model_dir / names.WEIGHTS_FILE)
    for name, value in read_weights(model_dir / "checkpoints" / "best" /
                                    "best-4.weights.h5").items():
        np.testing.assert_array_equal(final[name], value, err_msg=name)
    # Read back from the best file into the copy, which held step 6's: written anew.
    assert not os.path.samefile(model_dir / names.WEIGHTS_FILE, model_dir / "checkpoints"
                                / "best" / "best-4.weights.h5")
    last = read_weights(model_dir / "checkpoints" / "ckpt-6.weights.h5")
    shared = [n for n in final if n in last]
    assert len(shared) == len(final)  # the same layout: what differs is the step
    assert any(not np.array_equal(final[n], last[n]) for n in shared)


def test_when_the_last_evaluation_is_the_best_its_weights_are_not_read_back(
        pretrained, tmp_path, monkeypatch):
    from keras_bert_app.models import BertClassifier

    def not_read(model, path, *args, **kwargs):
        raise AssertionError(f"{path} was read back")

    monkeypatch.setattr(BertClassifier, "load_weights", not_read)
    results, model_dir, _ = run_with_scripted_accuracy(  # the last is the best
        pretrained, tmp_path, monkeypatch, [0.5, 0.7, 0.9])
    assert (results["accuracy"], results["best_step"]) == (0.9, 6)
    # The model directory still ends as the best file (here: the last step's
    # weights): the same file, linked rather than written again.
    best_file = model_dir / "checkpoints" / "best" / "best-6.weights.h5"
    assert os.path.samefile(model_dir / names.WEIGHTS_FILE, best_file)
    final = read_weights(model_dir / names.WEIGHTS_FILE)
    best = read_weights(best_file)
    assert final.keys() == best.keys()
    for name, value in best.items():
        np.testing.assert_array_equal(final[name], value, err_msg=name)


def read_weights(path):
    out = {}

    def keep(name, item):  # returns None: a value would stop visititems
        if isinstance(item, h5py.Dataset):
            out[name] = item[()]

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    assert len(out) > 10, path
    return out


def test_pairs_regression_and_multi_label_from_csv_and_json_lines(pretrained, tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("a,b,score\n" + "".join(
        f'"{g}","{b}",{i % 5}.5\n' for i, (g, b) in enumerate(zip(GOOD, BAD))) * 2)
    run_pipeline("run_classifier", f"--init_model_dir={pretrained}",
                 f"--model_dir={tmp_path / 'sts'}", f"--train_file={csv_path}",
                 f"--eval_file={csv_path}", "--text_a_column=a", "--text_b_column=b",
                 "--label_column=score", "--regression", "--do_train", "--do_eval",
                 "--num_train_steps=2", "--max_seq_length=24")
    results = json.loads((tmp_path / "sts" / names.EVAL_RESULTS_FILE).read_text())
    assert {"pearson", "spearman", "mse"} <= set(results) and results["metric"] == "pearson"
    task = json.loads((tmp_path / "sts" / names.TASK_CONFIG_FILE).read_text())
    assert task["problem_type"] == "regression" and task["text_inputs"] == ["text_a", "text_b"]

    jsonl = tmp_path / "tags.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "tags": "royal,good"}) + "\n"
                             for t in GOOD) + "".join(
        json.dumps({"text": t, "tags": "bad"}) + "\n" for t in BAD))
    run_pipeline("run_classifier", f"--init_model_dir={pretrained}",
                 f"--model_dir={tmp_path / 'tags'}", f"--train_file={jsonl}",
                 f"--predict_file={jsonl}", "--text_a_column=text", "--label_column=tags",
                 "--label_separator=,", "--do_train", "--do_predict", "--num_train_steps=2",
                 "--max_seq_length=16")
    task = json.loads((tmp_path / "tags" / names.TASK_CONFIG_FILE).read_text())
    assert task["problem_type"] == "multi_label"
    assert task["label_names"] == ["bad", "good", "royal"]
    header = (tmp_path / "tags" / names.PREDICTIONS_FILE).read_text().splitlines()[0]
    assert header.split("\t")[-3:] == ["prob_bad", "prob_good", "prob_royal"]


def bad_input(tmp_path, problem):
    """(train file, eval file, label column, the message expected) of a bad-input
    case."""
    train, dev, _ = sentiment_files(tmp_path)
    column = "label"
    if problem == "malformed_row":
        with open(train, "a") as f:
            f.write("a row without its label\n")
        expected = f"{train}:42"
    elif problem == "unknown_eval_label":
        with open(dev, "a") as f:
            f.write("a new label\tneutral\n")
        expected = f"{dev}:12: unknown label 'neutral'"
    else:
        column = "stars"
        expected = "stars"
    return train, dev, column, expected


@pytest.mark.parametrize("problem", ["malformed_row", "unknown_eval_label", "missing_column"])
def test_bad_input_is_a_one_line_error_and_nothing_is_written(pretrained, tmp_path, problem):
    # What the pipeline prints as its one error line (test below): the message of the
    # error the library raises, before anything is written.
    from keras_bert_app.training.classification import ClassifierRunConfig, run_classifier

    train, dev, column, expected = bad_input(tmp_path, problem)
    model_dir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        run_classifier(ClassifierRunConfig(
            model_dir=str(model_dir), init_model_dir=pretrained, train_file=train,
            eval_file=dev, text_a_column="sentence", label_column=column, do_train=True,
            do_eval=True, max_seq_length=16, train_batch_size=4, verbose=0))
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert not model_dir.exists()


def test_the_pipeline_reports_bad_input_in_one_line_with_exit_2(pretrained, tmp_path):
    train, dev, column, expected = bad_input(tmp_path, "malformed_row")
    model_dir = tmp_path / "run"
    result = run_pipeline("run_classifier", *common_flags(pretrained, model_dir)[:-1],
                          f"--label_column={column}", f"--train_file={train}",
                          f"--eval_file={dev}", "--do_train", "--do_eval", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    # TensorFlow's own log lines may say "error:" too (a failed cuInit on CPU hosts).
    error = [line for line in result.stderr.splitlines()
             if line.startswith("pipelines.run_classifier: error:")]
    assert len(error) == 1 and expected in error[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not model_dir.exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
