"""keras_bert_app.plots and pipelines.plot_logs: curves and confusion matrices drawn
from real TensorBoard event files (written here with tf.summary and the runner's
writers), read back value for value, and PNGs that open as images."""

import json
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_bert_app import names, plots
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.training.runner import write_scalars, write_tensors
from tests.helpers import run_pipeline

LABELS = ("negative", "neutral", "positive")
# Not symmetric: swapping rows and columns changes every off-diagonal cell.
#   true negative: 5 predicted negative, 1 neutral, 0 positive
MATRIX = np.array([[5, 1, 0],
                   [2, 7, 3],
                   [0, 0, 4]], np.int64)


def write_series(log_dir, series):
    """One writer (one event file), as one training session writes: {tag: {step: v}}."""
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for tag, values in series.items():
            for step, value in values.items():
                tf.summary.scalar(tag, value, step=step)
    writer.close()


def classifier_dir(path, matrices, eval_results=None):
    """A fine-tuned-looking model_dir: task_config.json, train and eval logs, one
    confusion matrix per step of `matrices`, and `eval_results` if given."""
    os.makedirs(path, exist_ok=True)
    TaskConfig(task=names.CLASSIFICATION_TASK, heads=[names.CLASSIFIER_HEAD],
               label_names=LABELS, max_seq_length=16, problem_type=names.SINGLE_LABEL,
               text_inputs=names.TEXT_INPUTS[:1]).to_json_file(
        os.path.join(path, names.TASK_CONFIG_FILE))
    write_series(os.path.join(path, "logs", "train"), {
        "loss": {10: 1.1, 20: 0.8, 30: 0.5}, "accuracy": {10: 0.4, 20: 0.6, 30: 0.8},
        "learning_rate": {10: 1e-4, 20: 5e-5, 30: 0.0}})
    eval_dir = os.path.join(path, "logs", "eval")
    for step, matrix in matrices.items():
        write_scalars(eval_dir, step, {"accuracy": np.trace(matrix) / matrix.sum(),
                                       "loss": 1.0 / step})
        write_tensors(eval_dir, step, {"confusion_matrix": matrix})
    if eval_results is not None:
        with open(os.path.join(path, names.EVAL_RESULTS_FILE), "w") as f:
            json.dump(eval_results, f)
    return str(path)


def assert_png(path, min_size=300, max_size=4000):
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        image.verify()
    assert min_size <= width <= max_size and min_size <= height <= max_size, image.size


def test_scalars_read_back_as_written_with_steps_sorted(tmp_path):
    write_series(tmp_path, {"loss": {30: 0.5, 10: 2.0, 20: 1.25},
                            "learning_rate": {10: 1e-4, 20: 2e-5}})
    scalars = plots.read_scalars(tmp_path)
    assert sorted(scalars) == ["learning_rate", "loss"]
    steps, values = scalars["loss"]
    assert steps.tolist() == [10, 20, 30]
    np.testing.assert_allclose(values, [2.0, 1.25, 0.5], rtol=1e-6)  # float32 on disk
    np.testing.assert_allclose(scalars["learning_rate"][1], [1e-4, 2e-5], rtol=1e-6)


def test_a_resumed_run_repeating_steps_takes_the_value_written_last(tmp_path):
    # The first session reached step 30; killed, it resumed from the step-20
    # checkpoint in a second event file and logged 30 (and 40) again.
    write_series(tmp_path, {"loss": {10: 3.0, 20: 2.0, 30: 1.5}})
    write_series(tmp_path, {"loss": {30: 1.0, 40: 0.75}})
    assert len(os.listdir(tmp_path)) == 2
    steps, values = plots.read_scalars(tmp_path)["loss"]
    assert steps.tolist() == [10, 20, 30, 40]
    assert values.tolist() == [3.0, 2.0, 1.0, 0.75]


def test_a_record_cut_short_by_a_kill_keeps_the_records_before_it(tmp_path):
    write_series(tmp_path, {"loss": {10: 3.0, 20: 2.0}})
    (path,) = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[:-5])  # the step-20 record loses its end
    steps, values = plots.read_scalars(tmp_path)["loss"]
    assert steps.tolist() == [10] and values.tolist() == [3.0]


def test_training_curves_draw_train_and_eval_on_the_same_axes(tmp_path):
    model_dir = classifier_dir(tmp_path / "run", {10: MATRIX, 30: MATRIX})
    figure = plots.training_curves_figure(
        plots.read_scalars(os.path.join(model_dir, "logs", "train")),
        plots.read_scalars(os.path.join(model_dir, "logs", "eval")), "run")
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}
    assert list(panels) == ["loss", "accuracy", "learning rate"]
    lines = {line.get_label(): line for line in panels["loss"].get_lines()}
    assert sorted(lines) == ["eval", "train"]
    assert lines["train"].get_xdata().tolist() == [10, 20, 30]
    np.testing.assert_allclose(lines["train"].get_ydata(), [1.1, 0.8, 0.5], rtol=1e-6)
    assert lines["eval"].get_xdata().tolist() == [10, 30]
    np.testing.assert_allclose(lines["eval"].get_ydata(), [1 / 10, 1 / 30], rtol=1e-6)
    assert [line.get_label() for line in panels["learning rate"].get_lines()] == ["train"]

    png = plots.plot_training_curves(model_dir, tmp_path / "pictures" / "curves.png")
    assert_png(png)


def test_confusion_matrix_rows_are_true_labels_and_columns_predicted():
    figure = plots.confusion_matrix_figure(MATRIX, LABELS, "title")
    ax = figure.axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}  # (row = y, column = x) of each annotation
    for (row, column), text in cells.items():
        count, share = text.split("\n")
        assert int(count) == MATRIX[row, column], (row, column)
        assert share == f"{MATRIX[row, column] / MATRIX[row].sum():.0%}"
    assert len(cells) == MATRIX.size
    assert [t.get_text() for t in ax.get_yticklabels()] == list(LABELS)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(LABELS)
    assert "true" in ax.get_ylabel() and "predicted" in ax.get_xlabel()


@pytest.mark.parametrize("eval_results,step,source", [
    ({"best_step": 20, "global_step": 30}, 20, "best_step"),
    ({"global_step": 30}, 30, "global_step"),
    ({"accuracy": 0.5}, 30, "logged last"),  # an evaluation alone records no step
    (None, 30, "logged last"),
])
def test_the_matrix_drawn_is_the_one_of_the_model_the_directory_ended_with(
        tmp_path, eval_results, step, source):
    matrices = {10: MATRIX, 20: MATRIX + 1, 30: MATRIX + 2}
    model_dir = classifier_dir(tmp_path, matrices, eval_results)
    matrix, label_names, read_step, read_source = plots.read_confusion_matrix(model_dir)
    assert (read_step, label_names) == (step, LABELS)
    assert source in read_source
    np.testing.assert_array_equal(matrix, matrices[step])
    # The runner's writer keeps the matrix's dtype and shape on disk.
    _, logged = plots.read_tensor(os.path.join(model_dir, "logs", "eval"),
                                  "confusion_matrix", step=10)
    assert logged.dtype == np.int64 and logged.shape == (3, 3)


def test_an_evaluation_alone_after_training_is_the_matrix_drawn(tmp_path):
    # `run_classifier --do_eval` on the finished directory logs at step 0 and writes
    # an eval_results.json without steps: the matrix written last is its model's.
    model_dir = classifier_dir(tmp_path, {10: MATRIX + 1, 20: MATRIX + 2})
    write_tensors(os.path.join(model_dir, "logs", "eval"), 0, {"confusion_matrix": MATRIX})
    matrix, _, step, source = plots.read_confusion_matrix(model_dir)
    assert step == 0 and "logged last" in source
    np.testing.assert_array_equal(matrix, MATRIX)


def test_plot_model_dir_writes_the_curves_and_the_confusion_matrix(tmp_path):
    model_dir = classifier_dir(tmp_path / "run", {10: MATRIX}, {"best_step": 10})
    # A second evaluation split (MNLI's) logs its matrix under the split's prefix.
    write_tensors(os.path.join(model_dir, "logs", "eval"), 10,
                  {"dev_mismatched/confusion_matrix": MATRIX.T})
    written = plots.plot_model_dir(model_dir)
    assert written == [os.path.join(model_dir, "plots", name) for name in (
        "training_curves.png", "confusion_matrix.png",
        "confusion_matrix_dev_mismatched.png")]
    for path in written:
        assert_png(path)


def test_a_directory_without_a_matrix_has_the_curves_only(tmp_path):
    # Pre-training (or regression, multi-label): scalars, no confusion matrix.
    write_series(tmp_path / "logs" / "train", {"loss": {1: 9.0, 2: 8.0},
                                               "masked_lm_accuracy": {1: 0.0, 2: 0.1}})
    write_scalars(str(tmp_path / "logs" / "eval"), 2, {"masked_lm_accuracy": 0.05})
    written = plots.plot_model_dir(str(tmp_path), str(tmp_path / "out"))
    assert written == [str(tmp_path / "out" / "training_curves.png")]
    # Asked for explicitly, the missing matrix is an error naming the directory.
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}: no confusion matrix")):
        plots.plot_confusion_matrix(str(tmp_path), str(tmp_path / "cm.png"))


def test_missing_logs_are_an_error_naming_the_folder(tmp_path):
    (tmp_path / "logs" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "logs" / "train"))):
        plots.read_scalars(tmp_path / "logs" / "train")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path} has no TensorBoard")):
        plots.plot_model_dir(str(tmp_path))
    with pytest.raises(ValueError, match="confusion_matrix' at step 7"):
        model_dir = classifier_dir(tmp_path / "run", {10: MATRIX}, {"best_step": 7})
        plots.read_confusion_matrix(model_dir)


def test_the_pipeline_prints_the_pictures_it_wrote(tmp_path):
    model_dir = classifier_dir(tmp_path / "run", {10: MATRIX}, {"best_step": 10})
    done = run_pipeline("plot_logs", f"--model_dir={model_dir}",
                        f"--output_dir={tmp_path / 'pictures'}")
    printed = done.stdout.split()
    assert [os.path.basename(p) for p in printed] == ["training_curves.png",
                                                      "confusion_matrix.png"]
    for path in printed:
        assert_png(path)
    missing = run_pipeline("plot_logs", f"--model_dir={tmp_path / 'nowhere'}",
                           check=False)
    assert missing.returncode == 2
    assert str(tmp_path / "nowhere") in missing.stderr.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
